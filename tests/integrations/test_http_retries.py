"""Over a real connection, a failing read is tried as often as the client
says, and no more: the transport does not retry on top of it."""

import io
import json
import threading

import pytest

from integrations.offline_org import offline_org_connect
from integrations.salesforce.client import SalesforceTransientError
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.server import make_server
from integrations.services import connection_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(tmp_path, settings):
    """The offline org served over HTTPS in a thread: its org, host and log."""
    org = OfflineOrg()
    log = io.StringIO()
    server = make_server(org, cert_dir=tmp_path, port=0, request_log=log)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = f"127.0.0.1:{server.server_port}"
    settings.SALESFORCE_EXTRA_LOGIN_HOSTS = [host]
    settings.SALESFORCE_CA_BUNDLE = str(tmp_path / "ca.pem")
    try:
        yield org, host, log
    finally:
        server.shutdown()
        thread.join()


@pytest.fixture
def served(server, member):
    org, host, log = server
    connection = offline_org_connect(
        workspace=member.workspace, user=member.user, login_host=host
    )
    # What connecting sent (the org's name among it) is not the test's.
    log.seek(0)
    log.truncate()
    return org, connection, log


def _queries(log: io.StringIO) -> list[int]:
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    return [line["status"] for line in lines if "/query" in line["path"]]


@pytest.mark.parametrize("status", [500, 503])
def test_an_outage_costs_the_clients_tries_and_no_more(served, settings, status):
    org, connection, log = served
    org.faults.outage(status=status, times=1000, path_contains="/query")
    client = connection_client(connection=connection)

    with pytest.raises(SalesforceTransientError):
        list(client.query_pages(soql="SELECT Id FROM Contact"))

    assert _queries(log) == [status] * settings.SALESFORCE_TRANSIENT_ATTEMPTS
    assert client.calls == settings.SALESFORCE_TRANSIENT_ATTEMPTS


def test_an_outage_that_passes_is_read_through(served):
    org, connection, log = served
    org.faults.outage(status=503, times=2, path_contains="/query")
    client = connection_client(connection=connection)

    pages = list(client.query_pages(soql="SELECT Id FROM Contact"))

    assert sum(len(page) for page in pages) == org.store.count("Contact")
    assert _queries(log)[:3] == [503, 503, 200]


# The identity URL, and the versions list (the first /services/data/ asked).
@pytest.mark.parametrize("path", ["/id/", "/services/data/"])
def test_a_passing_outage_of_a_plain_read_does_not_fail_a_connect(server, member, path):
    org, host, _ = server
    org.faults.outage(status=503, times=1, path_contains=path)

    connection = offline_org_connect(
        workspace=member.workspace, user=member.user, login_host=host
    )

    assert connection.username
