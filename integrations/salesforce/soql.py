"""SOQL: the one grammar for reading, building and evaluating queries.

The product uses `quote()` to build queries and `parse_condition()` to check
the filters staff type; the offline org uses `parse()` and `evaluate()` to
answer queries. The grammar covers the subset of SOQL the product needs:
field lists (with dotted parent relationships), `COUNT()`, WHERE with
AND/OR/NOT, comparisons, IN, LIKE, INCLUDES/EXCLUDES, date and relative date
literals, ORDER BY, LIMIT and OFFSET.

https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select.htm
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from functools import cached_property
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

# https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_soslsoql.htm
MAX_STATEMENT_LENGTH = 100_000
MAX_STRING_LITERAL_LENGTH = 4_000


class SoqlError(ValueError):
    """A statement that is not valid SOQL, with where the problem starts."""

    def __init__(self, reason: str, *, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {reason}")
        self.reason = reason
        self.line = line
        self.column = column


# ---------------------------------------------------------------- The tree


@dataclass(frozen=True)
class Position:
    line: int = 1
    column: int = 1


@dataclass(frozen=True)
class Field:
    """A field, or a path through parent relationships (`Account.Owner.Name`)."""

    path: tuple[str, ...]
    position: Position = field(default=Position(), compare=False, repr=False)

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Count:
    """`COUNT()`: the query answers with a number of rows, not rows."""

    position: Position = field(default=Position(), compare=False, repr=False)


@dataclass(frozen=True)
class LikePattern:
    """The body of a LIKE literal: `%` and `_` are wildcards unless escaped."""

    text: str

    @cached_property
    def regex(self) -> re.Pattern[str]:
        parts = []
        chars = iter(self.text)
        for char in chars:
            if char == "\\":
                parts.append(re.escape(_ESCAPES.get(next(chars, "\\"), "\\")))
            elif char == "%":
                parts.append(".*")
            elif char == "_":
                parts.append(".")
            else:
                parts.append(re.escape(char))
        return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


# Relative date literals: the name gives the unit and the direction, `n` the
# count for the `_N_` forms.
# https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_dateformats.htm
_FIXED_RANGES = {
    "YESTERDAY": ("day", -1, 1),
    "TODAY": ("day", 0, 1),
    "TOMORROW": ("day", 1, 1),
    "LAST_WEEK": ("week", -1, 1),
    "THIS_WEEK": ("week", 0, 1),
    "NEXT_WEEK": ("week", 1, 1),
    "LAST_MONTH": ("month", -1, 1),
    "THIS_MONTH": ("month", 0, 1),
    "NEXT_MONTH": ("month", 1, 1),
    "LAST_QUARTER": ("quarter", -1, 1),
    "THIS_QUARTER": ("quarter", 0, 1),
    "NEXT_QUARTER": ("quarter", 1, 1),
    "LAST_YEAR": ("year", -1, 1),
    "THIS_YEAR": ("year", 0, 1),
    "NEXT_YEAR": ("year", 1, 1),
}
_UNITS = {"DAYS": "day", "WEEKS": "week", "MONTHS": "month", "QUARTERS": "quarter"}
_UNITS["YEARS"] = "year"
_N_RANGES = {
    **{f"LAST_N_{unit}": ("last", kind) for unit, kind in _UNITS.items()},
    **{f"NEXT_N_{unit}": ("next", kind) for unit, kind in _UNITS.items()},
    **{f"N_{unit}_AGO": ("ago", kind) for unit, kind in _UNITS.items()},
}


@dataclass(frozen=True)
class RelativeDate:
    """A relative date literal such as `TODAY` or `LAST_N_DAYS:30`."""

    name: str
    n: int | None = None

    def __str__(self) -> str:
        return self.name if self.n is None else f"{self.name}:{self.n}"

    def bounds(self, *, today: date) -> tuple[date, date]:
        """Return the range as [start, end) in whole days.

        Weeks start on Sunday and quarters are calendar quarters, as in an
        org with the en_US locale and no custom fiscal year.
        """
        if self.name == "LAST_90_DAYS":
            return today - timedelta(days=90), today + timedelta(days=1)
        if self.name == "NEXT_90_DAYS":
            return today + timedelta(days=1), today + timedelta(days=91)
        if self.name in _FIXED_RANGES:
            unit, shift, span = _FIXED_RANGES[self.name]
            start = _shift(_unit_start(unit, today), unit, shift)
            return start, _shift(start, unit, span)

        direction, unit = _N_RANGES[self.name]
        n = self.n or 0
        if direction == "last" and unit == "day":
            # LAST_N_DAYS counts back from today and includes today.
            return today - timedelta(days=n), today + timedelta(days=1)
        if direction == "next" and unit == "day":
            return today + timedelta(days=1), today + timedelta(days=n + 1)
        current = _unit_start(unit, today)
        if direction == "last":
            return _shift(current, unit, -n), current
        if direction == "next":
            return _shift(current, unit, 1), _shift(current, unit, n + 1)
        start = _shift(current, unit, -n)
        return start, _shift(start, unit, 1)


def _unit_start(unit: str, day: date) -> date:
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=(day.weekday() + 1) % 7)
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def _shift(start: date, unit: str, count: int) -> date:
    if unit == "day":
        return start + timedelta(days=count)
    if unit == "week":
        return start + timedelta(weeks=count)
    months = {"month": 1, "quarter": 3, "year": 12}[unit] * count
    index = start.year * 12 + start.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


Value = str | int | Decimal | bool | date | datetime | RelativeDate | None


@dataclass(frozen=True)
class Comparison:
    """`field operator value`; operator is one of `OPERATORS`.

    `value` is a tuple for IN, NOT IN, INCLUDES and EXCLUDES, and a
    `LikePattern` for LIKE.
    """

    field: Field
    operator: str
    value: Any
    position: Position = field(default=Position(), compare=False, repr=False)


@dataclass(frozen=True)
class And:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    condition: Condition


Condition = Comparison | And | Or | Not

OPERATORS = (
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "LIKE",
    "IN",
    "NOT IN",
    "INCLUDES",
    "EXCLUDES",
)


@dataclass(frozen=True)
class OrderBy:
    field: Field
    descending: bool = False
    nulls_last: bool | None = None

    @property
    def puts_nulls_last(self) -> bool:
        # Without NULLS FIRST/LAST, nulls come first ascending, last descending.
        return self.descending if self.nulls_last is None else self.nulls_last


@dataclass(frozen=True)
class Query:
    fields: tuple[Field | Count, ...]
    sobject: str
    where: Condition | None = None
    order_by: tuple[OrderBy, ...] = ()
    limit: int | None = None
    offset: int | None = None
    sobject_position: Position = field(default=Position(), compare=False, repr=False)

    @property
    def is_count(self) -> bool:
        return any(isinstance(item, Count) for item in self.fields)


def comparisons(condition: Condition | None) -> Iterator[Comparison]:
    """Yield every comparison in a condition tree, left to right."""
    if condition is None:
        return
    if isinstance(condition, Comparison):
        yield condition
    elif isinstance(condition, Not):
        yield from comparisons(condition.condition)
    else:
        for part in condition.conditions:
            yield from comparisons(part)


# ---------------------------------------------------------------- The grammar

# Longest names first, so that the lexer never stops at a shorter prefix.
_RELATIVE_NAMES = sorted(
    [*_FIXED_RANGES, "LAST_90_DAYS", "NEXT_90_DAYS"], key=len, reverse=True
)
_RELATIVE_N_NAMES = sorted(_N_RANGES, key=len, reverse=True)
_RELATIVE_PATTERN = (
    rf"(?:(?:{'|'.join(_RELATIVE_N_NAMES)}):\d+|(?:{'|'.join(_RELATIVE_NAMES)}))"
    r"(?![A-Za-z0-9_:])"
)
_DATETIME_PATTERN = (
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})"
)

# TODO: SOQL also takes semi-joins (`Id IN (SELECT ContactId FROM Case)`)
# and, in multi-currency orgs, currency-prefixed literals (`Amount >
# USD5000`). Filters using either are refused on save with a syntax error,
# as this grammar does not read them; supporting them means parsing and
# checking the inner query too, and never splitting an IN list that is one.
_GRAMMAR = rf"""
    query: select_clause from_clause where_clause? order_clause? limit_clause? \
           offset_clause?
    condition_only: condition

    select_clause: SELECT select_item ("," select_item)*
    ?select_item: field | count
    count: COUNT "(" ")"
    from_clause: FROM NAME
    where_clause: WHERE condition
    order_clause: ORDER BY order_item ("," order_item)*
    order_item: field [ASC | DESC] [NULLS (FIRST | LAST)]
    limit_clause: LIMIT INT
    offset_clause: OFFSET INT

    ?condition: unary | and_chain | or_chain
    and_chain: unary (AND unary)+
    or_chain: unary (OR unary)+
    ?unary: NOT unary -> negation
          | "(" condition ")"
          | comparison
    ?comparison: field OPERATOR value -> compare
               | field LIKE STRING -> like
               | field IN "(" values ")" -> in_list
               | field NOT IN "(" values ")" -> not_in_list
               | field INCLUDES "(" values ")" -> includes
               | field EXCLUDES "(" values ")" -> excludes
    values: value ("," value)*
    ?value: STRING -> string
          | NUMBER -> number
          | DATETIME -> datetime
          | DATE -> date
          | RELATIVE_DATE -> relative_date
          | NULL -> null
          | TRUE -> true
          | FALSE -> false
    field: NAME ("." NAME)*

    OPERATOR: "=" | "!=" | "<>" | "<=" | ">=" | "<" | ">"
    STRING: /'(?:[^'\\]|\\.)*'/s
    NUMBER: /[+-]?(?:\d+(?:\.\d*)?|\.\d+)/
    INT: /\d+/
    DATETIME.3: /{_DATETIME_PATTERN}/i
    DATE.2: /\d{{4}}-\d{{2}}-\d{{2}}(?![\dT:])/
    RELATIVE_DATE.2: /{_RELATIVE_PATTERN}/i
    NAME: /[A-Za-z][A-Za-z0-9_]*/

    SELECT: "select"i
    FROM: "from"i
    WHERE: "where"i
    ORDER: "order"i
    BY: "by"i
    ASC: "asc"i
    DESC: "desc"i
    NULLS: "nulls"i
    FIRST: "first"i
    LAST: "last"i
    LIMIT: "limit"i
    OFFSET: "offset"i
    AND: "and"i
    OR: "or"i
    NOT: "not"i
    IN: "in"i
    LIKE: "like"i
    INCLUDES: "includes"i
    EXCLUDES: "excludes"i
    COUNT: "count"i
    NULL: "null"i
    TRUE: "true"i
    FALSE: "false"i

    %import common.WS
    %ignore WS
