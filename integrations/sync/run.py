"""Run one sync of one connection: plan each object, read, load, record."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import router, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from integrations.models import (
    ObjectMapping,
    SalesforceConnection,
    SeenRecord,
    SignalRule,
    SyncCursor,
    SyncRun,
)
from integrations.salesforce.budget import sync_may_continue
from integrations.salesforce.client import (
    ApiLimitReached,
    ApiVersionRetired,
    OrgSettingRefused,
    ReconnectRequired,
    SalesforceClient,
    SalesforceClientError,
    SalesforceRejectedError,
    SalesforceTransientError,
    daily_allowance_spent,
)
from integrations.salesforce.schema import RunSchema
from integrations.salesforce.soql_build import QueryTooLong
from integrations.selectors import signal_rules_enabled
from integrations.services import api_usage_columns, connection_client
from integrations.sync.counts import counts_compare
from integrations.sync.defaults import mapping_create_defaults
from integrations.sync.first_reads import FirstReads
from integrations.sync.load import (
    aware_datetime,
    rows_from_records,
    rows_mark_missing,
    rows_merge,
    rows_opt_outs_left_out,
    rows_seen,
    rows_upsert,
    seen_release,
)
from integrations.sync.plan import CURSOR_OVERLAP, ObjectPlan, PlanError, object_plan
from integrations.sync.read import read_records
from integrations.sync.signals import SignalWatch
from people.rows import commit_without_waiting
from people.services import Problem, clean_text

logger = logging.getLogger(__name__)

MAX_PROBLEMS_KEPT = 200

OnPage = Callable[[str, int], None]


class SyncAlreadyRunning(Exception):
    """Another run of this connection holds the claim."""


INTERRUPTED = "Interrupted:"
# A run recorded only to say why it was never run (see the sync task).
NOT_RUN = "Not run:"


# Deleted records stay in the recycle bin, where queryAll finds them, for 15
# days; the bin can be emptied sooner. Past that, only a full read of the Ids
# tells what went.
# https://help.salesforce.com/s/articleView?id=sf.home_delete.htm
RECYCLE_BIN_DAYS = 15


def _deletions_may_be_purged(*, connection: SalesforceConnection) -> str:
    """Say why recent changes would miss deletions, or "" when they would not.

    A recent-changes read finds what was deleted since the last sync only
    while it is in the recycle bin; after a longer pause it reads in full.
    """
    last_full, last_recent = (
        SalesforceConnection.objects.filter(pk=connection.pk)
        .values_list("last_full_sync_at", "last_recent_sync_at")
        .get()
    )
    checks = [at for at in (last_full, last_recent) if at is not None]
    if not checks:
        return ""
    last = max(checks)
    if timezone.now() - last <= timedelta(days=RECYCLE_BIN_DAYS):
        return ""
    return (
        f"Read in full: the last sync began {timezone.localtime(last):%Y-%m-%d}, "
        f"more than the {RECYCLE_BIN_DAYS} days Salesforce keeps deleted records "
        "in its recycle bin, so only a full read finds every deletion since."
    )


class BudgetReached(Exception):
    """The run has spent what it may of the org's API allocation."""


class FieldRefusedAgain(SalesforceRejectedError):
    """An object's read refused a field again after describing it afresh.

    The object's fields are changing while the run reads it; it is left for
    the next run rather than described and tried without end.
    """


def _budget_check(*, client: SalesforceClient) -> None:
    """Stop the run at this checkpoint if going on would overspend.

    One run may spend SALESFORCE_RUN_BUDGET_PERCENT of the org's daily
    allocation; no sync goes on while the org as a whole is above
    SALESFORCE_PAUSE_ABOVE_PERCENT, or when what is left is the share kept
    for writes. The customer's other integrations need the rest.
    https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm
    """
    usage = client.api_usage_or_limits()
    if usage is None:
        # TODO: with neither Sforce-Limit-Info nor /limits readable (a proxy
        # dropping headers, a user without "View Setup and Configuration"),
        # a run has no share to stop at; a configured allocation per
        # connection would give it one.
        return
    used, maximum = usage
    if client.calls >= maximum * settings.SALESFORCE_RUN_BUDGET_PERCENT / 100:
        raise BudgetReached(
            f"Partial — API budget: this run used {client.calls:,} calls, its share "
            f"of the org's {maximum:,} a day. The next run goes on from here."
        )
    if used >= maximum:
        raise BudgetReached(
            f"Partial — {daily_allowance_spent(usage)}; syncs go on when it renews."
        )
    if _org_is_paused(usage):
        raise BudgetReached(
            f"Partial — API budget: the org has used {used:,} of its {maximum:,} "
            "API calls today; syncs wait so its other integrations keep theirs."
        )


