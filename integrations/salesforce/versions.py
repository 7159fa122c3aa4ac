"""The one Salesforce API version Trig speaks, and the oldest it may be.

Salesforce retires API versions on a schedule: 21.0 to 30.0 answer 410 Gone
since Summer '25, and 31.0 to 40.0 are deprecated (their answers carry a
`Warning` header) until they retire in Summer '28. Every request names
`settings.SALESFORCE_API_VERSION`; OLDEST_SUPPORTED_VERSION is raised as
Salesforce announces retirements.
https://help.salesforce.com/s/articleView?id=000381744&type=1
"""

from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core import checks

OLDEST_SUPPORTED_VERSION = Decimal("41.0")


def api_version_problem(version: str) -> str:
    """Say what is wrong with a version to pin, or "" when nothing is."""
    try:
        number = Decimal(version)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number % 1:
        return f'"{version}" is not an API version such as "62.0".'
    if number < OLDEST_SUPPORTED_VERSION:
        return (
            f"API version {version} is retired or deprecated by Salesforce; pin "
            f"{OLDEST_SUPPORTED_VERSION} or newer."
        )
    return ""


def check_api_version(**kwargs) -> list[checks.CheckMessage]:
    """Refuse to start with a pinned version Salesforce retires."""
    problem = api_version_problem(settings.SALESFORCE_API_VERSION)
    if not problem:
        return []
    return [checks.Error(f"SALESFORCE_API_VERSION: {problem}", id="integrations.E001")]
