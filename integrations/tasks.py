import logging

from celery import shared_task
from celery.exceptions import Retry
from django.utils import timezone

from integrations.models import SalesforceConnection, SyncRun
from integrations.services import (
    connection_reconnect_notify,
    connection_sync_request_end,
)
from integrations.sync.run import NOT_RUN, SyncAlreadyRunning, connection_sync
from integrations.sync.schedule import sync_enqueue_due

logger = logging.getLogger(__name__)


@shared_task(
    name="integrations.sync_due_connections", queue="default", soft_time_limit=60
)
def sync_due_connections() -> int:
    return len(sync_enqueue_due())


# A run asked for by a person waits for the one going, as long as that one
# may last (its soft time limit); a scheduled run that finds one going is
# simply skipped, as the next tick will come.
RUN_TIME_LIMIT_SECONDS = 6 * 60 * 60
MANUAL_WAIT_SECONDS = 60
MANUAL_WAIT_TRIES = RUN_TIME_LIMIT_SECONDS // MANUAL_WAIT_SECONDS


@shared_task(
    bind=True,
    name="integrations.sync_connection",
    queue="default",
    soft_time_limit=RUN_TIME_LIMIT_SECONDS,
    max_retries=MANUAL_WAIT_TRIES,
)
def sync_connection(
    self,
    connection_id: int,
    *,
    kind: str = SyncRun.Kind.FULL,
    trigger: str = SyncRun.Trigger.SCHEDULE,
    object_names: list[str] | None = None,
) -> int | None:
    # A full sync someone asked for ("Sync now"): until it ends, asking
    # again queues nothing more. It ends here unless it waits for another.
    requested = trigger == SyncRun.Trigger.MANUAL and not object_names
    waiting = False
    try:
        return _sync_connection(
            self,
            connection_id,
            kind=kind,
            trigger=trigger,
            object_names=object_names,
        )
    except Retry:
        waiting = True
        raise
    finally:
        if requested and not waiting:
            connection_sync_request_end(connection_id=connection_id)


def _sync_connection(
    task,
    connection_id: int,
    *,
    kind: str,
    trigger: str,
    object_names: list[str] | None,
) -> int | None:
    connection = SalesforceConnection.objects.filter(pk=connection_id).first()
    if connection is None or not connection.is_usable:
        return None

    try:
        run = connection_sync(
            connection=connection,
            kind=kind,
            trigger=trigger,
            object_names=object_names,
        )
    except SyncAlreadyRunning as exc:
        manual = trigger == SyncRun.Trigger.MANUAL and not task.request.is_eager
        if manual and task.request.retries < MANUAL_WAIT_TRIES:
            logger.info(
                "Sync waits for the one running connection_id=%s", connection_id
            )
            raise task.retry(countdown=MANUAL_WAIT_SECONDS, exc=exc) from exc
        if manual:
            # Out of tries, Celery would fail the task with the exception; the
            # request is told on the connection's runs instead, where it was
            # made, rather than lost.
            logger.warning(
                "Sync gave up waiting for the one running connection_id=%s tries=%s",
                connection_id,
                MANUAL_WAIT_TRIES,
            )
            now = timezone.now()
            SyncRun.objects.create(
                connection=connection,
                kind=kind,
                trigger=trigger,
                status=SyncRun.Status.FAILED,
                started_at=now,
                finished_at=now,
                error_message=(
                    f"{NOT_RUN} another sync of this connection was still going "
                    f"after {RUN_TIME_LIMIT_SECONDS // 3600} hours of waiting "
                    "for it. Ask for the sync again."
                ),
            )
            return None
        logger.info("Sync skipped, one is running connection_id=%s", connection_id)
        return None
    return run.pk


@shared_task(
    name="integrations.notify_reconnect_required",
    queue="default",
    soft_time_limit=60,
    # A mail server that does not answer raises an OSError (SMTPException
    # is one); the notice is the only one this change of status gets.
    autoretry_for=(OSError,),
    retry_backoff=60,
    max_retries=5,
)
def notify_reconnect_required(connection_id: int) -> int:
    connection = (
        SalesforceConnection.objects.select_related("workspace")
        .filter(pk=connection_id)
        .first()
    )
    # Reconnected or disconnected meanwhile: the notice would be out of date.
    if (
        connection is None
        or connection.status != SalesforceConnection.Status.RECONNECT_REQUIRED
    ):
        return 0
    return connection_reconnect_notify(connection=connection)
