"""The faults an org can show mid-run: the sync survives each, losing nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.models import SalesforceConnection, SyncRun
from integrations.offline_org import offline_org_connect
from integrations.sync.run import connection_sync
from people.models import CrmAccount, Owner, Person
from tests.conftest import OFFLINE_HOST

pytestmark = pytest.mark.django_db


def _token_requests(mock, since: int) -> int:
    return sum(1 for c in mock.calls[since:] if c.request.url.endswith("/oauth2/token"))


def _all_contacts_stored(org) -> bool:
    return Person.objects.count() == org.store.count("Contact")


def test_a_session_that_expires_mid_run_is_refreshed_once_and_nothing_is_lost(
    org, org_http, connection
):
    org.faults.expire_sessions(after_calls=4)
    before = len(org_http.calls)

    run = connection_sync(connection=connection, batch_size=200)

    assert run.status == SyncRun.Status.SUCCESS
    assert _token_requests(org_http, before) == 1
    assert _all_contacts_stored(org)


def test_a_grant_revoked_mid_run_asks_for_a_reconnect_and_keeps_what_was_read(
    org, org_http, connection
):
    org.faults.revoke_grants(after_calls=4)
    before = len(org_http.calls)

    run = connection_sync(connection=connection, batch_size=200)

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert connection.status == SalesforceConnection.Status.RECONNECT_REQUIRED
    assert _token_requests(org_http, before) == 1
    # What was read before the grant went stays stored.
    stored = Owner.objects.count() + CrmAccount.objects.count() + Person.objects.count()
    assert run.records_created > 0
    assert stored == run.records_created


def test_a_sandbox_whose_grant_is_gone_says_a_sandbox_refresh_needs_a_reconnect(
    org, org_http, member
):
    sandbox = offline_org_connect(
        workspace=member.workspace,
        user=member.user,
        login_host=OFFLINE_HOST,
        environment=SalesforceConnection.Environment.SANDBOX,
    )
    org.faults.revoke_grants(after_calls=4)

    run = connection_sync(connection=sandbox, batch_size=200)

    sandbox.refresh_from_db()
    assert sandbox.status == SalesforceConnection.Status.RECONNECT_REQUIRED
    assert "sandbox" in sandbox.status_reason
    assert "refresh" in sandbox.status_reason
    assert sandbox.status_reason in run.error_message


def test_a_daily_limit_reached_mid_run_ends_it_partial_and_the_next_goes_on(
    org, org_http, connection
):
    org.faults.spend_daily_limit(after_calls=5)

    run = connection_sync(connection=connection, batch_size=200)

    assert run.status == SyncRun.Status.PARTIAL
    assert "Daily API allowance used up" in run.error_message
    # Hours later, the rolling day has room again.
    org.faults.clear()
    org.set_api_usage(0)
    SalesforceConnection.objects.filter(pk=connection.pk).update(
        api_usage_seen_at=timezone.now() - timedelta(hours=2)
    )
    resumed = connection_sync(connection=connection, batch_size=200)
    assert resumed.status == SyncRun.Status.SUCCESS
    assert _all_contacts_stored(org)


def test_too_many_long_requests_at_once_is_waited_out(org, org_http, connection):
    org.faults.limit_concurrency(times=2, path_contains="/query")

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert _all_contacts_stored(org)


def test_a_locked_row_while_reading_is_retried(org, org_http, connection):
    org.faults.lock_rows(path_contains="/query", times=2)

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert _all_contacts_stored(org)


@pytest.mark.parametrize("status", [500, 503])
def test_an_outage_is_retried(org, org_http, connection, status):
    org.faults.outage(status=status, times=2)

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert _all_contacts_stored(org)


def test_a_long_outage_fails_the_objects_it_hits_with_the_status(
    org, org_http, connection
):
    org.faults.outage(status=503, times=1000)

    run = connection_sync(connection=connection)

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert "503" in run.error_message
    assert connection.status == SalesforceConnection.Status.CONNECTED


def test_a_short_page_is_followed_to_the_end(org, org_http, connection):
    org.faults.short_pages(records=3, times=2)

    run = connection_sync(connection=connection, batch_size=200)

    assert run.status == SyncRun.Status.SUCCESS
    assert _all_contacts_stored(org)


def test_a_query_timeout_is_read_again_in_narrower_windows(org, org_http, connection):
    from django.utils import timezone

    from integrations.models import SyncCursor

    connection_sync(connection=connection)
    SyncCursor.objects.filter(connection=connection, object_name="Contact").update(
        value=timezone.now() - timedelta(days=8)
    )
    changed = org.store.records("Contact")[:3]
    for record in changed:
        org.store.update(record["Id"], {"Title": "Changed this week"})
    org.faults.time_out_queries(wider_than=timedelta(days=3), sobject="Contact")

    run = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.filter(title="Changed this week").count() == 3


def test_a_full_read_that_times_out_fails_that_object_alone(org, org_http, connection):
    contact = connection.object_mappings.get(object_name="Contact")
    contact.filter = "CreatedDate >= 2000-01-01T00:00:00Z"
    contact.save()
    org.faults.time_out_queries(wider_than=timedelta(days=1), sobject="Contact")

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert "QUERY_TIMEOUT" in run.object_errors["Contact"]
    assert set(run.objects_done) == {"User", "Account", "Opportunity", "Lead"}


def test_a_spent_day_shown_by_the_usage_figures_is_named_with_them(
    org, org_http, connection
):
    connection_sync(connection=connection)
    org.set_api_usage(15_000)

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.PARTIAL
    assert "Daily API allowance used up (15,000/15,000)" in run.error_message


def _queries_sent(mock, since: int) -> int:
    return sum(1 for c in mock.calls[since:] if "/query" in c.request.url)


def test_a_transaction_security_refusal_asks_the_admin_and_is_tried_only_twice(
    org, org_http, connection
):
    # Enhanced Transaction Security answers every call this way until an
    # admin exempts the integration user (case c30).
    org.faults.fail_next(
        status=400,
        error_code="TXN_SECURITY_METERING_ERROR",
        message="We can't complete the action because enabled transaction "
        "security policies took too long to complete.",
        path_contains="/query",
        times=1000,
    )
    before = len(org_http.calls)

    run = connection_sync(connection=connection)

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert "Exempt from Transaction Security" in run.error_message
    # The first object's read was tried twice, and no other object was tried.
    assert _queries_sent(org_http, before) == 2
    assert _token_requests(org_http, before) == 0
    assert connection.status == SalesforceConnection.Status.CONNECTED


def test_a_transaction_security_refusal_that_passes_costs_one_more_try(
    org, org_http, connection
):
    org.faults.fail_next(
        status=400,
        error_code="TXN_SECURITY_METERING_ERROR",
        message="Transaction security policies took too long to complete.",
        path_contains="/query",
        times=1,
    )

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert _all_contacts_stored(org)


def _contact_page_calls(mock, since: int) -> int:
    """Calls that read a page of Contacts: the query, then each next page."""
    return sum(
        1
        for c in mock.calls[since:]
        if "/query/01g" in c.request.url
        or ("FROM+Contact" in c.request.url and "COUNT" not in c.request.url)
    )


@pytest.mark.parametrize("batch_size", [200, 500, 2000])
@pytest.mark.parametrize("short", [0, 7])
def test_every_record_is_stored_once_whatever_the_page_sizes(
    org, org_http, connection, batch_size, short
):
    contacts = org.store.count("Contact")
    if short:
        # Salesforce cuts pages below the size asked for, and says not done.
        org.faults.short_pages(records=short, times=3)
    before = len(org_http.calls)

    run = connection_sync(
        connection=connection, batch_size=batch_size, object_names=["Contact"]
    )

    stored = Person.objects.values_list("salesforce_id", flat=True)
    assert run.status == SyncRun.Status.SUCCESS
    assert sorted(stored) == sorted(r["Id"] for r in org.store.records("Contact"))
    assert run.records_fetched == run.records_created == contacts
    pages = (3 if short else 0) + -(-(contacts - 3 * short) // batch_size)
    assert _contact_page_calls(org_http, before) == pages


def test_opt_outs_timing_out_before_a_narrowed_read_are_asked_for_once_more(
    org, org_http, connection
):
    from django.utils import timezone

    from integrations.models import SyncCursor

    contact = connection.object_mappings.get(object_name="Contact")
    contact.filter = "HasOptedOutOfEmail = false"
    contact.save()
    connection_sync(connection=connection)
    SyncCursor.objects.filter(connection=connection, object_name="Contact").update(
        value=timezone.now() - timedelta(days=8)
    )
    org.faults.time_out_queries(wider_than=timedelta(days=3), sobject="Contact")
    before = len(org_http.calls)

    connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    opt_out_queries = [
        c
        for c in org_http.calls[before:]
        if "HasOptedOutOfEmail+%3D+true" in c.request.url
    ]
    assert len(opt_out_queries) == 2
