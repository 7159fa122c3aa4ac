"""Wide field lists read in groups, joined by Id as their pages come."""

import pytest

from integrations.salesforce.soql_build import plan_select
from integrations.services import connection_client
from integrations.sync import read
from tests.integrations.support import sent_queries

pytestmark = pytest.mark.django_db

WIDE = ["LastName", "FirstName", "Email", "Title", "Department", "MobilePhone"]


def _query_calls(org_http) -> int:
    return sum(1 for c in org_http.calls if "/query" in c.request.url)


def _wide_plan(org):
    plan = plan_select(sobject="Contact", fields=["Id", *WIDE], where=None, budget=180)
    assert len(plan.statements[0]) > 2
    return plan


def test_groups_are_read_in_one_order_and_joined_as_their_pages_come(
    org, org_http, connection, monkeypatch
):
    monkeypatch.setattr(read, "PAGE", 100)
    client = connection_client(connection=connection, batch_size=100)
    plan = _wide_plan(org)
    groups = len(plan.statements[0])
    pages_per_group = -(-org.store.count("Contact") // 100)

    pages = read.read_records(client=client, plan=plan, on_incomplete=print)
    first = next(pages)
    # One page of each group, and at most the next one already asked for.
    asked_by_then = _query_calls(org_http)
    rest = [record for page in pages for record in page]

    assert all(q.endswith(" ORDER BY Id") for q in sent_queries(org_http))
    assert len(first) == 100
    assert asked_by_then <= 2 * groups < pages_per_group * groups
    records = {record["Id"]: record for record in [*first, *rest]}
    assert len(records) == len(first) + len(rest) == org.store.count("Contact")
    stored = {record["Id"]: record for record in org.store.records("Contact")}
    for record_id, record in records.items():
        for name in WIDE:
            assert record.get(name) == stored[record_id].get(name)
