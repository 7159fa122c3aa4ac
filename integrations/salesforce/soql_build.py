"""Build SELECT statements from a parsed filter, within Salesforce's limits.

Every literal is written by `soql.quote()` from a parsed tree, so nothing
typed by staff or read from data is pasted into a statement as it came.

A statement travels in the URL of a GET, and Salesforce refuses a request
line plus headers over 16,384 bytes with an HTML 414 page. A statement that
would not fit our budget is split: a long `IN` list into several statements
whose results are merged, a wide field list into groups joined by Id.
https://help.salesforce.com/s/articleView?id=000386264&type=1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus

from integrations.salesforce.soql import (
    MAX_STATEMENT_LENGTH,
    MAX_STRING_LITERAL_LENGTH,
    And,
    Comparison,
    Condition,
    LikePattern,
    Not,
    Or,
    RelativeDate,
    comparisons,
    quote,
)

# The path in front of `?q=` in the longest form we send
# (`/services/data/vNN.N/queryAll/?q=`), counted into each statement's size.
_PATH_ALLOWANCE = 40


class QueryTooLong(ValueError):
    """A statement that cannot be split to fit the limits."""


def render_condition(condition: Condition) -> str:
    """Write a parsed condition back as SOQL, quoting every literal."""
    if isinstance(condition, And | Or):
        joiner = " AND " if isinstance(condition, And) else " OR "
        return joiner.join(_grouped(part) for part in condition.conditions)
    if isinstance(condition, Not):
        return f"NOT {_grouped(condition.condition)}"
    return (
        f"{condition.field.name} {condition.operator} {_render_value(condition.value)}"
    )


def _grouped(condition: Condition) -> str:
    text = render_condition(condition)
    return f"({text})" if isinstance(condition, And | Or | Not) else text


def _render_value(value: object) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_render_value(item) for item in value) + ")"
    if isinstance(value, LikePattern):
        # The body was checked by the lexer: only legal escapes, no bare quote.
        return "'" + value.text + "'"
    if isinstance(value, RelativeDate):
        return str(value)
    return quote(value)


def encoded_size(statement: str) -> int:
    """Return the bytes a statement takes in the request line, URL-encoded."""
    return _PATH_ALLOWANCE + len(quote_plus(statement, safe=""))


def _statement(
    fields: Sequence[str],
    sobject: str,
    where: Condition | None,
    order_by: Sequence[str] = (),
) -> str:
    text = f"SELECT {', '.join(fields)} FROM {sobject}"
    if where is not None:
        text += f" WHERE {render_condition(where)}"
    if order_by:
        text += f" ORDER BY {', '.join(order_by)}"
    return text


@dataclass(frozen=True)
class Plan:
    """The statements that together read what one SELECT would.

    Each group of statements reads the same rows with different fields
    (every group selects the `keys`: Id, and the stamp that tells whether a
    row changed); the results of all groups are joined by Id.
    `statements[i]` lists, for one part of a split `IN` list, one statement
    per field group.
    """

    statements: tuple[tuple[str, ...], ...]
    keys: tuple[str, ...] = ("Id",)

    @property
    def is_split(self) -> bool:
        return len(self.statements) > 1 or len(self.statements[0]) > 1


def plan_select(
    *,
    sobject: str,
    fields: Sequence[str],
    where: Condition | None,
    budget: int,
    order_by: Sequence[str] = (),
    stamp: str | None = None,
) -> Plan:
    """Return the statements that read `fields` of the rows matching `where`.

    When the fields do not fit one statement, every group also selects
    `stamp` (a field that moves whenever the row changes), so that a row
    changed between two groups' statements can be told apart.

    A long condition that cannot be split (no `IN` list to cut) leaves the
    fields the rest of the budget: they are read in as many groups as that
    takes.

    Raises QueryTooLong when a statement cannot be brought within the limits:
    a single string literal over 4,000 characters, a long `NOT IN` list (its
    parts would have to be intersected, not merged) too long to go beside
    the keys and one field, or a budget too small for even one field and one
    value.
    """
    _check_literals(where)
    try:
        return _plan(
            sobject=sobject,
            fields=fields,
            where=where,
            budget=budget,
            select_budget=budget // 2,
            order_by=order_by,
            stamp=stamp,
        )
    except QueryTooLong:
        if where is None or _longest_splittable_in(where) is not None:
            raise
    # What the condition and the ordering of field groups take of the budget.
    tail = encoded_size(
        _statement(["Id"], sobject, where, order_by or ("Id",))
    ) - encoded_size(_statement(["Id"], sobject, None))
    return _plan(
        sobject=sobject,
        fields=fields,
        where=where,
        budget=budget,
        select_budget=budget - tail,
        order_by=order_by,
        stamp=stamp,
    )


def _plan(
    *,
    sobject: str,
    fields: Sequence[str],
    where: Condition | None,
    budget: int,
    select_budget: int,
    order_by: Sequence[str],
    stamp: str | None,
) -> Plan:
    keys = ("Id", stamp) if stamp and stamp.lower() != "id" else ("Id",)
    field_groups = _field_groups(
        sobject=sobject, fields=fields, budget=select_budget, keys=keys
    )
    if len(field_groups) == 1:
        keys = ("Id",)
    if len(field_groups) > 1 and not order_by:
        # Groups read in one order can be joined as their pages come.
        order_by = ("Id",)

    def fits(where_part: Condition | None) -> bool:
        return all(
            encoded_size(_statement(group, sobject, where_part, order_by)) <= budget
            and len(_statement(group, sobject, where_part, order_by))
            <= MAX_STATEMENT_LENGTH
            for group in field_groups
        )

    if fits(where):
        return Plan(
            statements=(
                tuple(_statement(g, sobject, where, order_by) for g in field_groups),
            ),
            keys=keys,
        )

    parts = _split(where, fits=fits, sobject=sobject)
    return Plan(
        statements=tuple(
            tuple(_statement(g, sobject, part, order_by) for g in field_groups)
            for part in parts
        ),
        keys=keys,
    )


def _split(where: Condition, *, fits, sobject: str) -> list[Condition]:
    """Split the IN lists of `where` until each part fits a statement.

    The longest list is cut greedily into parts as large as fit. When even one
    of its values does not fit, another long list is in the way: the list is
    halved and each half split again, which reaches the other list in turn.
    """
    if fits(where):
        return [where]
    target = _longest_splittable_in(where)
    if target is None or len(target.value) < 2:
        raise QueryTooLong(
            f"The filter on {sobject} is too long to send and has no IN list "
            "that could be split."
        )
    values = list(target.value)
    if not fits(_replace(where, target, (values[0],))):
        half = len(values) // 2
        return _split(
            _replace(where, target, tuple(values[:half])), fits=fits, sobject=sobject
        ) + _split(
            _replace(where, target, tuple(values[half:])), fits=fits, sobject=sobject
        )

    parts: list[Condition] = []
    start = 0
    while start < len(values):
        # Grow the part until the next value would pass the budget.
        end = start + 1
        step = 1
        while end < len(values):
            candidate = min(end + step, len(values))
            if fits(_replace(where, target, tuple(values[start:candidate]))):
                end = candidate
                step *= 2
            elif step > 1:
                step //= 2
            else:
                break
        if not fits(_replace(where, target, tuple(values[start:end]))):
            # A value longer than the others; it has to go on its own.
            return parts + _split(
                _replace(where, target, tuple(values[start:])),
                fits=fits,
                sobject=sobject,
            )
        parts.append(_replace(where, target, tuple(values[start:end])))
        start = end
    return parts


def _check_literals(where: Condition | None) -> None:
    # https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_soslsoql.htm
    for comparison in comparisons(where):
        values = (
            comparison.value
            if isinstance(comparison.value, tuple)
            else (comparison.value,)
        )
        for value in values:
            text = value.text if isinstance(value, LikePattern) else value
            if isinstance(text, str) and len(text) > MAX_STRING_LITERAL_LENGTH:
                raise QueryTooLong(
                    f"A value compared with {comparison.field.name} is longer than "
                    f"{MAX_STRING_LITERAL_LENGTH:,} characters, Salesforce's limit."
                )


def _field_groups(
    *, sobject: str, fields: Sequence[str], budget: int, keys: Sequence[str]
) -> list[list[str]]:
    """Split a field list into groups whose SELECT fits half the budget.

    One group is the fields as given. Otherwise each group opens with the
    `keys`, which its other fields follow.
    """
    others = [name for name in fields if name.lower() != "id"]
    if encoded_size(_statement(["Id", *others], sobject, None)) <= budget:
        return [["Id", *others]]
    lowered = {key.lower() for key in keys}
    others = [name for name in others if name.lower() not in lowered]
    groups: list[list[str]] = [list(keys)]
    for name in others:
        candidate = [*groups[-1], name]
        if (
            len(groups[-1]) > len(keys)
            and encoded_size(_statement(candidate, sobject, None)) > budget
        ):
            groups.append([*keys, name])
        else:
            groups[-1] = candidate
    return groups


def _longest_splittable_in(where: Condition | None) -> Comparison | None:
    """Return the longest IN list whose parts' results may simply be merged.

    That holds where the list is not under a NOT: the condition can only
    grow with the list, so the rows of the whole list are the union of the
    rows of its parts.
    """
    best: Comparison | None = None

    def visit(condition: Condition, negated: bool) -> None:
        nonlocal best
        if isinstance(condition, Not):
            visit(condition.condition, not negated)
        elif isinstance(condition, And | Or):
            for part in condition.conditions:
                visit(part, negated)
        elif condition.operator in ("IN", "NOT IN"):
            positive = (condition.operator == "IN") != negated
            longer = best is None or len(condition.value) > len(best.value)
            if positive and len(condition.value) > 1 and longer:
                best = condition

    if where is not None:
        visit(where, False)
    return best


def _replace(where: Condition | None, target: Comparison, values: tuple) -> Condition:
    if where is target:
        return Comparison(field=target.field, operator=target.operator, value=values)
    if isinstance(where, And):
        return And(tuple(_replace(part, target, values) for part in where.conditions))
    if isinstance(where, Or):
        return Or(tuple(_replace(part, target, values) for part in where.conditions))
    if isinstance(where, Not):
        return Not(_replace(where.condition, target, values))
    return where
