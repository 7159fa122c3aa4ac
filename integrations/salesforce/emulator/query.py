"""Answer a SOQL query from the store, with Salesforce's checks and errors.

A query is parsed with the shared grammar, bound to the schema as the
requesting user sees it (names take their canonical casing; a field the
user cannot see does not exist), then filtered, sorted and projected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from integrations.salesforce import soql
from integrations.salesforce.emulator import ids
from integrations.salesforce.emulator.errors import ApiError, query_error
from integrations.salesforce.emulator.schema import (
    COMPOUND_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    Schema,
    SObjectType,
    name_object,
    serialise,
)
from integrations.salesforce.emulator.store import Store

# https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_offset.htm
MAX_OFFSET = 2_000

# Pages hold at most 200 rows when two or more long text fields are selected.
# https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_changing_batch_size.htm
LONG_TEXT_BATCH_SIZE = 200

_FIELD_HINT = (
    "If you are attempting to use a custom field, be sure to append the '__c' "
    "after the custom field name. Please reference your WSDL or the describe "
    "call for the appropriate names."
)
_RELATIONSHIP_HINT = (
    "If you are attempting to use a custom relationship, be sure to append the "
    "'__r' after the custom relationship name. Please reference your WSDL or the "
    "describe call for the appropriate names."
)
_TYPE_HINT = (
    "If you are attempting to use a custom object, be sure to append the '__c' "
    "after the entity name. Please reference your WSDL or the describe call for "
    "the appropriate names."
)


@dataclass(frozen=True)
class QueryResult:
    """Rows in the REST shape, or only a size for COUNT()."""

    total_size: int
    rows: Sequence[dict[str, Any]] | None
    max_batch_size: int | None = None


class _ProjectedRows(Sequence):
    """A query's rows, put in the REST shape only when a page is read.

    The records are copied when the query runs, so a page read later shows
    them as they were then, as a Salesforce query locator does; shaping a
    hundred thousand rows up front would keep the first page waiting.
    """

    def __init__(
        self, records: list[dict[str, Any]], project: Callable[[dict], dict]
    ) -> None:
        self._records = [dict(record) for record in records]
        self._project = project

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self._project(record) for record in self._records[index]]
        return self._project(self._records[index])


@dataclass(frozen=True)
class _Path:
    """A field reached from the queried object, through zero or more parents."""

    hops: tuple[dict[str, Any], ...]
    target: SObjectType
    final: dict[str, Any]


@dataclass(frozen=True)
class QueryPlan:
    """A query bound to the schema, before any record is read.

    `columns` are the selected fields as (canonical name, path), in the
    order of the SELECT; `COUNT()` has none.
    """

    text: str
    query: soql.Query
    sobject: SObjectType
    columns: list[tuple[str, _Path]]
    where: soql.Condition | None
    order: list[tuple[_Path, soql.OrderBy]]
    filter_paths: dict[soql.Field, _Path]

    def filtered_fields(self) -> list[tuple[soql.Comparison, dict[str, Any]]]:
        """Return each comparison of the WHERE clause with its field's describe."""
        return [
            (comparison, self.filter_paths[comparison.field].final)
            for comparison in soql.comparisons(self.where)
            if not self.filter_paths[comparison.field].hops
        ]


