"""Read a large object's full extent through a Bulk API 2.0 query job.

The pages come out shaped like REST's: typed values, datetimes as REST
writes them, compound fields as nested objects, so the rest of the sync
cannot tell which way a record came.
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/queries.htm
"""

import csv
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from integrations.salesforce import soql
from integrations.salesforce.client import (
    SalesforceClient,
    SalesforceRejectedError,
    SalesforceTransientError,
)
from integrations.salesforce.schema import ObjectSchema
from integrations.salesforce.soql_build import Plan, QueryTooLong, plan_select

logger = logging.getLogger(__name__)

Record = dict[str, Any]

# Bulk suits 10,000 records and more; below, a job's fixed overhead of
# several seconds costs more than the few REST pages it saves.
DEFAULT_THRESHOLD = 10_000
# Rows per result page, each page one API call. Without maxRecords Salesforce
# sends as many as fit; a bound keeps one download short enough not to time
# out. Pages are streamed, so their size costs no memory.
DEFAULT_MAX_RECORDS = 100_000
DEFAULT_POLL_SECONDS = 1.0
DEFAULT_MAX_WAIT_SECONDS = 30 * 60
# A SOQL statement must stay under 100,000 characters; a job's query goes in
# a POST body, so the URI limit that splits REST statements does not apply.
STATEMENT_BUDGET = 100_000

COMPOUND_TYPES = frozenset({"address", "location"})
# Refusals after which the object is read through REST in the same run: a
# daily cap ("Max bulk v2 query jobs ...", "Max bulk v2 query result size
# ..."), or compound fields.
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/bulk_api_2_limits.htm
CAP_MESSAGE = "Max bulk v2"
FALLBACK_MESSAGES = (
    CAP_MESSAGE,
    "Selecting compound data not supported in Bulk Query",
)
PAGE = 2000

# What /limits must still show of the Bulk API 2.0 daily allocations
# (10,000 jobs and 1 TB of results per rolling 24 hours) before a job is
# started; the org's other integrations may be reading through Bulk too.
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/bulk_api_2_limits.htm
DEFAULT_MIN_JOBS_LEFT = 10
DEFAULT_MIN_STORAGE_MB_LEFT = 1024
CAP_NOTE = "Bulk daily cap reached, read through REST"

Note = Callable[[str], None]


@dataclass(frozen=True)
class BulkCandidate:
    """What a full read selects, for Bulk to read instead when it is large."""

    schema: ObjectSchema
    fields: tuple[str, ...]
    where: soql.Condition | None


@dataclass(frozen=True)
class FullReadPlan(Plan):
    """REST statements of a full read, with what a Bulk job would read."""

    bulk: BulkCandidate | None = None


class BulkCountMismatch(SalesforceRejectedError):
    """A result page held another number of rows than Salesforce declared."""


class BulkResultsMalformed(SalesforceRejectedError):
    """A result page was not the CSV of the columns the job selected, or the
    pages led back to one already read."""


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def bulk_columns(schema: ObjectSchema, fields: tuple[str, ...]) -> list[str]:
    """Return the fields with each compound replaced by its visible components.

    Bulk queries refuse address and location fields; describe's
    `compoundFieldName` names the fields they are made of.
    https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/compound_fields.htm
    """
    columns: list[str] = []
    for name in fields:
        if schema.type_of(name) in COMPOUND_TYPES:
            columns.extend(_components(schema, name))
        else:
            columns.append(name)
    return list(dict.fromkeys(columns))


def _components(schema: ObjectSchema, compound: str) -> list[str]:
    return [
        described["name"]
        for described in schema.fields.values()
        if described.get("compoundFieldName") == compound
        and described["name"] != compound
    ]


def _part_key(compound: str, part: str) -> str:
    """Name a component as REST does inside the compound: BillingCity -> city."""
    prefix = compound.removesuffix("Address").removesuffix("__c")
    key = part.removeprefix(prefix).removeprefix("__").removesuffix("__s")
    return key[:1].lower() + key[1:]


