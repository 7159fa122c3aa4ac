"""Faults the offline org can be told to show, as `org.faults`.

Each switch makes the org answer the way Salesforce answers when something
goes wrong, for as many requests as asked, then go back to normal:

    org.faults.outage(status=503, times=2)       # HTML error page, any path
    org.faults.fail_next(                        # any answer, on chosen paths
        path_contains="/jobs/query/",
        status=400,
        error_code="TXN_SECURITY_METERING_ERROR",
        message="We can't complete the action because ...",
    )
    org.faults.limit_concurrency(times=3)        # 403 REQUEST_LIMIT_EXCEEDED
    org.faults.lock_rows(path_contains="/sobjects/Contact/")  # UNABLE_TO_LOCK_ROW

    org.faults.expire_sessions(after_calls=5)    # then every token answers 401
    org.faults.revoke_grants(after_calls=5)      # ... and refreshing, invalid_grant
    org.faults.spend_daily_limit(after_calls=5)  # then 403 TotalRequests Limit

    org.faults.short_pages(records=3, times=1)   # fewer rows than asked, not done
    org.faults.time_out_queries(wider_than=timedelta(days=7))  # QUERY_TIMEOUT
    org.faults.fail_bulk_jobs(times=1)           # the next Bulk query job fails

    org.faults.clear()                           # everything back to normal

Request faults (`fail_next` and the three after it) match on a substring of
the path (`path_contains`, "" for any) and optionally a method; `after`
lets that many matching requests through first; the first matching switch
wins. A faulted request is not counted against the daily allocation. A
subrequest of a composite request meets the switches that answer a JSON
error and carries that error in its own answer; error pages come from the
proxies in front of the org, which see only the composite request itself.
`after_calls` counts the API calls the org answers from the moment the switch
is set: with `after_calls=5`, five more calls succeed and the sixth meets the
fault. A URI too long for Salesforce (414) needs no switch: send one.
Per-record write failures stay with `org.writes.fail()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from integrations.salesforce import soql
from integrations.salesforce.emulator.errors import ApiError
from integrations.salesforce.emulator.query import QueryPlan

# https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm
CONCURRENT_REQUESTS_MESSAGE = (
    "ConcurrentRequests (Concurrent API Requests) Limit exceeded."
)
DAILY_LIMIT_MESSAGE = "TotalRequests Limit exceeded."
UNABLE_TO_LOCK_ROW_MESSAGE = "unable to obtain exclusive access to this record"
QUERY_TIMEOUT_MESSAGE = "Your query request was running for too long."
BULK_FAILURE_MESSAGE = (
    "InternalServerError : Retried more than 15 times. Apply a filter "
    "criteria and try again."
)

# Outage pages are served by the proxies in front of the org, not by the API,
# hence HTML. The wording is ours.
_OUTAGE_PAGES = {
    500: (
        "<!DOCTYPE html><html><head><title>Internal Server Error</title></head>"
        "<body><h1>An internal server error has occurred</h1><p>An error has "
        "occurred while processing your request. Please try again later.</p>"
        "</body></html>"
    ),
    503: (
        "<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
        "<body><h1>Service Unavailable</h1><p>The server is temporarily unable "
        "to service your request due to maintenance downtime or capacity "
        "problems. Please try again later.</p></body></html>"
    ),
}


@dataclass(frozen=True)
class Failure:
    """How to answer a faulted request: a JSON error list or an HTML page."""

    status: int
    error: ApiError | None = None
    page: str | None = None


@dataclass
class _RequestFault:
    path_contains: str
    method: str | None
    failure: Failure
    remaining: int
    skip: int

    def matches(self, method: str, path: str) -> bool:
        return self.path_contains in path and self.method in {None, method.upper()}


@dataclass
class _Trigger:
    after_calls: int
    action: Callable[[], None]


@dataclass
class _Timeout:
    wider_than: timedelta
    sobject: str | None
    remaining: int | None


class Faults:
    """The faults switched on, kept under the org's lock."""

    def __init__(
        self,
        *,
        lock: threading.RLock,
        expire_access_tokens: Callable[[], None],
        revoke_grants: Callable[[], None],
        spend_daily_limit: Callable[[], None],
    ) -> None:
        self.lock = lock
        self._expire_access_tokens = expire_access_tokens
        self._revoke_grants = revoke_grants
        self._spend_daily_limit = spend_daily_limit
        # Salesforce's wording is not stable; a switch can change it.
        self.daily_limit_message = DAILY_LIMIT_MESSAGE
        self._requests: list[_RequestFault] = []
        self._triggers: list[_Trigger] = []
        self._calls = 0
        self._short_pages: list[list[int]] = []
        self._timeouts: list[_Timeout] = []
        self._bulk_failures: list[list[Any]] = []

    # ------------------------------------------------------------ Switches

    def fail_next(
        self,
        *,
        status: int = 503,
        error_code: str | None = None,
        message: str | None = None,
        path_contains: str = "",
        method: str | None = None,
        times: int = 1,
        after: int = 0,
    ) -> None:
        """Answer the next `times` matching requests with `status`.

        With `error_code`, the body is Salesforce's JSON error list;
        without, an outage's HTML page.
        """
        if error_code is None:
            page = _OUTAGE_PAGES.get(status, _OUTAGE_PAGES[503])
            failure = Failure(status=status, page=page)
        else:
            text = message or error_code.replace("_", " ").capitalize()
            failure = Failure(status=status, error=ApiError(status, error_code, text))
        with self.lock:
            self._requests.append(
                _RequestFault(
                    path_contains=path_contains,
                    method=method.upper() if method else None,
                    failure=failure,
                    remaining=times,
                    skip=after,
                )
            )

    def outage(
        self, *, status: int = 503, times: int = 1, path_contains: str = ""
    ) -> None:
        """Answer with an HTML error page, as during an outage (500 or 503)."""
        self.fail_next(status=status, times=times, path_contains=path_contains)

    def limit_concurrency(
        self, *, times: int = 1, path_contains: str = "", message: str | None = None
    ) -> None:
        """Refuse requests as when too many long requests run at once."""
        self.fail_next(
            status=403,
            error_code="REQUEST_LIMIT_EXCEEDED",
            message=message or CONCURRENT_REQUESTS_MESSAGE,
            times=times,
            path_contains=path_contains,
        )

    def lock_rows(self, *, times: int = 1, path_contains: str = "") -> None:
        """Refuse requests as when the records they touch are locked."""
        self.fail_next(
            status=400,
            error_code="UNABLE_TO_LOCK_ROW",
            message=UNABLE_TO_LOCK_ROW_MESSAGE,
            times=times,
            path_contains=path_contains,
        )

    def expire_sessions(self, *, after_calls: int = 0) -> None:
        """End every session after that many more API calls."""
        self._after(after_calls, self._expire_access_tokens)

    def revoke_grants(self, *, after_calls: int = 0) -> None:
        """Revoke every grant after that many more API calls."""
        self._after(after_calls, self._revoke_grants)

    def spend_daily_limit(
        self, *, after_calls: int = 0, message: str | None = None
    ) -> None:
        """Use up the daily allocation after that many more API calls.

        The refusals that follow carry `message`, if given.
        """
        with self.lock:
            self.daily_limit_message = message or DAILY_LIMIT_MESSAGE
        self._after(after_calls, self._spend_daily_limit)

    def short_pages(self, *, records: int, times: int = 1) -> None:
        """Cut the next `times` pages to `records` rows while more remain.

        Applies to query pages (`done` stays false) and Bulk results pages
        (`Sforce-Locator` is not null), as Salesforce may cut either.
        """
        if records < 1:
            raise ValueError("A short page still holds a record")
        with self.lock:
            self._short_pages.append([records, times])

    def time_out_queries(
        self,
        *,
        wider_than: timedelta,
        sobject: str | None = None,
        times: int | None = None,
    ) -> None:
        """Answer QUERY_TIMEOUT for queries over a date window too wide.

        The window is read from the WHERE clause's bounds on date and
        datetime fields; an open start is infinitely wide, an open end stops
        at the clock. Queries without such bounds run as usual, so a full
        read still works while a too-wide incremental one fails until it is
        narrowed. Bulk query jobs over too wide a window end Failed.
        """
        with self.lock:
            self._timeouts.append(
                _Timeout(wider_than=wider_than, sobject=sobject, remaining=times)
            )

    def fail_bulk_jobs(self, *, times: int = 1, message: str | None = None) -> None:
        """Make the next `times` Bulk query jobs end Failed."""
        with self.lock:
            self._bulk_failures.append([message or BULK_FAILURE_MESSAGE, times])

    def clear(self) -> None:
        with self.lock:
            self._requests.clear()
            self._triggers.clear()
            self._short_pages.clear()
            self._timeouts.clear()
            self._bulk_failures.clear()
            self.daily_limit_message = DAILY_LIMIT_MESSAGE

    # ------------------------------------------------------------ Hooks

    def take_request_fault(
        self, *, method: str, path: str, is_subrequest: bool = False
    ) -> Failure | None:
        """Return the failure the first matching switch gives, if any."""
        with self.lock:
            for fault in self._requests:
                if not fault.matches(method, path):
                    continue
                if is_subrequest and fault.failure.error is None:
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._requests.remove(fault)
                return fault.failure
            return None

    def before_api_call(self) -> None:
        """Fire the switches whose count of calls has run out."""
        with self.lock:
            for trigger in list(self._triggers):
                if self._calls >= trigger.after_calls:
                    self._triggers.remove(trigger)
                    trigger.action()

    def count_api_call(self) -> None:
        with self.lock:
            self._calls += 1

    def take_short_page(self, *, wanted: int, remaining: int) -> int:
        """Return how many rows the next page holds: `wanted` or fewer."""
        with self.lock:
            if not self._short_pages or remaining <= self._short_pages[0][0]:
                return wanted
            fault = self._short_pages[0]
            fault[1] -= 1
            if fault[1] <= 0:
                self._short_pages.pop(0)
            return min(wanted, fault[0])

    def has_short_page(self, *, rows: int) -> bool:
        """Tell whether a result of `rows` rows would meet a short page."""
        with self.lock:
            return bool(self._short_pages) and rows > self._short_pages[0][0]

    def check_query(self, plan: QueryPlan, *, now: datetime) -> None:
        """Raise QUERY_TIMEOUT if a switch says the query runs too long."""
        if self.times_out(plan, now=now):
            raise ApiError(400, "QUERY_TIMEOUT", QUERY_TIMEOUT_MESSAGE)

    def times_out(self, plan: QueryPlan, *, now: datetime) -> bool:
        with self.lock:
            for timeout in self._timeouts:
                sobject = timeout.sobject
                if sobject and sobject.lower() != plan.sobject.name.lower():
                    continue
                width = _window_width(plan, now=now)
                if width is None or width <= timeout.wider_than:
                    continue
                if timeout.remaining is not None:
                    timeout.remaining -= 1
                    if timeout.remaining <= 0:
                        self._timeouts.remove(timeout)
                return True
            return False

    def take_bulk_failure(self) -> str | None:
        """Return the error message of a Bulk job meant to fail, if any."""
        with self.lock:
            if not self._bulk_failures:
                return None
            fault = self._bulk_failures[0]
            fault[1] -= 1
            if fault[1] <= 0:
                self._bulk_failures.pop(0)
            return fault[0]

    def _after(self, calls: int, action: Callable[[], None]) -> None:
        with self.lock:
            self._triggers.append(_Trigger(self._calls + calls, action))


def _window_width(plan: QueryPlan, *, now: datetime) -> timedelta | None:
    """Measure the date window a query's WHERE clause spans, if it has one."""
    today = now.astimezone(UTC).date()
    starts: list[datetime] = []
    ends: list[datetime] = []
    for comparison, field_describe in plan.filtered_fields():
        if field_describe["type"] not in {"date", "datetime"}:
            continue
        bounds = _bounds(comparison.value, today=today)
        if bounds is None:
            continue
        low, high = bounds
        if comparison.operator in {">", ">="}:
            starts.append(low)
        elif comparison.operator in {"<", "<="}:
            ends.append(high)
        elif comparison.operator == "=":
            starts.append(low)
            ends.append(high)
    if not starts and not ends:
        return None
    if not starts:
        return timedelta.max
    return (min(ends) if ends else now) - max(starts)


def _bounds(value: Any, *, today: date) -> tuple[datetime, datetime] | None:
    if isinstance(value, soql.RelativeDate):
        first, after_last = value.bounds(today=today)
        return _midnight(first), _midnight(after_last)
    if isinstance(value, datetime):
        return value, value
    if isinstance(value, date):
        return _midnight(value), _midnight(value + timedelta(days=1))
    return None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)