def _org_is_paused(usage: tuple[int, int]) -> bool:
    used, maximum = usage
    return used >= maximum * settings.SALESFORCE_PAUSE_ABOVE_PERCENT / 100 or not (
        sync_may_continue(usage=usage)
    )


def _budget_check_before_calling(*, connection: SalesforceConnection) -> None:
    """Stop a run before its first call while the org had no room left when
    last seen, lately enough to be trusted.

    Usage counts over a rolling 24 hours and falls slowly: a run that called
    to find the allocation still spent would only spend a refused call. Once
    the figure is older, the next run calls, and sees.
    """
    used, maximum, seen_at = (
        SalesforceConnection.objects.filter(pk=connection.pk)
        .values_list("api_usage_used", "api_usage_max", "api_usage_seen_at")
        .get()
    )
    if used is None or not maximum or seen_at is None:
        return
    trusted = timedelta(minutes=settings.SALESFORCE_USAGE_TRUSTED_MINUTES)
    if timezone.now() - seen_at > trusted or not _org_is_paused((used, maximum)):
        return
    seen = f"{timezone.localtime(seen_at):%Y-%m-%d %H:%M %Z}"
    if used >= maximum:
        state = f"{daily_allowance_spent((used, maximum))} when last seen, {seen}"
    else:
        state = (
            f"The org had used {used:,} of its {maximum:,} API calls (too few "
            f"calls left for syncs) when last seen, {seen}"
        )
    raise BudgetReached(
        f"Partial — API budget: skipped without reading any data. {state}; the "
        "next run looks again."
    )


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


def _note(
    run: SyncRun, *, object_name: str, record_id: str, field: str, problem: str
) -> None:
    run.problem_count += 1
    if len(run.problems) < MAX_PROBLEMS_KEPT:
        run.problems.append(
            {
                "object": object_name,
                "id": record_id,
                "field": field,
                # Salesforce's words may quote the record's own bad data.
                "problem": clean_text(problem)[:1000],
            }
        )


class _Claim:
    """This run's hold on its connection, renewed page by page.

    A run that stops renewing (its worker died) loses the claim after the
    timeout; a live run keeps it however long it takes.
    """

    def __init__(self, *, connection: SalesforceConnection, claimed_at: datetime):
        self.connection = connection
        self.claimed_at = claimed_at

    def renew(self) -> None:
        now = timezone.now()
        # A renewal lost in a crash of the database loses nothing: the run
        # dies with it, and its claim times out.
        with transaction.atomic():
            commit_without_waiting(router.db_for_write(SalesforceConnection))
            renewed = SalesforceConnection.objects.filter(
                pk=self.connection.pk, sync_claimed_at=self.claimed_at
            ).update(sync_claimed_at=now)
        if not renewed:
            raise SyncAlreadyRunning("Another run took this connection over.")
        self.claimed_at = now


def _note_all(run: SyncRun, *, plan: ObjectPlan, problems: list[Problem]) -> None:
    # Services name our attributes; staff know Salesforce's field names.
    field_of = {fm.attribute: name for fm, name in plan.fields if fm.attribute}
    field_of.update({key: name for key, name in plan.lookups.items()})
    for problem in problems:
        _note(
            run,
            object_name=plan.schema.name,
            record_id=problem.salesforce_id,
            field=field_of.get(problem.attribute, problem.attribute),
            problem=problem.problem,
        )


