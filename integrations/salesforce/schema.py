"""What the connected user can see of an org: describe, cached per run."""

from dataclasses import dataclass
from datetime import UTC, date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from integrations.models import ObjectDescribe, SalesforceConnection
from integrations.salesforce.client import SalesforceClient, SalesforceRejectedError

# Describe keeps only what staff and the sync use of each field.
_KEPT = (
    "name",
    "label",
    "type",
    "length",
    "updateable",
    "custom",
    "referenceTo",
    "relationshipName",
    "polymorphicForeignKey",
    "compoundFieldName",
    "picklistValues",
    "nillable",
    "filterable",
)


@dataclass(frozen=True)
class ObjectSchema:
    name: str
    # Lower-cased name -> the field's describe.
    fields: dict[str, dict[str, Any]]
    # The first three characters of every Id of the object; "" if unknown.
    key_prefix: str = ""

    def canonical(self, field_name: str) -> str | None:
        """Return the field's name in describe's casing, or None if not visible."""
        described = self.fields.get(field_name.lower())
        return described["name"] if described else None

    def type_of(self, field_name: str) -> str:
        return self.fields[field_name.lower()]["type"]


def picklist_values(described: dict[str, Any]) -> list[str]:
    """Return the active values of a picklist field's describe, in its order;
    none for a field of any other type."""
    if described.get("type") not in ("picklist", "multipicklist"):
        return []
    return [
        entry["value"]
        for entry in described.get("picklistValues") or []
        if isinstance(entry, dict) and entry.get("active", True)
    ]


class RunSchema:
    """Describe each object once per run, and remember what was seen.

    Describe lists only the fields the connected user's field-level security
    allows, so this is also the list of fields a query may name.
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
    """

    def __init__(self, *, client: SalesforceClient, connection: SalesforceConnection):
        self._client = client
        self._connection = connection
        self._cache: dict[str, ObjectSchema] = {}

    def describe(self, object_name: str, *, fresh: bool = False) -> ObjectSchema:
        key = object_name.lower()
        if fresh or key not in self._cache:
            self.prime(object_name, body=self._client.describe(object_name=object_name))
        return self._cache[key]

    def prime(self, object_name: str, *, body: Any) -> ObjectSchema:
        """Take a describe answer obtained elsewhere (inside a Composite
        request) as this run's describe of the object, and store it.

        Raises SalesforceRejectedError, storing nothing, for an answer that
        is not a describe of that object: the describe stored by an earlier
        run stays for the next run's guesses.
        """
        described = body.get("fields") if isinstance(body, dict) else None
        name = (body.get("name") or object_name) if isinstance(body, dict) else None
        if (
            not isinstance(described, list)
            or not described
            or not isinstance(name, str)
            or name.lower() != object_name.lower()
        ):
            raise SalesforceRejectedError(
                f"Salesforce answered the describe of {object_name} with something "
                "other than its fields."
            )
        fields = [
            {k: f[k] for k in _KEPT if k in f}
            for f in described
            if isinstance(f, dict) and isinstance(f.get("name"), str)
        ]
        ObjectDescribe.objects.update_or_create(
            connection=self._connection,
            object_name=name,
            defaults={"fields": fields, "described_at": timezone.now()},
        )
        schema = _object_schema(name, fields, key_prefix=body.get("keyPrefix"))
        self._cache[object_name.lower()] = schema
        return schema


class StoredSchema:
    """What describe said of each object in earlier runs; asks Salesforce nothing.

    Good for guessing this run's queries ahead of its describes: a guess
    must be checked against what describe says now.
    """

    def __init__(self, *, connection: SalesforceConnection):
        self._schemas = {
            stored.object_name.lower(): _object_schema(
                stored.object_name, stored.fields
            )
            for stored in ObjectDescribe.objects.filter(connection=connection)
        }

    def has(self, object_name: str) -> bool:
        return object_name.lower() in self._schemas

    def describe(self, object_name: str, *, fresh: bool = False) -> ObjectSchema:
        if fresh:
            raise ValueError("A stored describe is never fresh.")
        return self._schemas[object_name.lower()]


def _object_schema(
    name: str, fields: list[dict[str, Any]], *, key_prefix: Any = ""
) -> ObjectSchema:
    if not (isinstance(key_prefix, str) and len(key_prefix) == 3):
        key_prefix = ""
    return ObjectSchema(
        name=name,
        fields={f["name"].lower(): f for f in fields},
        key_prefix=key_prefix,
    )


# Types whose values typed_value converts; any other type's text stays text.
_CONVERTED = frozenset(
    {
        "boolean",
        "int",
        "double",
        "currency",
        "percent",
        "date",
        "datetime",
        "multipicklist",
    }
)


def typed_value(field_type: str, value: Any) -> Any:
    """Return a Salesforce value as JSON can hold it, by its describe type.

    Raises ValueError for a value that does not fit its type.
    https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/field_types.htm
    """
    if value is None:
        return None
    if type(value) is str and field_type not in _CONVERTED:
        # Most values of most records: text that stays text.
        return value
    if field_type == "boolean":
        if isinstance(value, bool):
            return value
        raise ValueError(f"{value!r} is not a boolean")
    if field_type == "int":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{value!r} is not a whole number")
        try:
            number = Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError(f"{value!r} is not a whole number") from exc
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError(f"{value!r} is not a whole number")
        return int(number)
    if field_type in ("double", "currency", "percent"):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{value!r} is not a number")
        try:
            number = Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError(f"{value!r} is not a number") from exc
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a number")
        return int(number) if number == number.to_integral_value() else float(number)
    if field_type == "date":
        return date.fromisoformat(str(value)[:10]).isoformat()
    if field_type == "datetime":
        moment = parse_datetime(str(value).replace("+0000", "+00:00"))
        if moment is None or moment.tzinfo is None:
            raise ValueError(f"{value!r} is not a date and time")
        return moment.astimezone(UTC).isoformat()
    if field_type == "multipicklist":
        return [part for part in str(value).split(";") if part]
    if isinstance(value, dict | list):
        # Compound fields (addresses, locations) arrive as objects over REST.
        return value
    return str(value)
