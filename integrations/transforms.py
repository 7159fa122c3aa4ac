"""The named field-level transforms Trig representatives can pick.

A transform takes the value Salesforce gave and an optional argument typed by
staff, and returns the value to store. When it cannot handle a value it
raises TransformError: the sync then stores nothing for that value, counts
the failure on the run, and carries on.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import phonenumbers
import pycountry
from dateutil import parser as date_parser

from people.domains import InvalidWebsite, domain_from_website


class TransformError(ValueError):
    pass


@dataclass(frozen=True)
class Transform:
    label: str
    help: str
    apply: Callable[[Any, str], Any]
    # Checks the argument staff typed; raises TransformError if unusable.
    check: Callable[[str], None] = lambda argument: None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise TransformError("not a text value")
    return str(value)


def _trim(value: Any, argument: str) -> str:
    return _text(value).strip()


def _lower(value: Any, argument: str) -> str:
    return _text(value).lower()


def _title(value: Any, argument: str) -> str:
    return _text(value).title()


def _domain(value: Any, argument: str) -> str | None:
    try:
        return domain_from_website(_text(value))
    except InvalidWebsite as exc:
        raise TransformError(str(exc)) from exc


def _phone(value: Any, argument: str) -> str | None:
    text = _text(value).strip()
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, (argument or None) and argument.upper())
    except phonenumbers.NumberParseException as exc:
        if (
            exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE
            and not argument
        ):
            raise TransformError(
                "no country code; give the region of such numbers (GB, US, ...) "
                "as the transform's argument"
            ) from exc
        raise TransformError("not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise TransformError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _check_region(argument: str) -> None:
    if argument and argument.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise TransformError(
            f"{argument!r} is not a region code; use two letters such as GB or US."
        )


# Names people type that pycountry's fuzzy search does not know.
_COUNTRY_ALIASES = {
    "uk": "GB",
    "usa": "US",
    "u.s.a.": "US",
    "u.s.": "US",
    "england": "GB",
}


def _country(value: Any, argument: str) -> str | None:
    text = _text(value).strip()
    if not text:
        return None
    if text.lower() in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[text.lower()]
    found = (
        pycountry.countries.get(alpha_2=text.upper()) if len(text) == 2 else None
    ) or (pycountry.countries.get(alpha_3=text.upper()) if len(text) == 3 else None)
    if found is None:
        try:
            found = pycountry.countries.lookup(text)
        except LookupError:
            try:
                found = pycountry.countries.search_fuzzy(text)[0]
            except LookupError as exc:
                raise TransformError(f"{text!r} is not a country") from exc
    return found.alpha_2


def _parse_when(value: Any, argument: str) -> datetime:
    text = _text(value).strip()
    try:
        return date_parser.parse(text, dayfirst=argument.lower() == "dayfirst")
    except (ValueError, OverflowError) as exc:
        raise TransformError(f"{text!r} is not a date") from exc


def _date(value: Any, argument: str) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value.isoformat()[:10]
    return _parse_when(value, argument).date().isoformat()


def _datetime(value: Any, argument: str) -> str | None:
    if value in (None, ""):
        return None
    moment = value if isinstance(value, datetime) else _parse_when(value, argument)
    if moment.tzinfo is None:
        raise TransformError(f"{value!r} has no time zone")
    return moment.isoformat()


def _check_dayfirst(argument: str) -> None:
    if argument and argument.lower() != "dayfirst":
        raise TransformError("Leave empty, or write dayfirst for 03/04 = 3 April.")


_TRUE = {"true", "yes", "y", "1", "on", "t", "x"}
_FALSE = {"false", "no", "n", "0", "off", "f", ""}


def _boolean(value: Any, argument: str) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise TransformError(f"{value!r} is neither yes nor no")


def _no_constant(name: str) -> None:
    # NaN and Infinity are no JSON: PostgreSQL would refuse the record.
    raise TransformError(f"{name} is not a JSON value; map to a number or text.")


def _value_table(argument: str) -> dict[str, Any]:
    try:
        table = json.loads(argument, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise TransformError(
            'Write the map as JSON, e.g. {"Hot": "high", "Cold": "low"}.'
        ) from exc
    if not isinstance(table, dict):
        raise TransformError('Write the map as a JSON object, e.g. {"Hot": "high"}.')
    return table


def _value_map(value: Any, argument: str) -> Any:
    table = _value_table(argument)
    key = _text(value)
    if key in table:
        return table[key]
    if "*" in table:
        return table["*"]
    raise TransformError(f"{key!r} is not in the value map")


def _split(value: Any, argument: str) -> list[str]:
    if isinstance(value, list):
        return value
    # https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/field_types.htm#i1435616
    return [
        part.strip() for part in _text(value).split(argument or ";") if part.strip()
    ]


def _limit(argument: str) -> int:
    try:
        limit = int(argument)
    except ValueError as exc:
        raise TransformError("Give the number of characters to keep, e.g. 80.") from exc
    if limit < 1:
        raise TransformError("Keep at least one character.")
    return limit


def _truncate(value: Any, argument: str) -> str:
    return _text(value)[: _limit(argument)]


def _default(value: Any, argument: str) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()) or value == []:
        return argument
    return value


def _check_default(argument: str) -> None:
    if not argument:
        raise TransformError("Give the value to use when Salesforce has none.")


TRANSFORMS: dict[str, Transform] = {
    "trim": Transform("Trim", "Remove spaces at both ends.", _trim),
    "lower": Transform("Lower-case", "ACME@Example.COM → acme@example.com", _lower),
    "title": Transform("Title-case", "ada LOVELACE → Ada Lovelace", _title),
    "domain": Transform(
        "Domain from URL",
        "HTTP://WWW.Example.com/about → example.com; fails on what is not a URL.",
        _domain,
    ),
    "phone_e164": Transform(
        "Phone to E.164",
        "020 7946 0000 → +442079460000. Argument: the region for numbers "
        "without a country code (GB, US, ...).",
        _phone,
        _check_region,
    ),
    "country_iso2": Transform(
        "Country to ISO 3166 alpha-2",
        "United Kingdom, GBR or gb → GB; fails on what is not a country.",
        _country,
    ),
    "date": Transform(
        "Parse a date",
        "10 March 2024, 2024-03-10 or 03/10/2024 → 2024-03-10. Argument: "
        "dayfirst to read 03/04 as 3 April.",
        _date,
        _check_dayfirst,
    ),
    "datetime": Transform(
        "Parse a date and time",
        "2024-03-10T02:30:00.000+0000 → 2024-03-10T02:30:00+00:00; needs a time zone.",
        _datetime,
        _check_dayfirst,
    ),
    "boolean": Transform(
        "Boolean from text",
        "yes/no, true/false, 1/0, y/n, on/off → true or false.",
        _boolean,
    ),
    "value_map": Transform(
        "Value map",
        'Replace values by a table. Argument: JSON such as {"Hot": "high", '
        '"*": "other"}; "*" catches the rest, else unknown values fail.',
        _value_map,
        lambda argument: _value_table(argument) and None,
    ),
    "split": Transform(
        "Split multi-select",
        "a;b;c → [a, b, c]. Argument: the separator, ; if empty.",
        _split,
    ),
    "truncate": Transform(
        "Truncate",
        "Keep the first N characters. Argument: N.",
        _truncate,
        lambda argument: _limit(argument) and None,
    ),
    "default": Transform(
        "Default when empty",
        "Use the argument when Salesforce's value is empty.",
        _default,
        _check_default,
    ),
}

TRANSFORM_CHOICES = [("", "None")] + [(key, t.label) for key, t in TRANSFORMS.items()]


def transform_check(*, name: str, argument: str) -> None:
    TRANSFORMS[name].check(argument)


def transform_apply(*, name: str, argument: str, value: Any) -> Any:
    """Apply a named transform; raises TransformError on a value it cannot take."""
    try:
        return TRANSFORMS[name].apply(value, argument)
    except TransformError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        raise TransformError(f"cannot transform {type(value).__name__}: {exc}") from exc
