"""A connection whose grant is gone: who is told, and how it comes back."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from integrations.models import SalesforceConnection, SyncCursor, SyncRun
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.testing import mocked
from integrations.sync.plan import CURSOR_OVERLAP
from integrations.sync.run import connection_sync
from integrations.sync.schedule import sync_enqueue_due
from integrations.tasks import notify_reconnect_required
from people.models import CrmAccount, Owner, Person
from tests.conftest import OFFLINE_HOST
from tests.emulator.support import FakeClock
from tests.factories import MembershipFactory, UserFactory
from tests.integrations.support import sent_queries
from tests.integrations.test_connect_flow import _consent, _start
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
    assert notice.subject == (
        "Reconnect Salesforce: Offline Sample Org (production org offline-org.test)"
    )
    page = SITE_URL + reverse("integrations:connection-detail", args=[connection.pk])
    assert page in notice.body
    assert (
        f"Org: Offline Sample Org, Production, offline-org.test (org id {org.org_id})"
        in notice.body
    )
    assert connection.username in notice.body
    assert connection.status_reason in notice.body
    assert "Everything imported so far stays in Trig" in notice.body


def test_a_notice_for_an_org_whose_name_is_unknown_names_it_as_before(
    org_http, connection, mailoutbox
):
    SalesforceConnection.objects.filter(pk=connection.pk).update(
        org_name="", status=SalesforceConnection.Status.RECONNECT_REQUIRED
    )

    sent = notify_reconnect_required(connection.pk)

    (notice,) = mailoutbox
    assert sent == 1
    assert notice.subject == "Reconnect Salesforce: production org offline-org.test"
    assert "reach the Salesforce org connected to" in notice.body
    assert f"Org: Production, offline-org.test (org id {connection.org_id})" in (
        notice.body
    )


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


def _cursors() -> dict[tuple[str, str], datetime]:
    return {
        (object_name, field): value
        for object_name, field, value in SyncCursor.objects.values_list(
            "object_name", "field_name", "value"
        )
    }


def _stored() -> dict[str, int]:
    return {
        "people": Person.objects.count(),
        "accounts": CrmAccount.objects.count(),
        "owners": Owner.objects.count(),
    }


def test_a_reconnected_org_goes_on_from_its_cursors_and_brings_what_changed_meanwhile(
    client, member, django_capture_on_commit_callbacks
):
    clock = FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    org = OfflineOrg(clock=clock)
    client.force_login(member.user)
    with mocked(org, base_url=f"https://{OFFLINE_HOST}") as mock:
        client.get(_consent(_start(client), "allow"))
        connection = SalesforceConnection.objects.get()
        connection_sync(connection=connection)
        cursors = _cursors()
        stored = _stored()
        granted = (connection.access_token, connection.refresh_token)

        # The grant is revoked; a record changes while Trig cannot read.
        clock.advance(hours=1)
        org.revoke_grants()
        failed = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)
        contact = org.store.records("Contact")[0]
        clock.advance(hours=1)
        org.store.update(contact["Id"], {"Title": "Chief Trust Officer"})
        waiting = SalesforceConnection.objects.get()
        kept = _stored(), _cursors()

        page = client.get(_consent(_start(client), "allow"), follow=True)
        reconnected = SalesforceConnection.objects.get()
        read_before = len(sent_queries(mock))
        clock.advance(minutes=5)
        with django_capture_on_commit_callbacks(execute=True):
            queued = sync_enqueue_due()
        reads = sent_queries(mock)[read_before:]

    resumed = SyncRun.objects.latest("pk")
    assert failed.status == SyncRun.Status.FAILED
    assert waiting.status == SalesforceConnection.Status.RECONNECT_REQUIRED
    assert kept == (stored, cursors)
    assert "Salesforce connected" in page.content.decode()
    assert reconnected.pk == connection.pk
    assert reconnected.status == SalesforceConnection.Status.CONNECTED
    assert reconnected.status_reason == ""
    assert reconnected.access_token not in granted
    assert reconnected.refresh_token not in granted
    # The scheduler's next tick reads recent changes, not everything again.
    assert queued == [(connection.pk, SyncRun.Kind.RECENT)]
    assert resumed.kind == SyncRun.Kind.RECENT
    assert resumed.status == SyncRun.Status.SUCCESS
    # Each object is read from its saved cursor, less the usual overlap.
    assert cursors and len(reads) == len(cursors)
    for (object_name, field), value in cursors.items():
        since = (value - CURSOR_OVERLAP).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert any(
            f" FROM {object_name} WHERE {field} >= {since} " in query for query in reads
        ), (object_name, reads)
    assert resumed.records_created == 0 and resumed.records_updated == 1
    assert resumed.records_fetched < 10
    assert Person.objects.get(salesforce_id=contact["Id"]).title == (
        "Chief Trust Officer"
    )
    assert _stored() == stored
    # Only Disconnect revokes; failing and reconnecting never do.
    assert not [c for c in mock.calls if "/oauth2/revoke" in c.request.url]
