"""Send a connection's due field writes to Salesforce: update-only, batched.

One run per connection at a time. For each object the run:

1. describes it once, and leaves out writes to fields the connected user
   can no longer see or edit, and values that do not fit;
2. keeps, of several writes to one field of one record, the one whose event
   happened last;
3. reads current values where an Action asks for the conflict check, and
   where an earlier request's answer was lost, so nothing is written twice;
4. sends the records with sObject Collections, at most 200 to a call, an
   Account's Contacts in the same call, allOrNone false, and takes each
   record's result by its position;
5. sends again, with growing waits, only the records that failed for a
   passing reason such as a row lock; permanent failures are kept and
   never sent again; a deleted record is looked up once with queryAll and,
   if it lost a merge, written once to the survivor.

https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
"""

import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.utils import timezone

from integrations.models import SalesforceConnection
from integrations.salesforce.budget import write_calls_left
from integrations.salesforce.client import (
    TRANSIENT_CODES,
    DailyLimitReached,
    ReconnectRequired,
    SalesforceClient,
    SalesforceClientError,
    SalesforceRejectedError,
    SalesforceTransientError,
)
from integrations.services import connection_api_usage_store, connection_client
from jobs import selectors
from jobs.models import (
    ROLLED_BACK_CODES,
    Action,
    DeletedRecord,
    FieldWrite,
    JobRun,
    KnownValue,
)
from jobs.values import (
    ValueDoesNotFit,
    record_id_18,
    same_value,
    storable,
    value_for_field,
)
from people.models import CrmAccount, Person
from people.services import merge_apply

logger = logging.getLogger(__name__)

# Per-record codes worth sending again: passing failures, and a record
# rolled back only because another one failed (ROLLED_BACK_CODES).
RETRY_CODES = TRANSIENT_CODES | ROLLED_BACK_CODES
DELETED_CODE = "ENTITY_IS_DELETED"
# Describe's answer for an object that does not exist for the connected user.
OBJECT_GONE_CODE = "NOT_FOUND"
# The daily allocation is spent (or too many long requests run at once).
LIMIT_CODE = "REQUEST_LIMIT_EXCEEDED"
# The org's API usage stored by the last run or sync is trusted this long.
USAGE_FRESH_FOR = timedelta(hours=1)
MAX_RETRY_DELAY = timedelta(hours=6)

_OUTCOME_FIELDS = (
    "status",
    "is_retryable",
    "status_code",
    "message",
    "error_fields",
    "warning",
    "attempts",
    "is_in_flight",
    "next_attempt_at",
    "merged_into_id",
    "superseded_by_id",
    "run_id",
    "written_at",
)


class WritebackBusy(Exception):
    """Another run of the connection is going; try again when it ends."""


class _BudgetSpent(Exception):
    """The calls writes may make are spent for now."""


@dataclass
class _Entry:
    write: FieldWrite
    field: dict[str, Any]
    value: Any


@dataclass
class _Record:
    """One record in an update request, and the writes it carries."""

    target_id: str
    parent_id: str
    entries: dict[str, _Entry] = field(default_factory=dict)
    # The last passing failure, kept for the outcome if retries run out.
    failure: tuple[str, str, list[str]] = ("", "", [])

    @property
    def writes(self) -> list[FieldWrite]:
        return [entry.write for entry in self.entries.values()]

    def payload(self) -> dict[str, Any]:
        return {"id": self.target_id} | {
            name: entry.value for name, entry in self.entries.items()
        }


