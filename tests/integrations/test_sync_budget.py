"""API limits: a run spends its share of the org's allocation and no more."""

from datetime import timedelta

import pytest

from integrations.models import SalesforceConnection, SyncRun
from integrations.offline_org import offline_org_connect
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.testing import mocked
from integrations.sync.run import connection_sync
from people.models import CrmRecord, Person
from tests.conftest import OFFLINE_HOST

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_org(member):
    # A day's allocation of 60 calls: one run may spend 6 of them.
    org = OfflineOrg(daily_api_requests=60)
    with mocked(org, base_url=f"https://{OFFLINE_HOST}") as mock:
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )
        yield org, connection, mock


def _api_calls(mock, since: int) -> int:
    return sum(1 for c in mock.calls[since:] if "/services/data/v" in c.request.url)


def test_a_run_stops_at_its_share_and_the_next_goes_on_from_there(small_org):
    org, connection, mock = small_org
    runs, sent = [], []
    while not runs or runs[-1].status == SyncRun.Status.PARTIAL:
        before = len(mock.calls)
        runs.append(connection_sync(connection=connection))
        sent.append(_api_calls(mock, before))
        assert len(runs) < 10

    assert runs[0].status == SyncRun.Status.PARTIAL
    assert "Partial — API budget" in runs[0].error_message
    assert all(calls <= 6 + 1 for calls in sent)
    assert runs[-1].status == SyncRun.Status.SUCCESS
    assert Person.objects.count() == org.store.count("Contact")
    assert CrmRecord.objects.filter(object_name="Lead").count() == org.store.count(
        "Lead"
    )
    connection.refresh_from_db()
    assert connection.status == SalesforceConnection.Status.CONNECTED


def test_syncs_pause_while_the_org_is_above_its_threshold(org, org_http, connection):
    org.set_api_usage(12_500)  # of 15,000: above 80 %

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.PARTIAL
    assert "the org has used 12,50" in run.error_message
    assert run.api_calls <= 3


def test_a_spent_daily_allocation_ends_the_run_partial_without_a_refresh(
    org, org_http, connection
):
    org.set_api_usage(15_000)
    before = len(org_http.calls)

    run = connection_sync(connection=connection)

    calls = org_http.calls[before:]
    connection.refresh_from_db()
    assert run.status == SyncRun.Status.PARTIAL
    assert "Daily API allowance used up (15,000/15,000)" in run.error_message
    assert not any("/oauth2/token" in c.request.url for c in calls)
    assert connection.status == SalesforceConnection.Status.CONNECTED


def test_a_run_while_the_allocation_was_lately_seen_spent_calls_nothing(
    org, org_http, connection, settings
):
    org.set_api_usage(15_000)
    connection_sync(connection=connection)
    before = len(org_http.calls)

    skipped = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    assert org_http.calls[before:] == []
    assert skipped.status == SyncRun.Status.PARTIAL
    assert skipped.api_calls == 0
    assert "skipped without reading any data" in skipped.error_message
    assert "Daily API allowance used up (15,000/15,000)" in skipped.error_message

    # Once the figure is older than it may be trusted, a run calls and sees.
    org.set_api_usage(100)
    settings.SALESFORCE_USAGE_TRUSTED_MINUTES = 0
    run = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    assert run.status == SyncRun.Status.SUCCESS
    assert len(org_http.calls) > before


def test_runs_skipped_for_the_budget_go_on_only_within_a_day_of_the_first(
    small_org,
):
    org, connection, mock = small_org
    stopped = connection_sync(connection=connection)
    assert stopped.status == SyncRun.Status.PARTIAL and stopped.objects_done
    # The org is then seen with no room left, and the next run calls nothing.
    SalesforceConnection.objects.filter(pk=connection.pk).update(api_usage_used=60)
    # Skipped runs through the day carry what the first one read.
    skipped = connection_sync(connection=connection)
    assert "skipped without reading any data" in skipped.error_message
    assert skipped.objects_done == stopped.objects_done
    # A day after the first began, the next skipped run starts again.
    SyncRun.objects.filter(pk=stopped.pk).update(
        started_at=stopped.started_at - timedelta(hours=25)
    )
    SyncRun.objects.filter(pk=skipped.pk).update(
        started_at=skipped.started_at - timedelta(hours=2)
    )

    later = connection_sync(connection=connection)

    assert "skipped without reading any data" in later.error_message
    assert later.objects_done == []


@pytest.mark.parametrize(
    "header",
    ["", "api-usage=unknown", "api-usage=5/0", "api-usage=99999999999999999999/60"],
)
def test_a_run_without_readable_usage_headers_still_stops_at_its_share(
    small_org, monkeypatch, header
):
    org, connection, mock = small_org
    # A proxy in front of the org drops or garbles Sforce-Limit-Info.
    monkeypatch.setattr(org.usage, "header", lambda: header)
    before = len(mock.calls)

    run = connection_sync(connection=connection, batch_size=50)

    limits = [c for c in mock.calls[before:] if c.request.url.endswith("/limits/")]
    assert run.status == SyncRun.Status.PARTIAL
    assert "Partial — API budget" in run.error_message
    assert _api_calls(mock, before) <= 6 + 1
    assert len(limits) == 1
    assert "of the org's 60 a day" in run.error_message
