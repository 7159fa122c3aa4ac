"""Record updates in the offline org, answered as Salesforce answers them.

Two resources change records: `PATCH /sobjects/{Object}/{Id}` (one record)
and `PATCH /composite/sobjects` (sObject Collections: up to 200 records, one
result per record in request order). Every field is checked against the
describe as the requesting user sees it: visible, updateable, of the right
type, within its length and, for restricted picklists, one of the listed
values. Neither resource creates or deletes anything.

Tests switch faults on through `RecordWrites.fail()`: a validation rule, a
row lock or a deleted (or merged) record, for given records, as often as
asked.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from integrations.salesforce.emulator import ids
from integrations.salesforce.emulator.errors import ApiError, not_found
from integrations.salesforce.emulator.objects import SYSTEM_FIELD_NAMES
from integrations.salesforce.emulator.schema import (
    TEXT_TYPES,
    Schema,
    SObjectType,
    coerce,
)
from integrations.salesforce.emulator.store import Store

# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
MAX_COLLECTION_RECORDS = 200

# Default messages, in Salesforce's wording where it has one; a validation
# rule's message is whatever the org's admin wrote.
_FAULT_MESSAGES = {
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": "This record failed a validation rule.",
    "UNABLE_TO_LOCK_ROW": (
        "unable to obtain exclusive access to this record or 1 records: {parent}"
    ),
    "INVALID_FIELD_FOR_INSERT_UPDATE": "Unable to create/update fields: {fields}. "
    "Please check the security settings of this field and verify that it is "
    "read/write for your profile or permission set.",
    "INSUFFICIENT_ACCESS_OR_READONLY": "insufficient access rights on object id",
}
# Errors whose result carries no `id`: Salesforce could not tie the failure
# to the record, only its position does.
_ANONYMOUS_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "ENTITY_IS_DELETED"})
_ROLLED_BACK = (
    "Record rolled back because not all records were valid and the request was "
    "using AllOrNone header"
)
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

IsVisible = Callable[..., bool]


@dataclass
class _Fault:
    code: str
    message: str
    fields: list[str]
    # How many more updates fail; None for every one.
    remaining: int | None


@dataclass
class _RequestFault:
    status: int
    remaining: int


class RecordWrites:
    """Record updates, the faults switched on for them, and what was applied."""

    def __init__(
        self,
        *,
        schema: Schema,
        store: Store,
        lock: threading.RLock,
        is_visible: IsVisible,
    ) -> None:
        self.schema = schema
        self.store = store
        self.lock = lock
        self._is_visible = is_visible
        self._faults: dict[str, _Fault] = {}
        self._request_faults: list[_RequestFault] = []
        # (record Id, fields) of every update applied, in order.
        self.applied: list[tuple[str, dict[str, Any]]] = []

    # ------------------------------------------------------------ Faults

    def fail(
        self,
        record_id: str,
        code: str,
        *,
        message: str | None = None,
        fields: list[str] | None = None,
        times: int | None = None,
        merged_into: str | None = None,
    ) -> None:
        """Make updates of a record fail with `code`, `times` times or always.

        ENTITY_IS_DELETED deletes the record instead, as a merge does when
        `merged_into` names the surviving record.
        """
        canonical = ids.to_18(record_id)
        if canonical is None:
            raise ValueError(f"Not a record Id: {record_id}")
        if code == "ENTITY_IS_DELETED":
            self.delete(canonical, merged_into=merged_into)
            return
        with self.lock:
            record = self.store.get(canonical) or {}
            parent = record.get("AccountId") or canonical
            template = message or _FAULT_MESSAGES.get(code, code.replace("_", " "))
            self._faults[canonical] = _Fault(
                code=code,
                message=template.format(parent=parent, fields=", ".join(fields or [])),
                fields=list(fields or []),
                remaining=times,
            )

    def fail_requests(self, *, status: int = 503, times: int = 1) -> None:
        """Answer the next `times` update requests with an outage."""
        with self.lock:
            self._request_faults.append(_RequestFault(status=status, remaining=times))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()
            self._request_faults.clear()

    def delete(self, record_id: str, *, merged_into: str | None = None) -> None:
        """Delete a record; a merge also points it at the surviving record.

        https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contact.htm
        """
        with self.lock:
            if merged_into is not None:
                found = self.store.lookup(record_id)
                if found is None:
                    raise KeyError(record_id)
                found[1]["MasterRecordId"] = ids.to_18(merged_into)
            self.store.delete(record_id)

    def make_read_only(self, sobject: str, field: str) -> None:
        """Take away everyone's right to edit a field, as an admin may do."""
        sobject_type = self.schema.get(sobject)
        field_describe = sobject_type.field(field) if sobject_type else None
        if field_describe is None:
            raise KeyError(f"No such field {sobject}.{field}")
        with self.lock:
            field_describe["updateable"] = False
            field_describe["createable"] = False

    def updates_of(self, record_id: str) -> list[dict[str, Any]]:
        """Return the field changes applied to a record, oldest first."""
        canonical = ids.to_18(record_id)
        with self.lock:
            return [fields for applied, fields in self.applied if applied == canonical]

    # ------------------------------------------------------------ Resources

    def update_record(
        self, *, user_id: str, sobject: str, record_id: str, body: bytes
    ) -> None:
        """Update one record; raise ApiError as the REST API answers it.

        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_update_fields.htm
        """
        self._take_request_fault()
        sobject_type = self.schema.get(sobject)
        if sobject_type is None:
            raise not_found()
        fields = _json_body(body)
        if not isinstance(fields, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        fields = {k: v for k, v in fields.items() if k not in {"attributes", "Id"}}
        outcome = self._check(
            user_id=user_id,
            sobject_type=sobject_type,
            record_id=record_id,
            fields=fields,
        )
        if outcome.errors:
            first = outcome.errors[0]
            status = 404 if first["statusCode"] == "ENTITY_IS_DELETED" else 400
            raise ApiError(
                status, first["statusCode"], first["message"], fields=first["fields"]
            )
        self._apply(outcome)

    def update_collection(self, *, user_id: str, body: bytes) -> list[dict[str, Any]]:
        """Update up to 200 records and return one result per record, in order.

        With `allOrNone` false (the default) each record stands alone; with
        true, one failure rolls every record back.
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
        """
        self._take_request_fault()
        document = _json_body(body)
        records = document.get("records") if isinstance(document, dict) else None
        if not isinstance(records, list) or not all(
            isinstance(record, dict) for record in records
        ):
            raise ApiError(400, "JSON_PARSER_ERROR", "Expected a list of records")
        if len(records) > MAX_COLLECTION_RECORDS:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into "
                "this call",
            )
        all_or_none = bool(document.get("allOrNone", False))

        outcomes = [
            self._check_collection_record(user_id, record) for record in records
        ]
        if all_or_none and any(outcome.errors for outcome in outcomes):
            return [
                outcome.result()
                if outcome.errors
                else _failure(outcome.record_id, "ALL_OR_NONE_OPERATION_ROLLED_BACK")
                for outcome in outcomes
            ]
        for outcome in outcomes:
            if not outcome.errors:
                self._apply(outcome)
        return [outcome.result() for outcome in outcomes]

    # ------------------------------------------------------------ Checks

    def _check_collection_record(
        self, user_id: str, record: dict[str, Any]
    ) -> _Outcome:
        record_id = record.get("id") or record.get("Id")
        type_name = (record.get("attributes") or {}).get("type")
        fields = {
            name: value
            for name, value in record.items()
            if name not in {"attributes", "id", "Id"}
        }
        if not record_id:
            return _Outcome.failed(
                None, "MISSING_ARGUMENT", "Id not specified in an update call"
            )
        sobject_type = self.schema.get(type_name or "")
        if sobject_type is None:
            return _Outcome.failed(
                None, "INVALID_TYPE", f"sObject type '{type_name}' is not supported."
            )
        return self._check(
            user_id=user_id,
            sobject_type=sobject_type,
            record_id=str(record_id),
            fields=fields,
        )

    def _check(
        self,
        *,
        user_id: str,
        sobject_type: SObjectType,
        record_id: str,
        fields: dict[str, Any],
    ) -> _Outcome:
        canonical = ids.to_18(record_id)
        if canonical is None or not canonical.startswith(sobject_type.key_prefix):
            return _Outcome.failed(
                None,
                "MALFORMED_ID",
                f"{sobject_type.name} ID: id value of incorrect type: {record_id}",
                fields=["Id"],
            )
        # A record purged from the recycle bin answers as a deleted one.
        record = self.store.get(canonical)
        if record is None or record.get("IsDeleted"):
            return _Outcome.failed(None, "ENTITY_IS_DELETED", "entity is deleted")

        outcome = _Outcome(record_id=canonical)
        read_only = []
        for name, value in fields.items():
            field_describe = sobject_type.field(name)
            if field_describe is None or not self._is_visible(
                user_id=user_id, sobject=sobject_type.name, field=field_describe["name"]
            ):
                outcome.add(
                    "INVALID_FIELD",
                    f"No such column '{name}' on sobject of type {sobject_type.name}",
                    [name],
                )
                continue
            canonical_name = field_describe["name"]
            if not field_describe["updateable"] or canonical_name in SYSTEM_FIELD_NAMES:
                read_only.append(canonical_name)
                continue
            problem = _value_problem(field_describe, value)
            if problem is not None:
                outcome.add(*problem)
                continue
            outcome.changes[canonical_name] = value
        if read_only:
            outcome.add(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                _FAULT_MESSAGES["INVALID_FIELD_FOR_INSERT_UPDATE"].format(
                    fields=", ".join(read_only)
                ),
                read_only,
            )
        if outcome.errors:
            return outcome

        fault = self._take_fault(canonical)
        if fault is not None:
            outcome.add(fault.code, fault.message, fault.fields)
        return outcome

    def _take_fault(self, record_id: str) -> _Fault | None:
        fault = self._faults.get(record_id)
        if fault is None:
            return None
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self._faults[record_id]
        return fault

    def _take_request_fault(self) -> None:
        if not self._request_faults:
            return
        fault = self._request_faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            self._request_faults.pop(0)
        raise ApiError(
            fault.status, "SERVER_UNAVAILABLE", "Server temporarily unavailable"
        )

    def _apply(self, outcome: _Outcome) -> None:
        self.store.update(outcome.record_id, outcome.changes)
        self.applied.append((outcome.record_id, dict(outcome.changes)))


