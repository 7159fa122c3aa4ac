"""Build the offline org's schema and load the sample org into a store.

The sample org is the union of the sObject tree files under
data/sample-org/, one folder per source. References (`"@AccountRef1"`)
resolve to the Id of the record with that referenceId in the same folder.

https://developer.salesforce.com/docs/atlas.en-us.sfdx_cli_reference.meta/sfdx_cli_reference/cli_reference_data_commands_unified.htm
"""

from __future__ import annotations

import functools
import json
import logging
import pickle
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from integrations.salesforce.emulator.objects import (
    EXTRA_FIELDS,
    GENERATED_OBJECTS,
    RECORDED_OBJECTS,
    ObjectSpec,
)
from integrations.salesforce.emulator.schema import (
    Schema,
    SObjectType,
    add_picklist_values,
    build_field,
    build_object,
    infer_field,
    load_recorded,
)
from integrations.salesforce.emulator.store import SAMPLE_EPOCH, Clock, Store

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).parent / "data"


@dataclass(frozen=True)
class SampleUser:
    first_name: str
    last_name: str
    title: str

    @property
    def login(self) -> str:
        return f"{self.first_name}.{self.last_name}".lower()


# Invented people; the first is the admin who connects the org.
SAMPLE_USERS = (
    SampleUser("Ada", "Admin", "Salesforce Administrator"),
    SampleUser("Ben", "Carter", "Account Executive"),
    SampleUser("Chloe", "Diaz", "Sales Representative"),
    SampleUser("Dan", "Evans", "Sales Development Representative"),
)
USERNAME_DOMAIN = "offline-org.example.com"

# The org's name, as Setup's Company Information shows it.
SAMPLE_ORG_NAME = "Offline Sample Org"
EMPTY_ORG_NAME = "Offline Org"


def new_store(
    *, data_dir: Path, load_sample: bool, clock: Clock, lock: threading.RLock
) -> Store:
    """Return a store holding the sample org, or only its users, and its schema.

    The shipped data is loaded once per process and each store starts from
    a copy: tests make hundreds of orgs.
    """
    if data_dir != DATA_DIR:
        store = Store(schema=build_schema(data_dir=data_dir), clock=clock, lock=lock)
        _load(store, data_dir=data_dir, load_sample=load_sample)
        return store
    schema_blob, template = _shipped_org(load_sample)
    store = Store(schema=pickle.loads(schema_blob), clock=clock, lock=lock)
    store.copy_records(template)
    return store


@functools.cache
def _shipped_org(load_sample: bool) -> tuple[bytes, Store]:
    store = Store(
        schema=build_schema(data_dir=DATA_DIR),
        clock=lambda: SAMPLE_EPOCH,
        lock=threading.RLock(),
    )
    _load(store, data_dir=DATA_DIR, load_sample=load_sample)
    return pickle.dumps(store.schema), store


def _load(store: Store, *, data_dir: Path, load_sample: bool) -> None:
    if load_sample:
        load_sample_org(store, data_dir=data_dir)
    else:
        load_users(store)
    load_organization(store, name=SAMPLE_ORG_NAME if load_sample else EMPTY_ORG_NAME)


def build_schema(*, data_dir: Path = DATA_DIR) -> Schema:
    """Return the schema before any data: recorded and generated objects."""
    schema = Schema()
    for name in RECORDED_OBJECTS:
        schema.add(load_recorded(data_dir / "describe" / f"{name}.json"))
    for spec in GENERATED_OBJECTS:
        schema.add(build_object(spec))
    for name, specs in EXTRA_FIELDS.items():
        for spec in specs:
            schema.get(name).add_field(build_field(spec))
    schema.link_child_relationships()
    return schema


