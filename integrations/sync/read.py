"""Read the records of a planned query, however many statements it takes."""

from collections.abc import Callable, Iterator
from typing import Any

from integrations.salesforce.client import SalesforceClient
from integrations.salesforce.soql_build import Plan
from integrations.sync.bulk import FullReadPlan, bulk_pages, bulk_threshold

Record = dict[str, Any]
PAGE = 2000


def read_records(
    *,
    client: SalesforceClient,
    plan: Plan,
    on_incomplete: Callable[[str, bool], None],
    include_deleted: bool = False,
    on_note: Callable[[str], None] | None = None,
    first_page: dict[str, Any] | None = None,
    before_poll: Callable[[], None] = lambda: None,
) -> Iterator[list[Record]]:
    """Yield records page by page; each record once, whole.

    A full read of an object larger than SALESFORCE_BULK_THRESHOLD goes
    through a Bulk API 2.0 query job (see bulk.py), the rest through REST;
    `on_note` hears why such a read went through REST after all.

    A plain plan streams Salesforce's pages as they come. When a long `IN`
    list was split, a record matched by several parts is yielded once. When
    a wide field list was split, the groups' rows are joined by Id. A row
    missing from a group (created or deleted between two statements), or
    whose stamp differs between groups (changed in between), is dropped and
    reported through `on_incomplete` with whether the last group still found
    it: never stored half-empty, nor half old and half new. Its stamp is
    newer than that of any row kept, so a read from the newest kept stamp on
    finds it again.

    `first_page` is Salesforce's answer to the plan's first statement when
    it came already (inside a Composite request); it is not asked again.
    `before_poll` is called before each status read of a Bulk job, and may
    stop the read by raising.
    """
    seen: set[str] | None = set() if len(plan.statements) > 1 else None
    for index, group_statements in enumerate(plan.statements):
        first = None
        if index == 0 and (first_page is not None or _may_go_bulk(plan)):
            # The first page says how many records the read matches: a large
            # full read drops it and goes through Bulk instead.
            total, first = _first_pages(
                client=client,
                statement=group_statements[0],
                include_deleted=include_deleted,
                first_page=first_page,
            )
            if _may_go_bulk(plan) and total is not None and total > bulk_threshold():
                bulk = bulk_pages(
                    client=client,
                    candidate=plan.bulk,
                    include_deleted=include_deleted,
                    on_note=on_note,
                    before_poll=before_poll,
                )
                if bulk is not None:
                    first.close()
                    yield from bulk
                    return
        if len(group_statements) == 1:
            pages = (
                first
                if first is not None
                else client.query_pages(
                    soql=group_statements[0], include_deleted=include_deleted
                )
            )
        else:
            pages = _joined(
                client=client,
                statements=group_statements,
                keys=plan.keys,
                on_incomplete=on_incomplete,
                include_deleted=include_deleted,
                first=first,
            )
        for page in pages:
            if seen is not None:
                page = [r for r in page if r.get("Id") not in seen]
                seen.update(r.get("Id") for r in page)
            yield page


def _first_pages(
    *,
    client: SalesforceClient,
    statement: str,
    include_deleted: bool,
    first_page: dict[str, Any] | None,
) -> tuple[int | None, Iterator[list[Record]]]:
    """Return the size and pages of a first statement, asking Salesforce
    only when its first page did not come already."""
    if first_page is not None:
        return client.query_pages_from(first=first_page)
    return client.query_pages_sized(soql=statement, include_deleted=include_deleted)


def _may_go_bulk(plan: Plan) -> bool:
    """Only a full read may go through Bulk, and only one that is not cut into
    parts of an `IN` list: the first part's size is not the whole's."""
    return (
        isinstance(plan, FullReadPlan)
        and plan.bulk is not None
        and len(plan.statements) == 1
    )


def _joined(
    *,
    client: SalesforceClient,
    statements: tuple[str, ...],
    keys: tuple[str, ...],
    on_incomplete: Callable[[str, bool], None],
    include_deleted: bool,
    first: Iterator[list[Record]] | None = None,
) -> Iterator[list[Record]]:
    """Join the rows of field groups by Id as their pages come.

    The groups are read a page of each in turn, in one order (`plan_select`
    orders them by Id), and a row is settled once every group has given it:
    only rows still waiting for a group are held, a few pages' worth, not
    the object. A row whose `keys` (Id and stamp) differ between groups, or
    that some group never gives, is reported with whether the last group
    found it.
    """
    # Every group through the same resource: a deleted record found by
    # queryAll in one group and missing from another would not be whole.
    streams = {
        number: first
        if number == 0 and first
        else client.query_pages(soql=statement, include_deleted=include_deleted)
        for number, statement in enumerate(statements)
    }
    last = len(statements) - 1
    waiting: dict[str, Record] = {}
    # Per waiting row, what each group that found it read of its keys: one
    # version of the row if every group saw the same stamp.
    versions: dict[str, dict[int, tuple]] = {}
    whole: list[Record] = []
    while streams:
        for number, stream in list(streams.items()):
            page = next(stream, None)
            if page is None:
                del streams[number]
                continue
            for record in page:
                record_id = record.get("Id")
                waiting.setdefault(record_id, {}).update(record)
                found = versions.setdefault(record_id, {})
                found[number] = tuple(record.get(key) for key in keys)
                if len(found) < len(statements):
                    continue
                row = waiting.pop(record_id)
                del versions[record_id]
                if len(set(found.values())) == 1:
                    whole.append(row)
                else:
                    on_incomplete(record_id, True)
        while len(whole) >= PAGE:
            yield whole[:PAGE]
            whole = whole[PAGE:]
    for record_id, found in versions.items():
        on_incomplete(record_id, last in found)
    if whole:
        yield whole
