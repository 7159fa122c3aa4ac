from datetime import UTC, datetime

import pytest

from integrations.offline_org import offline_org_connect
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.testing import mocked
from tests.conftest import OFFLINE_HOST
from tests.emulator.support import FakeClock
from tests.factories import MembershipFactory


@pytest.fixture
def org():
    return OfflineOrg()


@pytest.fixture
def org_http(org):
    """The offline org, answering every request made to its host."""
    with mocked(org, base_url=f"https://{OFFLINE_HOST}") as mock:
        yield mock


@pytest.fixture
def member(db):
    return MembershipFactory()


@pytest.fixture
def connection(org_http, member):
    """A connected org; `org_http.calls` holds what was sent since connecting."""
    connected = offline_org_connect(
        workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
    )
    org_http.calls.reset()
    return connected


@pytest.fixture
def clocked(member):
    """A connected offline org whose time the test moves: `clock.now`."""
    clock = FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    org = OfflineOrg(clock=clock)
    with mocked(org, base_url=f"https://{OFFLINE_HOST}") as mock:
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )
        yield org, clock, connection, mock
