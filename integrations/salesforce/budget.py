"""How a connection's daily API allocation is shared between syncs and writes.

Writes to Salesforce (Jobs' field updates) may spend at most
SALESFORCE_WRITE_SHARE_PERCENT of the org's daily allocation in any 24
hours, so they cannot starve syncs; syncs stop while what is left of the
allocation is no more than that share, so they cannot starve writes.
https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm
"""

from django.conf import settings


def write_share(*, maximum: int) -> int:
    """Return the calls writes may make in 24 hours out of `maximum`."""
    return maximum * settings.SALESFORCE_WRITE_SHARE_PERCENT // 100


def write_calls_left(*, usage: tuple[int, int], spent_by_writes: int) -> int:
    """Return how many more calls writes may make now.

    `usage` is the org's (used, max) as Salesforce last reported it;
    `spent_by_writes` counts the calls writes made in the last 24 hours.
    """
    used, maximum = usage
    left = min(write_share(maximum=maximum) - spent_by_writes, maximum - used)
    return max(left, 0)


def sync_may_continue(*, usage: tuple[int, int] | None) -> bool:
    """Tell whether a sync may make another call without eating the writes' share.

    The sync asks before each page and pauses when the answer is no.
    """
    if usage is None:
        return True
    used, maximum = usage
    return maximum - used > write_share(maximum=maximum)