class _Tally:
    """What one object's read amounted to, for the run and the cursor."""

    def __init__(self) -> None:
        self.newest: datetime | None = None
        self.had_errors = False
        self.written = 0
        # Of those, rows stamped before the recent-changes reads begin: what
        # they missed, for a full read to count as drift.
        self.written_unseen = 0
        self.unseen_before: datetime | None = None
        # Merges met on the way: losing Id -> surviving Id.
        self.survivors: dict[str, str] = {}
        # When the object's read began, by our clock.
        self.began = timezone.now()
        # Whether the opt-outs a filter leaves out were read before the
        # records; checkpoints then stay at `began` (see _opt_outs_read).
        self.opt_outs_read = False
        # Whether reading them first timed out: they are then read last.
        self.opt_outs_deferred = False

    def capped(self, stamp: datetime) -> datetime:
        """Return how far a checkpoint may move for a read up to `stamp`."""
        return min(stamp, self.began) if self.opt_outs_read else stamp


def _opt_outs_due(*, plan: ObjectPlan, tally: _Tally) -> bool:
    return (
        not tally.opt_outs_read
        and tally.unseen_before is not None
        and plan.is_filtered
        and plan.opt_out_field is not None
        and plan.cursor_field is not None
    )


def _opt_outs_read(
    *, run: SyncRun, client: SalesforceClient, plan: ObjectPlan, tally: _Tally
) -> None:
    """Opt out the stored people a filter left out who opted out since the
    last read, before the records are read.

    Opt-outs are always respected. A filter such as `HasOptedOutOfEmail =
    false` leaves exactly those people out, so nothing the read stores moves
    past their stamps; read after the records, a run stopped midway (its
    budget, its worker) would leave its checkpoints past them. Checkpoints
    then stay at the moment the read began, so an opt-out stamped while it
    ran is read by the next. A full read also asks after the people it
    finds missing (see rows_mark_missing).
    """
    if tally.opt_outs_deferred or not _opt_outs_due(plan=plan, tally=tally):
        return
    _budget_check(client=client)
    try:
        run.records_updated += rows_opt_outs_left_out(
            plan=plan,
            connection=run.connection,
            client=client,
            since=tally.unseen_before,
        )
    except SalesforceTransientError as exc:
        # Narrowed windows would time out on it again: it is read once the
        # records are, as a last step.
        if exc.code != "QUERY_TIMEOUT":
            raise
        tally.opt_outs_deferred = True
        return
    tally.opt_outs_read = True


def _stamped_since(record: dict, field: str | None, since: datetime) -> bool:
    stamp = aware_datetime(record.get(field)) if field else None
    return stamp is not None and stamp >= since


def _checkpoint(*, run: SyncRun, plan: ObjectPlan, value: datetime) -> None:
    """Move an object's cursor forward, never back; a cursor of another
    field is replaced."""
    field_name = plan.cursor_field
    cursor, created = SyncCursor.objects.get_or_create(
        connection=run.connection,
        object_name=plan.mapping.object_name,
        defaults={"field_name": field_name, "value": value},
    )
    if not created and (value > cursor.value or cursor.field_name != field_name):
        SyncCursor.objects.filter(pk=cursor.pk).update(
            value=value, field_name=field_name
        )


