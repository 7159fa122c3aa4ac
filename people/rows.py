"""Insert and update many rows of one model through one prepared statement.

Django's `bulk_create` and `bulk_update` build a new statement for every
few dozen rows (SQLite allows 999 parameters a statement, and `bulk_update`
writes a CASE per column), and building them costs more than the writes.
Here one statement is prepared and the database driver runs it for every
row: sqlite3 reuses the prepared statement. On PostgreSQL, rows go in by COPY.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, models, router, transaction
from django.utils import timezone

Prep = Callable[[Any], Any]
_NOTHING = object()


def _plain(field: models.Field) -> tuple[type, ...]:
    """Return the types of value a field stores as they are."""
    if isinstance(field, models.CharField | models.TextField):
        return (str,)
    if isinstance(field, models.BooleanField):
        return (bool,)
    if isinstance(field, models.IntegerField | models.ForeignKey):
        return (int,)
    return ()


def _prep(field: models.Field, connection: Any) -> Prep:
    """Return how to turn a field's Python value into the database's value.

    Text, numbers and booleans go as they are; anything else (dates, JSON,
    a value of a surprising type) through the field's own preparation.
    """
    plain = _plain(field)

    # A batch often gives one column the same object in every row (the time
    # of the write, an empty dict): it is prepared once.
    last: list[Any] = [_NOTHING, None]

    def prep(value: Any) -> Any:
        if value is None or type(value) in plain:
            return value
        if value is last[0]:
            return last[1]
        prepared = field.get_db_prep_save(value, connection=connection)
        last[0], last[1] = value, prepared
        return prepared

    return prep


def _default_is_fixed(field: models.Field) -> bool:
    """Tell whether every default of the field is prepared to the same value.

    No default gives None or ""; a default given as a value is that one
    object; `dict` and `list` make equal empty ones. Any other callable (a
    clock, a random Id) is called for each row.
    """
    if not field.has_default() or not callable(field.default):
        return True
    return field.default in (dict, list)


@dataclass(frozen=True)
class PreparedRows:
    """Rows of one model turned into the database's values, ready to insert."""

    model: type[models.Model]
    alias: str
    fields: list[models.Field]
    # One sequence of values per row, in the order of `fields`.
    params: list[Sequence[Any]]


def rows_insert(model: type[models.Model], rows: Sequence[dict[str, Any]]) -> None:
    """INSERT one row per dict of values, keyed by field name or attname.

    A field a dict leaves out takes its default; `auto_now` and
    `auto_now_add` fields take the time of the call. A key that names no
    field raises ValueError: its value would be lost without a word.
    """
    if rows:
        rows_write(rows_prepare(model, rows))


def rows_prepare(
    model: type[models.Model], rows: Sequence[dict[str, Any]]
) -> PreparedRows:
    """Turn dicts of values into the database's values, as `rows_insert` does."""
    alias = router.db_for_write(model)
    connection = connections[alias]
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    known = {name for f in fields for name in (f.name, f.attname)}
    for row in rows:
        if not row.keys() <= known:
            unknown = ", ".join(sorted(row.keys() - known))
            raise ValueError(f"Not fields {model.__name__} writes: {unknown}")
    now = timezone.now()
    # Column by column: what is worked out once per field (how to prepare
    # its values, its default) is not worked out again for every row.
    columns = [_column(f, rows, connection=connection, now=now) for f in fields]
    params: list[Sequence[Any]] = (
        list(zip(*columns, strict=True)) if columns else [() for _ in rows]
    )
    return PreparedRows(model=model, alias=alias, fields=fields, params=params)


def _column(
    field: models.Field, rows: Sequence[dict[str, Any]], *, connection: Any, now: Any
) -> list[Any]:
    """Return one field's database values, a row at a time."""
    name, attname = field.name, field.attname
    plain = _plain(field)
    prep = _prep(field, connection)
    stamped = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    # Any other default is made for each row: it may be mutable.
    fixed = stamped or _default_is_fixed(field)
    fixed_value: Any = _NOTHING
    prepared: list[Any] = []
    append = prepared.append
    for row in rows:
        if attname in row:
            value = row[attname]
        elif name in row:
            value = row[name]
            value = value.pk if isinstance(value, models.Model) else value
        elif fixed:
            if fixed_value is _NOTHING:
                fixed_value = prep(now if stamped else field.get_default())
            append(fixed_value)
            continue
        else:
            value = field.get_default()
        append(value if value is None or type(value) in plain else prep(value))
    return prepared


def rows_write(prepared: PreparedRows) -> None:
    """INSERT prepared rows in one transaction: one prepared statement run
    for every row on SQLite, COPY on PostgreSQL."""
    if not prepared.params:
        return
    connection = connections[prepared.alias]
    quote = connection.ops.quote_name
    model, fields, params = prepared.model, prepared.fields, prepared.params
    # One transaction: in autocommit, SQLite would commit row by row.
    with (
        transaction.atomic(using=prepared.alias, savepoint=False),
        connection.cursor() as cursor,
    ):
        if connection.vendor == "postgresql":
            # The raw cursor's errors, turned into Django's as the wrapper does.
            with connection.wrap_database_errors:
                _copy(cursor, model=model, fields=fields, params=params, quote=quote)
        else:
            sql = "INSERT INTO {} ({}) VALUES ({})".format(
                quote(model._meta.db_table),
                ", ".join(quote(f.column) for f in fields),
                ", ".join(["%s"] * len(fields)),
            )
            cursor.executemany(sql, params)


def _copy(cursor: Any, *, model, fields, params, quote) -> None:
    """Load rows through COPY, PostgreSQL's fastest way in.

    Django's psycopg cursors bind parameters on the client, which makes
    `executemany` compose every row's statement in Python. A refused row
    fails the whole COPY, as it fails the whole `executemany`.
    https://www.psycopg.org/psycopg3/docs/basic/copy.html
    """
    statement = "COPY {} ({}) FROM STDIN".format(
        quote(model._meta.db_table), ", ".join(quote(f.column) for f in fields)
    )
    with cursor.cursor.copy(statement) as copy:
        for row in params:
            copy.write_row(row)


def rows_update(
    model: type[models.Model], objs: Sequence[models.Model], field_names: Sequence[str]
) -> None:
    """UPDATE the named fields of `objs`, each found by its primary key."""
    if not objs:
        return
    alias = router.db_for_write(model)
    connection = connections[alias]
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in field_names]
    preps = [_prep(f, connection) for f in fields]
    pk = model._meta.pk
    sql = "UPDATE {} SET {} WHERE {} = %s".format(
        quote(model._meta.db_table),
        ", ".join(f"{quote(f.column)} = %s" for f in fields),
        quote(pk.column),
    )
    params = [
        [
            *(
                prep(f.pre_save(obj, False))
                for f, prep in zip(fields, preps, strict=True)
            ),
            obj.pk,
        ]
        for obj in objs
    ]
    # One transaction: in autocommit, SQLite would commit row by row.
    with (
        transaction.atomic(using=alias, savepoint=False),
        connection.cursor() as cursor,
    ):
        cursor.executemany(sql, params)


def commit_without_waiting(using: str) -> None:
    """Let PostgreSQL commit the current transaction without waiting for the
    disk; call inside `transaction.atomic`.

    For writes a sync makes again when they are lost: a crash of the
    database can then lose the last such transactions, never only some of
    them, as its log is written in order. A transaction committed the usual
    way afterwards (a sync's checkpoint) waits for all before it.
    https://www.postgresql.org/docs/current/wal-async-commit.html
    """
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
