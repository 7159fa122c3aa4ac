"""Turn Salesforce records into rows of ours, and hand them to the services."""

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import connections, router, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from integrations.models import ObjectMapping, SalesforceConnection, SeenRecord, SyncRun
from integrations.salesforce import soql
from integrations.salesforce.client import SalesforceClient
from integrations.salesforce.schema import ObjectSchema, typed_value
from integrations.sync.plan import OPT_OUT, ObjectPlan, mapping_shares_model
from integrations.transforms import TRANSFORMS, TransformError, transform_apply
from people import services as people_services
from people.models import CrmAccount, CrmRecord, Owner, Person
from people.rows import commit_without_waiting, rows_insert
from people.services import BatchResult, Problem, WriteHook

# https://help.salesforce.com/s/articleView?id=000385008&type=1
_SALESFORCE_ID = re.compile(r"[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?")


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_SALESFORCE_ID.fullmatch(value))


def aware_datetime(value: Any) -> datetime | None:
    """Return a Salesforce datetime, or None if it is not a proper one."""
    try:
        stamp = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None
    if stamp is None or stamp.tzinfo is None:
        return None
    return stamp


def _deleted_at(record: dict[str, Any], plan: ObjectPlan) -> datetime:
    # Deleting a record moves its SystemModstamp: the best time we have.
    for name in ("SystemModstamp", plan.cursor_field):
        stamp = aware_datetime(record.get(name))
        if stamp is not None:
            return stamp
    return timezone.now()


def rows_from_records(
    *, plan: ObjectPlan, records: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[Problem], int]:
    """Map records to rows; return the rows, the problems and transform failures.

    A value that does not fit its type, or that its transform cannot take,
    is stored as empty and reported; the rest of the record is kept.
    """
    rows, problems, transform_failures = [], [], 0
    # What each field needs, looked up once for the page, not once per value.
    columns = [
        (
            name,
            plan.schema.type_of(name),
            fm.transform,
            fm.transform_argument,
            fm.attribute,
            fm.value_name,
        )
        for fm, name in plan.fields
        # Salesforce's own opt-out is applied below, as Salesforce holds it:
        # no transform may turn it into an opt-in.
        if not (
            plan.applies_opt_out
            and fm.attribute == OPT_OUT
            and name == plan.opt_out_field
        )
    ]
    # Other fields mapped to the opt-out can only add opt-outs.
    opt_out_mapped = any(attribute == OPT_OUT for *_, attribute, _ in columns)
    for record in records:
        record_id = record.get("Id")
        if not _is_id(record_id):
            problems.append(
                Problem("", "Id", "a record without a valid Id was skipped")
            )
            continue
        row: dict[str, Any] = {"salesforce_id": record_id}
        for name, field_type, transform, argument, attribute, value_name in columns:
            raw = record.get(name)
            try:
                if transform:
                    value = transform_apply(
                        name=transform, argument=argument, value=raw
                    )
                else:
                    value = typed_value(field_type, raw)
            except TransformError as exc:
                transform_failures += 1
                label = TRANSFORMS[transform].label
                problems.append(Problem(record_id, name, f"{label}: {exc}"))
                value = None
            except ValueError as exc:
                problems.append(Problem(record_id, name, f"left empty: {exc}"))
                value = None
            if attribute:
                row[attribute] = value
            else:
                row.setdefault("custom_values", {})[value_name] = value
        if plan.applies_opt_out:
            row[OPT_OUT] = _opt_out(
                plan=plan,
                record=record,
                mapped=row.get(OPT_OUT) if opt_out_mapped else _NOT_MAPPED,
                problems=problems,
            )
        row["deleted_at"] = None
        if record.get("IsDeleted") is True:
            row["deleted_at"] = _deleted_at(record, plan)
            survivor = record.get("MasterRecordId")
            if _is_id(survivor):
                row["merged_into_salesforce_id"] = survivor
        for key, name in plan.lookups.items():
            value = record.get(name)
            if _is_id(value):
                row[key] = value
                continue
            if value is not None:
                problems.append(
                    Problem(record_id, key, "not a Salesforce Id; not linked")
                )
            row[key] = ""
        rows.append(row)
    return rows, problems, transform_failures