def load_users(store: Store) -> list[str]:
    """Create the sample users and make the first the acting admin."""
    user_ids = []
    for user in SAMPLE_USERS:
        user_id = store.load(
            "User",
            {
                "Username": f"{user.login}@{USERNAME_DOMAIN}",
                "FirstName": user.first_name,
                "LastName": user.last_name,
                "Alias": (user.first_name[0] + user.last_name)[:8].lower(),
                "Email": f"{user.login}@example.com",
                "IsActive": True,
                "Title": user.title,
                "CompanyName": "Offline Org",
                "TimeZoneSidKey": "Europe/London",
                "UserType": "Standard",
            },
        )
        if store.acting_user_id is None:
            store.acting_user_id = user_id
        user_ids.append(user_id)

    # The admin existed before anyone could be recorded as its creator.
    with store.lock:
        _, admin = store.lookup(user_ids[0])
        admin["CreatedById"] = admin["LastModifiedById"] = user_ids[0]
    return user_ids


def load_organization(store: Store, *, name: str) -> str:
    """Create the org's own record and return its Id, which is the org's Id.

    Every org has exactly one; the admin, loaded first, made it.
    """
    return store.load(
        "Organization",
        {
            "Name": name,
            "OrganizationType": "Developer Edition",
            "IsSandbox": False,
            "InstanceName": "OFF1",
            "Country": "United Kingdom",
            "TimeZoneSidKey": "Europe/London",
        },
    )


def organization_id(store: Store) -> str:
    """Return the Id of the org's own record: the org's Id."""
    with store.lock:
        return store.rows("Organization")[0]["Id"]


def load_sample_org(store: Store, *, data_dir: Path = DATA_DIR) -> None:
    """Load every tree folder under data/sample-org/, in name order."""
    owners = load_users(store)
    loader = _TreeLoader(store=store, owners=owners)
    for folder in sorted((data_dir / "sample-org").iterdir()):
        if folder.is_dir():
            loader.load_folder(folder)
    loader.finish()


# ---------------------------------------------------------------- Tree files


@dataclass
class _TreeRecord:
    sobject: str
    reference_id: str | None
    fields: dict[str, Any]
    # (field, referenceId of the parent) for a child nested under a parent.
    parent_link: tuple[str, str] | None = None


