"""Turn Salesforce records into rows of ours, and hand them to the services."""

import re
from typing import Any

from integrations.models import ObjectMapping, SalesforceConnection
from integrations.salesforce.schema import typed_value
from integrations.sync.plan import ObjectPlan
from integrations.transforms import TransformError, transform_apply
from people import services as people_services
from people.services import BatchResult, Problem

# https://help.salesforce.com/s/articleView?id=000385008&type=1
_SALESFORCE_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_SALESFORCE_ID.match(value))


def rows_from_records(
    *, plan: ObjectPlan, records: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[Problem], int]:
    """Map records to rows; return the rows, the problems and transform failures.

    A value that does not fit its type, or that its transform cannot take,
    is stored as empty and reported; the rest of the record is kept.
    """
    rows, problems, transform_failures = [], [], 0
    for record in records:
        record_id = record.get("Id")
        if not _is_id(record_id):
            problems.append(
                Problem("", "Id", "a record without a valid Id was skipped")
            )
            continue
        row: dict[str, Any] = {"salesforce_id": record_id}
        for field_mapping, name in plan.fields:
            raw = record.get(name)
            try:
                if field_mapping.transform:
                    value = transform_apply(
                        name=field_mapping.transform,
                        argument=field_mapping.transform_argument,
                        value=raw,
                    )
                else:
                    value = typed_value(plan.schema.type_of(name), raw)
            except TransformError as exc:
                transform_failures += 1
                problems.append(
                    Problem(record_id, name, f"{field_mapping.transform}: {exc}")
                )
                value = None
            except ValueError as exc:
                problems.append(Problem(record_id, name, f"left empty: {exc}"))
                value = None
            if field_mapping.attribute:
                row[field_mapping.attribute] = value
            else:
                row.setdefault("custom_values", {})[field_mapping.value_name] = value
        for key, name in plan.lookups.items():
            value = record.get(name)
            if value is not None and not _is_id(value):
                problems.append(
                    Problem(record_id, key, "not a Salesforce Id; not linked")
                )
            row[key] = value if _is_id(value) else ""
        rows.append(row)
    return rows, problems, transform_failures


def rows_upsert(
    *, plan: ObjectPlan, connection: SalesforceConnection, rows: list[dict[str, Any]]
) -> BatchResult:
    target = plan.mapping.target
    if target == ObjectMapping.Target.PERSON:
        return people_services.person_upsert_batch(connection=connection, rows=rows)
    if target == ObjectMapping.Target.ORGANISATION:
        return people_services.organisation_upsert_batch(
            connection=connection, rows=rows
        )
    if target == ObjectMapping.Target.OWNER:
        return people_services.owner_upsert_batch(connection=connection, rows=rows)
    return people_services.record_upsert_batch(
        connection=connection, object_name=plan.schema.name, rows=rows
    )
