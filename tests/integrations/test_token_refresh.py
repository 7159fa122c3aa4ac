"""Refreshing a connection's access token from several workers at once."""

import threading
import time

import pytest
from django.conf import settings
from django.db import connection as db_connection

from integrations.models import SalesforceConnection
from integrations.offline_org import offline_org_connect
from integrations.salesforce.client import ReconnectRequired
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.testing import mocked
from integrations.services import connection_refresh_token
from tests.conftest import OFFLINE_HOST
from tests.factories import MembershipFactory

TOKEN_PATH = "/services/oauth2/token"


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
