"""Run one sync of one connection: plan, read page by page, upsert, record."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from integrations.models import SalesforceConnection, SyncCursor, SyncRun
from integrations.salesforce.client import (
    ReconnectRequired,
    SalesforceClient,
    SalesforceClientError,
)
from integrations.salesforce.soql import quote
from integrations.services import connection_client
from integrations.sync.mapping import DEFAULT_SPECS, ObjectSpec

logger = logging.getLogger(__name__)

MAX_PROBLEMS_KEPT = 200
CURSOR_FIELD = "LastModifiedDate"
# Read a little before the cursor: a record committed late can carry a stamp
# older than the newest one already read. Upserts are idempotent, so reading
# a record twice costs nothing but the read.
CURSOR_OVERLAP = timedelta(minutes=5)

OnPage = Callable[[str, int], None]


class SyncAlreadyRunning(Exception):
    """Another run of this connection holds the claim."""


def sync_claim(*, connection: SalesforceConnection) -> datetime | None:
    """Claim the right to sync a connection; None if another run holds it.

    A conditional UPDATE, so two workers starting at once cannot both win.
    A claim older than the timeout belongs to a worker that died.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.SALESFORCE_SYNC_CLAIM_TIMEOUT_SECONDS)
    won = (
        SalesforceConnection.objects.filter(pk=connection.pk)
        .filter(Q(sync_claimed_at__isnull=True) | Q(sync_claimed_at__lt=stale))
        .update(sync_claimed_at=now)
    )
    return now if won else None


def sync_release(*, connection: SalesforceConnection, claimed_at: datetime) -> None:
    SalesforceConnection.objects.filter(
        pk=connection.pk, sync_claimed_at=claimed_at
    ).update(sync_claimed_at=None)


def _add_problems(
    run: SyncRun, *, object_name: str, problems, attribute_to_field
) -> None:
    run.problem_count += len(problems)
    room = MAX_PROBLEMS_KEPT - len(run.problems)
    for problem in problems[: max(room, 0)]:
        run.problems.append(
            {
                "object": object_name,
                "id": problem.salesforce_id,
                "field": attribute_to_field.get(problem.attribute, problem.attribute),
                "problem": problem.problem,
            }
        )


def _readable_fields(
    *, client: SalesforceClient, spec: ObjectSpec, run: SyncRun
) -> list[str]:
    """Return the mapped fields the connected user can see, in describe's casing.

    Describe lists only the fields the user's field-level security allows;
    selecting any other field fails the whole query with INVALID_FIELD.
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
    """
    described = client.describe(object_name=spec.object_name)
    visible = {f["name"].lower(): f["name"] for f in described.get("fields", [])}
    readable = []
    for name in spec.fields:
        if name.lower() in visible:
            readable.append(visible[name.lower()])
        else:
            run.problems.append(
                {
                    "object": spec.object_name,
                    "id": "",
                    "field": name,
                    "problem": "hidden from the connected user or deleted; not read",
                }
            )
            run.problem_count += 1
    if "Id" not in readable:
        raise SalesforceClientError(f"{spec.object_name} has no readable Id field.")
    if CURSOR_FIELD.lower() not in visible:
        raise SalesforceClientError(f"{spec.object_name} has no {CURSOR_FIELD}.")
    return readable