_NOT_MAPPED = object()


def _opt_out(
    *, plan: ObjectPlan, record: dict[str, Any], mapped: Any, problems: list[Problem]
) -> bool | None:
    """Return whether a person has opted out of e-mail: yes if Salesforce or
    any field mapped to the opt-out says so, unknown (None) if one of them
    cannot be read, else no."""
    said: list[bool | None] = [None]
    name = plan.opt_out_field
    if name is not None:
        try:
            said = [typed_value("boolean", record.get(name))]
        except ValueError as exc:
            problems.append(Problem(record["Id"], name, f"left empty: {exc}"))
    if mapped is not _NOT_MAPPED:
        said.append(None if mapped is None else bool(mapped))
    if True in said:
        return True
    if None in said:
        return None
    return False


def rows_upsert(
    *,
    plan: ObjectPlan,
    connection: SalesforceConnection,
    rows: list[dict[str, Any]],
    hook: WriteHook | None = None,
) -> BatchResult:
    target = plan.mapping.target
    if target == ObjectMapping.Target.PERSON:
        return people_services.person_upsert_batch(
            connection=connection, rows=rows, hook=hook
        )
    if target == ObjectMapping.Target.ORGANISATION:
        return people_services.organisation_upsert_batch(
            connection=connection, rows=rows, hook=hook
        )
    if target == ObjectMapping.Target.OWNER:
        return people_services.owner_upsert_batch(
            connection=connection, rows=rows, hook=hook
        )
    return people_services.record_upsert_batch(
        connection=connection, object_name=plan.schema.name, rows=rows, hook=hook
    )


_MODELS = {
    ObjectMapping.Target.PERSON: Person,
    ObjectMapping.Target.ORGANISATION: CrmAccount,
    ObjectMapping.Target.OWNER: Owner,
    ObjectMapping.Target.RECORD: CrmRecord,
}


def rows_merge(
    *, plan: ObjectPlan, connection: SalesforceConnection, rows: list[dict[str, Any]]
) -> int:
    """Apply the merges among deleted rows: history moves to each survivor."""
    survivors = {
        row["salesforce_id"]: row["merged_into_salesforce_id"]
        for row in rows
        if row.get("merged_into_salesforce_id")
    }
    if not survivors or plan.mapping.target == ObjectMapping.Target.OWNER:
        return 0
    return people_services.merge_apply(
        connection=connection, model=_MODELS[plan.mapping.target], survivors=survivors
    )


def rows_seen(*, plan: ObjectPlan, run: SyncRun, salesforce_ids: list[str]) -> None:
    """Keep Ids of stored rows a page of a full read found, for `rows_mark_missing`;
    only for an object whose plan `is_reconciled`.

    Rows the page created or changed need no keeping: they have been synced
    since the run began.
    """
    if not salesforce_ids:
        return
    # Kept for this run only: a crash of the database ends the run anyway.
    with transaction.atomic():
        commit_without_waiting(router.db_for_write(SeenRecord))
        rows_insert(
            SeenRecord,
            [
                {"run_id": run.pk, "object_name": plan.schema.name, "salesforce_id": i}
                for i in salesforce_ids
            ],
        )