def _read_object(
    *,
    run: SyncRun,
    client: SalesforceClient,
    plan: ObjectPlan,
    tally: _Tally,
    claim: _Claim,
    on_page: OnPage | None,
    first_reads: FirstReads | None = None,
    rules: list[SignalRule] | None = None,
) -> None:
    connection = run.connection
    object_name = plan.schema.name
    cursor_field = plan.cursor_field
    # Pages of one ordered statement move the checkpoint as they are stored:
    # every record stamped before a page's last stamp has then been read,
    # and the next read starts at that stamp (>=), so records sharing it are
    # read again rather than skipped.
    checkpoints = bool(plan.order_by) and not plan.query.is_split

    def on_incomplete(record_id: str, still_there: bool) -> None:
        run.records_failed += 1
        tally.had_errors = True
        if still_there and plan.is_full_read and plan.is_reconciled:
            # Changed while it was read, not deleted: what is stored of it
            # stays as it is until the next read.
            rows_seen(plan=plan, run=run, salesforce_ids=[record_id])
        _note(
            run,
            object_name=object_name,
            record_id=record_id,
            field="",
            problem="changed while it was read in parts; read again next sync",
        )

    def on_note(text: str) -> None:
        # Told, not counted as an error: every record is still read.
        _note(run, object_name=object_name, record_id="", field="", problem=text)

    _opt_outs_read(run=run, client=client, plan=plan, tally=tally)
    pages = read_records(
        client=client,
        plan=plan.query,
        on_incomplete=on_incomplete,
        include_deleted=plan.include_deleted,
        on_note=on_note,
        first_page=first_reads.take(plan=plan) if first_reads else None,
        before_poll=lambda: _before_poll(client=client, claim=claim),
    )
    # Only an object with rules does any work for them.
    watch = SignalWatch(run=run, plan=plan, rules=rules) if rules else None
    for records in pages:
        rows, problems, transform_failures = rows_from_records(
            plan=plan, records=records
        )
        result = rows_upsert(
            plan=plan,
            connection=connection,
            rows=rows,
            hook=watch.hook(records) if watch else None,
        )
        if watch:
            run.signals_raised += watch.page_done()
        page_newest = None
        for record in records:
            stamp = aware_datetime(record.get(cursor_field))
            if stamp and (page_newest is None or stamp > page_newest):
                page_newest = stamp
        if page_newest and (tally.newest is None or page_newest > tally.newest):
            tally.newest = page_newest
        if plan.is_full_read and plan.is_reconciled:
            # What Trig holds beyond the rows a full read found is gone.
            rows_seen(
                plan=plan,
                run=run,
                salesforce_ids=[
                    row["salesforce_id"]
                    for row in rows
                    if row["salesforce_id"] not in result.written_ids
                ],
            )
        merged = [row for row in rows if row.get("merged_into_salesforce_id")]
        if merged:
            # Handed over before the checkpoint passes the losers: a run that
            # stops after this page would not read them again. A survivor
            # not stored yet comes later in the read; all are applied again
            # once it ends.
            rows_merge(plan=plan, connection=connection, rows=merged)
        for row in merged:
            tally.survivors[row["salesforce_id"]] = row["merged_into_salesforce_id"]
        deleted = sum(1 for row in rows if row.get("deleted_at"))

        run.records_fetched += len(records)
        run.records_created += result.created
        run.records_updated += result.updated
        run.records_unchanged += result.unchanged
        run.records_failed += result.failed + (len(records) - len(rows))
        run.records_deleted += deleted
        run.transform_failures += transform_failures
        tally.written += result.created + result.updated
        if tally.unseen_before is not None:
            tally.written_unseen += sum(
                1
                for record in records
                if record.get("Id") in result.written_ids
                and not _stamped_since(record, cursor_field, tally.unseen_before)
            )
        _note_all(run, plan=plan, problems=problems + result.problems)
        if checkpoints and page_newest is not None:
            _checkpoint(run=run, plan=plan, value=tally.capped(page_newest))
        claim.renew()
        if on_page:
            on_page(object_name, len(records))
        _budget_check(client=client)


def _before_poll(*, client: SalesforceClient, claim: _Claim) -> None:
    """Wait for a Bulk job within the run's budget, and hold the claim while
    waiting: a job can run for longer than a claim outlives its last page."""
    _budget_check(client=client)
    claim.renew()


def _note_rules(run: SyncRun, *, plan: ObjectPlan, rules: list[SignalRule]) -> None:
    """Say which signal rules the read left out, and why; never an error."""
    if plan.is_backfill:
        _note(
            run,
            object_name=plan.schema.name,
            record_id="",
            field="",
            problem="signal rules not evaluated: the object was read in full for "
            "a changed configuration, which rewrites rows without news",
        )
        return
    unusable = SignalWatch(run=run, plan=plan, rules=rules).unusable
    for rule, reason in unusable.items():
        _note(
            run,
            object_name=plan.schema.name,
            record_id="",
            field=rule.field_name,
            problem=f"signal rule {rule.name!r} skipped: {reason}",
        )


MAX_NARROWING = 6


