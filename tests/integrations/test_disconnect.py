"""Disconnecting an org: Salesforce revokes the grant, Trig forgets the
tokens and stops calling, the imported data stays."""

import re
from urllib.parse import parse_qs

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.urls import reverse

from integrations.models import SalesforceConnection, SyncRun
from integrations.salesforce import oauth
from integrations.sync.run import connection_sync
from integrations.sync.schedule import sync_enqueue_due
from integrations.tasks import sync_connection
from people.models import Person
from tests.conftest import OFFLINE_HOST
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

REVOKE_URL = f"https://{OFFLINE_HOST}/services/oauth2/revoke"


@pytest.fixture
def signed_in(client, member):
    client.force_login(member.user)
    return client


def _disconnect(client, connection):
    return client.post(
        reverse("integrations:connection-disconnect", args=[connection.pk]),
        follow=True,
    )


def _stored_tokens(connection) -> tuple:
    """Return both token columns as the database holds them."""
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token FROM "
            f"{SalesforceConnection._meta.db_table} WHERE id = %s",
            [connection.pk],
        )
        return cursor.fetchone()


def test_disconnect_revokes_the_grant_forgets_the_tokens_and_keeps_the_data(
    org, org_http, connection, signed_in, mailoutbox
):
    connection_sync(connection=connection)
    people = Person.objects.count()
    granted = connection.refresh_token
    before = len(org_http.calls)

    page = _disconnect(signed_in, connection).content.decode()

    sent = org_http.calls[before:]
    connection.refresh_from_db()
    assert [(c.request.method, c.request.url) for c in sent] == [("POST", REVOKE_URL)]
    assert parse_qs(sent[0].request.body) == {"token": [granted]}
    assert (
        f"Offline Sample Org (Salesforce production {connection.org_id}) is "
        "disconnected and Trig&#x27;s access to it revoked"
    ) in page
    assert connection.status == SalesforceConnection.Status.DISCONNECTED
    assert _stored_tokens(connection) == ("", "")
    assert Person.objects.count() == people
    assert mailoutbox == []
    # Salesforce no longer honours the grant.
    with pytest.raises(oauth.OAuthError) as refused:
        oauth.token_refresh(login_host=OFFLINE_HOST, refresh_token=granted)
    assert refused.value.is_grant_gone


def test_a_disconnected_org_shows_no_next_sync(org, org_http, connection, signed_in):
    connection_sync(connection=connection)
    _disconnect(signed_in, connection)

    page = signed_in.get(
        reverse("integrations:connection-detail", args=[connection.pk])
    ).content.decode()

    connection.refresh_from_db()
    assert connection.next_full_sync_at is not None
    assert "<dt>Next full sync</dt><dd>none until reconnected</dd>" in page


def test_a_disconnected_org_is_never_synced_again(
    org, org_http, connection, signed_in, django_capture_on_commit_callbacks
):
    connection_sync(connection=connection)
    _disconnect(signed_in, connection)
    before = len(org_http.calls)
    runs = SyncRun.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        queued = sync_enqueue_due()
        asked = sync_connection(connection.pk, trigger=SyncRun.Trigger.MANUAL)
    signed_in.post(reverse("integrations:connection-sync", args=[connection.pk]))

    assert queued == [] and asked is None
    assert SyncRun.objects.count() == runs
    assert len(org_http.calls) == before


def test_a_sync_under_way_stops_at_its_next_call_once_disconnected(
    org, org_http, connection, signed_in
):
    stale = SalesforceConnection.objects.get(pk=connection.pk)
    _disconnect(signed_in, connection)
    before = len(org_http.calls)

    run = connection_sync(connection=stale)

    # Its session went with the grant; it sends no refresh.
    sent = [c.request.url for c in org_http.calls[before:]]
    assert run.status == SyncRun.Status.FAILED
    assert "Disconnected from Trig" in run.error_message
    assert len(sent) == 1 and "/oauth2/" not in sent[0]
    assert Person.objects.count() == 0
    assert _stored_tokens(connection) == ("", "")


def test_when_salesforce_cannot_be_reached_the_tokens_go_and_the_customer_is_told(
    org, org_http, connection, signed_in
):
    org.faults.outage(status=503, path_contains="/services/oauth2/revoke")

    page = _disconnect(signed_in, connection).content.decode()

    connection.refresh_from_db()
    assert connection.status == SalesforceConnection.Status.DISCONNECTED
    assert _stored_tokens(connection) == ("", "")
    assert (
        f"Offline Sample Org (Salesforce production {connection.org_id}) is "
        "disconnected and Trig no longer holds its tokens"
    ) in page
    assert "Salesforce could not be reached to revoke" in page
    assert "Connected Apps OAuth Usage" in page


