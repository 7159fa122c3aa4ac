"""The offline org's records, in memory, behind one lock.

Records are plain dicts keyed by each field's canonical name; a field that
was never set is simply absent and reads as null. Every method takes the
org's lock, so tests may change records while a threaded server answers.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.salesforce.emulator import ids
from integrations.salesforce.emulator.objects import (
    PERSON_NAMED_OBJECTS,
    SYSTEM_FIELD_NAMES,
)
from integrations.salesforce.emulator.schema import (
    Schema,
    SObjectType,
    coerce,
    parse_datetime,
)

Clock = Callable[[], datetime]

# Loaded records were created and last changed during the year before this
# instant: the same data gives the same timestamps every time.
SAMPLE_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
_YEAR_SECONDS = 365 * 24 * 3600


class UnknownRecord(KeyError):
    """No record has that Id."""


class Store:
    def __init__(self, *, schema: Schema, clock: Clock, lock: threading.RLock) -> None:
        self.schema = schema
        self.clock = clock
        self.lock = lock
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._by_id: dict[str, tuple[str, dict[str, Any]]] = {}
        self._sequences: dict[str, int] = {}
        # Who creates and owns records when nobody says: the org's admin.
        self.acting_user_id: str | None = None
        # The delete log getDeleted reads: Id -> (object, when deleted). It
        # outlives the recycle bin until purged.
        self.delete_log: dict[str, tuple[str, datetime]] = {}
        # Per object, the instant before which the delete log was purged.
        self.delete_log_purged_at: dict[str, datetime] = {}

    def copy_records(self, other: Store) -> None:
        """Replace this store's records with copies of another's."""
        with self.lock:
            self._rows = {
                name: [dict(record) for record in rows]
                for name, rows in other._rows.items()
            }
            self._by_id = {
                record["Id"]: (name, record)
                for name, rows in self._rows.items()
                for record in rows
            }
            self._sequences = dict(other._sequences)
            self.acting_user_id = other.acting_user_id
            self.delete_log = dict(other.delete_log)
            self.delete_log_purged_at = dict(other.delete_log_purged_at)

    # ------------------------------------------------------------ Reading

    def records(
        self, sobject: str, *, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """Return copies of an object's records, oldest first."""
        with self.lock:
            return [
                dict(record)
                for record in self.rows(sobject)
                if include_deleted or not record.get("IsDeleted")
            ]

    def get(self, record_id: str) -> dict[str, Any] | None:
        """Return a copy of the record with that Id (15 or 18 characters)."""
        with self.lock:
            found = self.lookup(record_id)
            return None if found is None else dict(found[1])

    def count(self, sobject: str, *, include_deleted: bool = False) -> int:
        with self.lock:
            return sum(
                1
                for record in self.rows(sobject)
                if include_deleted or not record.get("IsDeleted")
            )

    def rows(self, sobject: str) -> list[dict[str, Any]]:
        """Return the live list of an object's records; hold the lock."""
        return self._rows.get(self._type(sobject).name, [])

    def lookup(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        """Return (object name, live record); hold the lock."""
        canonical = ids.to_18(record_id)
        return None if canonical is None else self._by_id.get(canonical)

    # ------------------------------------------------------------ Writing

    def insert(self, sobject: str, fields: Mapping[str, Any]) -> str:
        """Create a record now and return its Id.

        Salesforce's own fields (Id, audit fields, IsDeleted) are set here.
        """
        with self.lock:
            return self._add(sobject, fields, stamps=None)

    def load(self, sobject: str, fields: Mapping[str, Any]) -> str:
        """Create a record as if imported before SAMPLE_EPOCH.

        Its audit timestamps depend on its Id alone.
        """
        with self.lock:
            return self._add(sobject, fields, stamps=_sample_stamps)

    def load_many(self, sobject: str, rows: Iterable[dict[str, Any]]) -> list[str]:
        """Create many records as `load` does, and return their Ids.

        For generated data, and fast: each row must already use canonical
        field names and values of the field's type, as nothing is checked.
        The rows become the stored records.
        """
        with self.lock:
            sobject_type = self._type(sobject)
            defaults: dict[str, Any] = {
                field_describe["name"]: False
                for field_describe in sobject_type.describe["fields"]
                if field_describe["type"] == "boolean"
            }
            owned = [
                name
                for name in ("OwnerId", "CreatedById", "LastModifiedById")
                if sobject_type.field(name) is not None
            ]
            is_person = sobject_type.name in PERSON_NAMED_OBJECTS
            prefix = sobject_type.key_prefix
            sequence = self._sequences.get(prefix, 0)
            table = self._rows.setdefault(sobject_type.name, [])

            created = []
            for row in rows:
                sequence += 1
                record_id = ids.make_id(prefix, sequence)
                record = {"Id": record_id, **defaults, **row}
                for name in owned:
                    if record.get(name) is None:
                        record[name] = self.acting_user_id
                if is_person:
                    self._derive(sobject_type, record)
                stamps = _sample_stamps(record_id)
                record["CreatedDate"], record["LastModifiedDate"] = stamps[:2]
                record["SystemModstamp"] = stamps[2]
                table.append(record)
                self._by_id[record_id] = (sobject_type.name, record)
                created.append(record_id)
            self._sequences[prefix] = sequence
            return created

    def update(self, record_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Change fields as a user would and return a copy of the record.

        LastModifiedDate and SystemModstamp move to the clock's time.
        """
        with self.lock:
            sobject_type, record = self._live(record_id)
            changes = {}
            for name, value in fields.items():
                field_describe = self._field(sobject_type, name)
                if field_describe["name"] in SYSTEM_FIELD_NAMES:
                    raise ValueError(f"{field_describe['name']} is set by Salesforce")
                changes[field_describe["name"]] = coerce(field_describe, value)
            record.update(changes)
            self._derive(sobject_type, record)
            self._touch(record, user_change=True)
            return dict(record)

    def touch(self, record_id: str) -> None:
        """Record a change made by Salesforce itself: only SystemModstamp moves.

        A roll-up or a picklist rename does this.
        """
        with self.lock:
            _, record = self._live(record_id)
            self._touch(record, user_change=False)

    def save_unchanged(self, record_id: str) -> None:
        """Record a user saving a record without changing a value.

        LastModifiedDate and SystemModstamp move to the clock's time.
        """
        with self.lock:
            _, record = self._live(record_id)
            self._touch(record, user_change=True)

    def delete(self, record_id: str) -> None:
        """Move a record to the recycle bin: only queryAll still sees it."""
        with self.lock:
            sobject_type, record = self._live(record_id)
            self._delete(sobject_type, record)

    def merge(self, loser_id: str, survivor_id: str) -> None:
        """Merge a duplicate Account, Contact or Lead into another.

        As Salesforce does: records that point at the loser now point at the
        survivor (and count as changed), the loser goes to the recycle bin
        with MasterRecordId set to the survivor, and the survivor counts as
        changed.
        https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_merge.htm
        """
        with self.lock:
            loser_type, loser = self._live(loser_id)
            survivor_type, survivor = self._live(survivor_id)
            if not loser_type.describe.get("mergeable"):
                raise ValueError(f"{loser_type.name} records cannot be merged")
            if survivor_type is not loser_type or survivor is loser:
                raise ValueError("A record merges into another of its object")
            if loser.get("IsDeleted") or survivor.get("IsDeleted"):
                raise ValueError("Deleted records cannot be merged")

            self._repoint(loser_type.name, loser["Id"], survivor["Id"])
            loser["MasterRecordId"] = survivor["Id"]
            self._delete(loser_type, loser)
            self._touch(survivor, user_change=True)

    def undelete(self, record_id: str) -> None:
        """Restore a record from the recycle bin, as a user may."""
        with self.lock:
            sobject_type, record = self._live(record_id)
            if not record.get("IsDeleted"):
                raise ValueError(f"{record['Id']} is not in the recycle bin")
            record["IsDeleted"] = False
            if sobject_type.field("MasterRecordId") is not None:
                record["MasterRecordId"] = None
            self.delete_log.pop(record["Id"], None)
            self._touch(record, user_change=True)

    def empty_recycle_bin(self, *, sobject: str | None = None) -> list[str]:
        """Remove deleted records for good and return their Ids.

        queryAll no longer finds them; the delete log still lists them.
        """
        with self.lock:
            names = [self._type(sobject).name] if sobject else list(self._rows)
            purged = []
            for name in names:
                rows = self._rows.get(name, [])
                kept = [record for record in rows if not record.get("IsDeleted")]
                for record in rows:
                    if record.get("IsDeleted"):
                        purged.append(record["Id"])
                        del self._by_id[record["Id"]]
                rows[:] = kept
            return purged

    def purge_delete_log(self, sobject: str, *, before: datetime) -> None:
        """Forget deletions before `before`, as Salesforce's log purge does."""
        with self.lock:
            name = self._type(sobject).name
            stamp = parse_datetime(before)
            for record_id, (logged, deleted_at) in list(self.delete_log.items()):
                if logged == name and deleted_at < stamp:
                    del self.delete_log[record_id]
            self.delete_log_purged_at[name] = max(
                stamp, self.delete_log_purged_at.get(name, stamp)
            )

    # ------------------------------------------------------------ Helpers

    def now(self) -> datetime:
        return parse_datetime(self.clock())

    def _add(
        self,
        sobject: str,
        fields: Mapping[str, Any],
        *,
        stamps: Callable[[str], tuple[datetime, datetime, datetime]] | None,
    ) -> str:
        sobject_type = self._type(sobject)
        sequence = self._sequences.get(sobject_type.key_prefix, 0) + 1
        self._sequences[sobject_type.key_prefix] = sequence
        record_id = ids.make_id(sobject_type.key_prefix, sequence)

        record: dict[str, Any] = {"Id": record_id}
        for name, value in fields.items():
            field_describe = self._field(sobject_type, name)
            record[field_describe["name"]] = coerce(field_describe, value)
        if sobject_type.field("IsDeleted") is not None:
            record["IsDeleted"] = False
        # Salesforce's checkboxes are never null: unset means false.
        for field_describe in sobject_type.describe["fields"]:
            if field_describe["type"] == "boolean":
                record.setdefault(field_describe["name"], False)
        for name in ("OwnerId", "CreatedById", "LastModifiedById"):
            if sobject_type.field(name) is not None and record.get(name) is None:
                record[name] = self.acting_user_id
        if sobject_type.auto_number_format and "Name" not in record:
            record["Name"] = _auto_number(sobject_type.auto_number_format, sequence)
        self._derive(sobject_type, record)

        if stamps is None:
            now = self.now()
            stamped = (now, now, now)
        else:
            stamped = stamps(record_id)
        record["CreatedDate"], record["LastModifiedDate"] = stamped[:2]
        record["SystemModstamp"] = stamped[2]

        self._rows.setdefault(sobject_type.name, []).append(record)
        self._by_id[record_id] = (sobject_type.name, record)
        return record_id

    def _type(self, sobject: str) -> SObjectType:
        sobject_type = self.schema.get(sobject)
        if sobject_type is None:
            raise KeyError(f"sObject type '{sobject}' is not supported")
        return sobject_type

    def _field(self, sobject_type: SObjectType, name: str) -> dict[str, Any]:
        field_describe = sobject_type.field(name)
        if field_describe is None:
            raise KeyError(f"No such column '{name}' on entity '{sobject_type.name}'")
        return field_describe

    def _live(self, record_id: str) -> tuple[SObjectType, dict[str, Any]]:
        found = self.lookup(record_id)
        if found is None:
            raise UnknownRecord(record_id)
        return self._type(found[0]), found[1]

    def _touch(self, record: dict[str, Any], *, user_change: bool) -> None:
        now = self.now()
        if user_change:
            record["LastModifiedDate"] = now
        record["SystemModstamp"] = max(now, record["LastModifiedDate"])

    def _delete(self, sobject_type: SObjectType, record: dict[str, Any]) -> None:
        if sobject_type.field("IsDeleted") is None:
            raise ValueError(f"{sobject_type.name} records cannot be deleted")
        if record.get("IsDeleted"):
            raise ValueError(f"{record['Id']} is already deleted")
        record["IsDeleted"] = True
        self._touch(record, user_change=True)
        # getDeleted reports the deletion time from SystemModstamp.
        self.delete_log[record["Id"]] = (sobject_type.name, record["SystemModstamp"])

    def _repoint(self, sobject: str, old_id: str, new_id: str) -> None:
        """Point every live reference to `old_id` at `new_id`."""
        for sobject_type in self.schema:
            names = [
                field_describe["name"]
                for field_describe in sobject_type.describe["fields"]
                if field_describe["type"] == "reference"
                and sobject in field_describe["referenceTo"]
                and field_describe["name"] != "MasterRecordId"
            ]
            if not names:
                continue
            for record in self._rows.get(sobject_type.name, []):
                if record.get("IsDeleted") or record["Id"] == old_id:
                    continue
                moved = [name for name in names if record.get(name) == old_id]
                for name in moved:
                    record[name] = new_id
                if moved:
                    self._touch(record, user_change=True)

    def _derive(self, sobject_type: SObjectType, record: dict[str, Any]) -> None:
        # Name on people objects is built from the name parts, as in the UI.
        if sobject_type.name in PERSON_NAMED_OBJECTS:
            parts = (record.get("FirstName"), record.get("LastName"))
            record["Name"] = " ".join(part for part in parts if part) or None


def _auto_number(display_format: str, sequence: int) -> str:
    head, _, rest = display_format.partition("{")
    zeros, _, tail = rest.partition("}")
    return f"{head}{sequence:0{len(zeros)}d}{tail}"


def _sample_stamps(record_id: str) -> tuple[datetime, datetime, datetime]:
    """Return (created, modified, system) stamps derived from an Id.

    Records spread over the year before SAMPLE_EPOCH; about one in ten also
    has a later change made by Salesforce itself.
    """
    digest = hashlib.blake2b(record_id.encode(), digest_size=12).digest()
    created_ago = int.from_bytes(digest[:4]) % _YEAR_SECONDS + 1
    created = SAMPLE_EPOCH - timedelta(seconds=created_ago)
    modified = created + timedelta(seconds=int.from_bytes(digest[4:8]) % created_ago)
    system = modified
    if digest[8] < 26:
        remaining = int((SAMPLE_EPOCH - modified).total_seconds())
        system = modified + timedelta(seconds=int.from_bytes(digest[9:12]) % remaining)
    return created, modified, system
