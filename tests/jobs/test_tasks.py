from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.models import SalesforceConnection
from jobs.models import Event, FieldWrite, JobRun
from jobs.services import event_record
from jobs.tasks import write_due_connections, write_pending
from jobs.writeback import WritebackBusy
from tests.jobs.factories import ActionFactory, EventFactory, FieldWriteFactory

pytestmark = pytest.mark.django_db


def _pending(connection, person) -> FieldWrite:
    action = ActionFactory(connection=connection)
    event = EventFactory(workspace=connection.workspace, person=person)
    return FieldWriteFactory(action=action, event=event)


def test_writes_are_sent_only_once_the_event_is_committed(
    org, org_http, connection, person, django_capture_on_commit_callbacks
):
    ActionFactory(connection=connection)

    with django_capture_on_commit_callbacks() as callbacks:
        event_record(
            workspace=connection.workspace,
            kind=Event.Kind.EMAIL_SENT,
            idempotency_key="message-1",
            occurred_at=timezone.now(),
            person=person,
        )
        assert not JobRun.objects.exists()
    for callback in callbacks:
        callback()

    assert JobRun.objects.get().writes_written == 1


def test_the_task_does_nothing_for_a_connection_that_is_gone():
    assert write_pending(424242) is None
    assert not JobRun.objects.exists()


def test_the_task_does_nothing_for_a_connection_to_reconnect(connection, person):
    _pending(connection, person)
    SalesforceConnection.objects.update(
        status=SalesforceConnection.Status.RECONNECT_REQUIRED
    )

    assert write_pending(connection.pk) is None
    assert not JobRun.objects.exists()


def test_the_task_waits_while_another_run_of_the_connection_goes(connection, person):
    _pending(connection, person)
    JobRun.objects.create(connection=connection)

    # Outside a worker, Celery's retry raises the reason it was asked for.
    with pytest.raises(WritebackBusy):
        write_pending(connection.pk)

    assert JobRun.objects.count() == 1


def test_the_tick_queues_each_connection_with_due_writes(
    org, org_http, connection, people, django_capture_on_commit_callbacks
):
    due = _pending(connection, people[0])
    later = _pending(connection, people[1])
    FieldWrite.objects.filter(pk=later.pk).update(
        status=FieldWrite.Status.FAILED,
        is_retryable=True,
        next_attempt_at=timezone.now() + timedelta(hours=1),
    )

    with django_capture_on_commit_callbacks(execute=True):
        queued = write_due_connections()

    due.refresh_from_db()
    later.refresh_from_db()
    assert queued == 1
    assert due.status == FieldWrite.Status.WRITTEN
    assert later.status == FieldWrite.Status.FAILED
    assert JobRun.objects.get().trigger == JobRun.Trigger.SCHEDULE


def test_the_tick_queues_nothing_when_nothing_is_due(connection):
    assert write_due_connections() == 0