@dataclass
class QueryEngine:
    schema: Schema
    store: Store
    is_visible: Callable[[str, str], bool]
    today: date
    base_path: str

    def run(
        self,
        text: str,
        *,
        include_deleted: bool,
        check: Callable[[QueryPlan], None] | None = None,
    ) -> QueryResult:
        """Answer a query; hold the store's lock while calling this.

        `check` sees the bound query before any record is read, and may
        refuse it by raising ApiError.
        """
        plan = self.plan(text)
        if check is not None:
            check(plan)
        records = self.execute(plan, include_deleted=include_deleted)

        if plan.query.is_count:
            return QueryResult(total_size=len(records), rows=None)
        paths = [path for _, path in plan.columns]
        rows = _ProjectedRows(
            records, lambda record: self._project(plan.sobject, record, paths)
        )
        return QueryResult(
            total_size=len(rows),
            rows=rows,
            max_batch_size=_batch_cap(paths),
        )

    def plan(self, text: str) -> QueryPlan:
        """Parse a query and bind it to the schema as the user sees it."""
        # https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_soslsoql.htm
        if len(text) > soql.MAX_STATEMENT_LENGTH:
            message = (
                "SOQL statements can not be longer than "
                f"{soql.MAX_STATEMENT_LENGTH} characters"
            )
            raise ApiError(400, "MALFORMED_QUERY", message)
        try:
            query = soql.parse(text)
        except soql.SoqlError as error:
            raise query_error(
                "MALFORMED_QUERY",
                soql=text,
                line=error.line,
                column=error.column,
                reason=error.reason,
            ) from None

        binder = _Binder(self, text)
        sobject = binder.sobject(query)
        columns = [
            binder.column(sobject, item)
            for item in query.fields
            if isinstance(item, soql.Field)
        ]
        where = binder.condition(sobject, query.where)
        order = [(binder.sortable(sobject, item), item) for item in query.order_by]
        binder.check_paging(query)
        return QueryPlan(
            text=text,
            query=query,
            sobject=sobject,
            columns=columns,
            where=where,
            order=order,
            filter_paths=binder.paths,
        )

    def execute(
        self, plan: QueryPlan, *, include_deleted: bool
    ) -> list[dict[str, Any]]:
        """Return the live records a plan selects, filtered, sorted and paged."""
        records = [
            record
            for record in self.store.rows(plan.sobject.name)
            if include_deleted or not record.get("IsDeleted")
        ]
        if plan.where is not None:
            records = [
                record
                for record in records
                if soql.evaluate(
                    plan.where,
                    value_of=lambda field, record=record: self._filter_value(
                        record, plan.filter_paths[field]
                    ),
                    today=self.today,
                )
            ]
        for path, item in reversed(plan.order):
            records.sort(key=self._sort_key(path, item), reverse=item.descending)
        start = plan.query.offset or 0
        end = None if plan.query.limit is None else start + plan.query.limit
        return records[start:end]

    def raw_value(self, record: dict[str, Any], path: _Path) -> Any:
        """Return a selected field's stored value, through parents if need be."""
        return self._value(record, path)[1]

    # ------------------------------------------------------------ Values

    def _value(self, record: dict[str, Any], path: _Path) -> tuple[Any, Any]:
        """Return (the record holding the final field, its raw value)."""
        holder: dict[str, Any] | None = record
        holder_type = path.target.name
        for hop in path.hops:
            found = self.store.lookup(holder.get(hop["name"]) or "")
            if found is None:
                return None, None
            holder_type, holder = found
        return holder, _field_value(path, holder, holder_type)

    def _filter_value(self, record: dict[str, Any], path: _Path) -> Any:
        _, value = self._value(record, path)
        if path.final["type"] == "multipicklist" and value is not None:
            return frozenset(part for part in value.split(";") if part)
        return value

    def _sort_key(self, path: _Path, item: soql.OrderBy) -> Callable[..., Any]:
        # Nulls must land where NULLS FIRST/LAST says after any reversal.
        null_rank = 1 if item.puts_nulls_last != item.descending else 0
        # Text sorts without regard to case; Ids keep their case-sensitive order.
        fold = path.final["type"] in TEXT_TYPES

        def key(record: dict[str, Any]) -> tuple[int, Any]:
            _, value = self._value(record, path)
            if value is None:
                return null_rank, 0
            return 1 - null_rank, value.casefold() if fold else value

        return key

    # ------------------------------------------------------------ Shape

    def _attributes(self, sobject: str, record_id: str) -> dict[str, str]:
        return {
            "type": sobject,
            "url": f"{self.base_path}/sobjects/{sobject}/{record_id}",
        }

    def _project(
        self,
        sobject: SObjectType,
        record: dict[str, Any],
        paths: list[_Path],
    ) -> dict[str, Any]:
        row: dict[str, Any] = {
            "attributes": self._attributes(sobject.name, record["Id"])
        }
        for path in paths:
            if path.hops:
                self._put(row, record, sobject.name, path, depth=0)
            else:
                row[path.final["name"]] = self._output(path, record, sobject.name)
        return row

    def _put(
        self,
        row: dict[str, Any],
        record: dict[str, Any],
        record_type: str,
        path: _Path,
        *,
        depth: int,
    ) -> None:
        if depth == len(path.hops):
            row[path.final["name"]] = self._output(path, record, record_type)
            return

        hop = path.hops[depth]
        relationship = hop["relationshipName"]
        if relationship in row and row[relationship] is None:
            return
        found = self.store.lookup(record.get(hop["name"]) or "")
        if found is None:
            row[relationship] = None
            return
        parent_type, parent = found
        attributes = self._attributes(parent_type, parent["Id"])
        if _is_polymorphic(hop):
            attributes["type"] = NAME_TYPE.name
        nested = row.get(relationship) or {"attributes": attributes}
        row[relationship] = nested
        self._put(nested, parent, parent_type, path, depth=depth + 1)

    def _output(self, path: _Path, record: dict[str, Any], record_type: str) -> Any:
        final = path.final
        if final["type"] not in COMPOUND_TYPES:
            return serialise(final, _field_value(path, record, record_type))

        # Compound fields come back as an object built from their parts.
        # https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/compound_fields.htm
        parts = {
            _part_key(final["name"], part["name"]): record.get(part["name"])
            for part in path.target.compound_parts(final["name"])
        }
        if all(value is None for value in parts.values()):
            return None
        return dict(sorted(parts.items()))