def _sync_object(
    *,
    run: SyncRun,
    client: SalesforceClient,
    spec: ObjectSpec,
    on_page: OnPage | None,
) -> None:
    connection = run.connection
    fields = _readable_fields(client=client, spec=spec, run=run)
    cursor = SyncCursor.objects.filter(
        connection=connection, object_name=spec.object_name
    ).first()

    select = ", ".join([*fields, CURSOR_FIELD])
    soql = f"SELECT {select} FROM {spec.object_name}"
    if run.kind == SyncRun.Kind.RECENT and cursor is not None:
        soql += f" WHERE {CURSOR_FIELD} >= {quote(cursor.value - CURSOR_OVERLAP)}"

    newest: datetime | None = None
    field_by_attribute = {attribute: name for name, attribute in spec.fields.items()}
    for records in client.query_pages(soql=soql):
        rows = []
        for record in records:
            rows.append(spec.row_from(record, read_fields=fields))
            stamp = parse_datetime(record.get(CURSOR_FIELD) or "")
            if stamp and (newest is None or stamp > newest):
                newest = stamp
        result = spec.upsert(connection=connection, rows=rows)

        run.records_fetched += len(records)
        run.records_created += result.created
        run.records_updated += result.updated
        run.records_unchanged += result.unchanged
        run.records_failed += result.failed
        _add_problems(
            run,
            object_name=spec.object_name,
            problems=result.problems,
            attribute_to_field=field_by_attribute,
        )
        if on_page:
            on_page(spec.object_name, len(records))

    # TODO: checkpoint within an object, so that a run killed half-way through
    # a large object resumes there instead of reading the object again.
    if newest is not None and (cursor is None or newest > cursor.value):
        SyncCursor.objects.update_or_create(
            connection=connection,
            object_name=spec.object_name,
            defaults={"field_name": CURSOR_FIELD, "value": newest},
        )
    run.save()


def connection_sync(
    *,
    connection: SalesforceConnection,
    kind: str = SyncRun.Kind.FULL,
    trigger: str = SyncRun.Trigger.MANUAL,
    batch_size: int | None = None,
    on_page: OnPage | None = None,
) -> SyncRun:
    """Sync one connection's org into Trig and return the finished run.

    Raises SyncAlreadyRunning if another run of the connection is going.
    """
    claimed_at = sync_claim(connection=connection)
    if claimed_at is None:
        raise SyncAlreadyRunning(f"A sync of connection {connection.pk} is running.")

    run = SyncRun.objects.create(connection=connection, kind=kind, trigger=trigger)
    client: SalesforceClient | None = None
    try:
        client = connection_client(connection=connection, batch_size=batch_size)
        for spec in DEFAULT_SPECS:
            _sync_object(run=run, client=client, spec=spec, on_page=on_page)
        run.status = (
            SyncRun.Status.COMPLETED_WITH_ERRORS
            if run.records_failed
            else SyncRun.Status.SUCCESS
        )
    except ReconnectRequired as exc:
        run.status = SyncRun.Status.FAILED
        run.error_message = str(exc)
    except SalesforceClientError as exc:
        run.status = SyncRun.Status.FAILED
        run.error_message = str(exc)
        logger.warning(
            "Salesforce sync failed connection_id=%s run_id=%s code=%s",
            connection.pk,
            run.pk,
            exc.code,
        )
    except Exception as exc:
        run.status = SyncRun.Status.FAILED
        run.error_message = f"Internal error: {type(exc).__name__}"
        raise
    finally:
        _finish(run=run, client=client, claimed_at=claimed_at)
    return run


def _finish(
    *, run: SyncRun, client: SalesforceClient | None, claimed_at: datetime
) -> None:
    connection = run.connection
    run.finished_at = timezone.now()
    run.api_calls = client.calls if client else 0
    run.save()

    updates: dict = {}
    if client and client.api_usage:
        used, allowed = client.api_usage
        updates.update(
            api_usage_used=used,
            api_usage_max=allowed,
            api_usage_seen_at=run.finished_at,
        )
    if run.kind == SyncRun.Kind.FULL:
        if run.status == SyncRun.Status.FAILED:
            # Try again within the hour rather than waiting a whole day.
            updates["next_full_sync_at"] = run.finished_at + timedelta(hours=1)
        else:
            updates["last_full_sync_at"] = run.started_at
            updates["next_full_sync_at"] = run.started_at + timedelta(
                hours=settings.SALESFORCE_FULL_SYNC_HOURS
            )
    if updates:
        SalesforceConnection.objects.filter(pk=connection.pk).update(**updates)
    sync_release(connection=connection, claimed_at=claimed_at)
    logger.info(
        "Salesforce sync finished connection_id=%s run_id=%s kind=%s status=%s "
        "fetched=%s created=%s updated=%s unchanged=%s failed=%s api_calls=%s",
        connection.pk,
        run.pk,
        run.kind,
        run.status,
        run.records_fetched,
        run.records_created,
        run.records_updated,
        run.records_unchanged,
        run.records_failed,
        run.api_calls,
    )