def connection_write_pending(
    *, connection: SalesforceConnection, trigger: str = JobRun.Trigger.EVENT
) -> JobRun | None:
    """Send a connection's due writes; return the run, or None if none was due.

    Raises WritebackBusy while another run of the connection is going.
    """
    now = timezone.now()
    if not selectors.write_due_exists(connection=connection, now=now):
        return None
    run = _run_claim(connection=connection, trigger=trigger, now=now)

    client: SalesforceClient | None = None
    try:
        client = connection_client(connection=connection)
        _Writer(run=run, client=client).write_all()
    except ReconnectRequired as exc:
        run.status = JobRun.Status.FAILED
        run.error_message = str(exc)
    except SalesforceClientError as exc:
        run.status = JobRun.Status.FAILED
        run.error_message = str(exc)
        logger.warning(
            "Writeback run failed connection_id=%s run_id=%s code=%s",
            connection.pk,
            run.pk,
            exc.code,
        )
    except Exception as exc:
        run.status = JobRun.Status.FAILED
        run.error_message = f"Internal error: {type(exc).__name__}"
        raise
    finally:
        _finish(run=run, client=client)
    return run


def _run_claim(
    *, connection: SalesforceConnection, trigger: str, now: datetime
) -> JobRun:
    """Start a run, unless one is going: the database allows one per connection.

    A run older than the timeout belongs to a worker that died.
    """
    # TODO: a worker that stalls past the timeout (longer than the task's
    # soft time limit) and then wakes keeps sending while the next run sends
    # the same writes; the in-flight read-back helps only when runs take
    # turns. Check that the run is still running before each request if such
    # stalls become possible.
    stale = now - timedelta(seconds=settings.JOBS_RUN_TIMEOUT_SECONDS)
    JobRun.objects.filter(
        connection=connection, status=JobRun.Status.RUNNING, started_at__lt=stale
    ).update(
        status=JobRun.Status.FAILED,
        finished_at=now,
        error_message="Abandoned: the worker stopped before the run ended.",
    )
    try:
        with transaction.atomic():
            return JobRun.objects.create(connection=connection, trigger=trigger)
    except IntegrityError:
        raise WritebackBusy(
            f"A writeback run of connection {connection.pk} is going."
        ) from None


