"""Fit a value to a Salesforce field as describe reports it, or say why not.

Values are checked here, before anything is sent, so that a value that
cannot fit is recorded with a clear reason and costs no API call.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_valid_date_formats.htm
"""

import math
import re
from datetime import UTC, date, datetime, time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.dateparse import parse_date, parse_datetime

from integrations.salesforce.names import id_suffix
from integrations.salesforce.schema import picklist_values

TEXT_TYPES = frozenset(
    {
        "string",
        "textarea",
        "email",
        "phone",
        "url",
        "picklist",
        "multipicklist",
        "combobox",
        "encryptedstring",
    }
)
NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})
WRITABLE_TYPES = (
    TEXT_TYPES
    | NUMBER_TYPES
    | {
        "boolean",
        "date",
        "datetime",
        "time",
        "reference",
    }
)


# The dates and times Salesforce takes.
# https://developer.salesforce.com/docs/atlas.en-us.dataLoader.meta/dataLoader/data_loader_dates.htm
FIRST_DAY, LAST_DAY = date(1700, 1, 1), date(4000, 12, 31)
FIRST_MOMENT = datetime(1700, 1, 1, tzinfo=UTC)
LAST_MOMENT = datetime(4000, 12, 31, tzinfo=UTC)


class ValueDoesNotFit(ValueError):
    """The value cannot go into the field; the message says why."""


def _out_of_range(name: str, value: str) -> str:
    return (
        f"{name} takes dates between 1700-01-01 and 4000-12-31, as Salesforce "
        f"does, not {value}."
    )


def storable(value: Any) -> Any:
    """Drop NUL characters and mark lone surrogates, which no database stores.

    PostgreSQL refuses a NUL in text and JSON; a lone UTF-16 surrogate
    (which JSON's \\ud800 escapes can carry) cannot be encoded as UTF-8 for
    either database, and becomes "?". Salesforce messages and values are
    written by an org's admins and users; nothing they could mean by either
    is lost.
    """
    if isinstance(value, str):
        text = value.replace("\x00", "")
        return text if is_unicode_text(text) else text.encode(errors="replace").decode()
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value


def is_unicode_text(text: str) -> bool:
    """Tell whether text can be encoded as UTF-8: it holds no lone surrogate."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def updateable_fields(describe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the fields the connected user may update, by lower-case name.

    Describe lists only the fields the user can see; `updateable` says
    whether the user may also edit one. Formula, system and compound fields
    are never updateable.
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
    """
    return {
        field["name"].lower(): field
        for field in describe.get("fields", [])
        if field.get("updateable") and not field.get("calculated")
    }


def value_for_field(*, field: dict[str, Any], value: Any) -> Any:
    """Return `value` as Salesforce takes it for this field.

    Raise ValueDoesNotFit when it is of the wrong type, too long, too large
    or not one of a picklist's values.
    """
    kind, name = field["type"], field["name"]
    if kind not in WRITABLE_TYPES:
        raise ValueDoesNotFit(f"Trig cannot write {kind} fields such as {name}.")
    if value is None or value == "":
        if not field.get("nillable", True) and kind != "boolean":
            raise ValueDoesNotFit(f"{name} cannot be empty.")
        return None
    if kind == "boolean":
        return _boolean(name, value)
    if kind in NUMBER_TYPES:
        return _number(field, value)
    if kind == "date":
        day = _date(name, value)
        if not FIRST_DAY <= day <= LAST_DAY:
            raise ValueDoesNotFit(_out_of_range(name, day.isoformat()))
        return day.isoformat()
    if kind == "datetime":
        stamp = _datetime(name, value)
        if not FIRST_MOMENT <= stamp <= LAST_MOMENT:
            raise ValueDoesNotFit(_out_of_range(name, stamp.isoformat()))
        return f"{stamp:%Y-%m-%dT%H:%M:%S}.{stamp.microsecond // 1000:03d}Z"
    if kind == "reference":
        text = str(value)
        if not (len(text) in (15, 18) and text.isascii() and text.isalnum()):
            raise ValueDoesNotFit(f"{name} takes a Salesforce Id, not '{text}'.")
        return text
    if kind == "time":
        moment = _time(name, value)
        return f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
    return _text(field, value)


def value_shown(*, field_type: str, value: Any) -> Any:
    """Return a write's value as it goes to a field of this type, for staff.

    A moment written to a date field goes as the date it fell on in UTC;
    shown as the moment, it would look like a date and time. Any other
    value, or one that does not fit, is shown as it is.
    """
    if field_type != "date" or value is None or value == "":
        return value
    try:
        return _date("", value).isoformat()
    except ValueDoesNotFit:
        return value


def same_value(*, field: dict[str, Any], first: Any, second: Any) -> bool:
    """Tell whether two values mean the same in a field, whatever their format."""
    return _normal(field, first) == _normal(field, second)


def _normal(field: dict[str, Any], value: Any) -> Any:
    try:
        fitted = value_for_field(field=field, value=value)
    except ValueDoesNotFit:
        return value
    if field["type"] == "datetime" and fitted is not None:
        return _datetime(field["name"], fitted)
    if field["type"] == "multipicklist" and fitted is not None:
        return sorted(fitted.split(";"))
    return fitted


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() in {"true", "false"}:
        return str(value).strip().lower() == "true"
    raise ValueDoesNotFit(f"{name} takes true or false, not '{value}'.")


