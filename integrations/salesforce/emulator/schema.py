"""The offline org's objects and fields, in Salesforce's describe shape.

Objects with a recorded describe (data/describe/) keep it as recorded; the
others get a describe generated from the field specs in `objects.py`, and
every field found in the loaded data but missing from both is added from
its values, so that no loaded value is out of reach of a query.

https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from integrations.salesforce.emulator.objects import (
    NAME_OBJECT_FIELDS,
    SYSTEM_FIELD_NAMES,
    FieldSpec,
    ObjectSpec,
)

BASE = "__BASE__"
VERSION = "__VERSION__"

_RECORDED_HOST = re.compile(r"https://[A-Za-z0-9.-]+\.salesforce\.com")
_RECORDED_VERSION = re.compile(r"/services/data/v[^/]+/")

TEXT_TYPES = {
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
NUMBER_TYPES = {"int", "double", "currency", "percent"}
COMPOUND_TYPES = {"address", "location"}

_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "time": "xsd:time",
    "address": "urn:address",
    "location": "urn:location",
}

# The keys a global describe lists for each object.
_GLOBAL_KEYS = (
    "activateable",
    "associateEntityType",
    "associateParentEntity",
    "createable",
    "custom",
    "customSetting",
    "deepCloneable",
    "deletable",
    "deprecatedAndHidden",
    "feedEnabled",
    "hasSubtypes",
    "isInterface",
    "isSubtype",
    "keyPrefix",
    "label",
    "labelPlural",
    "layoutable",
    "mergeable",
    "mruEnabled",
    "name",
    "queryable",
    "replicateable",
    "retrieveable",
    "searchable",
    "triggerable",
    "undeletable",
    "updateable",
)
_GLOBAL_URL_KEYS = (
    "compactLayouts",
    "rowTemplate",
    "approvalLayouts",
    "listviews",
    "describe",
    "quickActions",
    "layouts",
    "sobject",
)


@dataclass
class SObjectType:
    """One object: its describe template and its fields by lower-case name."""

    describe: dict[str, Any]
    # The display format of an auto-number Name ("GR-{0000}"); a describe
    # does not carry it.
    auto_number_format: str | None = None
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    relationships: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for field_describe in self.describe["fields"]:
            self._index(field_describe)

    @property
    def name(self) -> str:
        return self.describe["name"]

    @property
    def key_prefix(self) -> str:
        return self.describe["keyPrefix"]

    def field(self, name: str) -> dict[str, Any] | None:
        return self.fields.get(name.lower())

    def parent_relationship(self, name: str) -> dict[str, Any] | None:
        """Return the reference field whose relationship is called `name`."""
        return self.relationships.get(name.lower())

    def add_field(self, field_describe: dict[str, Any]) -> None:
        self.describe["fields"].append(field_describe)
        self._index(field_describe)

    def compound_parts(self, name: str) -> list[dict[str, Any]]:
        return [
            part
            for part in self.describe["fields"]
            if part["compoundFieldName"] == name and part["name"] != name
        ]

    def _index(self, field_describe: dict[str, Any]) -> None:
        self.fields[field_describe["name"].lower()] = field_describe
        relationship = field_describe.get("relationshipName")
        if field_describe["type"] == "reference" and relationship:
            self.relationships[relationship.lower()] = field_describe


class Schema:
    """Every object of the org, found by name in any case."""

    def __init__(self) -> None:
        self._objects: dict[str, SObjectType] = {}

    def __iter__(self) -> Iterator[SObjectType]:
        return iter(sorted(self._objects.values(), key=lambda sobject: sobject.name))

    def get(self, name: str) -> SObjectType | None:
        return self._objects.get(name.lower())

    def add(self, sobject: SObjectType) -> None:
        self._objects[sobject.name.lower()] = sobject

    def remove(self, name: str) -> None:
        """Drop an object, as an admin deleting a custom object does."""
        del self._objects[name.lower()]

    def by_key_prefix(self, prefix: str) -> SObjectType | None:
        for sobject in self._objects.values():
            if sobject.key_prefix == prefix:
                return sobject
        return None

    def link_child_relationships(self) -> None:
        """List each custom lookup under the object it points to."""
        for child in self:
            for reference in child.describe["fields"]:
                if reference["type"] != "reference" or not reference["custom"]:
                    continue
                for target_name in reference["referenceTo"]:
                    target = self.get(target_name)
                    if target is not None:
                        _add_child_relationship(target, child, reference)


def _add_child_relationship(
    parent: SObjectType, child: SObjectType, reference: dict[str, Any]
) -> None:
    listed = parent.describe.setdefault("childRelationships", [])
    if any(
        item["childSObject"] == child.name and item["field"] == reference["name"]
        for item in listed
    ):
        return
    listed.append(
        {
            "cascadeDelete": reference["cascadeDelete"],
            "childSObject": child.name,
            "deprecatedAndHidden": False,
            "field": reference["name"],
            "junctionIdListNames": [],
            "junctionReferenceTo": [],
            "relationshipName": _plural(child.name.removesuffix("__c")) + "__r",
            "restrictedDelete": False,
        }
    )


def _plural(name: str) -> str:
    return name[:-1] + "ies" if name.endswith("y") else name + "s"


# ---------------------------------------------------------------- Recorded


def load_recorded(path: Path) -> SObjectType:
    """Load a recorded describe, with its hosts and versions made neutral."""
    describe = json.loads(path.read_text(encoding="utf-8"))
    fields = describe.pop("fields")
    neutral = _neutralise(describe)
    neutral["fields"] = fields
    return SObjectType(neutral)


def _neutralise(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _neutralise(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_neutralise(item) for item in value]
    if isinstance(value, str):
        value = _RECORDED_HOST.sub(BASE, value)
        return _RECORDED_VERSION.sub(f"/services/data/v{VERSION}/", value)
    return value


# ---------------------------------------------------------------- Generated


def build_object(spec: ObjectSpec) -> SObjectType:
    """Build the describe of an object from its spec."""
    custom = spec.name.endswith("__c")
    root = f"/services/data/v{VERSION}/sobjects/{spec.name}"
    urls = {
        "compactLayouts": f"{root}/describe/compactLayouts",
        "rowTemplate": f"{root}/{{ID}}",
        "approvalLayouts": f"{root}/describe/approvalLayouts",
        "uiDetailTemplate": f"{BASE}/{{ID}}",
        "uiEditTemplate": f"{BASE}/{{ID}}/e",
        "describe": f"{root}/describe",
        "uiNewRecord": f"{BASE}/{spec.key_prefix}/e",
        "quickActions": f"{root}/quickActions",
        "layouts": f"{root}/describe/layouts",
        "sobject": root,
    }
    describe: dict[str, Any] = {
        "actionOverrides": [],
        "activateable": False,
        "associateEntityType": None,
        "associateParentEntity": None,
        "childRelationships": [],
        "compactLayoutable": True,
        "createable": spec.createable,
        "custom": custom,
        "customSetting": False,
        "deepCloneable": False,
        "defaultImplementation": None,
        "deletable": spec.deletable,
        "deprecatedAndHidden": False,
        "extendedBy": None,
        "extendsInterfaces": None,
        "feedEnabled": False,
        "fields": [],
        "hasSubtypes": False,
        "implementedBy": None,
        "implementsInterfaces": None,
        "isInterface": False,
        "isSubtype": False,
        "keyPrefix": spec.key_prefix,
        "label": spec.label,
        "labelPlural": spec.label_plural,
        "layoutable": True,
        "listviewable": None,
        "lookupLayoutable": None,
        "mergeable": False,
        "mruEnabled": True,
        "name": spec.name,
        "namedLayoutInfos": [],
        "networkScopeFieldName": None,
        "queryable": True,
        "recordTypeInfos": [],
        "replicateable": True,
        "retrieveable": True,
        "searchLayoutable": True,
        "searchable": True,
        "sobjectDescribeOption": "FULL",
        "supportedScopes": [],
        "triggerable": True,
        "undeletable": spec.deletable,
        "updateable": True,
        "urls": urls,
    }
    auto_number = spec.name_field.auto_number if spec.name_field else None
    sobject = SObjectType(describe, auto_number_format=auto_number)
    for field_spec in spec.all_fields():
        sobject.add_field(build_field(field_spec))
    return sobject


def name_object() -> SObjectType:
    """Build the Name object, which polymorphic lookups are read through."""
    return SObjectType(
        {
            "name": "Name",
            "keyPrefix": None,
            "fields": [build_field(spec) for spec in NAME_OBJECT_FIELDS],
        }
    )


def build_field(spec: FieldSpec) -> dict[str, Any]:
    """Build one field's describe, with every key a real describe carries."""
    kind = spec.type
    custom = spec.name.endswith(("__c", "__s"))
    system = spec.name in SYSTEM_FIELD_NAMES
    long_text = kind == "textarea" and spec.length > 255
    length = spec.length if kind in TEXT_TYPES else 0
    if kind in {"id", "reference"}:
        length = 18
    return {
        "aggregatable": kind not in COMPOUND_TYPES and not long_text,
        "aiPredictionField": False,
        "autoNumber": spec.auto_number is not None,
        "byteLength": length * 3 if kind in TEXT_TYPES else length,
        "calculated": spec.calculated,
        "calculatedFormula": None,
        "cascadeDelete": spec.master_detail,
        "caseSensitive": False,
        "compoundFieldName": spec.compound,
        "controllerName": None,
        "createable": spec.writable and not system and spec.auto_number is None,
        "custom": custom,
        "defaultValue": False if kind == "boolean" else None,
        "defaultValueFormula": None,
        "defaultedOnCreate": system or kind == "boolean" or spec.name == "OwnerId",
        "dependentPicklist": False,
        "deprecatedAndHidden": False,
        "digits": 9 if kind == "int" else 0,
        "displayLocationInDecimal": kind == "location",
        "encrypted": False,
        "externalId": spec.external_id,
        "extraTypeInfo": "plaintextarea" if kind == "textarea" else None,
        "filterable": kind not in COMPOUND_TYPES and not long_text,
        "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": False,
        "groupable": kind not in {"double", "currency", "percent", "datetime"}
        and kind not in COMPOUND_TYPES
        and kind != "textarea",
        "highScaleNumber": False,
        "htmlFormatted": False,
        "idLookup": kind == "id" or spec.external_id or spec.name == "Name",
        "inlineHelpText": None,
        "label": spec.label or _label(spec.name),
        "length": length,
        "mask": None,
        "maskType": None,
        "name": spec.name,
        "nameField": spec.name == "Name",
        "namePointing": False,
        "nillable": spec.nillable and kind != "boolean" and not system,
        "permissionable": not system and spec.nillable,
        "picklistValues": [_picklist_value(value) for value in spec.picklist],
        "polymorphicForeignKey": len(spec.reference_to) > 1,
        "precision": spec.precision if kind in {"double", "currency", "percent"} else 0,
        "queryByDistance": False,
        "referenceTargetField": None,
        "referenceTo": list(spec.reference_to),
        "relationshipName": spec.relationship_name,
        "relationshipOrder": (0 if spec.master_detail else None),
        "restrictedDelete": False,
        "restrictedPicklist": spec.restricted,
        "scale": spec.scale if kind in {"double", "currency", "percent"} else 0,
        "searchPrefilterable": kind == "reference",
        "soapType": _SOAP_TYPES.get(kind, "xsd:string"),
        "sortable": kind not in {"multipicklist", *COMPOUND_TYPES} and not long_text,
        "type": kind,
        "unique": spec.unique,
        "updateable": spec.writable and not system and spec.auto_number is None,
        "writeRequiresMasterRead": False,
    }


