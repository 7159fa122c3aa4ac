"""Which connections are due a sync, and handing them to the workers."""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations.models import SalesforceConnection, SyncRun

logger = logging.getLogger(__name__)

# While a scheduled run waits in the queue, the connection is not due again.
QUEUED_GRACE = timedelta(hours=1)


def sync_enqueue(
    *,
    connection: SalesforceConnection,
    kind: str,
    trigger: str,
    object_names: list[str] | None = None,
) -> None:
    """Queue a sync of a connection once the current transaction commits."""
    from integrations.tasks import sync_connection

    transaction.on_commit(
        lambda: sync_connection.delay(
            connection.pk, kind=kind, trigger=trigger, object_names=object_names
        )
    )


def sync_enqueue_due(*, now=None) -> list[int]:
    """Queue a full sync of each connection whose full sync is due.

    A connection never synced is due at once: its first import runs on the
    next tick after connecting. Each connection is taken with a conditional
    UPDATE, so overlapping ticks queue it once.
    """
    now = now or timezone.now()
    due = SalesforceConnection.objects.filter(
        Q(next_full_sync_at__isnull=True) | Q(next_full_sync_at__lte=now),
        status=SalesforceConnection.Status.CONNECTED,
    ).values_list("pk", "next_full_sync_at")

    queued = []
    for pk, next_at in due:
        taken = SalesforceConnection.objects.filter(
            pk=pk, next_full_sync_at=next_at
        ).update(next_full_sync_at=now + QUEUED_GRACE)
        if not taken:
            continue
        connection = SalesforceConnection(pk=pk)
        sync_enqueue(
            connection=connection,
            kind=SyncRun.Kind.FULL,
            trigger=SyncRun.Trigger.SCHEDULE,
        )
        queued.append(pk)
    if queued:
        logger.info("Queued scheduled full syncs count=%s", len(queued))
    return queued