def bulk_statement(candidate: BulkCandidate) -> str | None:
    """Return the one statement a job would run, or None if it needs more."""
    try:
        query = plan_select(
            sobject=candidate.schema.name,
            fields=bulk_columns(candidate.schema, candidate.fields),
            where=candidate.where,
            budget=STATEMENT_BUDGET,
        )
    except QueryTooLong:
        return None
    return None if query.is_split else query.statements[0][0]


def bulk_threshold() -> int:
    return _setting("SALESFORCE_BULK_THRESHOLD", DEFAULT_THRESHOLD)


def bulk_pages(
    *,
    client: SalesforceClient,
    candidate: BulkCandidate,
    include_deleted: bool,
    on_note: Note | None = None,
    before_poll: Callable[[], None] = lambda: None,
) -> Iterator[list[Record]] | None:
    """Start and await a job for a large full read; None to read through REST.

    None when Bulk's daily allocations are (nearly) spent, when Bulk refused
    the job for a reason REST does not share (the daily caps, compound
    fields) or when the job failed or took too long; otherwise the job's
    pages, in REST's shape. `on_note` hears, in plain words, why an object
    that could have gone through Bulk was read through REST.
    """
    note = on_note or (lambda text: None)
    statement = bulk_statement(candidate)
    if statement is None:
        return None
    object_name = candidate.schema.name
    if not getattr(client, "bulk_refused", ""):
        client.bulk_refused = _bulk_cap_reached(client=client)
    if client.bulk_refused:
        note(f"{CAP_NOTE} ({client.bulk_refused}).")
        return None

    try:
        job_id = client.bulk_query_create(
            soql=statement, include_deleted=include_deleted
        )
    except SalesforceRejectedError as exc:
        if exc.code != "LIMIT_EXCEEDED" and not any(
            text in str(exc) for text in FALLBACK_MESSAGES
        ):
            raise
        logger.warning(
            "Bulk query refused, reading through REST object=%s error=%s",
            object_name,
            exc.code,
        )
        if exc.code == "LIMIT_EXCEEDED" or CAP_MESSAGE in str(exc):
            # /limits can lag behind, and other integrations start jobs too.
            client.bulk_refused = str(exc)
            note(f"{CAP_NOTE} ({exc}).")
        else:
            note(f"Bulk refused the query ({exc}); the object was read through REST.")
        return None

    state, processed = _await(client=client, job_id=job_id, before_poll=before_poll)
    if state == "TimedOut":
        _abort(client=client, job_id=job_id)
        minutes = _setting("SALESFORCE_BULK_MAX_WAIT_SECONDS", DEFAULT_MAX_WAIT_SECONDS)
        note(
            f"The Bulk query job {job_id} did not finish within {minutes / 60:g} "
            "minutes; it was aborted and the object read through REST."
        )
    elif state != "JobComplete":
        note(
            f"The Bulk query job {job_id} ended {state}; the object was read "
            "through REST."
        )
    if state != "JobComplete":
        logger.warning(
            "Bulk query job ended without results, reading through REST "
            "object=%s job=%s state=%s",
            object_name,
            job_id,
            state,
        )
        return None
    return _results(
        client=client, candidate=candidate, job_id=job_id, processed=processed
    )


def _bulk_cap_reached(*, client: SalesforceClient) -> str:
    """Say which Bulk daily allocation /limits shows (nearly) spent, or "".

    One call per object that would go through Bulk. When /limits cannot be
    read (the connected user lacks "View Setup and Configuration"), the job
    is tried and its refusal, if any, decides.
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm
    """
    try:
        limits = client.limits()
    except (SalesforceRejectedError, SalesforceTransientError) as exc:
        logger.warning("Salesforce limits unreadable, trying Bulk error=%s", exc.code)
        return ""
    jobs_least = _setting("SALESFORCE_BULK_MIN_JOBS_LEFT", DEFAULT_MIN_JOBS_LEFT)
    storage_least = _setting(
        "SALESFORCE_BULK_MIN_STORAGE_MB_LEFT", DEFAULT_MIN_STORAGE_MB_LEFT
    )
    wanted = (
        ("DailyBulkV2QueryJobs", "query jobs", jobs_least),
        ("DailyBulkV2QueryFileStorageMB", "MB of query results", storage_least),
    )
    for name, unit, least in wanted:
        allocation = limits.get(name) if isinstance(limits, dict) else None
        try:
            remaining, maximum = int(allocation["Remaining"]), int(allocation["Max"])
        except (KeyError, TypeError, ValueError):
            continue
        if remaining <= 0 or remaining < least:
            return f"{remaining:,} of {maximum:,} {unit} left"
    return ""


