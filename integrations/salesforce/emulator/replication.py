"""getUpdated and getDeleted: which records of an object changed, or went, when.

Both take a window `start` to `end` in UTC, ignore its seconds, refuse a
window of less than a minute (or reversed) and one that starts too far back
with INVALID_REPLICATION_DATE, and answer `latestDateCovered`: where the next
window should start. getUpdated reads SystemModstamp; getDeleted reads the
delete log, which also reports `earliestDateAvailable`, moved forward when
the log is purged (`Store.purge_delete_log`).

https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getupdated.htm
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getdeleted.htm
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getdeleted.htm
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from integrations.salesforce.emulator.errors import ApiError
from integrations.salesforce.emulator.schema import (
    SObjectType,
    format_datetime,
    parse_datetime,
)
from integrations.salesforce.emulator.store import Store

UPDATED_LOOKBACK = timedelta(days=30)
DELETED_LOOKBACK = timedelta(days=15)
MAX_IDS = 600_000


def updated(
    store: Store,
    sobject_type: SObjectType,
    *,
    start: str | None,
    end: str | None,
    now: datetime,
    lag: timedelta,
) -> dict[str, Any]:
    """Answer getUpdated: Ids of live records whose SystemModstamp is in the window."""
    window_start, covered = _window(
        sobject_type, start, end, now=now, lag=lag, lookback=UPDATED_LOOKBACK
    )
    found = [
        record["Id"]
        for record in store.rows(sobject_type.name)
        if not record.get("IsDeleted")
        and window_start <= record["SystemModstamp"] < covered
    ]
    _check_size(found)
    return {"ids": found, "latestDateCovered": format_datetime(covered)}


def deleted(
    store: Store,
    sobject_type: SObjectType,
    *,
    start: str | None,
    end: str | None,
    now: datetime,
    lag: timedelta,
) -> dict[str, Any]:
    """Answer getDeleted from the delete log."""
    window_start, covered = _window(
        sobject_type, start, end, now=now, lag=lag, lookback=DELETED_LOOKBACK
    )
    found = sorted(
        (deleted_at, record_id)
        for record_id, (name, deleted_at) in store.delete_log.items()
        if name == sobject_type.name and window_start <= deleted_at < covered
    )
    _check_size(found)
    # Without a purge, the log reaches back as far as the resource looks.
    earliest = store.delete_log_purged_at.get(
        sobject_type.name, _midnight(now) - DELETED_LOOKBACK
    )
    return {
        "deletedRecords": [
            {"id": record_id, "deletedDate": format_datetime(deleted_at)}
            for deleted_at, record_id in found
        ],
        "earliestDateAvailable": format_datetime(earliest),
        "latestDateCovered": format_datetime(covered),
    }


def _window(
    sobject_type: SObjectType,
    start_text: str | None,
    end_text: str | None,
    *,
    now: datetime,
    lag: timedelta,
    lookback: timedelta,
) -> tuple[datetime, datetime]:
    """Return (start, latest date covered) for a requested window."""
    if not sobject_type.describe.get("replicateable", True):
        # The message as a WordPress plugin logged it; the code is our guess.
        raise ApiError(
            400, "INVALID_TYPE", f"sObject type {sobject_type.name} is not replicable"
        )
    start = _minute(_parse(start_text, "start"))
    end = _minute(_parse(end_text, "end"))
    # Our wording below: Salesforce's is not recorded anywhere we could check.
    if end <= start:
        raise ApiError(
            400,
            "INVALID_REPLICATION_DATE",
            "start must precede end by at least one minute (seconds are ignored)",
        )
    if start < _midnight(now) - lookback:
        raise ApiError(
            400,
            "INVALID_REPLICATION_DATE",
            f"start must be within {lookback.days} days of today",
        )
    # Changes still being committed are left for the next window.
    covered = min(end, _minute(now) - lag)
    return start, max(covered, start)


def _parse(text: str | None, name: str) -> datetime:
    if not text:
        raise ApiError(400, "MISSING_ARGUMENT", f"Missing parameter: {name}")
    try:
        # A `+` in the offset arrives as a space when the client did not
        # encode it.
        return parse_datetime(text.strip().replace(" ", "+"))
    except ValueError:
        raise ApiError(
            400, "INVALID_REPLICATION_DATE", f"{name} is not a valid dateTime: {text}"
        ) from None


def _check_size(found: list[Any]) -> None:
    if len(found) > MAX_IDS:
        raise ApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"More than {MAX_IDS} Ids: choose start and end dates closer together",
        )


def _minute(stamp: datetime) -> datetime:
    return stamp.astimezone(UTC).replace(second=0, microsecond=0)


def _midnight(stamp: datetime) -> datetime:
    return datetime.combine(stamp.astimezone(UTC).date(), time(), tzinfo=UTC)