@dataclass
class _TreeLoader:
    store: Store
    owners: list[str]
    owned: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    values_seen: dict[tuple[str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )

    def load_folder(self, folder: Path) -> None:
        records = list(self._read_folder(folder))
        types_by_reference = {
            record.reference_id: record.sobject
            for record in records
            if record.reference_id
        }
        self._prepare_schema(records, types_by_reference)

        ids_by_reference: dict[str, str] = {}
        pending: list[tuple[str, str, str]] = []
        for record in records:
            record_id = self._insert(record, ids_by_reference, pending)
            if record.reference_id:
                ids_by_reference[record.reference_id] = record_id

        # References may point forward, so they are set once all exist.
        with self.store.lock:
            for record_id, name, reference in pending:
                target = ids_by_reference.get(reference)
                if target is None:
                    logger.warning(
                        "Dangling reference set to null: folder=%s record=%s "
                        "field=%s reference=%s",
                        folder.name,
                        record_id,
                        name,
                        reference,
                    )
                _, live = self.store.lookup(record_id)
                live[name] = target

    def finish(self) -> None:
        """Offer the values the data uses in the picklists generated here."""
        recorded = set(RECORDED_OBJECTS)
        extra = {
            (name, spec.name) for name, specs in EXTRA_FIELDS.items() for spec in specs
        }
        for (sobject, name), values in self.values_seen.items():
            if sobject in recorded and (sobject, name) not in extra:
                continue
            field_describe = self.store.schema.get(sobject).field(name)
            if field_describe["type"] in {"picklist", "multipicklist"}:
                add_picklist_values(field_describe, sorted(values))

    def _read_folder(self, folder: Path) -> Iterator[_TreeRecord]:
        for path in sorted(folder.glob("*.json")):
            document = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(document, dict) or "records" not in document:
                continue  # an import plan, not records
            for raw in document["records"]:
                yield from self._flatten(raw, parent=None)

    def _flatten(
        self, raw: dict[str, Any], *, parent: tuple[str, str] | None
    ) -> Iterator[_TreeRecord]:
        attributes = raw.get("attributes", {})
        sobject = attributes["type"]
        reference_id = attributes.get("referenceId")
        fields, children = {}, []
        for name, value in raw.items():
            if name == "attributes":
                continue
            if isinstance(value, dict) and "records" in value:
                children.append((name, value["records"]))
            else:
                fields[name] = value
        yield _TreeRecord(sobject, reference_id, fields, parent)

        for relationship, child_records in children:
            link = self._child_field(sobject, relationship)
            for child in child_records:
                yield from self._flatten(child, parent=(link, reference_id))

    def _child_field(self, sobject: str, relationship: str) -> str:
        sobject_type = self.store.schema.get(sobject)
        for child in sobject_type.describe.get("childRelationships", []):
            if (child["relationshipName"] or "").lower() == relationship.lower():
                return child["field"]
        raise ValueError(f"{sobject} has no child relationship {relationship}")

    def _prepare_schema(
        self, records: list[_TreeRecord], types_by_reference: dict[str, str]
    ) -> None:
        """Add any object or field the data has and the schema lacks."""
        schema = self.store.schema
        values: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for record in records:
            if schema.get(record.sobject) is None:
                schema.add(_inferred_object(record.sobject, schema))
            for name, value in record.fields.items():
                values[(record.sobject, name)].append(value)

        for (sobject, name), seen in values.items():
            sobject_type = schema.get(sobject)
            if sobject_type.field(name) is not None:
                continue
            targets = {
                types_by_reference.get(value[1:])
                for value in seen
                if isinstance(value, str) and value.startswith("@")
            }
            target = next(iter(targets - {None}), None)
            logger.debug("Field inferred from data: object=%s field=%s", sobject, name)
            sobject_type.add_field(infer_field(name, seen, reference_to=target))

    def _insert(
        self,
        record: _TreeRecord,
        ids_by_reference: dict[str, str],
        pending: list[tuple[str, str, str]],
    ) -> str:
        sobject_type = self.store.schema.get(record.sobject)
        fields: dict[str, Any] = {}
        references: list[tuple[str, str]] = []
        for name, value in record.fields.items():
            canonical = sobject_type.field(name)["name"]
            if isinstance(value, str) and value.startswith("@"):
                references.append((canonical, value[1:]))
            else:
                fields[canonical] = value
                if isinstance(value, str):
                    self.values_seen[(sobject_type.name, canonical)].add(value)
        if record.parent_link is not None:
            link, parent_reference = record.parent_link
            fields[link] = ids_by_reference[parent_reference]
        if sobject_type.field("OwnerId") is not None and "OwnerId" not in fields:
            index = self.owned[sobject_type.name]
            self.owned[sobject_type.name] += 1
            fields["OwnerId"] = self.owners[index % len(self.owners)]

        record_id = self.store.load(sobject_type.name, fields)
        pending.extend((record_id, name, ref) for name, ref in references)
        return record_id


def _inferred_object(name: str, schema: Schema) -> SObjectType:
    custom = name.endswith("__c")
    label = name.removesuffix("__c").replace("_", " ")
    spec = ObjectSpec(name, label, label + "s", _free_key_prefix(name, schema))
    sobject = build_object(spec)
    sobject.describe["custom"] = custom
    return sobject


def _free_key_prefix(name: str, schema: Schema) -> str:
    """Pick a custom-object key prefix from the name, the same every time."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    choices = len(alphabet) ** 2
    start = int.from_bytes(name.lower().encode()) % choices
    for step in range(choices):
        high, low = divmod((start + step) % choices, len(alphabet))
        prefix = "a" + alphabet[high] + alphabet[low]
        # a0X is where the known custom objects live (objects.py).
        if high != 0 and schema.by_key_prefix(prefix) is None:
            return prefix
    raise ValueError("no key prefix left for custom objects")
