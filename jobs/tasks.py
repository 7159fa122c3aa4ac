import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from integrations.models import SalesforceConnection
from jobs.models import JobRun
from jobs.selectors import connection_ids_with_due_writes
from jobs.services import writes_enqueue
from jobs.writeback import WritebackBusy, connection_write_pending

logger = logging.getLogger(__name__)


@shared_task(
    name="jobs.write_pending",
    queue="default",
    soft_time_limit=30 * 60,
    bind=True,
    max_retries=120,
)
def write_pending(
    self, connection_id: int, *, trigger: str = JobRun.Trigger.EVENT
) -> int | None:
    connection = SalesforceConnection.objects.filter(pk=connection_id).first()
    # The writes of a connection Trig may not call wait, their outcome
    # saying why, until it is connected again.
    # TODO: they wait however long that takes; when the org comes back, a
    # write planned weeks before is sent as if it were new.
    if connection is None or not connection.is_usable:
        return None

    try:
        run = connection_write_pending(connection=connection, trigger=trigger)
    except WritebackBusy as exc:
        # One run per connection at a time: this one waits for the other.
        logger.info("Writeback waits for a run connection_id=%s", connection_id)
        raise self.retry(exc=exc, countdown=settings.JOBS_BUSY_RETRY_SECONDS) from exc
    return run.pk if run else None


@shared_task(name="jobs.write_due_connections", queue="default", soft_time_limit=60)
def write_due_connections() -> int:
    """Queue a run for each connection with writes due: retries and strays."""
    connection_ids = connection_ids_with_due_writes(now=timezone.now())
    writes_enqueue(connection_ids=connection_ids, trigger=JobRun.Trigger.SCHEDULE)
    return len(connection_ids)
