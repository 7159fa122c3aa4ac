"""Bulk API 2.0 query jobs in the offline org.

A job's query is checked and run when the job is created, so a query Bulk
cannot take is refused at once, with the records as they were then. The
job then answers UploadComplete, InProgress for `polls_to_complete` status
reads, and JobComplete. Results come as CSV pages of at most `maxRecords`
rows, each with a header row, linked by the `Sforce-Locator` header.

https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/queries.htm
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm

Where Salesforce's wording for a refusal is not recorded anywhere we could
check, the message below says so.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from integrations.salesforce.emulator import ids
from integrations.salesforce.emulator.errors import ApiError, not_found
from integrations.salesforce.emulator.faults import (
    QUERY_TIMEOUT_MESSAGE,
    Faults,
)
from integrations.salesforce.emulator.limits import ApiUsage
from integrations.salesforce.emulator.query import QueryEngine, QueryPlan
from integrations.salesforce.emulator.schema import COMPOUND_TYPES, format_datetime

# Query jobs exist from API version 47.0.
OLDEST_BULK_VERSION = 47
JOB_KEY_PREFIX = "750"
# Salesforce does not document the page size it uses without maxRecords.
DEFAULT_MAX_RECORDS = 50_000

DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
OPERATIONS = ("query", "queryAll")

# Refusals quoted by connectors that met them.
COMPOUND_MESSAGE = "Selecting compound data not supported in Bulk Query"
SUBQUERY_MESSAGE = (
    "Aggregate Relationships not supported in Bulk V2 Query with CSV content type."
)
# Our wording: Salesforce's for these is not recorded anywhere we could check.
AGGREGATE_MESSAGE = "Aggregate functions are not supported in Bulk V2 Query."
OFFSET_MESSAGE = "OFFSET is not supported in Bulk V2 Query."

_SELECT_SUBQUERY = re.compile(r"\(\s*select\b", re.IGNORECASE)
_FROM = re.compile(r"\bfrom\b", re.IGNORECASE)


@dataclass
class QueryJob:
    id: str
    operation: str
    sobject: str
    created_by_id: str
    created_at: datetime
    api_version: str
    column_delimiter: str
    line_ending: str
    header: list[str]
    # One tuple of raw values per record, in column order.
    rows: list[tuple[Any, ...]]
    polls_left: int
    state: str = "UploadComplete"
    modified_at: datetime | None = None
    error_message: str | None = None
    # Offsets of the pages already counted against the daily storage.
    pages_counted: set[int] = field(default_factory=set)

    @property
    def is_done(self) -> bool:
        return self.state in {"JobComplete", "Failed", "Aborted"}

    def info(self, *, full: bool) -> dict[str, Any]:
        """Return the job as the create (`full=False`) or status answer shows it."""
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.sobject,
            "createdById": self.created_by_id,
            "createdDate": format_datetime(self.created_at),
            "systemModstamp": format_datetime(self.modified_at or self.created_at),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
        }
        if full:
            complete = self.state == "JobComplete"
            body |= {
                "jobType": "V2Query",
                "numberRecordsProcessed": len(self.rows) if complete else 0,
                "retries": 0,
                "totalProcessingTime": 0,
                "isPkChunkingSupported": True,
            }
            if self.error_message:
                body["errorMessage"] = self.error_message
        return body


@dataclass(frozen=True)
class ResultsPage:
    body: str
    records: int
    # The locator of the next page, or None after the last.
    next_locator: str | None


class BulkQueryJobs:
    """Every Bulk query job of the org; hold the org's lock when calling."""

    def __init__(
        self,
        *,
        lock: threading.RLock,
        usage: ApiUsage,
        faults: Faults,
        clock: Callable[[], datetime],
        polls_to_complete: int = 0,
    ) -> None:
        self.lock = lock
        self.usage = usage
        self.faults = faults
        self.clock = clock
        # How many status reads answer InProgress before JobComplete.
        self.polls_to_complete = polls_to_complete
        self.default_max_records = DEFAULT_MAX_RECORDS
        self._jobs: dict[str, QueryJob] = {}
        self._sequence = 0

    def get(self, job_id: str) -> QueryJob:
        job = self._jobs.get(ids.to_18(job_id) or "")
        if job is None:
            raise not_found()
        return job

    def all(self) -> list[QueryJob]:
        return list(self._jobs.values())

    # ------------------------------------------------------------ Resources

    def create(
        self, *, engine: QueryEngine, user_id: str, version: str, body: bytes
    ) -> QueryJob:
        """Check a job request and its query, and start the job.

        https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_create_job.htm
        """
        request = _json_object(body)
        operation = request.get("operation")
        if operation not in OPERATIONS:
            raise ApiError(
                400,
                "INVALIDJOB",
                f"Invalid operation: {operation}; expected query or queryAll",
            )
        text = request.get("query")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "INVALIDJOB", "A query job needs a query")
        if request.get("contentType", "CSV") != "CSV":
            raise ApiError(400, "INVALIDJOB", "Query results come only as CSV")
        delimiter = request.get("columnDelimiter", "COMMA")
        line_ending = request.get("lineEnding", "LF")
        if delimiter not in DELIMITERS or line_ending not in LINE_ENDINGS:
            raise ApiError(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
        refusal = self.usage.bulk_refusal()
        if refusal is not None:
            raise ApiError(400, "LIMIT_EXCEEDED", refusal)

        plan = _bulk_plan(engine, text)
        now = self.clock()
        self._sequence += 1
        job = QueryJob(
            id=ids.make_id(JOB_KEY_PREFIX, self._sequence),
            operation=operation,
            sobject=plan.sobject.name,
            created_by_id=user_id,
            created_at=now,
            api_version=version,
            column_delimiter=delimiter,
            line_ending=line_ending,
            header=[name for name, _ in plan.columns],
            rows=[],
            polls_left=self.polls_to_complete,
        )
        self.usage.count_bulk_job()
        self._jobs[job.id] = job

        failure = self.faults.take_bulk_failure()
        if failure is None and self.faults.times_out(plan, now=now):
            failure = QUERY_TIMEOUT_MESSAGE
        if failure is not None:
            job.state, job.error_message, job.polls_left = "Failed", failure, 0
            return job
        records = engine.execute(plan, include_deleted=operation == "queryAll")
        paths = [path for _, path in plan.columns]
        job.rows = [
            tuple(engine.raw_value(record, path) for path in paths)
            for record in records
        ]
        return job

    def poll(self, job_id: str) -> QueryJob:
        """Read a job's state, moving it on as a status read does."""
        job = self.get(job_id)
        if job.is_done:
            return job
        if job.polls_left > 0:
            job.polls_left -= 1
            job.state = "InProgress"
        else:
            job.state = "JobComplete"
        job.modified_at = self.clock()
        return job

    def abort(self, job_id: str, *, body: bytes) -> QueryJob:
        """https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_abort_job.htm"""
        job = self.get(job_id)
        if _json_object(body).get("state") != "Aborted":
            raise ApiError(400, "INVALIDJOBSTATE", "A query job can only be aborted")
        if job.is_done:
            raise ApiError(
                400,
                "INVALIDJOBSTATE",
                f"Job {job.id} is {job.state} and can no longer be aborted",
            )
        job.state = "Aborted"
        job.modified_at = self.clock()
        return job

    def delete(self, job_id: str) -> None:
        """https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_delete_job.htm"""
        job = self.get(job_id)
        if job.state == "InProgress":
            raise ApiError(
                400,
                "INVALIDJOBSTATE",
                f"Job {job.id} is InProgress: abort it before deleting it",
            )
        del self._jobs[job.id]

    def results(
        self, job_id: str, *, max_records: str | None, locator: str | None
    ) -> ResultsPage:
        """Return one CSV page of a finished job's records."""
        job = self.get(job_id)
        if job.state != "JobComplete":
            raise ApiError(
                400,
                "INVALIDJOBSTATE",
                f"Job {job.id} is {job.state}: results come once it is JobComplete",
            )
        size = self.default_max_records
        if max_records:
            if not max_records.isdigit() or int(max_records) < 1:
                raise ApiError(400, "INVALIDJOB", f"Invalid maxRecords: {max_records}")
            size = int(max_records)
        offset = _offset(locator, total=len(job.rows))

        remaining = len(job.rows) - offset
        size = self.faults.take_short_page(wanted=size, remaining=remaining)
        rows = job.rows[offset : offset + size]
        end = offset + len(rows)
        body = _csv(job, rows)
        if offset not in job.pages_counted:
            job.pages_counted.add(offset)
            self.usage.count_bulk_results(len(body.encode()))
        return ResultsPage(
            body=body,
            records=len(rows),
            next_locator=_locator(end) if end < len(job.rows) else None,
        )


# ---------------------------------------------------------------- Queries


def _bulk_plan(engine: QueryEngine, text: str) -> QueryPlan:
    """Bind a query, refusing what Bulk API 2.0 does not take.

    Bulk refuses subqueries, aggregates, OFFSET and compound fields; ORDER
    BY and LIMIT run, though they make large jobs slower.
    https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/queries.htm
    """
    # The grammar has no subqueries, so look for one before parsing.
    select_list = _FROM.split(text, maxsplit=1)[0]
    if _SELECT_SUBQUERY.search(select_list):
        raise ApiError(400, "API_ERROR", SUBQUERY_MESSAGE)
    plan = engine.plan(text)
    if plan.query.is_count:
        raise ApiError(400, "API_ERROR", AGGREGATE_MESSAGE)
    if plan.query.offset is not None:
        raise ApiError(400, "API_ERROR", OFFSET_MESSAGE)
    if any(path.final["type"] in COMPOUND_TYPES for _, path in plan.columns):
        raise ApiError(400, "API_ERROR", COMPOUND_MESSAGE)
    return plan


# ---------------------------------------------------------------- CSV


def _csv(job: QueryJob, rows: list[tuple[Any, ...]]) -> str:
    """Write rows as Bulk does: every field quoted, datetimes in UTC with Z."""
    out = io.StringIO()
    writer = csv.writer(
        out,
        delimiter=DELIMITERS[job.column_delimiter],
        lineterminator=LINE_ENDINGS[job.line_ending],
        quoting=csv.QUOTE_ALL,
    )
    writer.writerow(job.header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, datetime):
        text = value.astimezone(UTC).isoformat(timespec="milliseconds")
        return text.removesuffix("+00:00") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# Locators are opaque to clients; these encode the next row's offset.
def _locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator: str | None, *, total: int) -> int:
    if not locator:
        return 0
    try:
        padded = locator + "=" * (-len(locator) % 4)
        offset = int(base64.b64decode(padded, validate=True).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        offset = -1
    if not 0 < offset < total:
        raise ApiError(400, "INVALID_LOCATOR", f"Invalid locator: {locator}")
    return offset


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"{}")
    except ValueError as error:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Malformed JSON: {error}") from None
    if not isinstance(document, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
    return document
