"""A connection whose grant is gone: who is told, and how it comes back."""

import pytest
from django.urls import reverse

from integrations.models import SalesforceConnection, SyncRun
from integrations.sync.run import connection_sync
from integrations.tasks import notify_reconnect_required
from tests.factories import MembershipFactory, UserFactory
from trig_crm.models import Membership

pytestmark = pytest.mark.django_db

SITE_URL = "https://app.trig.example"


def _token_requests(mock, since: int = 0) -> list:
    return [c for c in mock.calls[since:] if c.request.url.endswith("/oauth2/token")]


@pytest.fixture
def colleague(member):
    return MembershipFactory(workspace=member.workspace, role=Membership.Role.MEMBER)


def test_a_gone_grant_tells_the_workspace_once_which_org_why_and_where_to_reconnect(
    org,
    org_http,
    connection,
    member,
    colleague,
    settings,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    settings.SITE_URL = SITE_URL
    MembershipFactory()
    MembershipFactory(workspace=member.workspace, user=UserFactory(is_active=False))
    org.revoke_grants()

    with django_capture_on_commit_callbacks(execute=True):
        run = connection_sync(connection=connection)

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert connection.status == SalesforceConnection.Status.RECONNECT_REQUIRED
    assert len(mailoutbox) == 1
    notice = mailoutbox[0]
    assert notice.to == [member.user.email, colleague.user.email]
    assert notice.subject == "Reconnect Salesforce: production org offline-org.test"
    page = SITE_URL + reverse("integrations:connection-detail", args=[connection.pk])
    assert page in notice.body
    assert f"Production, offline-org.test (org id {org.org_id})" in notice.body
    assert connection.username in notice.body
    assert connection.status_reason in notice.body
    assert "Everything imported so far stays in Trig" in notice.body


def test_later_runs_meeting_the_gone_grant_send_no_further_notice(
    org, org_http, connection, mailoutbox, django_capture_on_commit_callbacks
):
    # Another worker read the connection while it was still connected.
    stale = SalesforceConnection.objects.get(pk=connection.pk)
    org.revoke_grants()
    start = len(org_http.calls)
    with django_capture_on_commit_callbacks(execute=True):
        connection_sync(connection=connection)
    before = len(org_http.calls)

    with django_capture_on_commit_callbacks(execute=True):
        stale_run = connection_sync(connection=stale)
        fresh_run = connection_sync(
            connection=SalesforceConnection.objects.get(pk=connection.pk)
        )

    assert stale_run.status == fresh_run.status == SyncRun.Status.FAILED
    assert len(mailoutbox) == 1
    # The stale worker's first call meets the dead session; it sends no
    # refresh, and the worker that knows the status sends nothing at all.
    assert len(_token_requests(org_http, since=start)) == 1
    assert len(org_http.calls) - before == 1


def test_a_notice_for_a_connection_reconnected_meanwhile_is_not_sent(
    connection, mailoutbox
):
    assert connection.status == SalesforceConnection.Status.CONNECTED

    assert notify_reconnect_required(connection.pk) == 0
    assert mailoutbox == []
