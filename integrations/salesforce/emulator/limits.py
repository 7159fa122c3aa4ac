"""The daily API request and Bulk query allocations, and the /limits resource.

https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

# Developer Edition's daily allocation.
DEVELOPER_EDITION_DAILY_API_REQUESTS = 15_000

# What /limits reports besides the API requests and Bulk query jobs, at
# Developer Edition sizes; the offline org does not consume these.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm
_FIXED_LIMITS = {
    "ConcurrentAsyncGetReportInstances": 200,
    "ConcurrentSyncReportRuns": 20,
    "DailyAsyncApexExecutions": 250_000,
    "DailyBulkApiBatches": 15_000,
    "DailyDurableGenericStreamingApiEvents": 10_000,
    "DailyDurableStreamingApiEvents": 10_000,
    "DailyGenericStreamingApiEvents": 10_000,
    "DailyStreamingApiEvents": 10_000,
    "DailyWorkflowEmails": 390,
    "DataStorageMB": 5,
    "DurableStreamingApiConcurrentClients": 20,
    "FileStorageMB": 20,
    "HourlyAsyncReportRuns": 1_200,
    "HourlyDashboardRefreshes": 200,
    "HourlyDashboardResults": 5_000,
    "HourlyDashboardStatuses": 999_999_999,
    "HourlyODataCallout": 10_000,
    "HourlySyncReportRuns": 500,
    "HourlyTimeBasedWorkflow": 50,
    "MassEmail": 10,
    "SingleEmail": 15,
    "StreamingApiConcurrentClients": 20,
}


# Bulk API 2.0 query allocations, per rolling 24 hours: jobs, and results
# stored (1 TB, which /limits gives in MB and the refusal in KB).
# https://developer.salesforce.com/docs/atlas.en-us.228.0.api_bulk_v2.meta/api_bulk_v2/bulk_api_2_limits.htm
DAILY_BULK_V2_QUERY_JOBS = 10_000
DAILY_BULK_V2_QUERY_STORAGE_KB = 1_000_000_000


class ApiUsage:
    """Count API calls against the daily allocation, and Bulk query jobs.

    Salesforce counts over a rolling 24 hours; here the count starts again
    when the clock's UTC date changes, which is enough to test against.
    """

    def __init__(self, *, maximum: int, clock: Callable[[], datetime]) -> None:
        self.maximum = maximum
        self.clock = clock
        self.used = 0
        self.bulk_jobs = 0
        self.bulk_storage_kb = 0
        self._day: date = clock().date()

    def _roll(self) -> None:
        today = self.clock().date()
        if today != self._day:
            self._day = today
            self.used = 0
            self.bulk_jobs = 0
            self.bulk_storage_kb = 0

    def bulk_refusal(self) -> str | None:
        """Say why no Bulk query job may start now, in Salesforce's words."""
        # The wording as connectors quote it; the figure in brackets is the
        # count the refused job would have made.
        self._roll()
        if self.bulk_jobs >= DAILY_BULK_V2_QUERY_JOBS:
            return (
                f"Max bulk v2 query jobs ({DAILY_BULK_V2_QUERY_JOBS}) per 24 hrs "
                f"has been reached ({self.bulk_jobs + 1})."
            )
        # In whole MB, as /limits shows it.
        if self.bulk_storage_kb // 1024 >= DAILY_BULK_V2_QUERY_STORAGE_KB // 1024:
            return (
                "Max bulk v2 query result size stored "
                f"({DAILY_BULK_V2_QUERY_STORAGE_KB}) kb per 24 hrs has been exceeded"
            )
        return None

    def count_bulk_job(self) -> None:
        self._roll()
        self.bulk_jobs += 1

    def count_bulk_results(self, size: int) -> None:
        """Add `size` bytes of Bulk query results to the day's storage."""
        self._roll()
        self.bulk_storage_kb += -(-size // 1024)

    def set_bulk_usage(
        self, *, jobs: int | None = None, storage_mb: int | None = None
    ) -> None:
        self._roll()
        if jobs is not None:
            self.bulk_jobs = jobs
        if storage_mb is not None:
            self.bulk_storage_kb = storage_mb * 1024

    def is_spent(self) -> bool:
        self._roll()
        return self.used >= self.maximum

    def count_call(self) -> None:
        self._roll()
        self.used += 1

    def set_used(self, used: int) -> None:
        self._roll()
        self.used = used

    def header(self) -> str:
        """The Sforce-Limit-Info value, e.g. `api-usage=18/15000`."""
        # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm
        return f"api-usage={self.used}/{self.maximum}"

    def limits(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            name: {"Max": maximum, "Remaining": maximum}
            for name, maximum in _FIXED_LIMITS.items()
        }
        body["DailyApiRequests"] = {
            "Max": self.maximum,
            "Remaining": max(self.maximum - self.used, 0),
        }
        body["DailyBulkV2QueryJobs"] = {
            "Max": DAILY_BULK_V2_QUERY_JOBS,
            "Remaining": max(DAILY_BULK_V2_QUERY_JOBS - self.bulk_jobs, 0),
        }
        storage_mb = DAILY_BULK_V2_QUERY_STORAGE_KB // 1024
        body["DailyBulkV2QueryFileStorageMB"] = {
            "Max": storage_mb,
            "Remaining": max(storage_mb - self.bulk_storage_kb // 1024, 0),
        }
        return dict(sorted(body.items()))
