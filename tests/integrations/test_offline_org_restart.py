import pytest

from integrations.models import SalesforceConnection, SyncRun
from integrations.offline_org import offline_org_connect
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.testing import mocked
from integrations.sync.run import connection_sync
from tests.conftest import OFFLINE_HOST

pytestmark = pytest.mark.django_db


def test_a_connection_goes_on_syncing_after_the_offline_org_restarts(member, tmp_path):
    grants = tmp_path / "grants.json"
    with mocked(OfflineOrg(grants_path=grants), base_url=f"https://{OFFLINE_HOST}"):
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )
        connection_sync(connection=connection)

    with mocked(OfflineOrg(grants_path=grants), base_url=f"https://{OFFLINE_HOST}"):
        run = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    connection.refresh_from_db()
    assert connection.status == SalesforceConnection.Status.CONNECTED
    assert run.status == SyncRun.Status.SUCCESS