def _read_narrowing(
    *,
    run: SyncRun,
    client: SalesforceClient,
    schema: RunSchema,
    mapping: ObjectMapping,
    cursor: SyncCursor | None,
    fresh: bool,
    tally: "_Tally",
    claim: "_Claim",
    on_page: OnPage | None,
    window: tuple[datetime, datetime | None] | None = None,
    depth: int = 0,
    first_reads: FirstReads | None = None,
    rules: list[SignalRule] | None = None,
) -> ObjectPlan:
    """Read an object's changes; on QUERY_TIMEOUT, read the window in halves.

    Salesforce ends a query that runs too long; a narrower date window asks
    less of it. Halves are read oldest first, so checkpoints keep moving on.
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
    """
    plan = object_plan(
        mapping=mapping,
        schema=schema,
        cursor=cursor,
        is_full_sync=run.kind == SyncRun.Kind.FULL,
        fresh=fresh,
        window=window,
    )
    try:
        _read_object(
            run=run,
            client=client,
            plan=plan,
            tally=tally,
            claim=claim,
            on_page=on_page,
            first_reads=first_reads,
            rules=rules if not plan.is_backfill else None,
        )
        return plan
    except SalesforceTransientError as exc:
        if exc.code != "QUERY_TIMEOUT" or plan.is_full_read or depth >= MAX_NARROWING:
            raise
    since, until = window or (cursor.value - CURSOR_OVERLAP, None)
    # The newest half stays open-ended, so nothing stamped during the run
    # falls between the halves.
    middle = since + ((until or timezone.now()) - since) / 2
    for half in ((since, middle), (middle, until)):
        plan = _read_narrowing(
            run=run,
            client=client,
            schema=schema,
            mapping=mapping,
            cursor=cursor,
            fresh=False,
            tally=tally,
            claim=claim,
            on_page=on_page,
            window=half,
            depth=depth + 1,
            rules=rules,
        )
    return plan