@dataclass
class _Outcome:
    """What one record's update will do: its changes, or why it fails."""

    record_id: str | None
    changes: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def failed(
        cls,
        record_id: str | None,
        code: str,
        message: str,
        *,
        fields: list[str] | None = None,
    ) -> _Outcome:
        outcome = cls(record_id=record_id)
        outcome.add(code, message, fields or [])
        return outcome

    def add(self, code: str, message: str, fields: list[str]) -> None:
        self.errors.append({"statusCode": code, "message": message, "fields": fields})

    def result(self) -> dict[str, Any]:
        if not self.errors:
            return {"id": self.record_id, "success": True, "errors": []}
        result: dict[str, Any] = {"success": False, "errors": self.errors}
        anonymous = self.errors[0]["statusCode"] in _ANONYMOUS_CODES
        if self.record_id and not anonymous:
            result = {"id": self.record_id, **result}
        return result


def _failure(record_id: str | None, code: str) -> dict[str, Any]:
    return {
        "id": record_id,
        "success": False,
        "errors": [{"statusCode": code, "message": _ROLLED_BACK, "fields": []}],
    }


def _value_problem(
    field_describe: dict[str, Any], value: Any
) -> tuple[str, str, list[str]] | None:
    """Return (code, message, fields) when a value does not fit a field."""
    name, label, kind = (
        field_describe["name"],
        field_describe["label"],
        field_describe["type"],
    )
    if value is None or value == "":
        if not field_describe["nillable"] and kind != "boolean":
            return (
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{name}]",
                [name],
            )
        return None
    if isinstance(value, dict | list):
        return (
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{label}: value not of required type: {json.dumps(value)}",
            [name],
        )
    try:
        coerced = coerce(field_describe, value)
    except (TypeError, ValueError):
        return (
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{label}: value not of required type: {value}",
            [name],
        )
    if kind in TEXT_TYPES:
        text = str(coerced)
        length = field_describe.get("length") or 0
        # Lengths are UTF-16 code units: an emoji is two.
        # https://help.salesforce.com/s/articleView?id=005166849&type=1
        size = len(text.encode("utf-16-le", errors="surrogatepass")) // 2
        if length and size > length:
            return (
                "STRING_TOO_LONG",
                f"{label}: data value too large: {text[:40]} (max length={length})",
                [name],
            )
        if kind == "email" and not _EMAIL_RE.match(text):
            return (
                "INVALID_EMAIL_ADDRESS",
                f"{label}: invalid email address: {text}",
                [name],
            )
        if kind in {"picklist", "multipicklist"} and field_describe.get(
            "restrictedPicklist"
        ):
            allowed = {
                item["value"]
                for item in field_describe["picklistValues"]
                if item.get("active", True)
            }
            chosen = text.split(";") if kind == "multipicklist" else [text]
            if any(part not in allowed for part in chosen):
                return (
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{label}: bad value for restricted picklist field: {text}",
                    [name],
                )
    return None


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as error:
        message = f"Unexpected character: {error}"
        raise ApiError(400, "JSON_PARSER_ERROR", message) from error