def _picklist_value(value: str) -> dict[str, Any]:
    return {
        "active": True,
        "defaultValue": False,
        "label": value,
        "validFor": None,
        "value": value,
    }


def _label(name: str) -> str:
    base = name.removesuffix("__c").removesuffix("__s").removesuffix("Id")
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base.replace("_", " "))
    return spaced.strip() or name


def add_picklist_values(field_describe: dict[str, Any], values: Iterable[str]) -> None:
    """Offer every value the data uses, for picklists generated here."""
    known = {item["value"] for item in field_describe["picklistValues"]}
    for value in values:
        parts = (
            value.split(";") if field_describe["type"] == "multipicklist" else [value]
        )
        for part in parts:
            if part and part not in known:
                known.add(part)
                field_describe["picklistValues"].append(_picklist_value(part))


# ---------------------------------------------------------------- Inferred

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_TIME_RE = re.compile(r"\d{2}:\d{2}:\d{2}(\.\d+)?Z?")


def infer_field(
    name: str, values: Iterable[Any], *, reference_to: str | None = None
) -> dict[str, Any]:
    """Guess a field's describe from the values the data gives it."""
    seen = [value for value in values if value is not None]
    if reference_to is not None:
        relationship = name.removesuffix("Id") if not name.endswith("__c") else None
        relationship = relationship or name.removesuffix("__c") + "__r"
        return build_field(
            FieldSpec(
                name,
                "reference",
                reference_to=(reference_to,),
                relationship_name=relationship,
            )
        )
    if seen and all(isinstance(value, bool) for value in seen):
        return build_field(FieldSpec(name, "boolean"))
    if seen and all(isinstance(value, int | float) for value in seen):
        return build_field(FieldSpec(name, "double", precision=18, scale=2))
    texts = [str(value) for value in seen]
    if texts and all(_DATETIME_RE.match(text) for text in texts):
        return build_field(FieldSpec(name, "datetime"))
    if texts and all(_DATE_RE.fullmatch(text) for text in texts):
        return build_field(FieldSpec(name, "date"))
    if texts and all(_TIME_RE.fullmatch(text) for text in texts):
        return build_field(FieldSpec(name, "time"))
    longest = max((len(text) for text in texts), default=0)
    if longest > 255:
        return build_field(FieldSpec(name, "textarea", length=32768))
    return build_field(FieldSpec(name, "string", length=255))


