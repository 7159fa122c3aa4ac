"""`field__among=values`: `field__in=values` with the values as one parameter.

A sync looks rows up by pages of 2,000 Salesforce Ids. Django's `in` gives
each value a placeholder of its own, and building, binding and (on
PostgreSQL, whose client-side binding parses the statement) reading those
costs several times the lookup itself. Here the whole list is one
parameter: a JSON array read by `json_each` on SQLite; on PostgreSQL, an
array in its text form, written here in one go (psycopg would quote it
value by value), compared with `= ANY`. Being a constant, the array is
hashed: a lookup stays fast even when the planner, before it has counted a
table just filled, expects one row and filters instead of using the index.
Other databases, and fields that hold neither text nor integers, get
Django's `in`.
https://www.sqlite.org/json1.html#jeach
https://www.postgresql.org/docs/current/functions-comparisons.html#FUNCTIONS-COMPARISONS-ANY-SOME
"""

import json
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db.models import CharField, IntegerField, TextField
from django.db.models.lookups import In


class Among(In):
    lookup_name = "among"
    # Set when the values are ready to be sent as one parameter; otherwise
    # they are kept as given, for the field's own `in`.
    one_parameter = False
    is_text = False

    def get_prep_lookup(self) -> Any:
        if not self.rhs_is_direct_value():
            return super().get_prep_lookup()
        values = list(self.rhs)
        # An expression among the values (F("name"), Value(...)) is left to
        # `in`, which keeps the list as one expression that a subquery
        # relabels; prepared here, it would become the text of its repr.
        if any(type(v) is not str and hasattr(v, "resolve_expression") for v in values):
            self.rhs = values
            return super().get_prep_lookup()
        field = self.lhs.output_field
        # Text and integers, what rows are looked up by, read back from JSON
        # and an array as they were; other values may not (decimals, bytes,
        # JSON, whose key transforms have an `in` of their own).
        if not isinstance(field, CharField | TextField | IntegerField):
            return values
        self.one_parameter = True
        self.is_text = isinstance(field, CharField | TextField)
        prep = field.get_prep_value
        if self.is_text:
            # Text for a text column is what the database takes: the field's
            # own preparation, called for every Id, would cost more than the
            # lookup. Other values end as plain text, what `in` sends: a str
            # subclass (an Enum's member) may have a str() of its own.
            prepared = (v if type(v) is str else _plain(prep(v)) for v in values)
        else:
            prepared = (prep(v) for v in values)
        # NULL equals nothing, as with `in`; each value once.
        return list(dict.fromkeys(v for v in prepared if v is not None))

    def as_sql(self, compiler, connection) -> tuple[str, list[Any]]:
        if self.rhs_is_direct_value() and not self.one_parameter:
            # Built here, from the left-hand side as it is now (relabelled in
            # a subquery), so that it compiles as `field__in` would.
            in_ = self.lhs.get_lookup("in")(self.lhs, self.rhs)
            return compiler.compile(in_)
        return super().as_sql(compiler, connection)

    def _one_parameter(self, compiler, connection) -> tuple[str, list[Any], list[Any]]:
        # Prepared text and integers are what the database takes as they are.
        if not self.rhs:
            raise EmptyResultSet
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        return lhs_sql, list(lhs_params), list(self.rhs)

    def as_sqlite(self, compiler, connection) -> tuple[str, list[Any]]:
        # A bilateral transform (applied to each value too) is left to `in`.
        if not self.one_parameter or self.bilateral_transforms:
            return self.as_sql(compiler, connection)
        lhs_sql, params, values = self._one_parameter(compiler, connection)
        array = json.dumps(values)
        # json_each ends a string at NUL: "a\u0000b" would be read as "a".
        # Such a list, never met in Ids, goes as `in`.
        if "\\u0000" in array:
            return super().as_sql(compiler, connection)
        sql = f"{lhs_sql} IN (SELECT value FROM json_each(%s))"
        return sql, [*params, array]

    def as_postgresql(self, compiler, connection) -> tuple[str, list[Any]]:
        if not self.one_parameter or self.bilateral_transforms:
            return self.as_sql(compiler, connection)
        lhs_sql, params, values = self._one_parameter(compiler, connection)
        if self.is_text:
            element = "text"
        else:
            field = self.lhs.output_field
            element = field.db_type(connection)
            # A number out of the column's range equals none of its values,
            # as with `in`; cast in the array, it would fail the query.
            kind = field.get_internal_type()
            low, high = connection.ops.integer_field_range(kind)
            values = [v for v in values if low <= v <= high]
            if not values:
                raise EmptyResultSet
        return f"{lhs_sql} = ANY(%s::{element}[])", [*params, _array_literal(values)]


def _plain(text: str | None) -> str | None:
    """Return the text of a str subclass as a str, whatever its __str__."""
    return None if text is None else str.__str__(text)


def _array_literal(values: list[Any]) -> str:
    """Return PostgreSQL's text form of an array, every element quoted.

    https://www.postgresql.org/docs/current/arrays.html#ARRAYS-IO
    """
    quoted = (
        '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values
    )
    return "{" + ",".join(quoted) + "}"
