"""Read the records of a planned query, however many statements it takes."""

from collections.abc import Callable, Iterator
from typing import Any

from integrations.salesforce.client import SalesforceClient
from integrations.salesforce.soql_build import Plan

Record = dict[str, Any]
PAGE = 2000


def read_records(
    *,
    client: SalesforceClient,
    plan: Plan,
    on_incomplete: Callable[[str], None],
    include_deleted: bool = False,
) -> Iterator[list[Record]]:
    """Yield records page by page; each record once, whole.

    A plain plan streams Salesforce's pages as they come. When a long `IN`
    list was split, a record matched by several parts is yielded once. When
    a wide field list was split, the groups' rows are joined by Id, and a
    row missing from a group (changed or deleted between two statements) is
    dropped and reported through `on_incomplete`, never stored half-empty.
    """
    seen: set[str] | None = set() if len(plan.statements) > 1 else None
    for group_statements in plan.statements:
        if len(group_statements) == 1:
            pages = client.query_pages(
                soql=group_statements[0], include_deleted=include_deleted
            )
        else:
            pages = _joined(
                client=client, statements=group_statements, on_incomplete=on_incomplete
            )
        for page in pages:
            if seen is not None:
                page = [r for r in page if r.get("Id") not in seen]
                seen.update(r.get("Id") for r in page)
            yield page


def _joined(
    *,
    client: SalesforceClient,
    statements: tuple[str, ...],
    on_incomplete: Callable[[str], None],
) -> Iterator[list[Record]]:
    # TODO: join the groups' pages as they stream (ordered by Id) instead of
    # holding the object's rows; only objects too wide for one statement
    # come here, so their rows are held in memory for now.
    rows: dict[str, Record] = {}
    hits: dict[str, int] = {}
    for statement in statements:
        for page in client.query_pages(soql=statement):
            for record in page:
                record_id = record.get("Id")
                rows.setdefault(record_id, {}).update(record)
                hits[record_id] = hits.get(record_id, 0) + 1
    whole = []
    for record_id, record in rows.items():
        if hits[record_id] == len(statements):
            whole.append(record)
        else:
            on_incomplete(record_id)
    for start in range(0, len(whole), PAGE):
        yield whole[start : start + PAGE]
