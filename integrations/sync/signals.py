"""Signal rules: raise `signal.raised` events as the sync writes rows.

A rule is evaluated on the records of one page against the rows Trig held
before the page was written, in the transaction that writes them, so that a
row and the signal it raises are committed together or not at all. A rule
costs nothing on a page where it does not fire: the rows it compares with
are the ones the upsert reads anyway.
"""

import dataclasses
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Q
from django.utils import timezone

from integrations.models import ObjectMapping, SignalRule, SyncRun
from integrations.salesforce import soql
from integrations.salesforce.names import id_suffix
from integrations.salesforce.schema import ObjectSchema
from integrations.sync.load import aware_datetime
from integrations.sync.plan import HIDDEN_WORDS, ObjectPlan
from jobs.models import Event
from people.models import Organisation, Person
from people.services import WriteHook, Written

logger = logging.getLogger(__name__)

# What a condition may use: each can be told from the record's own values.
CONDITION_OPERATORS = frozenset(
    {"=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "LIKE"}
)
NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})
ID_TYPES = frozenset({"id", "reference"})
# Types a "moved to" value cannot be written for: structures and binaries.
# A multi-select holds several values at once; a condition suits it better.
UNCOMPARABLE_TYPES = frozenset(
    {"address", "location", "base64", "anyType", "complexvalue", "multipicklist"}
)

_MISSING = object()
# What an event's payload keeps of a value moved from or to, or of a
# condition: the payload is held to a few kilobytes, and a long text area or
# IN list holds far more. Even escaped to six bytes a character, two values
# this long leave room for the rest.
PAYLOAD_VALUE_CHARACTERS = 500


class RuleUnusable(ValueError):
    """A rule cannot be evaluated as it stands; the message says why."""


# ---------------------------------------------------------------- Values


def rule_literal(*, field_type: str, text: str) -> soql.Value:
    """Return the value a "moved to" rule names, typed as its field is.

    Raises RuleUnusable for a value that does not fit the field.
    """
    text = text.strip()
    if field_type in UNCOMPARABLE_TYPES:
        raise RuleUnusable(f"a {field_type} field cannot be compared with one value")
    if not text:
        raise RuleUnusable("name the value the field moves to")
    if field_type == "boolean":
        if text.lower() not in ("true", "false"):
            raise RuleUnusable("a checkbox moves to true or false")
        return text.lower() == "true"
    if field_type in NUMBER_TYPES:
        try:
            number = Decimal(text)
        except InvalidOperation as exc:
            raise RuleUnusable(f"{text!r} is not a number") from exc
        if not number.is_finite():
            raise RuleUnusable(f"{text!r} is not a number")
        return number
    if field_type == "date":
        try:
            return date.fromisoformat(text)
        except ValueError as exc:
            raise RuleUnusable(f"{text!r} is not a date such as 2026-03-31") from exc
    if field_type == "datetime":
        moment = aware_datetime(text)
        if moment is None:
            raise RuleUnusable(
                f"{text!r} is not a date and time such as 2026-03-31T09:00:00Z"
            )
        return moment
    return text


def record_value(*, field_type: str, raw: Any) -> Any:
    """Return a field's value of a REST record as `soql.evaluate` compares it."""
    if raw is None:
        return None
    try:
        if field_type == "date":
            return date.fromisoformat(str(raw)[:10])
        if field_type == "datetime":
            return aware_datetime(raw)
        if field_type == "multipicklist":
            return frozenset(part for part in str(raw).split(";") if part)
        if field_type in NUMBER_TYPES and isinstance(raw, str):
            return Decimal(raw)
    except (ValueError, InvalidOperation):
        # A value not of its type matches nothing, as it would in a query.
        return None
    return raw


