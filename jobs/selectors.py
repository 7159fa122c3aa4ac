from datetime import datetime, timedelta

from django.db.models import Q, QuerySet, Sum

from integrations.models import SalesforceConnection
from jobs.models import ApiKey, DeletedRecord, FieldWrite, Job, JobRun, KnownValue
from trig_crm.models import Workspace


def _due(*, now: datetime) -> Q:
    waiting = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    pending = Q(status=FieldWrite.Status.PENDING) & waiting
    retrying = Q(
        status=FieldWrite.Status.FAILED, is_retryable=True, next_attempt_at__lte=now
    )
    return pending | retrying


def write_due_list(
    *, connection: SalesforceConnection, now: datetime
) -> QuerySet[FieldWrite]:
    """Return the writes a run should send now: pending, or failed for a while."""
    return (
        FieldWrite.objects.filter(_due(now=now), connection=connection)
        .select_related("action", "event")
        .order_by("pk")
    )


def write_due_exists(*, connection: SalesforceConnection, now: datetime) -> bool:
    return FieldWrite.objects.filter(_due(now=now), connection=connection).exists()


def connection_ids_with_due_writes(*, now: datetime) -> list[int]:
    return list(
        FieldWrite.objects.filter(
            _due(now=now), connection__status=SalesforceConnection.Status.CONNECTED
        )
        .values_list("connection_id", flat=True)
        .distinct()
        .order_by()
    )


def write_calls_spent(*, connection: SalesforceConnection, now: datetime) -> int:
    """Count the API calls writes made for a connection in the last 24 hours."""
    # TODO: a run abandoned by a dead worker never stores its calls, which
    # then do not count against the writes' share; counting them would need
    # the client to save its count as it goes.
    spent = JobRun.objects.filter(
        connection=connection, started_at__gte=now - timedelta(hours=24)
    ).aggregate(total=Sum("api_calls"))["total"]
    return spent or 0


def job_list_for_event(*, workspace: Workspace, kind: str) -> QuerySet[Job]:
    return (
        Job.objects.filter(workspace=workspace, trigger_kind=kind, is_enabled=True)
        .prefetch_related("actions__connection")
        .order_by("pk")
    )


def api_key_get_active(*, key_hash: str) -> ApiKey | None:
    return (
        ApiKey.objects.filter(key_hash=key_hash, revoked_at__isnull=True)
        .select_related("workspace")
        .first()
    )


def deleted_record_map(
    *, connection: SalesforceConnection, record_ids: list[str]
) -> dict[str, DeletedRecord]:
    return {
        deleted.salesforce_id: deleted
        for deleted in DeletedRecord.objects.filter(
            connection=connection, salesforce_id__in=record_ids
        )
    }


def known_value_map(
    *, connection: SalesforceConnection, record_ids: list[str]
) -> dict[tuple[str, str], KnownValue]:
    return {
        (known.record_id, known.field_name.lower()): known
        for known in KnownValue.objects.filter(
            connection=connection, record_id__in=record_ids
        )
    }


def written_at_map(
    *, connection: SalesforceConnection, record_ids: list[str]
) -> dict[tuple[str, str], datetime]:
    """Return when the newest written value of each (record, field) happened.

    A write that went to a merge survivor counts for the survivor.
    """
    newest: dict[tuple[str, str], datetime] = {}
    rows = (
        FieldWrite.objects.filter(
            connection=connection, status=FieldWrite.Status.WRITTEN
        )
        .filter(Q(record_id__in=record_ids) | Q(merged_into_id__in=record_ids))
        .values_list("record_id", "merged_into_id", "field_name", "event__occurred_at")
    )
    for record_id, merged_into_id, field_name, occurred_at in rows:
        key = (merged_into_id or record_id, field_name.lower())
        if key not in newest or occurred_at > newest[key]:
            newest[key] = occurred_at
    return newest


def job_run_list_for_job(*, job: Job, limit: int = 20) -> QuerySet[JobRun]:
    """Return the recent runs that sent or judged a write of this Job."""
    return (
        JobRun.objects.filter(writes__action__job=job)
        .distinct()
        .select_related("connection")
        .order_by("-started_at")[:limit]
    )