"""

# Escape sequences SOQL accepts in string literals; `\_` and `\%` stand for
# a plain underscore or percent sign, which matters only in LIKE.
# https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_quotedstringescapes.htm
_ESCAPES = {
    "'": "'",
    '"': '"',
    "\\": "\\",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    "_": "_",
    "%": "%",
}

_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:(Z)|([+-])(\d{2}):?(\d{2}))",
    re.IGNORECASE,
)


def _position(token: Token) -> Position:
    return Position(line=token.line or 1, column=token.column or 1)


@v_args(inline=True)
class _ToTree(Transformer):
    def query(self, select, source, *clauses):
        parts: dict[str, Any] = {}
        for clause in clauses:
            if clause is not None:
                parts.update(clause)
        name, position = source
        return Query(fields=select, sobject=name, sobject_position=position, **parts)

    def condition_only(self, condition):
        return condition

    def select_clause(self, _keyword, *items):
        return tuple(items)

    def count(self, keyword):
        return Count(position=_position(keyword))

    def from_clause(self, _keyword, name):
        return str(name), _position(name)

    def where_clause(self, _keyword, condition):
        return {"where": condition}

    def order_clause(self, _order, _by, *items):
        return {"order_by": tuple(items)}

    def order_item(self, target, direction, nulls, placement):
        descending = direction is not None and direction.type == "DESC"
        nulls_last = None if placement is None else placement.type == "LAST"
        return OrderBy(field=target, descending=descending, nulls_last=nulls_last)

    def limit_clause(self, _keyword, number):
        return {"limit": int(number)}

    def offset_clause(self, _keyword, number):
        return {"offset": int(number)}

    def and_chain(self, *items):
        return And(tuple(item for item in items if not isinstance(item, Token)))

    def or_chain(self, *items):
        return Or(tuple(item for item in items if not isinstance(item, Token)))

    def negation(self, _keyword, condition):
        return Not(condition)

    def field(self, *names):
        return Field(tuple(str(name) for name in names), _position(names[0]))

    def compare(self, target, operator, value):
        symbol = "!=" if operator == "<>" else str(operator)
        return Comparison(target, symbol, value.value, target.position)

    def like(self, target, _keyword, token):
        literal = _string(token)
        return Comparison(target, "LIKE", LikePattern(literal.like), target.position)

    def in_list(self, target, _keyword, values):
        return Comparison(target, "IN", values, target.position)

    def not_in_list(self, target, _not, _in, values):
        return Comparison(target, "NOT IN", values, target.position)

    def includes(self, target, _keyword, values):
        return Comparison(target, "INCLUDES", values, target.position)

    def excludes(self, target, _keyword, values):
        return Comparison(target, "EXCLUDES", values, target.position)

    def values(self, *items):
        return tuple(item.value for item in items)

    def string(self, token):
        return _string(token)

    def number(self, token):
        text = str(token)
        if re.fullmatch(r"[+-]?\d+", text):
            return _Literal(int(text))
        return _Literal(Decimal(text))

    def datetime(self, token):
        return _Literal(_datetime(token))

    def date(self, token):
        try:
            return _Literal(date.fromisoformat(str(token)))
        except ValueError:
            raise _error(f"invalid date: {token}", token) from None

    def relative_date(self, token):
        name, _, count = str(token).upper().partition(":")
        return _Literal(RelativeDate(name, int(count) if count else None))

    def null(self, _token):
        return _Literal(None)

    def true(self, _token):
        return _Literal(True)

    def false(self, _token):
        return _Literal(False)


@dataclass(frozen=True)
class _Literal:
    value: Any
    like: str = ""


def _string(token: Token) -> _Literal:
    body = str(token)[1:-1]
    decoded = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1]
            if escaped not in _ESCAPES:
                reason = (
                    f"Invalid string literal '{body}'. Illegal character sequence "
                    f"'\\{escaped}' in string literal."
                )
                raise _error(reason, token)
            decoded.append(_ESCAPES[escaped])
            index += 2
        else:
            decoded.append(char)
            index += 1
    return _Literal("".join(decoded), like=body)


def _datetime(token: Token) -> datetime:
    match = _DATETIME_RE.fullmatch(str(token))
    if match is None:
        raise _error(f"invalid datetime: {token}", token)
    year, month, day, hour, minute, second, fraction, zulu, sign, tzh, tzm = (
        match.groups()
    )
    offset = timedelta(0)
    if not zulu:
        offset = timedelta(hours=int(tzh), minutes=int(tzm))
        offset = -offset if sign == "-" else offset
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            micros,
            tzinfo=timezone(offset),
        )
        # A moment at either end of the calendar can fall outside it in UTC.
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _error(f"invalid datetime: {token}", token) from None


def _error(reason: str, token: Token) -> SoqlError:
    return SoqlError(reason, line=token.line or 1, column=token.column or 1)


_PARSER = Lark(
    _GRAMMAR,
    parser="lalr",
    lexer="contextual",
    start=["query", "condition_only"],
    maybe_placeholders=True,
    transformer=_ToTree(),
)


def parse(text: str) -> Query:
    """Parse a SELECT statement; raise `SoqlError` if it is not valid SOQL."""
    return _parse(text, start="query")


def parse_condition(text: str) -> Condition:
    """Parse a bare WHERE condition, as staff type it for a filter."""
    condition = _parse(text, start="condition_only")
    _check_nesting(condition)
    return condition


def _parse(text: str, *, start: str) -> Any:
    try:
        return _PARSER.parse(text, start=start)
    except VisitError as error:
        if isinstance(error.orig_exc, SoqlError):
            raise error.orig_exc from None
        raise
    except UnexpectedInput as error:
        raise _syntax_error(text, error) from None


# Deeper filters are refused: nothing staff filter on needs them, and the
# code that checks, writes and evaluates a condition walks it recursively.
MAX_NESTING = 100


def _check_nesting(condition: Condition) -> None:
    """Refuse a condition nested more than MAX_NESTING deep, pointing at
    the first comparison inside the level that goes too deep."""
    stack = [(condition, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Comparison):
            continue
        if depth == MAX_NESTING:
            while not isinstance(node, Comparison):
                node = node.condition if isinstance(node, Not) else node.conditions[0]
            raise SoqlError(
                f"conditions nested more than {MAX_NESTING} deep",
                line=node.position.line,
                column=node.position.column,
            )
        parts = (node.condition,) if isinstance(node, Not) else node.conditions
        stack.extend((part, depth + 1) for part in parts)


def _syntax_error(text: str, error: UnexpectedInput) -> SoqlError:
    if isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream]
        reason = f"unexpected character: {char!r}"
        return SoqlError(reason, line=error.line, column=error.column)

    token = getattr(error, "token", None)
    if isinstance(error, UnexpectedEOF) or token is None or token.type == "$END":
        line, column = _end_position(text)
        return SoqlError("unexpected token: <EOF>", line=line, column=column)

    reason = f"unexpected token: {token}"
    expected = error.expected if isinstance(error, UnexpectedToken) else set()
    if {token.type, *expected} >= {"AND", "OR"} and token.type in {"AND", "OR"}:
        # Salesforce refuses `a AND b OR c`: the reader must say which is meant.
        reason += " (AND and OR cannot be mixed without parentheses)"
    return SoqlError(reason, line=token.line, column=token.column)


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


# ---------------------------------------------------------------- Building


def quote(value: object) -> str:
    """Return `value` as a SOQL literal, so that nothing is pasted in unquoted.

    Strings are quoted and escaped; datetimes must be timezone-aware and are
    written in UTC to the second (sub-second parts are dropped); dates are
    `YYYY-MM-DD`.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            raise ValueError(f"SOQL has no literal for {value!r}")
        number = Decimal(repr(value)) if isinstance(value, float) else value
        return format(number, "f")
    if isinstance(value, str):
        return "'" + _escape(value) + "'"
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("SOQL datetimes must be timezone-aware")
        # isoformat, not strftime: the C library writes year 1 as "1".
        moment = value.astimezone(UTC).replace(microsecond=0, tzinfo=None)
        return moment.isoformat() + "Z"
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"SOQL has no literal for {type(value).__name__}")


