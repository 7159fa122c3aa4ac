"""Shared helpers for the offline org's tests."""

from datetime import datetime, timedelta

import requests

from integrations.salesforce.emulator.testing import DEFAULT_BASE_URL

BASE_URL = DEFAULT_BASE_URL
API = f"{BASE_URL}/services/data/v62.0"


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def query(api: requests.Session, soql: str, **headers: str) -> requests.Response:
    return api.get(f"{API}/query/", params={"q": soql}, headers=headers)


def error_code(response: requests.Response) -> str:
    return response.json()[0]["errorCode"]