def _number(field: dict[str, Any], value: Any) -> int | float:
    name = field["name"]
    if isinstance(value, bool):
        raise ValueDoesNotFit(f"{name} takes a number, not '{value}'.")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueDoesNotFit(f"{name} takes a number, not '{value}'.") from None
    if not math.isfinite(number):
        # NaN and infinities have no place in a Salesforce number field.
        raise ValueDoesNotFit(f"{name} takes a finite number, not '{value}'.")
    if field["type"] == "int":
        if number != int(number):
            raise ValueDoesNotFit(f"{name} takes a whole number, not '{value}'.")
        number = int(number)
    # Digits before the decimal point: precision minus scale.
    precision, scale = field.get("precision") or 0, field.get("scale") or 0
    if precision and len(str(int(abs(number)))) > precision - scale:
        raise ValueDoesNotFit(f"{name} holds at most {precision - scale} digits.")
    return number


def _date(name: str, value: Any) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        # Django's parsers raise ValueError for a well-formed date that does
        # not exist (February 30th), and a zone can push year 1 or 9999 out
        # of range.
        stamp = parse_datetime(text) if "T" in text else None
        if stamp is not None:
            # A moment becomes the date it fell on in UTC.
            return (
                (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC))
                .astimezone(UTC)
                .date()
            )
        parsed = parse_date(text)
    except (ValueError, OverflowError):
        parsed = None
    if parsed is None:
        raise ValueDoesNotFit(f"{name} takes a date (YYYY-MM-DD), not '{text}'.")
    return parsed


def _datetime(name: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        stamp = value
    else:
        text = str(value).strip()
        try:
            day = parse_date(text) if len(text) == 10 else None
            stamp = (
                datetime(day.year, day.month, day.day, tzinfo=UTC)
                if day
                else parse_datetime(text.replace("+0000", "+00:00"))
            )
        except ValueError:
            stamp = None
        if stamp is None:
            raise ValueDoesNotFit(
                f"{name} takes a date and time (ISO 8601), not '{text}'."
            )
    if stamp.tzinfo is None:
        raise ValueDoesNotFit(f"{name} needs a time zone in '{value}'.")
    try:
        return stamp.astimezone(UTC)
    except OverflowError:
        raise ValueDoesNotFit(
            f"{name} takes a date and time (ISO 8601), not '{value}'."
        ) from None


# A time of day as Salesforce writes it, `13:30:00.000Z`, or shorter: seconds
# and their fraction may be left out, and so may the Z. A time field holds
# no date and no time zone; the Z is part of the format only.
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/field_types.htm
_TIME = re.compile(
    r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.(\d{1,9}))?)?Z?", re.ASCII
)


def _time(name: str, value: Any) -> time:
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ValueDoesNotFit(f"{name} takes a time of day without a time zone.")
        return value
    text = str(value).strip()
    found = _TIME.fullmatch(text)
    if found is None:
        raise ValueDoesNotFit(
            f"{name} takes a time of day (HH:MM, HH:MM:SS or HH:MM:SS.sss, "
            f"optionally ending in Z), not '{text}'."
        )
    hours, minutes, seconds, fraction = found.groups()
    # Salesforce keeps milliseconds; finer digits are dropped.
    milliseconds = int((fraction or "0")[:3].ljust(3, "0"))
    return time(int(hours), int(minutes), int(seconds or 0), milliseconds * 1000)


def _text(field: dict[str, Any], value: Any) -> str:
    name, kind = field["name"], field["type"]
    if isinstance(value, list | tuple) and kind == "multipicklist":
        value = ";".join(str(item) for item in value)
    if isinstance(value, dict | list | tuple):
        raise ValueDoesNotFit(f"{name} takes text, not a list or an object.")
    text = str(value)
    length = field.get("length") or 0
    # Salesforce counts in UTF-16 code units: a character outside the Basic
    # Multilingual Plane, such as an emoji, is two.
    # https://help.salesforce.com/s/articleView?id=005166849&type=1
    size = len(text.encode("utf-16-le", errors="surrogatepass")) // 2
    if length and size > length:
        counted = " (an emoji counts as two)" if size != len(text) else ""
        raise ValueDoesNotFit(
            f"{name} holds at most {length} characters; the value has {size}{counted}."
        )
    if kind == "email":
        try:
            validate_email(text)
        except ValidationError:
            raise ValueDoesNotFit(
                f"{name} takes an e-mail address, not '{text}'."
            ) from None
    if kind in {"picklist", "multipicklist"}:
        allowed = picklist_values(field)
        chosen = text.split(";") if kind == "multipicklist" else [text]
        wrong = [part for part in chosen if part not in allowed]
        if wrong:
            raise ValueDoesNotFit(
                f"'{';'.join(wrong)}' is not a value of the picklist {name} "
                f"({', '.join(allowed) or 'no values'})."
            )
    return text


def record_id_18(value: str) -> str | None:
    """Return the 18-character form of a Salesforce Id, or None if it is not one."""
    if not (isinstance(value, str) and value.isascii() and value.isalnum()):
        return None
    if len(value) == 18:
        return value
    if len(value) != 15:
        return None
    return value + id_suffix(value)