def condition_problems(
    *, condition: soql.Condition, readable: Iterable[str]
) -> list[str]:
    """Name what in a parsed condition Trig cannot evaluate on a record.

    Only the record's own fields that the sync reads (`readable`) can be
    compared, with the operators of CONDITION_OPERATORS.
    """
    known = {name.lower() for name in readable}
    problems = []
    for comparison in soql.comparisons(condition):
        name = comparison.field.name
        if len(comparison.field.path) > 1:
            problems.append(
                f"{name} is a field of a related record; a signal condition can "
                "only use the record's own fields."
            )
        elif comparison.operator not in CONDITION_OPERATORS:
            allowed = ", ".join(sorted(CONDITION_OPERATORS))
            problems.append(
                f"{comparison.operator} is not supported in a signal condition; "
                f"use {allowed}, AND, OR, NOT and = null."
            )
        elif name.lower() not in known:
            problems.append(
                f"{name} is not imported for this object; add it under Field "
                "mappings so the sync reads it."
            )
    return problems


# ---------------------------------------------------------------- Rules


@dataclass(frozen=True)
class _Stored:
    """Where a row keeps a field's value: an attribute or a custom value."""

    attribute: str
    value_name: str = ""

    def of(self, values: dict[str, Any]) -> Any:
        if not self.value_name:
            return values.get(self.attribute, _MISSING)
        return (values.get("custom_values") or {}).get(self.value_name, _MISSING)


@dataclass(frozen=True)
class _Compiled:
    rule: SignalRule
    condition: soql.Condition
    # For a move: the field's name in describe's casing, and where it is kept.
    field: str = ""
    stored: _Stored | None = None


def _compile(rule: SignalRule, plan: ObjectPlan) -> _Compiled:
    """Return a rule as this read can evaluate it; RuleUnusable says why not."""
    schema = plan.schema
    if rule.kind == SignalRule.Kind.MOVED_TO:
        mapped = {name.lower(): (fm, name) for fm, name in plan.fields}
        found = mapped.get(rule.field_name.lower())
        if found is None:
            raise RuleUnusable(_unread(rule.field_name, schema))
        field_mapping, name = found
        field_type = schema.type_of(name)
        literal = rule_literal(field_type=field_type, text=rule.value)
        if field_type in ID_TYPES:
            literal = _long_id(literal)
        stored = (
            _Stored(field_mapping.attribute)
            if field_mapping.attribute
            else _Stored("custom_values", field_mapping.value_name)
        )
        comparison = soql.Comparison(
            field=soql.Field((name,)), operator="=", value=literal
        )
        return _Compiled(rule=rule, condition=comparison, field=name, stored=stored)

    try:
        condition = soql.parse_condition(rule.condition)
    except soql.SoqlError as exc:
        raise RuleUnusable(f"the condition is not valid: {exc}") from exc
    selected = plan.select
    for comparison in soql.comparisons(condition):
        name = comparison.field.name
        if not any(name.lower() == s.lower() for s in selected):
            raise RuleUnusable(_unread(name, schema))
    problems = condition_problems(condition=condition, readable=selected)
    if problems:
        raise RuleUnusable(" ".join(problems))
    # Imported here: the configuration's checks use this module's.
    from django.core.exceptions import ValidationError

    from integrations.configuration import filter_check

    # A field can change type after the rule was saved; a literal of the old
    # type could not be compared with the values read now.
    try:
        filter_check(text=rule.condition, schema=schema)
    except ValidationError as exc:
        raise RuleUnusable(" ".join(exc.messages)) from exc
    return _Compiled(rule=rule, condition=_long_ids(condition, schema))


def _long_ids(condition: soql.Condition, schema: ObjectSchema) -> soql.Condition:
    """Return `condition` with the Ids it names in their 18-character form.

    Salesforce takes either form in a condition, and records carry the 18
    characters; the longer form compares whatever its case.
    """
    if isinstance(condition, soql.Not):
        return soql.Not(_long_ids(condition.condition, schema))
    if isinstance(condition, soql.And | soql.Or):
        parts = tuple(_long_ids(part, schema) for part in condition.conditions)
        return type(condition)(parts)
    name = schema.canonical(condition.field.name) or condition.field.name
    if schema.type_of(name) not in ID_TYPES:
        return condition
    if isinstance(condition.value, tuple):
        value: Any = tuple(_long_id(item) for item in condition.value)
    else:
        value = _long_id(condition.value)
    return dataclasses.replace(condition, value=value)


