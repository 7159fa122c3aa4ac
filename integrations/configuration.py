"""Services behind the import configuration that Trig staff edit in the admin."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import F

from integrations.models import (
    FieldMapping,
    ObjectDescribe,
    ObjectMapping,
    SalesforceConnection,
    SignalRule,
)
from integrations.salesforce import soql
from integrations.salesforce.client import SalesforceClientError
from integrations.salesforce.names import id_problem
from integrations.salesforce.schema import ObjectSchema, RunSchema, picklist_values
from integrations.salesforce.soql_build import QueryTooLong, plan_select
from integrations.services import connection_client
from integrations.sync.load import rows_from_records
from integrations.sync.plan import object_plan
from integrations.sync.signals import RuleUnusable, condition_problems, rule_literal

TEXT_TYPES = {
    "string",
    "textarea",
    "picklist",
    "multipicklist",
    "email",
    "phone",
    "url",
    "id",
    "reference",
    "combobox",
    "encryptedstring",
}
NUMBER_TYPES = {"int", "double", "currency", "percent"}
ID_TYPES = {"id", "reference"}
# A field path may follow at most five parent relationships.
# https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_relationships_query_limits.htm
MAX_PARENT_LEVELS = 5

# Describe an object by name; None when the connected user cannot see it.
Describe = Callable[[str], ObjectSchema | None]


def _name_field(name: str, kind: str, parent: str = "") -> dict[str, Any]:
    described: dict[str, Any] = {"name": name, "type": kind, "filterable": True}
    if parent:
        described.update(referenceTo=[parent], relationshipName=parent)
    return described


# A polymorphic lookup (a Case's Owner is a User or a queue) is read through
# the Name object, whatever object the parent is: only its fields can follow.
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_name.htm
NAME_OBJECT = ObjectSchema(
    name="Name",
    fields={
        described["name"].lower(): described
        for described in (
            _name_field("Id", "id"),
            _name_field("Alias", "string"),
            _name_field("Email", "email"),
            _name_field("FirstName", "string"),
            _name_field("IsActive", "boolean"),
            _name_field("LastName", "string"),
            _name_field("LastReferencedDate", "datetime"),
            _name_field("LastViewedDate", "datetime"),
            _name_field("Name", "string"),
            _name_field("NameOrAlias", "string"),
            _name_field("Phone", "phone"),
            _name_field("ProfileId", "reference", "Profile"),
            _name_field("RecordTypeId", "reference", "RecordType"),
            _name_field("Title", "string"),
            _name_field("Type", "picklist"),
            _name_field("UserRoleId", "reference", "UserRole"),
            _name_field("Username", "string"),
        )
    },
)


def describe_cached(
    *, connection: SalesforceConnection, object_name: str
) -> ObjectSchema | None:
    """Return what describe last said of an object, without calling Salesforce."""
    found = ObjectDescribe.objects.filter(
        connection=connection, object_name__iexact=object_name
    ).first()
    if found is None:
        return None
    return ObjectSchema(
        name=found.object_name, fields={f["name"].lower(): f for f in found.fields}
    )


def describe_fresh(
    *, connection: SalesforceConnection, object_name: str
) -> ObjectSchema:
    """Describe an object now, as the connected user; raises ValidationError."""
    try:
        client = connection_client(connection=connection)
        return RunSchema(client=client, connection=connection).describe(object_name)
    except SalesforceClientError as exc:
        if exc.status == 404:
            raise ValidationError(
                f"{object_name} does not exist in this org, or the connected user "
                "cannot see it."
            ) from exc
        raise ValidationError(
            f"Salesforce could not describe {object_name}: {exc}"
        ) from exc


def describe_parents(*, connection: SalesforceConnection) -> Describe:
    """Return a describe of the objects a filter's lookups lead to, each once.

    Raises ValidationError when Salesforce fails for another reason than
    the object being out of the connected user's sight.
    """
    schemas: list[RunSchema] = []

    def describe(object_name: str) -> ObjectSchema | None:
        try:
            if not schemas:
                client = connection_client(connection=connection)
                schemas.append(RunSchema(client=client, connection=connection))
            return schemas[0].describe(object_name)
        except SalesforceClientError as exc:
            if exc.status == 404:
                return None
            raise ValidationError(
                f"Salesforce could not describe {object_name}: {exc}"
            ) from exc

    return describe


def _literal_fits(field_type: str, value: Any) -> bool:
    if value is None:
        return True
    if field_type in TEXT_TYPES:
        return isinstance(value, str | soql.LikePattern)
    if field_type == "boolean":
        return isinstance(value, bool)
    if field_type in NUMBER_TYPES:
        return isinstance(value, int | Decimal) and not isinstance(value, bool)
    if field_type == "date":
        return isinstance(value, soql.RelativeDate) or (
            isinstance(value, date) and not isinstance(value, datetime)
        )
    if field_type == "datetime":
        return isinstance(value, datetime | soql.RelativeDate)
    return True


def filter_check(
    *, text: str, schema: ObjectSchema, describe: Describe | None = None
) -> soql.Condition | None:
    """Parse a staff-typed filter and check it against the object's fields.

    Refuses, with the reason: what does not parse, what is more than a
    condition (a second clause, a comment), fields the connected user cannot
    see, literals of the wrong type for their field, and values compared
    with an Id or lookup field that are not Salesforce Ids.

    A parent path (`Account.Owner.Name`) is followed step by step through
    `describe`: each step but the last must name a lookup by its
    relationship name, and the last a field of the object it leads to. A
    polymorphic lookup (a Case's Owner is a User or a Queue) leads to the
    Name object whichever its parent is, and only the Name object's fields
    can follow it. Without `describe` only the first step of a path is
    checked.
    """
    if not text.strip():
        return None
    try:
        condition = soql.parse_condition(text)
    except soql.SoqlError as exc:
        raise ValidationError(f"This is not a SOQL condition: {exc}") from exc

    errors = []
    for comparison in soql.comparisons(condition):
        try:
            described = _field_at(
                schema=schema, path=comparison.field.path, describe=describe
            )
        except ValidationError as exc:
            errors.extend(exc.messages)
            continue
        if described is None:
            continue
        problem = _comparison_problem(
            comparison=comparison,
            described=described,
            is_path=len(comparison.field.path) > 1,
        )
        if problem:
            errors.append(problem)
    if errors:
        raise ValidationError(errors)
    return condition


def filter_check_length(
    *, schema: ObjectSchema, condition: soql.Condition | None
) -> None:
    """Refuse a filter too long for any read of the object to send.

    The sync's smallest statement reads the Id, a stamp and one field, and a
    read of recent changes adds its date window; a longer field list is read
    in narrower groups, and a long `IN` list in parts. So what fits beside
    the longest of these fits whatever fields are mapped later.
    """
    if condition is None:
        return
    stamp = "LastModifiedDate"
    longest = max((f["name"] for f in schema.fields.values()), key=len, default="Id")
    window = soql.Comparison(field=soql.Field((stamp,)), operator=">=", value=_EPOCH)
    before = soql.Comparison(field=soql.Field((stamp,)), operator="<", value=_EPOCH)
    try:
        plan_select(
            sobject=schema.name,
            fields=["Id", stamp, longest],
            where=soql.And((condition, window, before)),
            budget=settings.SALESFORCE_QUERY_URL_BUDGET,
            order_by=(stamp, "Id"),
            stamp=stamp,
        )
    except QueryTooLong as exc:
        raise ValidationError(str(exc)) from exc


# Any moment: every datetime literal takes the same room.
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _field_at(
    *, schema: ObjectSchema, path: tuple[str, ...], describe: Describe | None
) -> dict[str, Any] | None:
    """Return the describe of the field a path ends on; None if not followed.

    Raises ValidationError saying which step does not lead anywhere.
    """
    name = ".".join(path)
    if len(path) - 1 > MAX_PARENT_LEVELS:
        raise ValidationError(
            f"{name} follows {len(path) - 1} relationships; Salesforce follows "
            f"at most {MAX_PARENT_LEVELS} in one field path."
        )
    objects = [schema]
    # The polymorphic step the path last took, and the objects it may lead to.
    polymorphic: tuple[str, list[str]] | None = None
    for depth, step in enumerate(path[:-1]):
        lookup = _lookup(objects, step)
        if lookup is None:
            raise ValidationError(
                f"{_names(objects)} has no relationship {step}"
                + (f" (in {name})." if depth else ".")
            )
        if describe is None:
            return None
        targets = lookup.get("referenceTo") or []
        if lookup.get("polymorphicForeignKey") or len(targets) > 1:
            objects = [NAME_OBJECT]
            polymorphic = (".".join(path[: depth + 1]), targets)
            continue
        polymorphic = None
        objects = [found for found in map(describe, targets) if found is not None]
        if not objects:
            raise ValidationError(
                f"{'.'.join(path[: depth + 1])} in {name} leads to "
                f"{' or '.join(targets) or 'no object'}, which the connected user "
                "cannot see."
            )

    last = path[-1]
    for parent in objects:
        described = parent.fields.get(last.lower())
        if described is not None:
            return described
    if polymorphic is not None:
        step, targets = polymorphic
        raise ValidationError(
            f"{step} in {name} may lead to {' or '.join(targets)}: Salesforce reads "
            f"it through its Name object, which has no field {last}."
        )
    raise ValidationError(
        f"{_names(objects)} has no field {last} that the connected user can see"
        + (f" (in {name})." if len(path) > 1 else ".")
    )


def _lookup(objects: list[ObjectSchema], step: str) -> dict[str, Any] | None:
    """Return the lookup named `step` by its relationship name on any object."""
    for parent in objects:
        for described in parent.fields.values():
            relationship = described.get("relationshipName") or ""
            if described.get("type") == "reference" and relationship.lower() == (
                step.lower()
            ):
                return described
    return None


def _names(objects: list[ObjectSchema]) -> str:
    return " or ".join(parent.name for parent in objects)


def _comparison_problem(
    *, comparison: soql.Comparison, described: dict[str, Any], is_path: bool
) -> str | None:
    name = comparison.field.name if is_path else described["name"]
    if described.get("filterable") is False:
        # Long text areas and some system fields cannot be filtered on.
        return f"Salesforce cannot filter on {name}."
    field_type = described["type"]
    values = (
        comparison.value if isinstance(comparison.value, tuple) else (comparison.value,)
    )
    if (
        comparison.operator in ("INCLUDES", "EXCLUDES")
        and field_type != "multipicklist"
    ):
        return f"{comparison.operator} works on multi-select picklists only."
    if comparison.operator == "LIKE" and field_type in ID_TYPES:
        return f"LIKE does not work on Id and lookup fields such as {name}."
    if comparison.operator == "LIKE" and field_type not in TEXT_TYPES:
        return f"LIKE works on text fields; {name} is {field_type}."
    if not all(_literal_fits(field_type, value) for value in values):
        return (
            f"{name} is a {field_type} field; the value compared with it is of "
            "another type."
        )
    if field_type in ID_TYPES:
        for value in values:
            problem = id_problem(value) if isinstance(value, str) else None
            if problem:
                return f"{name} holds Salesforce Ids; '{value}' is not one: {problem}."
    return None


@dataclass(frozen=True)
class Preview:
    columns: list[str]
    rows: list[dict[str, Any]]
    problems: list[str]
    skipped: dict[str, str]


def object_mapping_preview(*, mapping: ObjectMapping, limit: int = 10) -> Preview:
    """Map the first records of the object without storing anything."""
    connection = mapping.connection
    client = connection_client(connection=connection)
    schema = RunSchema(client=client, connection=connection)
    plan = object_plan(mapping=mapping, schema=schema, cursor=None, is_full_sync=True)

    # The first part of the plan, each field group ordered by Id, limited,
    # and joined by Id.
    ordered = plan_select(
        sobject=plan.schema.name,
        fields=plan.select,
        where=plan.where,
        budget=settings.SALESFORCE_QUERY_URL_BUDGET,
        order_by=("Id",),
        stamp=plan.cursor_field,
    )
    records: dict[str, dict[str, Any]] = {}
    for statement in ordered.statements[0]:
        for page in client.query_pages(soql=f"{statement} LIMIT {limit}"):
            for record in page:
                records.setdefault(record.get("Id"), {}).update(record)
            break
    rows, problems, _ = rows_from_records(plan=plan, records=list(records.values()))
    columns = sorted({key for row in rows for key in row} - {"custom_values"})
    custom = sorted({key for row in rows for key in row.get("custom_values", {})})
    flat = [
        {
            **{k: v for k, v in row.items() if k != "custom_values"},
            **row.get("custom_values", {}),
        }
        for row in rows
    ]
    return Preview(
        columns=columns + custom,
        rows=flat,
        problems=[f"{p.salesforce_id} {p.attribute}: {p.problem}" for p in problems],
        skipped=plan.skipped,
    )


def object_mapping_mark_changed(*, mapping: ObjectMapping) -> None:
    """Make the next sync read the whole object, so every record gets the change."""
    ObjectMapping.objects.filter(pk=mapping.pk).update(
        needs_backfill=True, revision=F("revision") + 1
    )


def signal_rule_check(*, rule: SignalRule) -> None:
    """Check a signal rule against its object's describe and mapping.

    The stored describe is used when there is one (the last sync's), else the
    object is described now. A move needs a field the sync imports, and a
    value of its type (one of a picklist's values); a condition must parse,
    name only imported fields of the record itself, and use operators Trig
    evaluates. Raises ValidationError with a message per form field.
    """
    mapping = rule.object_mapping
    connection = mapping.connection
    schema = describe_cached(
        connection=connection, object_name=mapping.object_name
    ) or describe_fresh(connection=connection, object_name=mapping.object_name)
    field_mappings = list(mapping.field_mappings.all())
    if rule.kind == SignalRule.Kind.MOVED_TO:
        rule.field_name, rule.value = _moved_to_checked(
            rule=rule, schema=schema, field_mappings=field_mappings
        )
        rule.condition = ""
        return

    rule.field_name = rule.value = ""
    if not rule.condition.strip():
        raise ValidationError({"condition": "Write the condition a new record meets."})
    try:
        condition = filter_check(text=rule.condition, schema=schema)
    except ValidationError as exc:
        raise ValidationError({"condition": exc.messages}) from exc
    readable = [
        "Id",
        *(fm.salesforce_field for fm in field_mappings),
        *mapping.lookup_fields,
    ]
    problems = condition_problems(condition=condition, readable=readable)
    for comparison in soql.comparisons(condition):
        described = schema.fields.get(comparison.field.name.lower())
        if described is not None:
            problems.extend(_picklist_problems(comparison, described))
    if problems:
        raise ValidationError({"condition": problems})


def _moved_to_checked(
    *, rule: SignalRule, schema: ObjectSchema, field_mappings: list[FieldMapping]
) -> tuple[str, str]:
    """Return the rule's field and value in describe's spelling."""
    if not rule.field_name.strip():
        raise ValidationError(
            {"field_name": "Name the field that moves, e.g. StageName."}
        )
    described = schema.fields.get(rule.field_name.strip().lower())
    if described is None:
        raise ValidationError(
            {
                "field_name": f"{schema.name} has no field {rule.field_name} that "
                "the connected user can see."
            }
        )
    name = described["name"]
    if not any(fm.salesforce_field.lower() == name.lower() for fm in field_mappings):
        raise ValidationError(
            {
                "field_name": f"{name} is not imported for {schema.name}; add it "
                "under the object's Field mappings first, so that Trig keeps the "
                "value it moves from."
            }
        )
    try:
        rule_literal(field_type=described["type"], text=rule.value)
    except RuleUnusable as exc:
        raise ValidationError({"value": f"{name}: {exc}."}) from exc
    value = rule.value.strip()
    allowed = picklist_values(described)
    if allowed:
        chosen = next((v for v in allowed if v.lower() == value.lower()), None)
        if chosen is None:
            raise ValidationError(
                {
                    "value": f"{value!r} is not one of {name}'s values: "
                    f"{', '.join(allowed)}."
                }
            )
        value = chosen
    return name, value


def _picklist_problems(
    comparison: soql.Comparison, described: dict[str, Any]
) -> list[str]:
    # A multi-select's value names several of its values at once.
    allowed = picklist_values(described) if described["type"] == "picklist" else []
    if not allowed or comparison.operator == "LIKE":
        return []
    values = (
        comparison.value if isinstance(comparison.value, tuple) else (comparison.value,)
    )
    known = {value.lower() for value in allowed}
    return [
        f"{value!r} is not one of {described['name']}'s values: {', '.join(allowed)}."
        for value in values
        if isinstance(value, str) and value.lower() not in known
    ]