def _sync_object(
    *,
    run: SyncRun,
    client: SalesforceClient,
    schema: RunSchema,
    mapping: ObjectMapping,
    claim: _Claim,
    on_page: OnPage | None,
    first_reads: FirstReads | None = None,
) -> bool:
    """Sync one mapped object; return whether anything went wrong on the way."""
    cursor = SyncCursor.objects.filter(
        connection=run.connection, object_name=mapping.object_name
    ).first()
    tally = _Tally()
    if cursor is not None:
        # A record stamped since then is read by the next recent-changes
        # sync; only what a full read writes from before was missed.
        tally.unseen_before = cursor.value - CURSOR_OVERLAP
    # An object's first import is no news, however many of its records a
    # rule would match. Mappings read by a run say whether they have rules,
    # so that an object without any costs no query for them.
    rules: list[SignalRule] = []
    if cursor is not None and getattr(mapping, "has_signal_rules", True):
        rules = signal_rules_enabled(mapping=mapping)
    for attempt in (1, 2):
        try:
            plan = _read_narrowing(
                run=run,
                client=client,
                schema=schema,
                mapping=mapping,
                cursor=cursor,
                fresh=attempt == 2,
                tally=tally,
                claim=claim,
                on_page=on_page,
                first_reads=first_reads,
                rules=rules,
            )
            break
        except SalesforceRejectedError as exc:
            # A field described a moment ago can be deleted or hidden before
            # the query runs. Describe once more and read without it; a second
            # refusal fails the object.
            if exc.code != "INVALID_FIELD":
                raise
            if attempt == 2:
                raise FieldRefusedAgain(
                    str(exc), status=exc.status, code=exc.code
                ) from exc
            tally.had_errors = True
            _note(
                run,
                object_name=mapping.object_name,
                record_id="",
                field="",
                problem=f"a mapped field was refused; described again: {exc}",
            )

    if _opt_outs_due(plan=plan, tally=tally):
        # Not read before the records (the query timed out): read now.
        _budget_check(client=client)
        run.records_updated += rows_opt_outs_left_out(
            plan=plan,
            connection=run.connection,
            client=client,
            since=tally.unseen_before,
        )

    for name, reason in plan.skipped.items():
        run.skipped_fields.append(f"{plan.schema.name}.{name}")
        _note(
            run, object_name=plan.schema.name, record_id="", field=name, problem=reason
        )
    if rules:
        _note_rules(run, plan=plan, rules=rules)

    if tally.survivors:
        rows_merge(
            plan=plan,
            connection=run.connection,
            rows=[
                {"salesforce_id": loser, "merged_into_salesforce_id": survivor}
                for loser, survivor in tally.survivors.items()
            ],
        )
    if plan.is_full_read:
        missing = (
            rows_mark_missing(
                plan=plan,
                run=run,
                client=client,
                before_call=lambda: _budget_check(client=client),
                on_note=lambda text: _note(
                    run,
                    object_name=plan.schema.name,
                    record_id="",
                    field="",
                    problem=text,
                ),
            )
            if plan.is_reconciled
            else 0
        )
        run.records_deleted += missing
        # A full sync of an object the recent-changes syncs already follow:
        # what it still had to write from before their cursor, they had
        # missed; what was stamped since waited for the next of them (after
        # a long pause, most of it). When the configuration changed, every
        # row is rewritten with the new fields, and only what went missing
        # tells of drift.
        if cursor is not None and run.kind == SyncRun.Kind.FULL:
            written = 0 if plan.is_backfill else tally.written_unseen
            run.drift_repaired += missing + written
    # A full read does not return what was deleted or merged since the cursor
    # (`query` leaves the recycle bin out), and takes a merge's loser for a
    # plain deletion. An existing cursor stays where it is, so the next
    # recent-changes read still finds those and hands over the history.
    if tally.newest is not None and (
        cursor is None or cursor.field_name != plan.cursor_field
    ):
        # A first read by this stamp. One made of several statements (parts
        # of a long `IN`, or field groups) reads each at its own time: a
        # record merged or deleted after an earlier one read it can be
        # stamped before what a later one found. The next read starts no
        # later than this run did.
        _checkpoint(
            run=run,
            plan=plan,
            value=min(tally.newest, run.started_at - CURSOR_OVERLAP),
        )
    elif tally.newest is not None and not plan.is_full_read:
        # Statements of a split read run one after another: a record one
        # part had already passed can change before a later part reads
        # something newer. Past the moment the read began, only the newest
        # stamp of a single ordered statement tells what was read.
        newest = min(tally.newest, tally.began) if plan.query.is_split else tally.newest
        _checkpoint(run=run, plan=plan, value=tally.capped(newest))
    ObjectMapping.objects.filter(pk=mapping.pk).update(skipped_fields=plan.skipped)
    if plan.is_full_read:
        # Only the configuration this read applied is done with: a change
        # saved while it ran still asks the next run for a full read.
        ObjectMapping.objects.filter(pk=mapping.pk, revision=mapping.revision).update(
            needs_backfill=False
        )
    # Saved with the object, so that a worker killed on the next one leaves
    # a record of how far it got.
    run.objects_done.append(mapping.object_name)
    run.save()
    return tally.had_errors


