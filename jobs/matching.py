"""Which events a Job takes, and the value an Action writes for an event.

A condition is `{"on": "event" | "person", "field": ..., "operator": ...,
"value": ...}`. Event fields are `kind`, `record_id` and `payload.<key>`;
person fields are the attributes in PERSON_ATTRIBUTES. Templates name the
same values between double braces: `Sent {{ event.payload.subject }} to
{{ person.first_name }}`.
"""

import re
from typing import Any

from django.core.exceptions import ValidationError

from jobs.models import Action, Event

PERSON_ATTRIBUTES = {
    "first_name": str,
    "last_name": str,
    "email": str,
    "phone": str,
    "country": str,
    "title": str,
    "has_opted_out_of_email": bool,
}
ORGANISATION_ATTRIBUTES = {"name": str, "domain": str}
EVENT_FIELDS = {"kind", "record_id", "occurred_at", "date"}
OPERATORS = {"equals", "not_equals", "contains", "in", "is_set", "is_not_set"}

_TEMPLATE_NAME = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
_MISSING = object()


class ValueUnavailable(Exception):
    """The event does not give what the Action needs; the message says what."""


# ---------------------------------------------------------------- Conditions


def conditions_check(*, conditions: Any) -> None:
    """Raise ValidationError naming every condition that cannot be evaluated."""
    if not isinstance(conditions, list):
        raise ValidationError({"conditions": "Conditions must be a list."})
    problems = []
    for number, condition in enumerate(conditions, start=1):
        problem = _condition_problem(condition)
        if problem:
            problems.append(f"Condition {number}: {problem}")
    if problems:
        raise ValidationError({"conditions": problems})


def _condition_problem(condition: Any) -> str | None:
    if not isinstance(condition, dict):
        return "must be an object with on, field, operator and value."
    on, field = condition.get("on"), condition.get("field") or ""
    operator = condition.get("operator")
    if on == "event":
        if field not in EVENT_FIELDS and not _is_payload_path(field):
            return f"'{field}' is not a field of an event; use kind or payload.KEY."
    elif on == "person":
        if field not in PERSON_ATTRIBUTES:
            return f"'{field}' is not a field of a person."
    else:
        return "'on' must be 'event' or 'person'."
    if operator not in OPERATORS:
        return f"the operator must be one of {', '.join(sorted(OPERATORS))}."
    if operator == "in" and not isinstance(condition.get("value"), list):
        return "the value of 'in' must be a list."
    return None


def _is_payload_path(field: str) -> bool:
    head, _, rest = field.partition(".")
    return head == "payload" and bool(rest)


def conditions_hold(*, conditions: list[dict[str, Any]], event: Event) -> bool:
    """Tell whether every condition holds for an event; none is true."""
    return all(_holds(condition, event) for condition in conditions)


def _holds(condition: dict[str, Any], event: Event) -> bool:
    if condition["on"] == "person":
        person = event.person
        found = _MISSING if person is None else getattr(person, condition["field"])
    else:
        found = _event_value(event, condition["field"])
    wanted = condition.get("value")
    operator = condition["operator"]

    if operator == "is_set":
        return found not in (_MISSING, None, "")
    if operator == "is_not_set":
        return found in (_MISSING, None, "")
    if found is _MISSING:
        return operator == "not_equals"
    if operator == "equals":
        return _same(found, wanted)
    if operator == "not_equals":
        return not _same(found, wanted)
    if operator == "in":
        return any(_same(found, option) for option in wanted)
    # contains: text within text, or an item within a list.
    if isinstance(found, list):
        return any(_same(item, wanted) for item in found)
    return str(wanted).lower() in str(found).lower()


def _same(found: Any, wanted: Any) -> bool:
    # Conditions are typed in the admin as JSON; "true" and true mean one thing.
    if isinstance(found, bool) or isinstance(wanted, bool):
        return str(found).lower() == str(wanted).lower()
    if isinstance(found, str) and isinstance(wanted, str):
        return found.casefold() == wanted.casefold()
    return found == wanted or str(found) == str(wanted)


def _event_value(event: Event, field: str) -> Any:
    if field == "kind":
        return event.kind
    if field == "record_id":
        return event.record_id
    if field == "occurred_at":
        return event.occurred_at.isoformat()
    if field == "date":
        return event.occurred_at.date().isoformat()
    value: Any = event.payload
    for key in field.removeprefix("payload.").split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


# ---------------------------------------------------------------- Values


def action_value(*, action: Action, event: Event) -> Any:
    """Return the value an Action writes for an event, before any typing.

    Raise ValueUnavailable when the event lacks what the Action names.
    """
    source = action.value_source
    if source == Action.ValueSource.EVENT_TIME:
        return event.occurred_at.isoformat()
    if source == Action.ValueSource.LITERAL:
        return action.value
    if source == Action.ValueSource.PERSON:
        if event.person is None:
            raise ValueUnavailable("The event names no person to take a value from.")
        return getattr(event.person, action.value)
    if source == Action.ValueSource.EVENT:
        field = action.value if "." in action.value else f"payload.{action.value}"
        found = _event_value(event, field)
        if found is _MISSING:
            raise ValueUnavailable(f"The event has no value '{action.value}'.")
        return found
    return template_render(template=action.value, event=event)


def template_names(*, template: str) -> list[str]:
    return _TEMPLATE_NAME.findall(template)


def template_problems(*, template: str) -> list[str]:
    """Name each placeholder of a template that no event can fill."""
    problems = []
    for name in template_names(template=template):
        head, _, rest = name.partition(".")
        known = (
            (head == "event" and (rest in EVENT_FIELDS or _is_payload_path(rest)))
            or (head == "person" and rest in PERSON_ATTRIBUTES)
            or (head == "organisation" and rest in ORGANISATION_ATTRIBUTES)
        )
        if not known:
            problems.append(f"'{{{{ {name} }}}}' names nothing Trig knows.")
    return problems


def template_render(*, template: str, event: Event) -> str:
    """Fill a template's placeholders; one with no value becomes empty."""

    def fill(match: re.Match) -> str:
        head, _, rest = match.group(1).partition(".")
        value: Any = None
        if head == "event":
            value = _event_value(event, rest)
        elif head == "person" and event.person is not None:
            value = getattr(event.person, rest, None)
        elif head == "organisation":
            organisation = event.organisation or (
                event.person.organisation if event.person else None
            )
            value = getattr(organisation, rest, None) if organisation else None
        if value is _MISSING or value is None:
            return ""
        return str(value)

    return _TEMPLATE_NAME.sub(fill, template)
