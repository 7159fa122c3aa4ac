"""Deletions are found through queryAll and the full read of Ids, never through
the deleted-records resource, with its short, old and unsupported windows."""

from datetime import timedelta

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.models import ObjectMapping, SalesforceConnection, SyncRun
from integrations.sync.run import RECYCLE_BIN_DAYS, connection_sync
from people.models import CrmRecord, Person

pytestmark = pytest.mark.django_db


def _replication_calls(mock) -> list[str]:
    return [
        c.request.url
        for c in mock.calls
        if "/deleted" in c.request.url or "/updated" in c.request.url
    ]


def _refusals(mock) -> list[int]:
    return [c.response.status_code for c in mock.calls if c.response.status_code >= 400]


def test_deletions_of_an_object_salesforce_does_not_replicate_are_found(
    org, org_http, connection
):
    org.schema.get("Case").describe["replicateable"] = False
    cases = ObjectMapping.objects.create(
        connection=connection,
        object_name="Case",
        target=ObjectMapping.Target.RECORD,
        position=60,
    )
    cases.field_mappings.create(salesforce_field="Subject", attribute="name")
    connection_sync(connection=connection)
    gone = org.store.records("Case")[0]["Id"]
    org.store.delete(gone)
    org.store.empty_recycle_bin()

    run = connection_sync(connection=connection)

    assert CrmRecord.objects.get(salesforce_id=gone).deleted_at is not None
    assert run.records_deleted == 1
    assert _replication_calls(org_http) == []
    assert _refusals(org_http) == []


def test_syncs_moments_apart_ask_for_no_deletion_window(org, org_http, connection):
    connection_sync(connection=connection)
    gone = org.store.records("Contact")[0]["Id"]
    org.store.delete(gone)

    # Seconds after the last: a deletion window would be under a minute.
    run = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)
    again = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    assert Person.objects.get(salesforce_id=gone).deleted_at is not None
    assert run.records_deleted == 1 and again.status == SyncRun.Status.SUCCESS
    assert _replication_calls(org_http) == []
    assert _refusals(org_http) == []


def test_a_recent_sync_after_a_long_pause_reads_in_full_and_says_so(
    org, org_http, connection
):
    connection_sync(connection=connection)
    # The last sync was longer ago than the recycle bin keeps deletions.
    long_ago = timezone.now() - timedelta(days=RECYCLE_BIN_DAYS + 1)
    SalesforceConnection.objects.filter(pk=connection.pk).update(
        last_full_sync_at=long_ago, last_recent_sync_at=long_ago
    )
    gone = org.store.records("Contact")[0]["Id"]
    org.store.delete(gone)
    org.store.empty_recycle_bin()

    run = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    assert run.kind == SyncRun.Kind.FULL
    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.get(salesforce_id=gone).deleted_at is not None
    assert run.records_deleted == 1
    assert any(
        "Read in full" in p["problem"] and "recycle bin" in p["problem"]
        for p in run.problems
    )
    assert _replication_calls(org_http) == []


def test_changes_a_long_pause_held_back_are_not_counted_as_drift(
    org, org_http, connection
):
    connection_sync(connection=connection)
    long_ago = timezone.now() - timedelta(days=RECYCLE_BIN_DAYS + 1)
    SalesforceConnection.objects.filter(pk=connection.pk).update(
        last_full_sync_at=long_ago, last_recent_sync_at=long_ago
    )
    changed = org.store.records("Contact")[0]["Id"]
    org.store.update(changed, {"Title": "Changed during the pause"})

    run = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    assert run.kind == SyncRun.Kind.FULL
    assert Person.objects.get(salesforce_id=changed).title == (
        "Changed during the pause"
    )
    assert run.records_updated == 1
    # Stamped after the cursor, the change waited for the recent-changes
    # read that did not come; none of them missed it.
    assert run.drift_repaired == 0


def test_a_recent_sync_within_the_recycle_bins_days_reads_recent_changes(
    org, org_http, connection
):
    connection_sync(connection=connection)
    lately = timezone.now() - timedelta(days=RECYCLE_BIN_DAYS - 1)
    SalesforceConnection.objects.filter(pk=connection.pk).update(
        last_full_sync_at=lately, last_recent_sync_at=lately
    )

    run = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    assert run.kind == SyncRun.Kind.RECENT
    assert run.problems == []


def test_a_deletion_purged_from_the_recycle_bin_is_found_by_the_next_full_sync(
    org, org_http, connection
):
    connection_sync(connection=connection)
    gone = org.store.records("Contact")[0]["Id"]
    org.store.delete(gone)
    org.store.empty_recycle_bin()

    recent = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)
    assert Person.objects.get(salesforce_id=gone).deleted_at is None
    full = connection_sync(connection=connection)

    assert recent.records_deleted == 0
    assert Person.objects.get(salesforce_id=gone).deleted_at is not None
    assert full.records_deleted == 1
    assert full.drift_repaired == 1
    assert _replication_calls(org_http) == []


def test_a_first_import_looks_for_no_missing_rows_and_the_next_full_sync_does(
    org, org_http, connection
):
    with CaptureQueriesContext(db) as first:
        connection_sync(connection=connection)
    gone = org.store.records("Contact")[0]["Id"]
    org.store.delete(gone)
    org.store.empty_recycle_bin()
    with CaptureQueriesContext(db) as second:
        run = connection_sync(connection=connection)

    def anti_joins(queries):
        return [q for q in queries if "NOT EXISTS" in q["sql"]]

    # Every row the first import holds, it wrote: nothing can be missing.
    assert anti_joins(first.captured_queries) == []
    assert anti_joins(second.captured_queries)
    assert Person.objects.get(salesforce_id=gone).deleted_at is not None
    assert run.records_deleted == 1