def connection_sync(
    *,
    connection: SalesforceConnection,
    kind: str = SyncRun.Kind.FULL,
    trigger: str = SyncRun.Trigger.MANUAL,
    batch_size: int | None = None,
    on_page: OnPage | None = None,
    object_names: list[str] | None = None,
) -> SyncRun:
    """Sync one connection's org into Trig and return the finished run.

    Each mapped object is synced on its own: if Salesforce refuses one, its
    message is kept and the others go on, and the run ends "completed with
    errors"; "partial" when an object refused a field again after it was
    described afresh, which the next run reads. Raises SyncAlreadyRunning
    if another run of the connection is going.
    """
    claimed_at = sync_claim(connection=connection)
    if claimed_at is None:
        raise SyncAlreadyRunning(f"A sync of connection {connection.pk} is running.")

    claim = _Claim(connection=connection, claimed_at=claimed_at)
    # Holding the claim, any run still marked running is one whose worker
    # died; what it had stored stays, and its checkpoints are where we resume.
    SyncRun.objects.filter(connection=connection, status=SyncRun.Status.RUNNING).update(
        status=SyncRun.Status.FAILED,
        finished_at=timezone.now(),
        error_message=f"{INTERRUPTED} the worker stopped before the run finished.",
    )
    # Ids kept by a full read whose worker died before it reconciled.
    seen_release(SeenRecord.objects.filter(run__connection=connection))
    in_full = ""
    if kind == SyncRun.Kind.RECENT and object_names is None:
        in_full = _deletions_may_be_purged(connection=connection)
    if in_full:
        kind = SyncRun.Kind.FULL
    run = SyncRun.objects.create(
        connection=connection,
        kind=kind,
        trigger=trigger,
        objects_asked=list(object_names or []),
    )
    if in_full:
        _note(run, object_name="", record_id="", field="", problem=in_full)
    client: SalesforceClient | None = None
    had_errors = False
    # An object left unread for the next run makes the run partial.
    is_partial = False
    try:
        mapping_create_defaults(connection=connection)
        mappings = (
            connection.object_mappings.filter(is_enabled=True)
            .prefetch_related("field_mappings")
            # In the same query: no rules, no query for them.
            .annotate(
                has_signal_rules=Exists(
                    SignalRule.objects.filter(
                        object_mapping=OuterRef("pk"), is_enabled=True
                    )
                )
            )
        )
        if object_names is not None:
            mappings = mappings.filter(object_name__in=object_names)
        # A stopped full sync is gone on with: what it read counts as read.
        stopped = _unfinished_full(run) if kind == SyncRun.Kind.FULL else None
        carried = list(stopped.objects_done) if stopped else []
        # Objects that already failed the chain: a field they refuse again is
        # no passing change, and is not waited out run after run.
        failed_before = set(stopped.object_errors) if stopped else set()
        run.objects_done = list(carried)
        mappings = mappings.exclude(object_name__in=carried)
        _budget_check_before_calling(connection=connection)
        client = connection_client(connection=connection, batch_size=batch_size)
        schema = RunSchema(client=client, connection=connection)
        # Describes and first pages of several objects in one call each.
        first_reads = FirstReads(
            run=run,
            client=client,
            schema=schema,
            mappings=list(mappings),
            reads_org_name=kind == SyncRun.Kind.FULL,
        )
        for mapping in mappings:
            _budget_check(client=client)
            try:
                first_reads.before(mapping)
                had_errors |= _sync_object(
                    run=run,
                    client=client,
                    schema=schema,
                    mapping=mapping,
                    claim=claim,
                    on_page=on_page,
                    first_reads=first_reads,
                )
            except (
                ReconnectRequired,
                OrgSettingRefused,
                ApiLimitReached,
                ApiVersionRetired,
            ):
                raise
            except (SalesforceClientError, PlanError, QueryTooLong) as exc:
                is_partial |= (
                    isinstance(exc, FieldRefusedAgain)
                    and mapping.object_name not in failed_before
                )
                run.object_errors[mapping.object_name] = clean_text(str(exc))
                logger.warning(
                    "Salesforce object failed connection_id=%s run_id=%s object=%s",
                    connection.pk,
                    run.pk,
                    mapping.object_name,
                )
        if kind == SyncRun.Kind.FULL:
            _budget_check(client=client)
            had_errors |= counts_compare(
                run=run,
                client=client,
                schema=schema,
                mappings=list(mappings),
                note=lambda object_name, text: _note(
                    run, object_name=object_name, record_id="", field="", problem=text
                ),
            )
        _conclude(
            run=run,
            attempted=len(carried) + len(mappings),
            had_errors=had_errors,
            is_partial=is_partial,
        )
    except (ReconnectRequired, OrgSettingRefused, ApiVersionRetired) as exc:
        run.status = SyncRun.Status.FAILED
        run.error_message = str(exc)
    except (BudgetReached, ApiLimitReached) as exc:
        # Whatever was stored stays, and so do the checkpoints: the next run
        # goes on from them.
        run.status = SyncRun.Status.PARTIAL
        run.error_message = str(exc)
    except SoftTimeLimitExceeded:
        # Stopped as a worker that died is: what it read counts, and the
        # next full sync goes on from it instead of starting again, to be
        # stopped again at the same limit.
        run.status = SyncRun.Status.FAILED
        run.error_message = (
            f"{INTERRUPTED} the run reached its time limit before it finished."
        )
        raise
    except Exception as exc:
        run.status = SyncRun.Status.FAILED
        run.error_message = f"Internal error: {type(exc).__name__}"
        raise
    finally:
        _finish(run=run, client=client, claim=claim, is_whole=object_names is None)
    return run


