import logging

from celery import shared_task

from integrations.models import SalesforceConnection, SyncRun
from integrations.sync.run import SyncAlreadyRunning, connection_sync
from integrations.sync.schedule import sync_enqueue_due

logger = logging.getLogger(__name__)


@shared_task(
    name="integrations.sync_due_connections", queue="default", soft_time_limit=60
)
def sync_due_connections() -> int:
    return len(sync_enqueue_due())


@shared_task(
    name="integrations.sync_connection",
    queue="default",
    soft_time_limit=6 * 60 * 60,
)
def sync_connection(
    connection_id: int,
    *,
    kind: str = SyncRun.Kind.FULL,
    trigger: str = SyncRun.Trigger.SCHEDULE,
    object_names: list[str] | None = None,
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
    except SyncAlreadyRunning:
        logger.info("Sync skipped, one is running connection_id=%s", connection_id)
        return None
    return run.pk