# A polymorphic lookup's parent is read through the Name object.
# https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_relationships_and_polymorph_keys.htm
NAME_TYPE = name_object()


def _is_polymorphic(hop: dict[str, Any]) -> bool:
    return bool(hop.get("polymorphicForeignKey")) or len(hop["referenceTo"]) > 1


def _field_value(path: _Path, holder: dict[str, Any], holder_type: str) -> Any:
    """Return the final field's stored value; read through the Name object,
    `Type` is the object the parent is."""
    if path.target is NAME_TYPE and path.final["name"] == "Type":
        return holder_type
    return holder.get(path.final["name"])


def _part_key(compound: str, part: str) -> str:
    prefix = compound.removesuffix("Address").removesuffix("__c")
    key = part.removeprefix(prefix).removeprefix("__").removesuffix("__s")
    return key[:1].lower() + key[1:]


def _batch_cap(paths: list[_Path]) -> int | None:
    long_text = {
        path.final["name"]
        for path in paths
        if path.final["custom"]
        and path.final["type"] == "textarea"
        and path.final["length"] > 255
    }
    return LONG_TEXT_BATCH_SIZE if len(long_text) >= 2 else None


class _Binder:
    """Resolve names against the schema and check literals against types."""

    def __init__(self, engine: QueryEngine, text: str) -> None:
        self.engine = engine
        self.text = text
        self.paths: dict[soql.Field, _Path] = {}

    def error(self, code: str, position: soql.Position, reason: str) -> ApiError:
        return query_error(
            code,
            soql=self.text,
            line=position.line,
            column=position.column,
            reason=reason,
        )

    def sobject(self, query: soql.Query) -> SObjectType:
        sobject = self.engine.schema.get(query.sobject)
        if sobject is None:
            reason = f"sObject type '{query.sobject}' is not supported. {_TYPE_HINT}"
            raise self.error("INVALID_TYPE", query.sobject_position, reason)
        if query.is_count and len(query.fields) > 1:
            reason = "COUNT() cannot be selected with other fields"
            raise self.error("MALFORMED_QUERY", query.fields[0].position, reason)
        return sobject

    def column(self, sobject: SObjectType, item: soql.Field) -> tuple[str, _Path]:
        canonical, path = self._resolve(sobject, item)
        return canonical.name, path

    def _resolve(
        self, sobject: SObjectType, item: soql.Field
    ) -> tuple[soql.Field, _Path]:
        visible = self.engine.is_visible
        hops = []
        names = []
        current = sobject
        for part in item.path[:-1]:
            hop = current.parent_relationship(part)
            if hop is None or not visible(current.name, hop["name"]):
                reason = (
                    f"Didn't understand relationship '{part}' in field path. "
                    f"{_RELATIONSHIP_HINT}"
                )
                raise self.error("INVALID_FIELD", item.position, reason)
            parent = (
                NAME_TYPE
                if _is_polymorphic(hop)
                else self.engine.schema.get(hop["referenceTo"][0])
            )
            if parent is None:
                # It points to an object this org does not have.
                reason = (
                    f"Didn't understand relationship '{part}' in field path. "
                    f"{_RELATIONSHIP_HINT}"
                )
                raise self.error("INVALID_FIELD", item.position, reason)
            hops.append(hop)
            names.append(hop["relationshipName"])
            current = parent

        final = current.field(item.path[-1])
        if final is None or not visible(current.name, final["name"]):
            reason = (
                f"No such column '{item.path[-1]}' on entity '{current.name}'. "
                f"{_FIELD_HINT}"
            )
            raise self.error("INVALID_FIELD", item.position, reason)
        canonical = soql.Field((*names, final["name"]), item.position)
        path = _Path(tuple(hops), current, final)
        self.paths[canonical] = path
        return canonical, path

    def sortable(self, sobject: SObjectType, item: soql.OrderBy) -> _Path:
        _, path = self._resolve(sobject, item.field)
        if not path.final["sortable"]:
            reason = f"field '{item.field.name}' can not be sorted in a query call"
            raise self.error("INVALID_FIELD", item.field.position, reason)
        return path

    def check_paging(self, query: soql.Query) -> None:
        if query.offset is not None and query.offset > MAX_OFFSET:
            raise ApiError(
                400,
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"Maximum SOQL offset allowed is {MAX_OFFSET}",
            )

    def condition(
        self, sobject: SObjectType, condition: soql.Condition | None
    ) -> soql.Condition | None:
        if condition is None:
            return None
        if isinstance(condition, soql.Not):
            return soql.Not(self.condition(sobject, condition.condition))
        if isinstance(condition, soql.And | soql.Or):
            parts = tuple(
                self.condition(sobject, part) for part in condition.conditions
            )
            return type(condition)(parts)
        return self._comparison(sobject, condition)

    def _comparison(
        self, sobject: SObjectType, comparison: soql.Comparison
    ) -> soql.Comparison:
        canonical, path = self._resolve(sobject, comparison.field)
        final = path.final
        if not final["filterable"]:
            reason = f"field '{final['name']}' can not be filtered in a query call"
            raise self.error("INVALID_FIELD", comparison.position, reason)

        operator = comparison.operator
        if operator in {"INCLUDES", "EXCLUDES"} and final["type"] != "multipicklist":
            reason = "includes or excludes operator only valid on multipicklist field"
            raise self.error(
                "INVALID_QUERY_FILTER_OPERATOR", comparison.position, reason
            )
        if operator == "LIKE":
            if final["type"] not in TEXT_TYPES:
                reason = f"invalid operator on {final['type']} field: LIKE"
                raise self.error(
                    "INVALID_QUERY_FILTER_OPERATOR", comparison.position, reason
                )
            self._check_length(comparison.value.text, comparison.position)
            return dataclasses.replace(comparison, field=canonical)

        if isinstance(comparison.value, tuple):
            value: Any = tuple(
                self._literal(final, item, comparison.position)
                for item in comparison.value
            )
        else:
            value = self._literal(final, comparison.value, comparison.position)
        return dataclasses.replace(comparison, field=canonical, value=value)

    def _literal(
        self, final: dict[str, Any], value: Any, position: soql.Position
    ) -> Any:
        if value is None:
            return None
        kind = final["type"]
        name = final["name"]
        if isinstance(value, str):
            self._check_length(value, position)
        if kind in {"id", "reference"}:
            canonical = ids.to_18(value) if isinstance(value, str) else None
            if canonical is None:
                raise self.error(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    position,
                    f"invalid ID field: {value}",
                )
            return canonical
        expected = _expected_literal(kind)
        if expected is None or expected[0](value):
            return value
        quoted = "be" if kind in TEXT_TYPES else "not be"
        reason = (
            f"value of filter criterion for field '{name}' must be of type "
            f"{expected[1]} and should {quoted} enclosed in quotes"
        )
        raise self.error("INVALID_FIELD", position, reason)

    def _check_length(self, text: str, position: soql.Position) -> None:
        # The documented limit; Salesforce's own wording for it is not
        # recorded anywhere we could check.
        if len(text) > soql.MAX_STRING_LITERAL_LENGTH:
            reason = (
                "String literal is too long: the limit is "
                f"{soql.MAX_STRING_LITERAL_LENGTH} characters"
            )
            raise self.error("MALFORMED_QUERY", position, reason)


def _expected_literal(kind: str) -> tuple[Callable[[Any], bool], str] | None:
    """Return (accepts, type name in the error) for a field type."""
    if kind in TEXT_TYPES:
        return (lambda value: isinstance(value, str)), "string"
    if kind == "boolean":
        return (lambda value: isinstance(value, bool)), "boolean"
    if kind in NUMBER_TYPES:
        name = "integer" if kind == "int" else "double"
        return (
            lambda value: (
                isinstance(value, int | Decimal) and not isinstance(value, bool)
            )
        ), name
    if kind == "date":
        return (
            lambda value: (
                isinstance(value, soql.RelativeDate)
                or (isinstance(value, date) and not isinstance(value, datetime))
            )
        ), "date"
    if kind == "datetime":
        return (
            lambda value: isinstance(value, soql.RelativeDate | datetime)
        ), "dateTime"
    return None