# ---------------------------------------------------------------- Rendering


def render_describe(
    sobject: SObjectType,
    *,
    base_url: str,
    version: str,
    is_visible: Callable[[str], bool],
) -> dict[str, Any]:
    """Return the describe a user sees: only the fields visible to them."""
    head = {key: value for key, value in sobject.describe.items() if key != "fields"}
    rendered = _relocate(copy.deepcopy(head), base_url=base_url, version=version)
    rendered["fields"] = [
        field_describe
        for field_describe in sobject.describe["fields"]
        if is_visible(field_describe["name"])
    ]
    return dict(sorted(rendered.items()))


def render_global_entry(
    sobject: SObjectType, *, base_url: str, version: str
) -> dict[str, Any]:
    describe = sobject.describe
    entry = {key: describe.get(key) for key in _GLOBAL_KEYS}
    urls = describe.get("urls", {})
    entry["urls"] = {key: urls[key] for key in _GLOBAL_URL_KEYS if key in urls}
    return _relocate(entry, base_url=base_url, version=version)


def _relocate(value: Any, *, base_url: str, version: str) -> Any:
    if isinstance(value, dict):
        return {
            key: _relocate(item, base_url=base_url, version=version)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_relocate(item, base_url=base_url, version=version) for item in value]
    if isinstance(value, str):
        return value.replace(BASE, base_url).replace(VERSION, version)
    return value