def rows_mark_missing(
    *,
    plan: ObjectPlan,
    run: SyncRun,
    client: SalesforceClient,
    before_call: Callable[[], None],
    on_note: Callable[[str], None],
) -> int:
    """After a full read, mark what the org no longer returns as deleted;
    return how many. Only for an object whose plan `is_reconciled`.

    Missing from a filtered read is not yet gone: the record may have left
    the filter. Those Ids are asked for through queryAll, and only records
    deleted, merged or no longer found are marked. The Ids the read kept are
    let go of either way.
    """
    model = _MODELS[plan.mapping.target]
    seen = SeenRecord.objects.filter(run=run, object_name=plan.schema.name)
    rows = {
        "connection": run.connection,
        "model": model,
        "written_since": run.started_at,
        "object_name": _object_name_kept(plan.mapping, plan.schema),
        "key_prefix": plan.schema.key_prefix,
    }
    try:
        # Every row this read wrote (a first import): none can be missing,
        # and counting the table for the planner would be time lost.
        if not people_services.unwritten_rows(**rows).exists():
            return 0
        _statistics_refresh(SeenRecord, model)
        missing = people_services.missing_rows(seen=seen, **rows)
        if plan.is_filtered:
            return _mark_gone(
                plan=plan,
                run=run,
                client=client,
                missing=missing,
                before_call=before_call,
                on_note=on_note,
            )
        # Asked first, so that a read that found everything writes nothing.
        if not missing.exists():
            return 0
        return missing.update(deleted_at=timezone.now())
    finally:
        seen_release(seen)


# Stored records a filtered read no longer returned, asked after per run:
# ten calls. Those still in the org are asked again by later full syncs.
GONE_CHECK_LIMIT = 2_000


def _mark_gone(
    *,
    plan: ObjectPlan,
    run: SyncRun,
    client: SalesforceClient,
    missing: QuerySet,
    before_call: Callable[[], None],
    on_note: Callable[[str], None],
) -> int:
    """Ask Salesforce, by Id and through queryAll, after stored records a
    filtered read left out; mark those deleted, merged or purged."""
    total = missing.count()
    if not total:
        return 0
    # Taken in no fixed order, so that records which left the filter for
    # good do not hide the others from every run after.
    ids = list(
        missing.order_by("?").values_list("salesforce_id", flat=True)[:GONE_CHECK_LIMIT]
    )
    field_names = [
        name
        for name in ("IsDeleted", "MasterRecordId", "SystemModstamp")
        if plan.schema.canonical(name)
    ]
    if plan.opt_out_field is not None:
        field_names.append(plan.opt_out_field)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), client.IDS_PER_QUERY):
        before_call()
        found.update(
            client.record_values(
                object_name=plan.schema.name,
                record_ids=ids[start : start + client.IDS_PER_QUERY],
                field_names=field_names,
                include_deleted=True,
            )
        )
    now = timezone.now()
    gone: dict[str, datetime] = {}
    survivors: dict[str, str] = {}
    opt_outs: dict[str, bool | None] = {}
    for record_id in ids:
        record = found.get(record_id)
        if record is None:
            # Purged from the recycle bin, or never readable again.
            gone[record_id] = now
        elif record.get("IsDeleted") is True:
            gone[record_id] = aware_datetime(record.get("SystemModstamp")) or now
            if _is_id(record.get("MasterRecordId")):
                survivors[record_id] = record["MasterRecordId"]
        elif plan.applies_opt_out:
            # Kept as last imported, but for the opt-out, always respected.
            opt_outs[record_id] = _opt_out(
                plan=plan, record=record, mapped=_NOT_MAPPED, problems=[]
            )
    model = _MODELS[plan.mapping.target]
    with transaction.atomic():
        for record_id, deleted_at in gone.items():
            model.objects.filter(
                connection=run.connection, salesforce_id=record_id
            ).update(deleted_at=deleted_at)
        _opt_outs_apply(connection=run.connection, opt_outs=opt_outs)
    if survivors:
        rows_merge(
            plan=plan,
            connection=run.connection,
            rows=[
                {"salesforce_id": loser, "merged_into_salesforce_id": survivor}
                for loser, survivor in survivors.items()
            ],
        )
    kept = len(ids) - len(gone)
    if kept:
        on_note(
            f"{kept:,} stored records are still in Salesforce but no longer match "
            "the filter; they are kept as last imported"
        )
    if total > len(ids):
        on_note(
            f"{total - len(ids):,} more stored records the filter no longer "
            "returns are checked for deletion by later full syncs"
        )
    return len(gone)


