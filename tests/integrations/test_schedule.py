from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.models import SalesforceConnection, SyncRun
from integrations.sync.run import connection_sync, sync_claim, sync_release
from integrations.sync.schedule import sync_enqueue_due
from tests.factories import SalesforceConnectionFactory

pytestmark = pytest.mark.django_db


def test_it_queues_a_new_connection_on_the_next_tick_and_only_once(
    django_capture_on_commit_callbacks,
):
    connection = SalesforceConnectionFactory()

    with django_capture_on_commit_callbacks() as first:
        first_tick = sync_enqueue_due()
    with django_capture_on_commit_callbacks() as second:
        second_tick = sync_enqueue_due()

    assert first_tick == [(connection.pk, "full")] and len(first) == 1
    assert second_tick == [] and second == []


def test_it_queues_again_once_the_day_has_passed():
    connection = SalesforceConnectionFactory(
        next_full_sync_at=timezone.now() - timedelta(seconds=1)
    )
    SalesforceConnectionFactory(next_full_sync_at=timezone.now() + timedelta(hours=3))

    assert sync_enqueue_due() == [(connection.pk, "full")]


def test_it_does_not_queue_a_connection_that_needs_reconnecting():
    SalesforceConnectionFactory(status=SalesforceConnection.Status.RECONNECT_REQUIRED)

    assert sync_enqueue_due() == []


def test_it_lets_one_run_hold_a_connection_at_a_time():
    connection = SalesforceConnectionFactory()

    first = sync_claim(connection=connection)
    second = sync_claim(connection=connection)
    sync_release(connection=connection, claimed_at=first)
    third = sync_claim(connection=connection)

    assert first is not None
    assert second is None
    assert third is not None


def test_it_takes_over_the_claim_of_a_worker_that_died(settings):
    connection = SalesforceConnectionFactory(
        sync_claimed_at=timezone.now()
        - timedelta(seconds=settings.SALESFORCE_SYNC_CLAIM_TIMEOUT_SECONDS + 1)
    )

    assert sync_claim(connection=connection) is not None


def test_it_queues_recent_changes_every_few_minutes_once_a_full_sync_ran():
    now = timezone.now()
    connection = SalesforceConnectionFactory(
        last_full_sync_at=now - timedelta(hours=1),
        next_full_sync_at=now + timedelta(hours=23),
        recent_sync_minutes=15,
    )
    SalesforceConnectionFactory(
        last_full_sync_at=now - timedelta(hours=1),
        next_full_sync_at=now + timedelta(hours=23),
        recent_sync_minutes=0,
    )

    first = sync_enqueue_due(now=now)
    too_soon = sync_enqueue_due(now=now + timedelta(minutes=14))
    later = sync_enqueue_due(now=now + timedelta(minutes=15))

    assert first == [(connection.pk, "recent")]
    assert too_soon == []
    assert later == [(connection.pk, "recent")]


def test_a_due_full_sync_takes_the_place_of_recent_changes():
    now = timezone.now()
    connection = SalesforceConnectionFactory(
        last_full_sync_at=now - timedelta(days=1),
        next_full_sync_at=now - timedelta(minutes=1),
    )

    assert sync_enqueue_due(now=now) == [(connection.pk, "full")]


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_one_connection_at_once_get_one_claim():
    import threading

    from django.db import connection as db_connection

    connection = SalesforceConnectionFactory()
    start = threading.Barrier(4)
    claims = []

    def worker():
        start.wait()
        try:
            claims.append(sync_claim(connection=connection))
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(claims) == 4
    assert sum(claim is not None for claim in claims) == 1


def test_syncing_one_object_leaves_the_connections_full_sync_where_it_was(
    org_http, connection
):
    run = connection_sync(connection=connection, object_names=["Contact"])

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCESS
    assert connection.last_full_sync_at is None
    assert connection.next_full_sync_at is None
    assert sync_enqueue_due() == [(connection.pk, "full")]


def test_an_interval_stored_past_a_day_is_taken_as_a_day_and_stops_no_tick():
    now = timezone.now()
    slow = SalesforceConnectionFactory(
        last_full_sync_at=now - timedelta(hours=1),
        next_full_sync_at=now + timedelta(hours=23),
    )
    # As stored before the admin form checked it.
    SalesforceConnection.objects.filter(pk=slow.pk).update(recent_sync_minutes=30_000)
    other = SalesforceConnectionFactory()

    queued = sync_enqueue_due(now=now)

    slow.refresh_from_db()
    assert sorted(queued) == sorted([(slow.pk, "recent"), (other.pk, "full")])
    assert slow.next_recent_sync_at == now + timedelta(days=1)
