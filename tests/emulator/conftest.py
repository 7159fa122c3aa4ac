from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
import responses
from simple_salesforce import Salesforce

from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.testing import mocked
from tests.emulator.support import BASE_URL, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 12, 9, 30, tzinfo=UTC))


@pytest.fixture
def org(clock: FakeClock) -> OfflineOrg:
    return OfflineOrg(clock=clock)


@pytest.fixture
def mock(org: OfflineOrg) -> Iterator[responses.RequestsMock]:
    with mocked(org) as requests_mock:
        yield requests_mock


@pytest.fixture
def token(org: OfflineOrg) -> str:
    return org.issue_tokens().access_token


@pytest.fixture
def api(mock: responses.RequestsMock, token: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


@pytest.fixture
def sf(mock: responses.RequestsMock, token: str) -> Salesforce:
    return Salesforce(instance_url=BASE_URL, session_id=token, version="62.0")
