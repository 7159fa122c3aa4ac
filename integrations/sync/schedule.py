"""Which connections are due a sync, and handing them to the workers."""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations.models import (
    RECENT_SYNC_MINUTES_MAX,
    SalesforceConnection,
    SyncRun,
)

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


def _take(*, pk: int, field: str, seen, until) -> bool:
    """Take a due connection with a conditional UPDATE; False if another tick did."""
    return bool(
        SalesforceConnection.objects.filter(pk=pk, **{field: seen}).update(
            **{field: until}
        )
    )


def sync_enqueue_due(*, now=None) -> list[tuple[int, str]]:
    """Queue the syncs that are due: full ones, then recent-changes ones.

    A connection never synced is due a full sync at once: its first import
    runs on the next tick after connecting, and later full syncs come 24
    hours after the previous one started, so connections made at different
    times never all start together. Recent-changes syncs come every
    `recent_sync_minutes` once a full sync has run. Overlapping ticks queue
    a connection once; a run that finds another going is skipped (see the
    task).
    """
    now = now or timezone.now()
    connected = SalesforceConnection.objects.filter(
        status=SalesforceConnection.Status.CONNECTED
    )
    queued: list[tuple[int, str]] = []

    full_due = connected.filter(
        Q(next_full_sync_at__isnull=True) | Q(next_full_sync_at__lte=now)
    ).values_list("pk", "next_full_sync_at")
    for pk, seen in full_due:
        if _take(pk=pk, field="next_full_sync_at", seen=seen, until=now + QUEUED_GRACE):
            queued.append((pk, SyncRun.Kind.FULL))

    taken = {pk for pk, _ in queued}
    recent_due = (
        connected.filter(last_full_sync_at__isnull=False, recent_sync_minutes__gt=0)
        .filter(Q(next_recent_sync_at__isnull=True) | Q(next_recent_sync_at__lte=now))
        .exclude(pk__in=taken)
        .values_list("pk", "next_recent_sync_at", "recent_sync_minutes")
    )
    for pk, seen, minutes in recent_due:
        if _take(
            pk=pk,
            field="next_recent_sync_at",
            seen=seen,
            # A value stored before it was checked must not stop every tick.
            until=now + timedelta(minutes=min(minutes, RECENT_SYNC_MINUTES_MAX)),
        ):
            queued.append((pk, SyncRun.Kind.RECENT))

    for pk, kind in queued:
        sync_enqueue(
            connection=SalesforceConnection(pk=pk),
            kind=kind,
            trigger=SyncRun.Trigger.SCHEDULE,
        )
    if queued:
        logger.info("Queued scheduled syncs count=%s", len(queued))
    return queued