def _opt_outs_apply(
    *, connection: SalesforceConnection, opt_outs: dict[str, bool | None]
) -> int:
    """Store opt-outs read of people otherwise kept as they were; return how
    many rows changed.

    Only ever towards opted out: a row that is, may be so by a field mapped
    to the opt-out that was not read here. One read as unknown (its field
    not a yes or no) counts as opted out too.
    """
    now = timezone.now()
    people = Person.objects.filter(connection=connection)
    changed = 0
    for value, ids in (
        (True, [i for i, out in opt_outs.items() if out is True]),
        (None, [i for i, out in opt_outs.items() if out is None]),
    ):
        for start in range(0, len(ids), OPT_OUT_CHUNK):
            changed += (
                people.filter(salesforce_id__among=ids[start : start + OPT_OUT_CHUNK])
                .exclude(has_opted_out_of_email=True)
                .exclude(has_opted_out_of_email=value)
                .update(has_opted_out_of_email=value, synced_at=now)
            )
    return changed


# Ids per statement when opt-outs are stored, under SQLite's variable limit.
OPT_OUT_CHUNK = 500


def rows_opt_outs_left_out(
    *,
    plan: ObjectPlan,
    connection: SalesforceConnection,
    client: SalesforceClient,
    since: datetime,
) -> int:
    """Opt out the stored people a filtered read left out who opted out
    since `since`; return how many rows changed.

    A filter such as `HasOptedOutOfEmail = false` leaves out exactly the
    people who just opted out. Only people already stored are changed.
    """
    stamp, opt_out = plan.cursor_field, plan.opt_out_field
    # TODO: a QUERY_TIMEOUT here fails the object's read, where the records'
    # own read is narrowed into halves of its window (see _read_narrowing);
    # this statement should be narrowed the same way.
    statement = (
        f"SELECT Id FROM {plan.schema.name} "
        f"WHERE {opt_out} = true AND {stamp} >= {soql.quote(since)}"
    )
    opted_out = [
        record["Id"]
        for page in client.query_pages(soql=statement)
        for record in page
        if _is_id(record.get("Id"))
    ]
    return _opt_outs_apply(
        connection=connection, opt_outs=dict.fromkeys(opted_out, True)
    )


def _object_name_kept(mapping: ObjectMapping, described: ObjectSchema) -> str | None:
    """The object's name in describe's casing, where its model keeps one."""
    if mapping.target == ObjectMapping.Target.RECORD:
        return described.name
    return None


def rows_stored_count(*, mapping: ObjectMapping, described: ObjectSchema) -> int | None:
    """Count the live rows Trig holds of a mapped object; None when they
    cannot be told from another object's rows stored as the same model."""
    if not described.key_prefix and mapping_shares_model(mapping):
        return None
    return people_services.live_rows(
        model=_MODELS[mapping.target],
        connection_id=mapping.connection_id,
        object_name=_object_name_kept(mapping, described),
        key_prefix=described.key_prefix,
    ).count()


def _statistics_refresh(*models: type) -> None:
    """Let PostgreSQL's planner count the rows a full read just wrote.

    Before autovacuum has looked at them, it takes the Ids a read kept for a
    handful and scans them once per stored row: minutes at 100,000 records,
    where a hash anti-join takes milliseconds. SQLite needs no statistics to
    use the index.
    """
    database = connections[router.db_for_write(SeenRecord)]
    if database.vendor != "postgresql":
        return
    with database.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {database.ops.quote_name(model._meta.db_table)}")


# Kept Ids deleted per statement.
SEEN_CHUNK = 10_000


def seen_release(seen: QuerySet) -> int:
    """Delete kept Ids a chunk at a time; return how many.

    One DELETE of a million rows makes SQLite hold all their row ids in the
    worker's memory until it ends.
    """
    released = 0
    while True:
        chunk = SeenRecord.objects.filter(pk__in=seen.values("pk")[:SEEN_CHUNK])
        deleted, _ = chunk.delete()
        released += deleted
        if deleted < SEEN_CHUNK:
            return released
