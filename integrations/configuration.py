"""Services behind the import configuration that Trig staff edit in the admin."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError

from integrations.models import ObjectDescribe, ObjectMapping, SalesforceConnection
from integrations.salesforce import soql
from integrations.salesforce.client import SalesforceClientError
from integrations.salesforce.schema import ObjectSchema, RunSchema
from integrations.services import connection_client
from integrations.sync.load import rows_from_records
from integrations.sync.plan import object_plan

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


def filter_check(*, text: str, schema: ObjectSchema) -> soql.Condition | None:
    """Parse a staff-typed filter and check it against the object's fields.

    Refuses, with the reason: what does not parse, what is more than a
    condition (a second clause, a comment), fields the connected user cannot
    see, and literals of the wrong type for their field.
    """
    if not text.strip():
        return None
    try:
        condition = soql.parse_condition(text)
    except soql.SoqlError as exc:
        raise ValidationError(f"This is not a SOQL condition: {exc}") from exc

    errors = []
    for comparison in soql.comparisons(condition):
        path = comparison.field.path
        described = schema.fields.get(path[0].lower())
        if len(path) > 1:
            # A parent relationship (Account.Industry): its first step must
            # be a lookup's relationship name.
            if not any(
                (f.get("relationshipName") or "").lower() == path[0].lower()
                for f in schema.fields.values()
            ):
                errors.append(f"{schema.name} has no relationship {path[0]}.")
            continue
        if described is None:
            errors.append(
                f"{schema.name} has no field {path[0]} that the connected user can see."
            )
            continue
        if described.get("filterable") is False:
            # Long text areas and some system fields cannot be filtered on.
            errors.append(f"Salesforce cannot filter on {described['name']}.")
            continue
        field_type = described["type"]
        values = (
            comparison.value
            if isinstance(comparison.value, tuple)
            else (comparison.value,)
        )
        if (
            comparison.operator in ("INCLUDES", "EXCLUDES")
            and field_type != "multipicklist"
        ):
            errors.append(
                f"{comparison.operator} works on multi-select picklists only."
            )
        elif comparison.operator == "LIKE" and field_type not in TEXT_TYPES:
            errors.append(
                f"LIKE works on text fields; {described['name']} is {field_type}."
            )
        elif not all(_literal_fits(field_type, value) for value in values):
            errors.append(
                f"{described['name']} is a {field_type} field; the value compared "
                "with it is of another type."
            )
    if errors:
        raise ValidationError(errors)
    return condition


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

    # The first part of the plan, each field group limited and joined by Id.
    records: dict[str, dict[str, Any]] = {}
    for statement in plan.query.statements[0]:
        for page in client.query_pages(soql=f"{statement} ORDER BY Id LIMIT {limit}"):
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
    ObjectMapping.objects.filter(pk=mapping.pk).update(needs_backfill=True)
