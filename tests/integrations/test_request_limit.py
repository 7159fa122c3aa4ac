"""REQUEST_LIMIT_EXCEEDED: a spent day stops the run, a busy org is waited out.

Salesforce answers both with the same 403 and a message that is not
stable; only the usage figures tell them apart.
"""

import threading

import pytest

from integrations.models import SalesforceConnection, SyncCursor, SyncRun
from integrations.salesforce.client import ApiLimitReached, DailyLimitReached
from integrations.salesforce.emulator.faults import (
    CONCURRENT_REQUESTS_MESSAGE,
    DAILY_LIMIT_MESSAGE,
)
from integrations.services import connection_client
from integrations.sync.run import connection_sync
from people.models import Person

pytestmark = pytest.mark.django_db

# Each as Salesforce words it, the other's, and each reworded a little.
MESSAGES = [
    DAILY_LIMIT_MESSAGE,
    CONCURRENT_REQUESTS_MESSAGE,
    "TotalRequests limit exceeded",
    "Concurrent API requests limit exceeded.",
]


@pytest.fixture
def waits(monkeypatch):
    """The waits between tries of a read, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr("integrations.salesforce.client.retry_wait", waited.append)
    return waited


def _api_calls(mock, since: int = 0) -> list:
    return [c for c in mock.calls[since:] if "/services/data/v" in c.request.url]


def _token_calls(mock, since: int = 0) -> list:
    return [c for c in mock.calls[since:] if "/oauth2/token" in c.request.url]


@pytest.mark.parametrize("message", MESSAGES)
def test_a_spent_day_stops_the_run_at_the_refusal_whatever_its_message(
    org, org_http, connection, waits, message
):
    org.faults.spend_daily_limit(after_calls=4, message=message)
    before = len(org_http.calls)

    run = connection_sync(connection=connection, batch_size=200)

    calls = _api_calls(org_http, before)
    refused = [c for c in calls if c.response.status_code == 403]
    connection.refresh_from_db()
    assert run.status == SyncRun.Status.PARTIAL
    assert "Daily API allowance used up (15,000/15,000)" in run.error_message
    # The refusal is the run's last call: nothing is asked after it, not
    # even again after a wait.
    assert len(refused) == 1 and calls[-1] is refused[0]
    assert waits == []
    assert _token_calls(org_http, before) == []
    assert connection.status == SalesforceConnection.Status.CONNECTED
    # What was stored before the refusal stays, and so do its checkpoints.
    assert Person.objects.count() > 0
    assert SyncCursor.objects.filter(connection=connection).exists()


@pytest.mark.parametrize("message", MESSAGES)
def test_the_run_after_a_spent_day_waits_for_it_without_a_call(
    org, org_http, connection, message
):
    org.faults.spend_daily_limit(after_calls=4, message=message)
    connection_sync(connection=connection, batch_size=200)
    before = len(org_http.calls)

    skipped = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    assert org_http.calls[before:] == []
    assert skipped.status == SyncRun.Status.PARTIAL
    assert skipped.api_calls == 0
    assert "skipped without reading any data" in skipped.error_message
    assert "Daily API allowance used up (15,000/15,000)" in skipped.error_message


@pytest.mark.parametrize("message", MESSAGES)
def test_too_many_long_requests_are_waited_out_whatever_the_message(
    org, org_http, connection, waits, message
):
    org.faults.limit_concurrency(times=2, path_contains="/query", message=message)

    run = connection_sync(connection=connection, batch_size=200)

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.count() == org.store.count("Contact")
    assert len(waits) == 2
    assert _token_calls(org_http) == []  # no refresh since connecting
    assert connection.status == SalesforceConnection.Status.CONNECTED


def test_a_busy_org_is_asked_again_after_growing_waits(
    org, org_http, connection, waits, settings
):
    settings.SALESFORCE_HTTP_BACKOFF_SECONDS = 1
    settings.SALESFORCE_BUSY_BACKOFF_SECONDS = 10
    org.faults.limit_concurrency(times=3, path_contains="/query")
    client = connection_client(connection=connection)

    pages = list(client.query_pages(soql="SELECT Id FROM Contact"))

    assert sum(len(page) for page in pages) == org.store.count("Contact")
    assert len(waits) == 3
    assert waits == sorted(waits) and len(set(waits)) == 3
    # Seconds at first, then tens of seconds: the long requests of the
    # org's own users take that long to end.
    assert 10 <= waits[0] < 12 and 40 <= waits[2] < 42
    assert client.calls == 3 + 1


def test_a_busy_org_that_stays_busy_is_given_up_after_the_allowed_tries(
    org, org_http, connection, waits, settings
):
    org.faults.limit_concurrency(times=1000, path_contains="/query")
    client = connection_client(connection=connection)

    with pytest.raises(ApiLimitReached) as refused:
        list(client.query_pages(soql="SELECT Id FROM Contact"))

    attempts = settings.SALESFORCE_TRANSIENT_ATTEMPTS
    assert "request limit" in str(refused.value)
    assert client.calls == attempts
    assert len(waits) == attempts - 1


def test_a_busy_org_is_read_one_page_at_a_time_from_then_on(
    org, org_http, connection, monkeypatch
):
    org.faults.limit_concurrency(times=1, path_contains="/query")
    client = connection_client(connection=connection, batch_size=200)
    from_the_caller = []
    respond = org._respond

    def noting_the_thread(request):
        from_the_caller.append(threading.current_thread() is threading.main_thread())
        return respond(request)

    monkeypatch.setattr(org, "_respond", noting_the_thread)

    pages = list(client.query_pages(soql="SELECT Id, Email FROM Contact"))

    # No page is asked for alongside another (read ahead in a thread) while
    # the org says too many long requests run at once.
    assert len(pages) == 2
    assert len(from_the_caller) == 1 + 2
    assert all(from_the_caller)


def test_a_page_read_ahead_and_refused_for_a_spent_day_is_not_asked_again(
    org, org_http, connection
):
    client = connection_client(connection=connection, batch_size=200)
    org.faults.spend_daily_limit(after_calls=1)
    before = len(_api_calls(org_http))
    pages = client.query_pages(soql="SELECT Id, Email FROM Contact")

    first = next(pages)
    with pytest.raises(DailyLimitReached) as refused:
        next(pages)

    calls = _api_calls(org_http, before)
    assert len(first) == 200
    assert [c.response.status_code for c in calls] == [200, 403]
    assert "Daily API allowance used up (15,000/15,000)" in str(refused.value)