def test_a_connection_waiting_for_a_reconnect_can_be_disconnected(
    org, org_http, connection, signed_in
):
    org.revoke_grants()
    connection_sync(connection=connection)
    detail = reverse("integrations:connection-detail", args=[connection.pk])
    disconnect = reverse("integrations:connection-disconnect", args=[connection.pk])

    offered = disconnect in signed_in.get(detail).content.decode()
    page = _disconnect(signed_in, connection).content.decode()

    connection.refresh_from_db()
    assert offered
    assert connection.status == SalesforceConnection.Status.DISCONNECTED
    assert _stored_tokens(connection) == ("", "")
    assert "Imported data is kept" in page


# ---------------------------------------------------------------- Asking first


def _confirm_url(connection) -> str:
    return reverse("integrations:connection-disconnect", args=[connection.pk])


def test_disconnect_first_says_what_will_happen_and_changes_nothing(
    org, org_http, connection, signed_in
):
    before = len(org_http.calls)

    response = signed_in.get(_confirm_url(connection))

    page = response.content.decode()
    connection.refresh_from_db()
    assert response.status_code == 200
    assert (
        f"<h1>Disconnect Offline Sample Org (Salesforce production {org.org_id})?</h1>"
        in page
    )
    assert "asks Salesforce to revoke Trig's access" in page
    assert "stops its syncs" in page
    assert "keeps everything already imported" in page
    assert '<form method="post">' in page and "csrfmiddlewaretoken" in page
    assert connection.status == SalesforceConnection.Status.CONNECTED
    assert all(_stored_tokens(connection))
    assert len(org_http.calls) == before


def test_the_connection_page_leads_to_the_question_rather_than_acting(
    org_http, connection, signed_in
):
    page = signed_in.get(
        reverse("integrations:connection-detail", args=[connection.pk])
    ).content.decode()

    assert f'<a class="button secondary" href="{_confirm_url(connection)}">' in page
    assert f'action="{_confirm_url(connection)}"' not in page


def test_the_confirmation_form_disconnects_and_a_post_without_its_token_does_not(
    org_http, connection, member
):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(member.user)
    page = browser.get(_confirm_url(connection)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]

    forged = browser.post(_confirm_url(connection))
    still = SalesforceConnection.objects.get(pk=connection.pk).status
    confirmed = browser.post(_confirm_url(connection), {"csrfmiddlewaretoken": token})

    connection.refresh_from_db()
    assert forged.status_code == 403
    assert still == SalesforceConnection.Status.CONNECTED
    assert confirmed.status_code == 302
    assert connection.status == SalesforceConnection.Status.DISCONNECTED
    assert _stored_tokens(connection) == ("", "")


def test_another_workspaces_org_can_be_neither_asked_about_nor_disconnected(
    org_http, connection, client
):
    client.force_login(MembershipFactory().user)

    asked = client.get(_confirm_url(connection))
    posted = client.post(_confirm_url(connection))

    connection.refresh_from_db()
    assert asked.status_code == posted.status_code == 404
    assert connection.status == SalesforceConnection.Status.CONNECTED
    assert all(_stored_tokens(connection))


def test_the_question_is_for_signed_in_members_only(org_http, connection, client):
    anonymous = client.get(_confirm_url(connection))
    client.force_login(UserFactory())
    outsider = client.get(_confirm_url(connection))

    assert anonymous.status_code == 302
    assert "/accounts/login/" in anonymous["Location"]
    assert outsider.status_code == 404


def test_a_disconnected_org_is_said_to_be_so_with_nothing_to_confirm(
    org_http, connection, signed_in
):
    _disconnect(signed_in, connection)

    page = signed_in.get(_confirm_url(connection)).content.decode()

    assert "is disconnected</h1>" in page
    assert "<form" not in page


@pytest.mark.parametrize("bulk", [False, True])
def test_deleting_a_connection_in_the_admin_revokes_the_grant_first(
    org_http, connection, staff_client, bulk
):
    connection_sync(connection=connection)
    granted = connection.refresh_token

    if bulk:
        response = staff_client.post(
            reverse("admin:integrations_salesforceconnection_changelist"),
            {
                "action": "delete_selected",
                "_selected_action": [connection.pk],
                "post": "yes",
            },
        )
    else:
        response = staff_client.post(
            reverse(
                "admin:integrations_salesforceconnection_delete",
                args=[connection.pk],
            ),
            {"post": "yes"},
        )

    assert response.status_code == 302
    assert not SalesforceConnection.objects.filter(pk=connection.pk).exists()
    assert Person.objects.count() == 0
    with pytest.raises(oauth.OAuthError) as refused:
        oauth.token_refresh(login_host=OFFLINE_HOST, refresh_token=granted)
    assert refused.value.is_grant_gone


def test_a_connection_is_deleted_with_a_warning_when_salesforce_cannot_revoke(
    org, org_http, connection, staff_client
):
    org.faults.outage(status=503, path_contains="/services/oauth2/revoke")

    response = staff_client.post(
        reverse("admin:integrations_salesforceconnection_delete", args=[connection.pk]),
        {"post": "yes"},
        follow=True,
    )

    assert not SalesforceConnection.objects.filter(pk=connection.pk).exists()
    assert "Connected Apps OAuth Usage" in response.content.decode()