# ---------------------------------------------------------------- Values


def coerce(field_describe: dict[str, Any], value: Any) -> Any:
    """Turn a value from a data file or a caller into the field's type.

    Raise ValueError when the value cannot be one of that type.
    """
    # Salesforce keeps no empty strings: an empty value is null.
    if value is None or value == "":
        return None
    kind = field_describe["type"]
    if kind == "boolean":
        if isinstance(value, str):
            if value.lower() not in {"true", "false"}:
                raise ValueError(f"not a boolean: {value!r}")
            return value.lower() == "true"
        return bool(value)
    if kind == "int":
        return int(value)
    if kind in NUMBER_TYPES:
        return float(value)
    if kind == "date":
        if isinstance(value, datetime):
            return value.astimezone(UTC).date()
        if isinstance(value, date):
            return value
        return date.fromisoformat(str(value)[:10])
    if kind == "datetime":
        return parse_datetime(value)
    if kind == "time":
        return _time(str(value))
    if kind == "multipicklist" and isinstance(value, list | tuple | set | frozenset):
        return ";".join(value)
    return str(value)


# A time of day as the REST API takes it: HH:MM[:SS[.sss]], in UTC.
_TIME = re.compile(
    r"(?P<hm>(?:[01]\d|2[0-3]):[0-5]\d)(?::(?P<s>[0-5]\d)(?:\.(?P<ms>\d{1,3}))?)?Z?"
)


def _time(text: str) -> str:
    """Return a time of day as Salesforce writes it back: 10:30:00.000Z."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"not a time of day: {text!r}")
    seconds = match["s"] or "00"
    milliseconds = (match["ms"] or "").ljust(3, "0")
    return f"{match['hm']}:{seconds}.{milliseconds}Z"


def parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes must be timezone-aware")
        stamp = value.astimezone(UTC)
    else:
        text = str(value).replace("Z", "+00:00")
        text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
        stamp = datetime.fromisoformat(text)
        stamp = stamp.astimezone(UTC) if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    # Salesforce keeps datetimes to the millisecond.
    return stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)


def serialise(field_describe: dict[str, Any], value: Any) -> Any:
    """Write a stored value the way the REST API writes it in JSON."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if field_describe["type"] == "int" and isinstance(value, float):
        return int(value)
    return value


def format_datetime(value: datetime) -> str:
    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_valid_date_formats.htm
    text = value.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "+0000"