def _long_id(value: Any) -> Any:
    if isinstance(value, str) and len(value) == 15 and value.isalnum():
        return value + id_suffix(value)
    return value


def _unread(name: str, schema: ObjectSchema) -> str:
    if schema.canonical(name) is None:
        return f"{schema.name}.{name} is {HIDDEN_WORDS} (or deleted in Salesforce)"
    return f"{schema.name}.{name} is not among the fields imported"


@dataclass(frozen=True)
class _Firing:
    compiled: _Compiled
    written: Written
    record: dict[str, Any]
    before: Any = None
    after: Any = None


class SignalWatch:
    """The enabled signal rules of one object, for one read of it."""

    def __init__(self, *, run: SyncRun, plan: ObjectPlan, rules: list[SignalRule]):
        self.run = run
        self.plan = plan
        self.compiled: list[_Compiled] = []
        # Rules this read cannot evaluate, and why; noted on the run once.
        self.unusable: dict[SignalRule, str] = {}
        for rule in rules:
            try:
                self.compiled.append(_compile(rule, plan))
            except RuleUnusable as exc:
                self.unusable[rule] = str(exc)
        self.raised = 0
        self._page_raised: set[str] = set()

    def hook(self, records: list[dict[str, Any]]) -> WriteHook | None:
        """Return the hook that evaluates the rules on a page's written rows."""
        if not self.compiled:
            return None
        by_id = {record.get("Id"): record for record in records}
        watched = frozenset(
            compiled.stored.attribute
            for compiled in self.compiled
            if compiled.stored is not None
        )
        raised: set[str] = set()

        def on_written(written: list[Written]) -> None:
            firings = [
                firing
                for row in written
                for firing in self._firings(row, by_id.get(row.salesforce_id))
            ]
            if firings:
                raised.update(self._record(firings))

        self._page_raised = raised
        return WriteHook(watched=watched, on_written=on_written)

    def page_done(self) -> int:
        """Count the signals the last page's hook raised; return how many."""
        count = len(self._page_raised)
        self._page_raised = set()
        self.raised += count
        return count

    # ------------------------------------------------------------ Evaluating

    def _firings(
        self, written: Written, record: dict[str, Any] | None
    ) -> list[_Firing]:
        values = written.values
        if record is None or values.get("deleted_at") is not None:
            # Deleted and merged records raise nothing.
            return []
        schema = self.plan.schema
        today = timezone.now().date()

        def value_of(field: soql.Field) -> Any:
            name = schema.canonical(field.name) or field.name
            return record_value(field_type=schema.type_of(name), raw=record.get(name))

        firings = []
        for compiled in self.compiled:
            is_move = compiled.stored is not None
            if is_move != (written.previous is not None):
                # Moves happen to rows Trig held; new records are new to it.
                continue
            if is_move:
                before = compiled.stored.of(written.previous)
                after = compiled.stored.of(values)
                # A value never held (never read) is no move from anything.
                if _MISSING in (before, after) or before == after:
                    continue
            if not soql.evaluate(compiled.condition, value_of=value_of, today=today):
                continue
            if is_move:
                firings.append(_Firing(compiled, written, record, before, after))
            else:
                firings.append(_Firing(compiled, written, record))
        return firings

    # ------------------------------------------------------------ Recording

    def _record(self, firings: list[_Firing]) -> set[str]:
        """Record an event per firing; return the keys of those new."""
        # Imported here: the jobs services import the integration's.
        from jobs.services import event_record

        connection = self.run.connection
        people, organisations = self._linked(firings)
        raised = set()
        # TODO: each event is recorded on its own (an insert, the Jobs of its
        # kind, their writes): a page where hundreds of records fire costs
        # that many rounds. Signals are rare next to the rows a page holds;
        # a batch form of `event_record` would be needed to go further.
        for firing in firings:
            person = self._person_of(firing, people)
            organisation_id = (
                firing.written.values.get("organisation_id")
                if self.plan.mapping.target != ObjectMapping.Target.PERSON
                else (person.organisation_id if person else None)
            )
            key = self._key(firing)
            _, created = event_record(
                workspace=connection.workspace,
                kind=Event.Kind.SIGNAL_RAISED,
                idempotency_key=key,
                occurred_at=self._stamp(firing.record) or timezone.now(),
                person=person,
                organisation=organisations.get(organisation_id),
                record_id=firing.written.salesforce_id,
                payload=self._payload(firing, person),
            )
            if created:
                raised.add(key)
                logger.debug(
                    "Signal raised connection_id=%s rule_id=%s record_id=%s",
                    connection.pk,
                    firing.compiled.rule.pk,
                    firing.written.salesforce_id,
                )
        return raised

    def _linked(
        self, firings: list[_Firing]
    ) -> tuple[dict[Any, Person], dict[int, Organisation]]:
        """Read the people and organisations the firings name: a query each."""
        is_person = self.plan.mapping.target == ObjectMapping.Target.PERSON
        salesforce_ids = {f.written.salesforce_id for f in firings} if is_person else ()
        person_pks = {
            f.written.values.get("person_id")
            for f in firings
            if not is_person and f.written.values.get("person_id")
        }
        people: dict[Any, Person] = {}
        if salesforce_ids or person_pks:
            found = Person.objects.filter(
                Q(connection=self.run.connection, salesforce_id__among=salesforce_ids)
                | Q(pk__among=person_pks)
            )
            for person in found:
                people[person.pk] = person
                people[person.salesforce_id] = person
        organisation_ids = {person.organisation_id for person in people.values()} | {
            f.written.values.get("organisation_id") for f in firings
        }
        organisation_ids.discard(None)
        organisations = (
            Organisation.objects.in_bulk(list(organisation_ids))
            if organisation_ids
            else {}
        )
        return people, organisations

    def _person_of(self, firing: _Firing, people: dict[Any, Person]) -> Person | None:
        if self.plan.mapping.target == ObjectMapping.Target.PERSON:
            return people.get(firing.written.salesforce_id)
        person_id = firing.written.values.get("person_id")
        return people.get(person_id) if person_id else None

    def _stamp(self, record: dict[str, Any]) -> datetime | None:
        field = self.plan.cursor_field
        return aware_datetime(record.get(field)) if field else None

    def _key(self, firing: _Firing) -> str:
        """The same transition read again (the overlap, a resumed run) has the
        same key, so it is recorded once; the record's next change has another.
        """
        field = self.plan.cursor_field
        stamp = firing.record.get(field) if field else None
        # An object without a stamp is read whole each time; a row is
        # written once per change, within one run.
        moment = stamp if isinstance(stamp, str) and stamp else f"run{self.run.pk}"
        rule = firing.compiled.rule
        return f"signal:{rule.pk}:{firing.written.salesforce_id}:{moment}"[:200]

    def _payload(self, firing: _Firing, person: Person | None) -> dict[str, Any]:
        rule = firing.compiled.rule
        record = firing.record
        if person is not None:
            opted_out = person.has_opted_out_of_email
            may_email = person.may_email
        else:
            # A Lead kept as a record carries its own opt-out, when it is read.
            name = self.plan.schema.canonical("HasOptedOutOfEmail")
            opted_out = record.get(name) if name else None
            email = self.plan.schema.canonical("Email")
            may_email = opted_out is False and bool(email and record.get(email))
        payload: dict[str, Any] = {
            "rule": rule.name,
            "rule_id": rule.pk,
            "rule_kind": rule.kind,
            "object": self.plan.schema.name,
            "salesforce_id": firing.written.salesforce_id,
            "field": firing.compiled.field,
            "from": _bounded(firing.before),
            "to": _bounded(firing.after),
            # Unknown counts as opted out: nothing may e-mail on a guess.
            "has_opted_out_of_email": opted_out,
            "may_email": may_email,
        }
        if rule.kind == SignalRule.Kind.NEW_MATCHING:
            payload["condition"] = _bounded(rule.condition)
        return payload


def _bounded(value: Any) -> Any:
    """Return a value cut short enough for an event's payload."""
    limit = PAYLOAD_VALUE_CHARACTERS
    if not isinstance(value, str):
        text = json.dumps(value, default=str)
        if len(text) <= limit:
            return value
        value = text
    return value if len(value) <= limit else value[: limit - 1] + "…"