_QUOTE_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def _escape(text: str) -> str:
    return "".join(_QUOTE_ESCAPES.get(char, char) for char in text)


# ---------------------------------------------------------------- Evaluating


def evaluate(
    condition: Condition,
    *,
    value_of: Callable[[Field], object],
    today: date,
) -> bool:
    """Tell whether a record, seen through `value_of`, meets `condition`.

    `value_of` returns the record's value for a field as Python sees it: str,
    int, float or Decimal, bool, date, aware datetime, None, or a frozenset of
    values for a multi-select picklist. Text compares without regard to case,
    as in Salesforce; `!=` and NOT IN keep records whose value is null.
    """
    if isinstance(condition, And):
        return all(
            evaluate(part, value_of=value_of, today=today)
            for part in condition.conditions
        )
    if isinstance(condition, Or):
        return any(
            evaluate(part, value_of=value_of, today=today)
            for part in condition.conditions
        )
    if isinstance(condition, Not):
        return not evaluate(condition.condition, value_of=value_of, today=today)
    return _compare(condition, value_of(condition.field), today=today)


def _compare(comparison: Comparison, value: object, *, today: date) -> bool:
    operator, literal = comparison.operator, comparison.value
    if operator == "=":
        return _equals(value, literal, today=today)
    if operator == "!=":
        return not _equals(value, literal, today=today)
    if operator == "IN":
        return any(_equals(value, item, today=today) for item in literal)
    if operator == "NOT IN":
        return not any(_equals(value, item, today=today) for item in literal)
    if operator == "LIKE":
        return isinstance(value, str) and bool(literal.regex.fullmatch(value))
    if operator in {"INCLUDES", "EXCLUDES"}:
        chosen = _picklist_set(value)
        found = any(_picklist_set(item) <= chosen for item in literal)
        if operator == "INCLUDES":
            return value is not None and found
        return not found
    return _order(value, operator, literal, today=today)