class _Writer:
    def __init__(self, *, run: JobRun, client: SalesforceClient) -> None:
        self.run = run
        self.client = client
        self.connection = run.connection
        self.now = timezone.now()
        self.spent_before = selectors.write_calls_spent(
            connection=self.connection, now=self.now
        )
        self.batch_size = max(
            1, min(settings.JOBS_WRITE_BATCH_SIZE, client.MAX_UPDATE_RECORDS)
        )
        self.changed: dict[int, FieldWrite] = {}
        self.settled: set[int] = set()
        self.known: dict[tuple[str, str], KnownValue] = {}
        self.known_changed: dict[tuple[str, str], KnownValue] = {}
        # Fields left out of each record of the object being written.
        self.dropped: dict[str, list[str]] = defaultdict(list)

    # ------------------------------------------------------------ The run

    def write_all(self) -> None:
        # TODO: every due write is loaded at once; a backlog of millions (an
        # org disconnected for months) would want paging by object and pk.
        due = list(selectors.write_due_list(connection=self.connection, now=self.now))
        by_object: dict[str, list[FieldWrite]] = defaultdict(list)
        for write in due:
            by_object[write.object_name].append(write)
        try:
            for object_name, writes in by_object.items():
                self._write_object(object_name, writes)
        except (_BudgetSpent, DailyLimitReached):
            self._wait_for_budget([w for w in due if w.pk not in self.settled])
        finally:
            self._save()

    def _write_object(self, object_name: str, writes: list[FieldWrite]) -> None:
        self._spend(1)
        try:
            describe = self.client.describe(object_name=object_name)
        except SalesforceRejectedError as exc:
            if exc.code != OBJECT_GONE_CODE:
                raise
            # Deleted, or out of the connected user's sight: as for a hidden
            # field, its writes are skipped and the other objects' go on.
            for write in writes:
                self._settle(
                    write,
                    FieldWrite.Status.SKIPPED,
                    status_code=exc.code,
                    message=f"Skipped: {object_name} is hidden from the connected "
                    "user or no longer exists.",
                )
            self._save()
            return
        visible = {f["name"].lower(): f for f in describe.get("fields", [])}
        key_prefix = describe.get("keyPrefix") or ""
        self._note_field_types(writes, visible)

        writes = self._redirect_deleted(object_name, writes)
        self.dropped = defaultdict(list)
        records = self._records(
            [
                entry
                for write in self._latest_only(writes)
                if (entry := self._entry(write, visible, key_prefix, object_name))
            ]
        )
        records = self._read_back(object_name, records)

        deleted: list[_Record] = []
        for batch in self._batches(records):
            deleted += self._send(object_name, batch, follows_merges=True)
        if deleted:
            survivors = self._follow_merges(object_name, deleted, visible)
            # The survivor is a record of its own: the conflict check reads it,
            # and what Trig knew of it, as for any record.
            survivors = self._read_back(object_name, survivors)
            for batch in self._batches(survivors):
                self._send(object_name, batch, follows_merges=False)
        self._save()

    def _note_field_types(
        self, writes: list[FieldWrite], visible: dict[str, dict[str, Any]]
    ) -> None:
        """Keep each Action's field type as describe gives it now, for showing
        its values as Salesforce takes them."""
        actions = {write.action_id: write.action for write in writes}
        for action in actions.values():
            described = visible.get(action.field_name.lower())
            if described is None or described["type"] == action.field_type:
                continue
            action.field_type = described["type"]
            Action.objects.filter(pk=action.pk).update(field_type=action.field_type)

    # ------------------------------------------------------------ Choosing

    def _redirect_deleted(
        self, object_name: str, writes: list[FieldWrite]
    ) -> list[FieldWrite]:
        """Send writes to records known deleted to their survivor, or skip them."""
        gone = selectors.deleted_record_map(
            connection=self.connection,
            record_ids=[w.merged_into_id or w.record_id for w in writes],
        )
        kept = []
        for write in writes:
            deleted = gone.get(write.merged_into_id or write.record_id)
            if deleted is None:
                kept.append(write)
            elif (
                deleted.master_record_id
                and write.action.follows_merges
                and not write.merged_into_id
            ):
                write.merged_into_id = deleted.master_record_id
                kept.append(write)
            else:
                self._settle(
                    write,
                    FieldWrite.Status.SKIPPED,
                    message="Skipped: the record was deleted in Salesforce.",
                )
        return kept

    def _latest_only(self, writes: list[FieldWrite]) -> list[FieldWrite]:
        """Keep the write of the latest event for each field of each record."""
        groups: dict[tuple[str, str], list[FieldWrite]] = defaultdict(list)
        for write in writes:
            target = write.merged_into_id or write.record_id
            groups[(target, write.field_name.lower())].append(write)
        written = selectors.written_at_map(
            connection=self.connection, record_ids=[key[0] for key in groups]
        )

        latest = []
        for key, group in groups.items():
            group.sort(key=lambda w: (w.event.occurred_at, w.pk))
            newest = group[-1]
            for older in group[:-1]:
                self._settle(
                    older,
                    FieldWrite.Status.SKIPPED,
                    message="Skipped: a later event's write of the same field "
                    "replaced it.",
                    superseded_by=newest,
                )
            if key in written and written[key] > newest.event.occurred_at:
                self._settle(
                    newest,
                    FieldWrite.Status.SKIPPED,
                    message="Skipped: a value from a later event is already written.",
                )
                continue
            latest.append(newest)
        return latest

    def _entry(
        self,
        write: FieldWrite,
        visible: dict[str, dict[str, Any]],
        key_prefix: str,
        object_name: str,
    ) -> _Entry | None:
        """Check a write against describe; settle it if it cannot be sent."""
        target = write.merged_into_id or write.record_id
        if record_id_18(target) != target:
            self._settle(
                write,
                FieldWrite.Status.FAILED,
                message=f"'{target}' is not an 18-character Salesforce Id.",
            )
            return None
        if key_prefix and not target.startswith(key_prefix):
            self._settle(
                write,
                FieldWrite.Status.FAILED,
                message=f"{target} is not the Id of a record of {object_name}.",
            )
            return None
        described = visible.get(write.field_name.lower())
        if described is None or not described.get("updateable"):
            self.dropped[target].append(write.field_name)
        if described is None:
            self._settle(
                write,
                FieldWrite.Status.SKIPPED,
                message=f"Skipped: {write.field_name} is hidden from the connected "
                "user or no longer exists.",
            )
            return None
        if not described.get("updateable"):
            self._settle(
                write,
                FieldWrite.Status.SKIPPED,
                message=f"Skipped: {described['name']} is read-only for the "
                "connected user.",
            )
            return None
        try:
            value = value_for_field(field=described, value=write.value)
        except ValueDoesNotFit as exc:
            self._settle(write, FieldWrite.Status.FAILED, message=str(exc))
            return None
        return _Entry(write=write, field=described, value=value)

    def _records(self, entries: list[_Entry]) -> list[_Record]:
        """Put the writes of each record together, noting fields left out."""
        records: dict[str, _Record] = {}
        for entry in entries:
            write = entry.write
            target = write.merged_into_id or write.record_id
            record = records.setdefault(
                target, _Record(target_id=target, parent_id=write.parent_id)
            )
            record.entries[entry.field["name"]] = entry

        # A field left out of a record that is still sent is named on the
        # writes that go, as a warning.
        for target, names in self.dropped.items():
            if target in records:
                warning = f"Sent without {', '.join(names)}: hidden or read-only now."
                for sent in records[target].writes:
                    sent.warning = warning
        return list(records.values())

    def _read_back(self, object_name: str, records: list[_Record]) -> list[_Record]:
        """Read current values for the conflict check and for lost answers.

        A field that already holds the value is written; one that someone
        changed since Trig last read it is skipped, if its Action says so.
        """
        to_read = [
            record
            for record in records
            if any(
                w.is_in_flight or w.action.is_conflict_check_enabled
                for w in record.writes
            )
        ]
        if not to_read:
            return records
        record_ids = [record.target_id for record in to_read]
        names = sorted({name for record in to_read for name in record.entries})
        self._spend(math.ceil(len(record_ids) / self.client.IDS_PER_QUERY))
        current = self.client.record_values(
            object_name=object_name, record_ids=record_ids, field_names=names
        )
        self.known.update(
            selectors.known_value_map(connection=self.connection, record_ids=record_ids)
        )

        for record in to_read:
            values = current.get(record.target_id)
            if values is None:
                # Gone or out of sight: the update will say which.
                continue
            for name, entry in list(record.entries.items()):
                write, now_value = entry.write, values.get(name)
                known = self.known.get((record.target_id, name.lower()))
                checks = write.action.is_conflict_check_enabled
                if same_value(field=entry.field, first=now_value, second=entry.value):
                    self._settle(
                        write,
                        FieldWrite.Status.WRITTEN,
                        message="Salesforce already holds this value; nothing sent.",
                        written_at=self.now,
                    )
                    del record.entries[name]
                elif (
                    checks
                    and known is not None
                    and not same_value(
                        field=entry.field, first=known.value, second=now_value
                    )
                ):
                    self._settle(
                        write,
                        FieldWrite.Status.SKIPPED,
                        message=f"Skipped: {name} was changed in Salesforce since "
                        f"Trig last read it (Trig read {known.value!r}, Salesforce "
                        f"now holds {now_value!r}).",
                    )
                    del record.entries[name]
                if checks:
                    self._remember(object_name, record.target_id, name, now_value)
        return [record for record in records if record.entries]

    def _batches(self, records: list[_Record]) -> list[list[_Record]]:
        """Split records into as few requests as can be, an Account's children together.

        Contacts of one Account sent in two requests at once lock the Account
        against each other (UNABLE_TO_LOCK_ROW). Families are packed
        largest first; only when that would cost a request more are they
        split, and then only where one request ends and the next begins.
        """
        size = self.batch_size
        by_parent: dict[str, list[_Record]] = defaultdict(list)
        for record in sorted(records, key=lambda r: r.target_id):
            by_parent[record.parent_id or record.target_id].append(record)

        batches: list[list[_Record]] = []
        for family in sorted(by_parent.values(), key=len, reverse=True):
            while len(family) > size:
                batches.append(family[:size])
                family = family[size:]
            roomy = next((b for b in batches if len(b) + len(family) <= size), None)
            if roomy is None:
                batches.append(list(family))
            else:
                roomy.extend(family)

        if len(batches) > math.ceil(len(records) / size):
            ordered = [
                record for parent in sorted(by_parent) for record in by_parent[parent]
            ]
            batches = [ordered[i : i + size] for i in range(0, len(ordered), size)]
        return batches

    # ------------------------------------------------------------ Sending

    def _send(
        self, object_name: str, batch: list[_Record], *, follows_merges: bool
    ) -> list[_Record]:
        """Send a batch, then only its passing failures, up to N times.

        Returns the records Salesforce reported deleted, for the caller to
        look up once; with `follows_merges` false they are skipped instead.
        """
        attempts = settings.JOBS_WRITE_ATTEMPTS_PER_RUN
        pending, deleted = batch, []
        for attempt in range(1, attempts + 1):
            self._spend(1)
            self._mark_in_flight(pending)
            try:
                results = self.client.update_records(
                    object_name=object_name,
                    records=[record.payload() for record in pending],
                )
            except SalesforceTransientError as exc:
                # The answer is lost: what reached Salesforce is unknown, so
                # the records are read back before they go again.
                self.run.update_calls += 1
                for record in pending:
                    record.failure = (exc.code, str(exc), [])
                retry, lost = pending, True
            except DailyLimitReached as exc:
                # Refused before anything was done: nothing is in flight.
                self.run.update_calls += 1
                self._unmark_in_flight(pending)
                raise _BudgetSpent from exc
            except SalesforceRejectedError as exc:
                self.run.update_calls += 1
                self._unmark_in_flight(pending)
                if exc.code == LIMIT_CODE:
                    raise _BudgetSpent from exc
                for record in pending:
                    self._settle_record(
                        record,
                        FieldWrite.Status.FAILED,
                        code=exc.code,
                        message=str(exc),
                    )
                return deleted
            else:
                self.run.update_calls += 1
                retry, gone = self._take_results(pending, results)
                lost = False
                if follows_merges:
                    deleted += gone
                else:
                    for record in gone:
                        self._settle_record(
                            record,
                            FieldWrite.Status.SKIPPED,
                            code=DELETED_CODE,
                            message="Skipped: the surviving record was deleted too.",
                        )
            self._save()
            if not retry:
                return deleted
            if attempt == attempts:
                break
            delay = settings.JOBS_WRITE_BACKOFF_SECONDS * 2 ** (attempt - 1)
            if delay:
                time.sleep(delay)
            pending = self._read_back(object_name, retry) if lost else retry
            if not pending:
                return deleted

        for record in retry:
            self._wait_or_give_up(record)
        return deleted

    def _take_results(
        self, pending: list[_Record], results: list[dict[str, Any]]
    ) -> tuple[list[_Record], list[_Record]]:
        """Record each result by position; return (to retry, deleted).

        A result whose `id` names another record than the one in its place,
        or a count that differs, makes every outcome of the batch unknown:
        none is guessed.
        """
        lined_up = len(results) == len(pending) and all(
            not result.get("id")
            or str(result["id"]).lower() == record.target_id.lower()
            for record, result in zip(pending, results, strict=False)
        )
        if not lined_up:
            logger.warning(
                "Update results do not line up connection_id=%s run_id=%s "
                "records=%s results=%s",
                self.connection.pk,
                self.run.pk,
                len(pending),
                len(results),
            )
            self.run.error_message = (
                "Salesforce's answer to a batch did not line up with its records; "
                "their outcomes are unknown. Check them in Salesforce."
            )
            for record in pending:
                self._settle_record(
                    record,
                    FieldWrite.Status.FAILED,
                    message="Outcome unknown: Salesforce's answer did not line up "
                    "with the request. Check the record in Salesforce before "
                    "retrying.",
                    is_in_flight=True,
                )
            return [], []

        retry, deleted = [], []
        answered_at = timezone.now()
        for record, result in zip(pending, results, strict=True):
            self._unmark_in_flight([record])
            if result.get("success"):
                for name, entry in record.entries.items():
                    merged = entry.write.merged_into_id
                    self._settle(
                        entry.write,
                        FieldWrite.Status.WRITTEN,
                        message=f"Written on merged record {merged}." if merged else "",
                        written_at=answered_at,
                    )
                    if entry.write.action.is_conflict_check_enabled:
                        self._remember(
                            entry.write.object_name, record.target_id, name, entry.value
                        )
                continue

            errors = [e for e in result.get("errors") or [] if isinstance(e, dict)]
            code = str(errors[0].get("statusCode", "")) if errors else ""
            message = " ".join(str(e.get("message", "")) for e in errors).strip()
            fields = sorted({name for e in errors for name in e.get("fields") or []})
            if code in RETRY_CODES:
                if code in ROLLED_BACK_CODES:
                    message = "Not applied: another record in the batch failed."
                record.failure = (code, message, fields)
                retry.append(record)
            elif code == DELETED_CODE:
                record.failure = (code, message, fields)
                deleted.append(record)
            else:
                self._settle_record(
                    record,
                    FieldWrite.Status.FAILED,
                    code=code,
                    message=message
                    or "Salesforce refused the record without a reason.",
                    error_fields=fields,
                )
        return retry, deleted

    def _follow_merges(
        self,
        object_name: str,
        deleted: list[_Record],
        visible: dict[str, dict[str, Any]],
    ) -> list[_Record]:
        """Look deleted records up once; return the writes for merge survivors.

        queryAll still finds a deleted record in the recycle bin; one that
        lost a merge names the survivor in MasterRecordId. A purged record
        is not found at all. Either way nothing is ever created.
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_queryall.htm
        """
        names = ["IsDeleted"]
        if "masterrecordid" in visible:
            names.append("MasterRecordId")
        self._spend(math.ceil(len(deleted) / self.client.IDS_PER_QUERY))
        found = self.client.record_values(
            object_name=object_name,
            record_ids=[record.target_id for record in deleted],
            field_names=names,
            include_deleted=True,
        )

        redirected: list[_Entry] = []
        for record in deleted:
            master = (found.get(record.target_id) or {}).get("MasterRecordId") or ""
            self._remember_deleted(object_name, record.target_id, master)
            code, message, _ = record.failure
            for entry in record.entries.values():
                write = entry.write
                if not master or not write.action.follows_merges:
                    reason = (
                        f"Skipped: the record was merged into {master}, and the "
                        "Action does not follow merges."
                        if master
                        else "Skipped: the record was deleted in Salesforce."
                    )
                    self._settle(
                        write,
                        FieldWrite.Status.SKIPPED,
                        status_code=code,
                        message=reason,
                    )
                    continue
                write.merged_into_id = master
                redirected.append(entry)

        # The survivor's field may already hold a later event's value, written
        # in an earlier run or earlier in this one: of all the writes to it,
        # the latest event wins, as for any record.
        latest = {
            write.pk for write in self._latest_only([e.write for e in redirected])
        }
        survivors: dict[str, _Record] = {}
        for entry in redirected:
            write = entry.write
            if write.pk in latest:
                survivor = survivors.setdefault(
                    write.merged_into_id,
                    _Record(target_id=write.merged_into_id, parent_id=write.parent_id),
                )
                survivor.entries[entry.field["name"]] = entry
        return list(survivors.values())

    # ------------------------------------------------------------ Outcomes

    def _settle(self, write: FieldWrite, status: str, **fields: Any) -> None:
        write.status = status
        write.run = self.run
        write.is_retryable = fields.pop("is_retryable", False)
        write.is_in_flight = fields.pop("is_in_flight", False)
        write.next_attempt_at = fields.pop("next_attempt_at", None)
        write.status_code = storable(fields.pop("status_code", ""))
        write.message = storable(fields.pop("message", ""))
        write.error_fields = storable(fields.pop("error_fields", []))
        for name, value in fields.items():
            setattr(write, name, value)
        self.changed[write.pk] = write
        self.settled.add(write.pk)
        logger.debug("Write settled write_id=%s status=%s", write.pk, status)

    def _settle_record(
        self, record: _Record, status: str, *, code: str = "", **fields: Any
    ) -> None:
        for write in record.writes:
            self._settle(write, status, status_code=code, **fields)

    def _wait_or_give_up(self, record: _Record) -> None:
        """Queue a record that kept failing for a passing reason, or give up."""
        code, message, fields = record.failure
        per_run = max(settings.JOBS_WRITE_ATTEMPTS_PER_RUN, 1)
        for write in record.writes:
            if write.attempts >= settings.JOBS_WRITE_MAX_ATTEMPTS:
                self._settle(
                    write,
                    FieldWrite.Status.FAILED,
                    status_code=code,
                    message=f"{message} Gave up after {write.attempts} attempts.",
                    error_fields=fields,
                    is_in_flight=write.is_in_flight,
                )
                continue
            runs = math.ceil(write.attempts / per_run)
            delay = min(
                timedelta(seconds=settings.JOBS_WRITE_RETRY_SECONDS * 2 ** (runs - 1)),
                MAX_RETRY_DELAY,
            )
            self._settle(
                write,
                FieldWrite.Status.FAILED,
                status_code=code,
                message=message,
                error_fields=fields,
                is_retryable=True,
                is_in_flight=write.is_in_flight,
                next_attempt_at=self.now + delay,
            )

    def _wait_for_budget(self, writes: list[FieldWrite]) -> None:
        wait = timedelta(seconds=settings.JOBS_BUDGET_WAIT_SECONDS)
        for write in writes:
            write.run = self.run
            write.next_attempt_at = self.now + wait
            write.message = (
                "Waiting: the API calls Trig may spend on writes are used up for now."
            )
            self.changed[write.pk] = write
        self.run.error_message = (
            f"Stopped early: the API calls Trig may spend on writes are used up; "
            f"{len(writes)} writes wait for a later run."
        )
        logger.warning(
            "Writeback paused for API budget connection_id=%s waiting=%s",
            self.connection.pk,
            len(writes),
        )

    def _mark_in_flight(self, records: list[_Record]) -> None:
        """Save, before the request goes, that its outcome would be unknown."""
        writes = [write for record in records for write in record.writes]
        for write in writes:
            write.attempts += 1
            write.is_in_flight = True
            write.run = self.run
        FieldWrite.objects.filter(pk__in=[w.pk for w in writes]).update(
            attempts=F("attempts") + 1, is_in_flight=True, run=self.run
        )

    def _unmark_in_flight(self, records: list[_Record]) -> None:
        for record in records:
            for write in record.writes:
                write.is_in_flight = False
                self.changed[write.pk] = write

    def _remember(
        self, object_name: str, record_id: str, field_name: str, value: Any
    ) -> None:
        key = (record_id, field_name.lower())
        known = self.known.get(key) or KnownValue(
            connection=self.connection,
            object_name=object_name,
            record_id=record_id,
            field_name=field_name,
        )
        known.value = storable(value)
        known.seen_at = timezone.now()
        self.known[key] = self.known_changed[key] = known

    def _remember_deleted(self, object_name: str, record_id: str, master: str) -> None:
        DeletedRecord.objects.update_or_create(
            connection=self.connection,
            salesforce_id=record_id,
            defaults={"object_name": object_name, "master_record_id": master},
        )
        # The person or organisation of the losing record points at the
        # survivor's, as a sync does when it reads the merge.
        model = {"Contact": Person, "Account": CrmAccount}.get(object_name)
        if master and model is not None:
            merge_apply(
                connection=self.connection, model=model, survivors={record_id: master}
            )

    def _save(self) -> None:
        """Save outcomes: one UPDATE for each set of writes that ended alike."""
        if self.changed:
            alike: dict[str, list[int]] = defaultdict(list)
            values: dict[str, dict[str, Any]] = {}
            for write in self.changed.values():
                outcome = {name: getattr(write, name) for name in _OUTCOME_FIELDS}
                key = json.dumps(outcome, sort_keys=True, default=str)
                alike[key].append(write.pk)
                values[key] = outcome
            now = timezone.now()
            for key, pks in alike.items():
                for start in range(0, len(pks), 500):
                    FieldWrite.objects.filter(pk__in=pks[start : start + 500]).update(
                        **values[key], updated_at=now
                    )
            self.changed.clear()
        if self.known_changed:
            known = list(self.known_changed.values())
            KnownValue.objects.bulk_update(
                [k for k in known if k.pk], ["value", "seen_at"], batch_size=500
            )
            created = KnownValue.objects.bulk_create(
                [k for k in known if not k.pk], batch_size=500
            )
            for item in created:
                self.known[(item.record_id, item.field_name.lower())] = item
            self.known_changed.clear()

    # ------------------------------------------------------------ Budget

    def _spend(self, calls: int) -> None:
        """Raise _BudgetSpent unless writes may make `calls` more calls now.

        The org's usage comes from the last answer that carried it, else
        from the last run or sync if recent; the allocation's size from
        either, however old. With neither, the first call will tell.
        """
        connection = self.connection
        usage = self.client.api_usage
        if usage is None and connection.api_usage_max:
            seen_at = connection.api_usage_seen_at
            if seen_at and seen_at >= self.now - USAGE_FRESH_FOR:
                used = (connection.api_usage_used or 0) + self.client.calls
                usage = (used, connection.api_usage_max)
            else:
                # How much was used is stale; how much is allowed is not.
                usage = (0, connection.api_usage_max)
        if usage is None:
            return
        left = write_calls_left(
            usage=usage, spent_by_writes=self.spent_before + self.client.calls
        )
        if left < calls:
            raise _BudgetSpent


