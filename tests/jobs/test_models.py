import pytest
from django.db import IntegrityError, transaction

from integrations.models import SalesforceConnection
from jobs.models import Event, FieldWrite, JobRun
from tests.factories import SalesforceConnectionFactory
from tests.jobs.factories import ActionFactory, EventFactory

pytestmark = pytest.mark.django_db


def test_the_database_keeps_one_event_per_idempotency_key_and_workspace():
    first = EventFactory(workspace=SalesforceConnectionFactory().workspace)

    with pytest.raises(IntegrityError), transaction.atomic():
        EventFactory(workspace=first.workspace, idempotency_key=first.idempotency_key)
    EventFactory(
        workspace=SalesforceConnectionFactory().workspace,
        idempotency_key=first.idempotency_key,
    )

    assert Event.objects.count() == 2


def test_the_database_lets_one_run_per_connection_run_at_a_time():
    connection = SalesforceConnectionFactory()
    JobRun.objects.create(connection=connection)
    JobRun.objects.create(connection=connection, status=JobRun.Status.COMPLETED)

    with pytest.raises(IntegrityError), transaction.atomic():
        JobRun.objects.create(connection=connection)
    JobRun.objects.create(connection=SalesforceConnectionFactory())

    assert JobRun.objects.filter(status=JobRun.Status.RUNNING).count() == 2


@pytest.mark.parametrize(
    ("status", "is_retryable", "merged_into_id", "outcome"),
    [
        (FieldWrite.Status.PENDING, False, "", "pending"),
        (FieldWrite.Status.WRITTEN, False, "", "written"),
        (FieldWrite.Status.WRITTEN, False, "003A", "written on merged record 003A"),
        (FieldWrite.Status.SKIPPED, False, "", "skipped"),
        (FieldWrite.Status.FAILED, True, "", "failed, temporary"),
        (FieldWrite.Status.FAILED, False, "", "failed"),
    ],
)
def test_a_write_names_its_outcome_in_words(
    status, is_retryable, merged_into_id, outcome
):
    write = FieldWrite(
        status=status, is_retryable=is_retryable, merged_into_id=merged_into_id
    )

    assert write.outcome == outcome


def test_a_job_can_hold_several_actions(db):
    action = ActionFactory(connection=SalesforceConnectionFactory())
    ActionFactory(connection=action.connection, job=action.job, field_name="Title")

    assert action.job.actions.count() == 2


@pytest.mark.parametrize(
    ("status", "is_retryable", "outcome"),
    [
        (FieldWrite.Status.PENDING, False, "waiting: the connection is {}"),
        (FieldWrite.Status.FAILED, True, "waiting: the connection is {}"),
        (FieldWrite.Status.FAILED, False, "failed"),
        (FieldWrite.Status.WRITTEN, False, "written"),
    ],
)
@pytest.mark.parametrize(
    "connection_status",
    [
        SalesforceConnection.Status.RECONNECT_REQUIRED,
        SalesforceConnection.Status.DISCONNECTED,
    ],
)
def test_a_due_write_says_it_waits_for_a_connection_trig_may_not_call(
    status, is_retryable, outcome, connection_status
):
    connection = SalesforceConnectionFactory(status=connection_status)
    write = FieldWrite(connection=connection, status=status, is_retryable=is_retryable)

    assert write.outcome == outcome.format(connection.get_status_display().lower())