def _abort(*, client: SalesforceClient, job_id: str) -> None:
    """Abort a job that is still running, so it stops using the org's allocation."""
    try:
        client.bulk_query_abort(job_id=job_id)
    except (SalesforceRejectedError, SalesforceTransientError) as exc:
        # It may have ended meanwhile; a job that ran on is not worth a failure.
        logger.warning("Bulk query job not aborted job=%s error=%s", job_id, exc.code)


def _await(
    *, client: SalesforceClient, job_id: str, before_poll: Callable[[], None]
) -> tuple[str, int | None]:
    """Poll a job with growing waits until it ends; return its last state and
    the number of records it says it found, if it says.

    "TimedOut" when it has not ended by SALESFORCE_BULK_MAX_WAIT_SECONDS.
    `before_poll` may stop the wait by raising (the run's API budget spent);
    the job is then aborted, so it stops using the org's allocation.
    """
    wait = _setting("SALESFORCE_BULK_POLL_SECONDS", DEFAULT_POLL_SECONDS)
    deadline = time.monotonic() + _setting(
        "SALESFORCE_BULK_MAX_WAIT_SECONDS", DEFAULT_MAX_WAIT_SECONDS
    )
    while True:
        try:
            before_poll()
        except Exception:
            _abort(client=client, job_id=job_id)
            raise
        job = client.bulk_query_state(job_id=job_id)
        state = job["state"]
        if state in ("JobComplete", "Failed", "Aborted"):
            processed = job.get("numberRecordsProcessed")
            is_count = isinstance(processed, int) and not isinstance(processed, bool)
            return state, processed if is_count else None
        if time.monotonic() + wait > deadline:
            return "TimedOut", None
        time.sleep(wait)
        wait = min(wait * 2, 30.0) if wait else 0


def _results(
    *,
    client: SalesforceClient,
    candidate: BulkCandidate,
    job_id: str,
    processed: int | None = None,
) -> Iterator[list[Record]]:
    """Stream the job's CSV pages, checking each one's declared row count,
    and all of them together against the records the job found.

    A read that ends short, or that goes round in circles, raises rather
    than ending: what it did not return would be taken as deleted.
    """
    max_records = _setting("SALESFORCE_BULK_MAX_RECORDS", DEFAULT_MAX_RECORDS)
    convert = _converter(candidate)
    columns = bulk_columns(candidate.schema, candidate.fields)
    object_name = candidate.schema.name
    locator: str | None = None
    locators: set[str] = set()
    total = 0
    while True:
        page = client.bulk_query_results(
            job_id=job_id, max_records=max_records, locator=locator
        )
        pages = _rows(page.lines, columns=columns, object_name=candidate.schema.name)
        header = next(pages, None) or []
        rows = 0
        batch: list[Record] = []
        for values in pages:
            rows += 1
            batch.append(convert(header, values))
            if len(batch) == PAGE:
                yield batch
                batch = []
        if page.records is not None and rows != page.records:
            # https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm
            raise BulkCountMismatch(
                f"A Bulk result page of {candidate.schema.name} held {rows:,} "
                f"rows where Salesforce declared {page.records:,}; the read "
                "stopped so nothing is taken as deleted.",
                code="BULK_COUNT_MISMATCH",
            )
        if batch:
            yield batch
        total += rows
        if page.next_locator is None:
            break
        if page.next_locator in locators:
            raise BulkResultsMalformed(
                f"The Bulk results of {object_name} led back to a page already "
                "read; the read stopped so nothing is taken as deleted.",
                code="BULK_LOCATOR_LOOP",
            )
        locators.add(page.next_locator)
        locator = page.next_locator
    if processed is not None and total != processed:
        # https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_one_job.htm
        raise BulkCountMismatch(
            f"The Bulk results of {object_name} held {total:,} rows where the "
            f"job found {processed:,}; the read stopped so nothing is taken as "
            "deleted.",
            code="BULK_COUNT_MISMATCH",
        )