def _unfinished_full(run: SyncRun) -> SyncRun | None:
    """Return the latest run of a stopped full sync this one goes on with.

    A full sync stopped for its API budget, left partial by an object whose
    fields changed under it, or killed with its worker, is followed by one
    that goes on with the objects it had not read, within the day the first
    of the stopped runs began: runs that stop one after the other never
    stretch it. A chain of partial runs carries what all of them read.
    """
    window_start = run.started_at - timedelta(hours=24)
    earlier = (
        SyncRun.objects.filter(
            connection=run.connection,
            kind=SyncRun.Kind.FULL,
            started_at__lt=run.started_at,
        )
        .exclude(status=SyncRun.Status.RUNNING)
        # It read nothing, and stopped nothing: the chain goes on past it.
        .exclude(error_message__startswith=NOT_RUN)
        .order_by("-started_at")
    )
    latest = None
    for previous in earlier.iterator(chunk_size=50):
        if not _stopped(previous):
            break
        if previous.started_at < window_start:
            # The chain began more than a day ago: start again.
            return None
        latest = latest or previous
    return latest


def _stopped(run: SyncRun) -> bool:
    return run.status == SyncRun.Status.PARTIAL or run.error_message.startswith(
        INTERRUPTED
    )


def _conclude(
    *, run: SyncRun, attempted: int, had_errors: bool, is_partial: bool
) -> None:
    failed = len(run.object_errors)
    run.error_message = "\n".join(
        f"{name}: {text}" for name, text in run.object_errors.items()
    )
    if attempted and failed == attempted:
        run.status = SyncRun.Status.FAILED
    elif is_partial:
        run.status = SyncRun.Status.PARTIAL
    elif failed or had_errors or run.records_failed:
        run.status = SyncRun.Status.COMPLETED_WITH_ERRORS
    else:
        run.status = SyncRun.Status.SUCCESS


def _finish(
    *, run: SyncRun, client: SalesforceClient | None, claim: _Claim, is_whole: bool
) -> None:
    try:
        # Ids kept by a full read that stopped before it reconciled: an object
        # refused midway, the budget reached.
        seen_release(SeenRecord.objects.filter(run=run))
        _record(run=run, client=client, is_whole=is_whole)
    finally:
        # Whatever happened above, the connection must not stay claimed.
        sync_release(connection=run.connection, claimed_at=claim.claimed_at)


def _record(*, run: SyncRun, client: SalesforceClient | None, is_whole: bool) -> None:
    """Save the run's figures, and move the connection's schedule after it.

    A run of chosen objects only is no sync of the connection: its other
    objects still wait for the full sync that was due, so the schedule stays.
    """
    connection = run.connection
    run.finished_at = timezone.now()
    run.api_calls = client.calls if client else 0
    run.error_message = clean_text(run.error_message)
    run.object_errors = {
        name: clean_text(text) for name, text in run.object_errors.items()
    }
    run.save()

    updates: dict = {}
    if client:
        updates.update(api_usage_columns(client=client, seen_at=run.finished_at))
    if client and client.calls:
        # Kept until a run's answers carry none: the pinned version changed.
        updates["api_warning"] = clean_text(client.api_warning)[:1000]
        if client.api_warning:
            logger.warning(
                "Salesforce warns about the API connection_id=%s warning=%s",
                connection.pk,
                client.api_warning,
            )
    if is_whole and run.kind == SyncRun.Kind.FULL:
        if run.status in (SyncRun.Status.FAILED, SyncRun.Status.PARTIAL):
            # Try again within the hour rather than waiting a whole day.
            updates["next_full_sync_at"] = run.finished_at + timedelta(hours=1)
        else:
            updates["last_full_sync_at"] = run.started_at
            updates["next_full_sync_at"] = run.started_at + timedelta(
                hours=settings.SALESFORCE_FULL_SYNC_HOURS
            )
    elif is_whole and run.status != SyncRun.Status.FAILED:
        updates["last_recent_sync_at"] = run.started_at
    if updates:
        SalesforceConnection.objects.filter(pk=connection.pk).update(**updates)
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