def _equals(value: object, literal: object, *, today: date) -> bool:
    if isinstance(literal, RelativeDate):
        start, end = _range_for(value, literal, today=today)
        return value is not None and start <= value < end
    if value is None or literal is None:
        return value is None and literal is None
    if isinstance(value, frozenset):
        return _picklist_set(value) == _picklist_set(literal)
    if isinstance(value, str) and isinstance(literal, str):
        return value.casefold() == literal.casefold()
    value, literal = _comparable(value, literal)
    return value == literal


def _order(value: object, operator: str, literal: object, *, today: date) -> bool:
    if value is None or literal is None:
        return False
    if isinstance(literal, RelativeDate):
        start, end = _range_for(value, literal, today=today)
        return {
            "<": value < start,
            "<=": value < end,
            ">": value >= end,
            ">=": value >= start,
        }[operator]
    value, literal = _comparable(value, literal)
    return {
        "<": lambda: value < literal,
        "<=": lambda: value <= literal,
        ">": lambda: value > literal,
        ">=": lambda: value >= literal,
    }[operator]()


def _comparable(value: Any, literal: Any) -> tuple[Any, Any]:
    if isinstance(value, str) and isinstance(literal, str):
        return value.casefold(), literal.casefold()
    if isinstance(value, float) and isinstance(literal, Decimal):
        return value, float(literal)
    if isinstance(value, datetime) and not isinstance(literal, datetime):
        if isinstance(literal, date):
            return value, datetime.combine(literal, time(), tzinfo=UTC)
    if isinstance(literal, datetime) and not isinstance(value, datetime):
        if isinstance(value, date):
            return datetime.combine(value, time(), tzinfo=UTC), literal
    return value, literal


def _range_for(value: object, literal: RelativeDate, *, today: date) -> tuple:
    start, end = literal.bounds(today=today)
    if isinstance(value, datetime):
        return (
            datetime.combine(start, time(), tzinfo=UTC),
            datetime.combine(end, time(), tzinfo=UTC),
        )
    return start, end


def _picklist_set(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, frozenset):
        return frozenset(item.casefold() for item in value)
    return frozenset(
        item.strip().casefold() for item in str(value).split(";") if item.strip()
    )
