"""Refreshing a connection's access token: rotated refresh tokens, and
several workers at once."""

import threading
import time
from urllib.parse import parse_qs

import pytest
from django.conf import settings
from django.db import connection as db_connection

from integrations.models import SalesforceConnection, SyncRun
from integrations.offline_org import offline_org_connect
from integrations.salesforce import oauth
from integrations.salesforce.client import ReconnectRequired
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.testing import mocked
from integrations.services import connection_refresh_token
from integrations.sync.run import connection_sync
from tests.conftest import OFFLINE_HOST
from tests.factories import MembershipFactory

TOKEN_PATH = "/services/oauth2/token"


def _refresh_tokens_sent(mock, since: int) -> list[str]:
    """Return the refresh token each refresh request sent, in order."""
    sent = []
    for call in mock.calls[since:]:
        if call.request.url.endswith(TOKEN_PATH):
            form = parse_qs(call.request.body)
            if form["grant_type"] == ["refresh_token"]:
                sent.append(form["refresh_token"][0])
    return sent


def _stored_refresh_token(connection: SalesforceConnection) -> str:
    """Return the refresh token column as the database holds it."""
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"SELECT refresh_token FROM {SalesforceConnection._meta.db_table} "
            "WHERE id = %s",
            [connection.pk],
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_a_rotated_refresh_token_is_stored_encrypted_and_sent_by_the_next_refresh(
    member,
):
    # The org's Connected App policy rotates the refresh token on every use
    # and refuses the one it replaced.
    org = OfflineOrg(rotate_refresh_tokens=True)
    with mocked(org, base_url=f"https://{OFFLINE_HOST}") as mock:
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )
        granted = connection.refresh_token
        start = len(mock.calls)

        org.expire_access_tokens()
        first = connection_sync(connection=connection, object_names=["User"])
        connection.refresh_from_db()
        rotated = connection.refresh_token
        org.expire_access_tokens()
        second = connection_sync(connection=connection, object_names=["User"])
        connection.refresh_from_db()
        sent = _refresh_tokens_sent(mock, since=start)

        with pytest.raises(oauth.OAuthError) as refused:
            oauth.token_refresh(login_host=OFFLINE_HOST, refresh_token=granted)

    assert first.status == second.status == SyncRun.Status.SUCCESS
    assert rotated != granted
    assert sent == [granted, rotated]
    assert connection.refresh_token not in (granted, rotated)
    stored = _stored_refresh_token(connection)
    assert stored and connection.refresh_token not in stored
    assert refused.value.is_grant_gone


class _HeldTokenEndpoint:
    """The offline org, with its token endpoint held until `release` is set.

    Lets a test keep one worker inside its refresh while another arrives.
    """

    def __init__(self, org: OfflineOrg) -> None:
        self.org = org
        self.entered = threading.Event()
        self.release = threading.Event()
        self.is_holding = False

    def __call__(self, environ, start_response):
        if self.is_holding and environ.get("PATH_INFO") == TOKEN_PATH:
            self.entered.set()
            self.release.wait(timeout=10)
        return self.org(environ, start_response)


@pytest.mark.skipif(
    "sqlite" in settings.DATABASES["default"]["ENGINE"],
    reason="The in-memory SQLite test database refuses a second writer at once "
    "instead of letting it wait for the lock.",
)
@pytest.mark.django_db(transaction=True)
def test_workers_meeting_a_gone_grant_at_once_send_one_refresh_between_them(
    mailoutbox,
):
    org = OfflineOrg()
    endpoint = _HeldTokenEndpoint(org)
    member = MembershipFactory()
    with mocked(endpoint, base_url=f"https://{OFFLINE_HOST}") as mock:
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )
        org.revoke_grants()
        endpoint.is_holding = True
        before = len(mock.calls)
        outcomes = []

        def worker(stale: SalesforceConnection):
            try:
                connection_refresh_token(connection=stale)
            except ReconnectRequired:
                outcomes.append("reconnect required")
            except Exception as exc:
                outcomes.append(repr(exc))
            finally:
                db_connection.close()

        # Each worker holds the connection as it read it: the same token.
        first = threading.Thread(
            target=worker, args=[SalesforceConnection.objects.get(pk=connection.pk)]
        )
        first.start()
        assert endpoint.entered.wait(timeout=10)
        second = threading.Thread(
            target=worker, args=[SalesforceConnection.objects.get(pk=connection.pk)]
        )
        second.start()
        # The second worker now waits for the first one's lock on the row.
        time.sleep(0.5)
        endpoint.release.set()
        first.join()
        second.join()
        sent = [c.request.url for c in mock.calls[before:]]

    connection.refresh_from_db()
    assert outcomes == ["reconnect required"] * 2
    assert sent == [f"https://{OFFLINE_HOST}{TOKEN_PATH}"]
    assert connection.status == SalesforceConnection.Status.RECONNECT_REQUIRED
    # And the workspace is told once.
    assert [m.to for m in mailoutbox] == [[member.user.email]]
