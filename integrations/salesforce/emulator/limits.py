"""The daily API request allocation and the /limits resource.

https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

# Developer Edition's daily allocation.
DEVELOPER_EDITION_DAILY_API_REQUESTS = 15_000

# What /limits reports besides the API requests, at Developer Edition sizes;
# the offline org does not consume these.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm
_FIXED_LIMITS = {
    "ConcurrentAsyncGetReportInstances": 200,
    "ConcurrentSyncReportRuns": 20,
    "DailyAsyncApexExecutions": 250_000,
    "DailyBulkApiBatches": 15_000,
    "DailyBulkV2QueryFileStorageMB": 976_562,
    "DailyBulkV2QueryJobs": 10_000,
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


class ApiUsage:
    """Count API calls against the daily allocation.

    Salesforce counts over a rolling 24 hours; here the count starts again
    when the clock's UTC date changes, which is enough to test against.
    """

    def __init__(self, *, maximum: int, clock: Callable[[], datetime]) -> None:
        self.maximum = maximum
        self.clock = clock
        self.used = 0
        self._day: date = clock().date()

    def _roll(self) -> None:
        today = self.clock().date()
        if today != self._day:
            self._day = today
            self.used = 0

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
        return dict(sorted(body.items()))