def _finish(*, run: JobRun, client: SalesforceClient | None) -> None:
    counts: dict[str, int] = defaultdict(int)
    rows = (
        FieldWrite.objects.filter(run=run)
        .values_list("status", "is_retryable")
        .annotate(count=Count("pk"))
        .order_by()
    )
    for status, is_retryable, count in rows:
        if status == FieldWrite.Status.FAILED and is_retryable:
            counts["waiting"] += count
        else:
            counts[status] += count
    run.writes_written = counts[FieldWrite.Status.WRITTEN]
    run.writes_skipped = counts[FieldWrite.Status.SKIPPED]
    run.writes_failed = counts[FieldWrite.Status.FAILED]
    run.writes_waiting = counts["waiting"] + counts[FieldWrite.Status.PENDING]
    run.api_calls = client.calls if client else 0
    run.finished_at = timezone.now()
    if run.status == JobRun.Status.RUNNING:
        has_errors = run.writes_failed or run.writes_waiting or run.error_message
        run.status = (
            JobRun.Status.COMPLETED_WITH_ERRORS
            if has_errors
            else JobRun.Status.COMPLETED
        )
    run.save()

    if client:
        connection_api_usage_store(
            connection_id=run.connection_id, client=client, seen_at=run.finished_at
        )
    logger.info(
        "Writeback run finished connection_id=%s run_id=%s status=%s written=%s "
        "skipped=%s failed=%s waiting=%s update_calls=%s api_calls=%s",
        run.connection_id,
        run.pk,
        run.status,
        run.writes_written,
        run.writes_skipped,
        run.writes_failed,
        run.writes_waiting,
        run.update_calls,
        run.api_calls,
    )
