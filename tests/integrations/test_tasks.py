from datetime import datetime, timedelta

import pytest
from celery import states
from celery.app.trace import trace_task
from celery.contrib.testing.app import TestApp, setup_default_app
from django.utils import timezone

from integrations.models import SalesforceConnection, SyncRun
from integrations.sync.run import connection_sync, sync_claim, sync_release
from integrations.sync.schedule import sync_enqueue
from integrations.tasks import (
    MANUAL_WAIT_SECONDS,
    MANUAL_WAIT_TRIES,
    sync_connection,
    sync_due_connections,
)
from people.models import Person

pytestmark = pytest.mark.django_db


def test_the_scheduled_tick_imports_a_new_connection(
    org, org_http, connection, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        queued = sync_due_connections()

    run = SyncRun.objects.get()
    assert queued == 1
    assert run.trigger == SyncRun.Trigger.SCHEDULE and run.kind == SyncRun.Kind.FULL
    assert Person.objects.count() == org.store.count("Contact")
    connection.refresh_from_db()
    assert connection.next_full_sync_at == run.started_at + timedelta(hours=24)


def test_the_sync_task_does_nothing_for_a_connection_that_is_gone():
    assert sync_connection(424242) is None
    assert not SyncRun.objects.exists()


def test_the_sync_task_does_nothing_for_a_connection_to_reconnect(connection):
    SalesforceConnection.objects.update(
        status=SalesforceConnection.Status.RECONNECT_REQUIRED
    )

    assert sync_connection(connection.pk) is None
    assert not SyncRun.objects.exists()


# ---------------------------------------------------------------- Retries
# Eager runs never reach Celery's retry, so these hand the task to a broker
# kept in memory and run each message as a worker does.


@pytest.fixture
def worker_app():
    app = TestApp(set_as_current=False)
    with setup_default_app(app):
        app.set_current()
        yield app


def _queued(app) -> list:
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue("default")
        messages = []
        while True:
            try:
                message = queue.get(block=False)
            except queue.Empty:
                break
            message.ack()
            messages.append(message)
        queue.close()
    return messages


def _work(app, message) -> tuple[str, object]:
    """Run one message as a worker does; return its state and its result."""
    args, kwargs, embed = message.decode()
    request = {**message.headers, "args": args, "kwargs": kwargs, "is_eager": False}
    task = app.tasks[message.headers["task"]]
    result, info, _, _ = trace_task(
        task, message.headers["id"], args, kwargs, {**request, **embed}, app=app
    )
    return (info.state if info else states.SUCCESS), result


def test_a_manual_sync_waits_for_the_run_going_and_then_runs(
    worker_app, org, org_http, connection, django_capture_on_commit_callbacks
):
    claimed_at = sync_claim(connection=connection)
    calls_before = len(org_http.calls)
    with django_capture_on_commit_callbacks(execute=True):
        sync_enqueue(
            connection=connection,
            kind=SyncRun.Kind.FULL,
            trigger=SyncRun.Trigger.MANUAL,
            object_names=["Contact"],
        )
    (delivered,) = _queued(worker_app)

    state, _ = _work(worker_app, delivered)

    (retry,) = _queued(worker_app)
    waits = datetime.fromisoformat(retry.headers["eta"]) - timezone.now()
    assert state == states.RETRY
    assert timedelta(seconds=50) < waits <= timedelta(seconds=MANUAL_WAIT_SECONDS)
    assert retry.headers["retries"] == 1
    assert retry.headers["task"] == "integrations.sync_connection"
    assert retry.decode()[:2] == [
        [connection.pk],
        {"kind": "full", "trigger": "manual", "object_names": ["Contact"]},
    ]
    # Nothing ran: no run row, no call to Salesforce.
    assert not SyncRun.objects.exists()
    assert len(org_http.calls) == calls_before

    sync_release(connection=connection, claimed_at=claimed_at)
    state, result = _work(worker_app, retry)

    run = SyncRun.objects.get()
    assert state == states.SUCCESS and result == run.pk
    assert run.trigger == SyncRun.Trigger.MANUAL
    assert run.status == SyncRun.Status.SUCCESS
    assert run.objects_done == ["Contact"]
    assert Person.objects.count() == org.store.count("Contact")
    assert _queued(worker_app) == []


def test_a_scheduled_sync_that_finds_one_going_is_dropped(
    worker_app, connection, django_capture_on_commit_callbacks
):
    sync_claim(connection=connection)
    with django_capture_on_commit_callbacks(execute=True):
        sync_enqueue(
            connection=connection,
            kind=SyncRun.Kind.RECENT,
            trigger=SyncRun.Trigger.SCHEDULE,
        )
    (delivered,) = _queued(worker_app)

    state, result = _work(worker_app, delivered)

    assert state == states.SUCCESS and result is None
    assert _queued(worker_app) == []
    assert not SyncRun.objects.exists()


def test_a_manual_sync_that_waited_its_last_try_says_so_on_the_runs(
    worker_app, connection
):
    sync_claim(connection=connection)
    before_next = connection.next_full_sync_at
    sync_connection.apply_async(
        (connection.pk,),
        {"kind": "full", "trigger": SyncRun.Trigger.MANUAL},
        retries=MANUAL_WAIT_TRIES,
    )
    (delivered,) = _queued(worker_app)

    state, result = _work(worker_app, delivered)

    assert state == states.SUCCESS and result is None
    assert _queued(worker_app) == []
    (told,) = SyncRun.objects.all()
    assert told.status == SyncRun.Status.FAILED
    assert told.trigger == SyncRun.Trigger.MANUAL
    assert "still going after 6 hours" in told.error_message
    connection.refresh_from_db()
    assert connection.next_full_sync_at == before_next


def test_a_manual_sync_not_run_leaves_the_stopped_full_sync_to_go_on(
    worker_app, org, org_http, connection
):
    # A day's allocation of 60 calls: a run may spend 6, and stops partial.
    org.usage.maximum = 60
    stopped = connection_sync(connection=connection)
    assert stopped.status == SyncRun.Status.PARTIAL and stopped.objects_done
    # A person asks for a sync while another is going, and gives up waiting.
    claimed_at = sync_claim(connection=connection)
    sync_connection.apply_async(
        (connection.pk,),
        {"kind": "full", "trigger": SyncRun.Trigger.MANUAL},
        retries=MANUAL_WAIT_TRIES,
    )
    (delivered,) = _queued(worker_app)
    _work(worker_app, delivered)
    sync_release(connection=connection, claimed_at=claimed_at)
    org.usage.maximum = 15_000

    resumed = connection_sync(connection=connection)

    assert resumed.status == SyncRun.Status.SUCCESS
    done_before = len(stopped.objects_done)
    assert resumed.objects_done[:done_before] == stopped.objects_done
    assert resumed.records_fetched < sum(
        org.store.count(name) for name in resumed.objects_done
    )
