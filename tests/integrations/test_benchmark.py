"""The benchmark runs end to end on a small org and reports every figure."""

import json

import pytest
from django.core.management import call_command

from integrations.management.commands import benchmark_sync
from integrations.management.commands.benchmark_sync import (
    naive_import,
    naive_limits,
    naive_rows_compare,
)
from integrations.models import SyncRun
from integrations.offline_org import offline_org_connect
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.testing import mocked
from integrations.sync.run import connection_sync
from people.models import CrmAccount, CrmRecord, Organisation, Owner, Person
from tests.conftest import OFFLINE_HOST
from tests.factories import MembershipFactory


def test_the_benchmark_prints_and_writes_its_figures(tmp_path, capsys):
    # Each step runs in a child process with a throwaway SQLite file.
    out = tmp_path / "bench.json"

    call_command("benchmark_sync", sizes="200", json_path=str(out))

    figures = json.loads(out.read_text())["200"]
    full = figures["full"]
    # 200 Contacts, 20 Accounts, 10 Opportunities, the Users and Leads.
    assert full["records"] >= 230
    assert full["api_calls"] >= 1 and full["rest_query_calls"] == full["rest_floor"]
    # The naive way imports every object the full sync does.
    assert figures["naive"]["records"] == full["records"]
    assert figures["write_floor"]["records"] == 200
    assert figures["recent_1pct"]["rows_written"] == 2
    assert figures["no_change"] == {"api_calls": 1, "rows_written": 0, "objects": 5}
    table = capsys.readouterr().out
    assert "floor rec/s" in table and "200" in table


@pytest.fixture
def synced_and_naive(db):
    """A generated org synced in full, and a second connection to import into."""
    org = OfflineOrg(generate={"contacts": 60}, seed=3, load_sample=False)
    with mocked(org, base_url=f"https://{OFFLINE_HOST}"):
        synced = MembershipFactory()
        connection = offline_org_connect(
            workspace=synced.workspace, user=synced.user, login_host=OFFLINE_HOST
        )
        run = connection_sync(connection=connection, kind=SyncRun.Kind.FULL)
        assert run.status == SyncRun.Status.SUCCESS
        other = MembershipFactory()
        naive = offline_org_connect(
            workspace=other.workspace, user=other.user, login_host=OFFLINE_HOST
        )
        yield connection, naive


def _stored(connection):
    """What a connection holds, with links by Salesforce Id or domain."""
    people = Person.objects.filter(connection=connection).values_list(
        "salesforce_id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "country",
        "title",
        "has_opted_out_of_email",
        "salesforce_account_id",
        "owner__salesforce_id",
        "organisation__domain",
    )
    accounts = CrmAccount.objects.filter(connection=connection).values_list(
        "salesforce_id",
        "name",
        "website",
        "industry",
        "owner__salesforce_id",
        "organisation__domain",
    )
    records = CrmRecord.objects.filter(connection=connection).values_list(
        "salesforce_id",
        "object_name",
        "name",
        "person__salesforce_id",
        "account_salesforce_id",
        "owner__salesforce_id",
        "organisation__domain",
        "custom_values",
    )
    owners = Owner.objects.filter(connection=connection).values_list(
        "salesforce_id", "name", "email"
    )
    return {
        "people": sorted(people),
        "accounts": sorted(accounts),
        "records": sorted(records, key=lambda row: row[0]),
        "owners": sorted(owners),
    }


def test_it_imports_the_naive_way_the_rows_the_full_sync_stored(synced_and_naive):
    connection, naive = synced_and_naive

    figures = naive_import(synced=connection, into=naive)

    assert figures["records"] == sum(
        model.objects.filter(connection=connection).count()
        for model in (Owner, CrmAccount, Person, CrmRecord)
    )
    assert _stored(naive) == _stored(connection)
    assert Person.objects.filter(connection=naive, owner__isnull=False).exists()
    assert CrmRecord.objects.filter(
        connection=naive, object_name="Opportunity", organisation__isnull=False
    ).exists()
    assert (
        Organisation.objects.filter(workspace_id=naive.workspace_id).count()
        == Organisation.objects.filter(workspace_id=connection.workspace_id).count()
    )
    assert (
        naive_rows_compare(synced=connection, naive=naive, limits=figures["limits"])
        == []
    )


def test_it_tells_when_the_naive_import_stored_other_rows(synced_and_naive):
    connection, naive = synced_and_naive
    figures = naive_import(synced=connection, into=naive)
    Person.objects.filter(connection=naive).first().delete()

    mismatches = naive_rows_compare(
        synced=connection, naive=naive, limits=figures["limits"]
    )

    assert mismatches == ["59 Person rows, where the full sync stored 60"]


def test_it_reads_a_share_of_every_object_past_the_naive_limit(
    synced_and_naive, monkeypatch
):
    connection, naive = synced_and_naive
    monkeypatch.setattr(benchmark_sync, "NAIVE_LIMIT", 40)

    figures = naive_import(synced=connection, into=naive)

    limits = figures["limits"]
    assert set(limits) == {"User", "Account", "Contact", "Opportunity", "Lead"}
    # 60 Contacts, 6 Accounts, 3 Opportunities, 4 Users and no Lead.
    assert limits == {
        "User": 3,
        "Account": 4,
        "Contact": 33,
        "Opportunity": 2,
        "Lead": 0,
    }
    assert figures["records"] == 42
    assert Person.objects.filter(connection=naive).count() == limits["Contact"]
    assert naive_rows_compare(synced=connection, naive=naive, limits=limits) == []


def test_it_reads_every_record_up_to_the_naive_limit():
    counts = {"User": 4, "Contact": 10_000, "Lead": 996}

    assert naive_limits(counts=counts) == dict.fromkeys(counts)