def _rows(
    lines: Iterator[str], *, columns: list[str], object_name: str
) -> Iterator[list[str]]:
    """Yield a result page's header, then its rows, each checked against it.

    Anything else than the CSV of the selected columns stops the object's
    read with an error of its own, rather than the whole run with a crash.
    """
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is None:
            return
        if sorted(name.lower() for name in header) != sorted(
            name.lower() for name in columns
        ):
            raise BulkResultsMalformed(
                f"A Bulk result page of {object_name} has the columns "
                f"{', '.join(header)[:500]} where {', '.join(columns)[:500]} were "
                "selected; the read stopped so nothing is taken as deleted."
            )
        yield header
        for values in reader:
            if len(values) != len(header):
                raise BulkResultsMalformed(
                    f"A Bulk result row of {object_name} on line "
                    f"{reader.line_num:,} has {len(values)} cells for "
                    f"{len(header)} columns; the read stopped so nothing is "
                    "taken as deleted."
                )
            yield values
    except csv.Error as exc:
        raise BulkResultsMalformed(
            f"A Bulk result page of {object_name} is not valid CSV on line "
            f"{reader.line_num:,} ({exc}); the read stopped so nothing is taken "
            "as deleted."
        ) from exc


def _converter(candidate: BulkCandidate):
    """Return a function making a REST-shaped record of one CSV row."""
    schema = candidate.schema
    compounds = {
        name: _components(schema, name)
        for name in candidate.fields
        if schema.type_of(name) in COMPOUND_TYPES
    }
    mapped = set(candidate.fields)
    # Each column's conversion, chosen once from the header: a result page
    # holds up to millions of cells.
    columns: list[tuple[str, Callable[[str], Any]]] = []

    def convert(header: list[str], values: list[str]) -> Record:
        if not columns:
            columns.extend((name, _cell(schema.type_of(name))) for name in header)
        record = {
            name: cell(value)
            for (name, cell), value in zip(columns, values, strict=True)
        }
        for compound, parts in compounds.items():
            nested = {
                _part_key(compound, part): (
                    record.get(part) if part in mapped else record.pop(part, None)
                )
                for part in parts
            }
            if all(value is None for value in nested.values()):
                record[compound] = None
            else:
                record[compound] = dict(sorted(nested.items()))
        return record

    return convert


_BOOLEANS = {"true": True, "false": False}
_NUMBERS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "double": float,
    "currency": float,
    "percent": float,
}


def _cell(field_type: str) -> Callable[[str], Any]:
    """Return how to read a CSV cell of a type as REST's JSON would have it.

    Bulk writes null as an empty cell, booleans as true/false and
    datetimes in UTC with a Z; REST writes `...+0000`. A cell that is not
    of its type stays text: the record's conversion then leaves that value
    empty and reports it, as for a REST value.
    """
    if field_type == "boolean":
        return lambda text: None if text == "" else _BOOLEANS.get(text, text)
    if field_type in _NUMBERS:
        number = _NUMBERS[field_type]

        def numeric(text: str) -> Any:
            if text == "":
                return None
            try:
                return number(text)
            except ValueError:
                return text

        return numeric
    if field_type == "datetime":

        def stamp(text: str) -> Any:
            if text == "":
                return None
            return text.removesuffix("Z") + "+0000" if text.endswith("Z") else text

        return stamp
    return lambda text: text or None
