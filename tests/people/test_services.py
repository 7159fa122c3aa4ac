import pytest
from django.db import DatabaseError
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext

from people.models import CrmAccount, Organisation, Person
from people.services import (
    WriteHook,
    organisation_upsert_batch,
    owner_upsert_batch,
    person_upsert_batch,
)
from tests.factories import SalesforceConnectionFactory

pytestmark = pytest.mark.django_db

ACCOUNT_A = "001000000000001AAA"
ACCOUNT_B = "001000000000002AAA"
OWNER = "005000000000009AAA"


def _account(sf_id, *, website, name="Acme"):
    return {
        "salesforce_id": sf_id,
        "name": name,
        "website": website,
        "industry": "Banking",
        "owner_salesforce_id": OWNER,
    }


def _contact(sf_id, **overrides):
    row = {
        "salesforce_id": sf_id,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "phone": "+44 20 7946 0000",
        "country": "United Kingdom",
        "title": "Engineer",
        "has_opted_out_of_email": False,
        "owner_salesforce_id": OWNER,
        "salesforce_account_id": ACCOUNT_A,
    }
    row.update(overrides)
    return row


def _writes(queries):
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]


def test_it_creates_people_linked_to_their_owner_and_organisation():
    connection = SalesforceConnectionFactory()
    owner_upsert_batch(
        connection=connection,
        rows=[{"salesforce_id": OWNER, "name": "Sam Rep", "email": "sam@acme.example"}],
    )
    organisation_upsert_batch(
        connection=connection, rows=[_account(ACCOUNT_A, website="acme.example")]
    )

    result = person_upsert_batch(
        connection=connection, rows=[_contact("003000000000001AAA")]
    )

    person = Person.objects.get()
    assert result.created == 1
    assert person.owner.name == "Sam Rep"
    assert person.organisation.domain == "acme.example"
    assert (person.first_name, person.last_name, person.country) == (
        "Ada",
        "Lovelace",
        "United Kingdom",
    )


def test_it_links_accounts_sharing_a_domain_to_one_organisation_across_orgs():
    first = SalesforceConnectionFactory()
    second = SalesforceConnectionFactory(workspace=first.workspace)

    organisation_upsert_batch(
        connection=first,
        rows=[
            _account(ACCOUNT_A, website="HTTP://WWW.Example.com:443/about?x=1"),
            _account(ACCOUNT_B, website="https://example.com"),
        ],
    )
    organisation_upsert_batch(
        connection=second, rows=[_account(ACCOUNT_A, website="www.example.com/")]
    )

    assert Organisation.objects.count() == 1
    assert Organisation.objects.get().domain == "example.com"
    assert CrmAccount.objects.count() == 3


def test_it_keeps_workspaces_apart_when_domains_match():
    organisation_upsert_batch(
        connection=SalesforceConnectionFactory(),
        rows=[_account(ACCOUNT_A, website="example.com")],
    )
    organisation_upsert_batch(
        connection=SalesforceConnectionFactory(),
        rows=[_account(ACCOUNT_A, website="example.com")],
    )

    assert Organisation.objects.count() == 2


def test_it_gives_each_account_without_a_website_its_own_organisation():
    connection = SalesforceConnectionFactory()

    organisation_upsert_batch(
        connection=connection,
        rows=[
            _account(ACCOUNT_A, website="", name="First"),
            _account(ACCOUNT_B, website=None, name="Second"),
        ],
    )
    organisation_upsert_batch(
        connection=connection,
        rows=[_account(ACCOUNT_A, website="", name="First")],
    )

    assert Organisation.objects.count() == 2
    assert set(Organisation.objects.values_list("name", "domain")) == {
        ("First", None),
        ("Second", None),
    }


def test_it_moves_an_account_to_the_organisation_of_its_new_website():
    connection = SalesforceConnectionFactory()
    organisation_upsert_batch(
        connection=connection, rows=[_account(ACCOUNT_A, website="old.example")]
    )
    person_upsert_batch(connection=connection, rows=[_contact("003000000000001AAA")])

    organisation_upsert_batch(
        connection=connection, rows=[_account(ACCOUNT_A, website="new.example")]
    )

    assert CrmAccount.objects.get().organisation.domain == "new.example"
    assert Person.objects.get().organisation.domain == "new.example"


def test_it_links_people_whose_account_arrives_after_them():
    connection = SalesforceConnectionFactory()
    person_upsert_batch(connection=connection, rows=[_contact("003000000000001AAA")])
    assert Person.objects.get().organisation is None

    organisation_upsert_batch(
        connection=connection, rows=[_account(ACCOUNT_A, website="acme.example")]
    )

    assert Person.objects.get().organisation.domain == "acme.example"


def test_it_links_records_whose_person_arrives_after_them():
    from people.models import CrmRecord
    from people.services import record_upsert_batch

    connection = SalesforceConnectionFactory()
    early, linked = "003000000000001AAA", "003000000000002AAA"
    person_upsert_batch(connection=connection, rows=[_contact(linked)])
    record_upsert_batch(
        connection=connection,
        object_name="Case",
        rows=[
            {"salesforce_id": "500000000000001AAA", "person_salesforce_id": early},
            {"salesforce_id": "500000000000002AAA", "person_salesforce_id": linked},
        ],
    )
    waiting = CrmRecord.objects.get(salesforce_id="500000000000001AAA")
    assert waiting.person is None

    person_upsert_batch(connection=connection, rows=[_contact(early)])

    links = dict(
        CrmRecord.objects.values_list("salesforce_id", "person__salesforce_id")
    )
    assert links == {"500000000000001AAA": early, "500000000000002AAA": linked}


def test_it_writes_nothing_when_nothing_changed():
    connection = SalesforceConnectionFactory()
    owners = [{"salesforce_id": OWNER, "name": "Sam Rep", "email": "sam@acme.example"}]
    accounts = [
        _account(ACCOUNT_A, website="acme.example"),
        _account(ACCOUNT_B, website=""),
    ]
    contacts = [_contact(f"00300000000000{n}AAA") for n in range(1, 4)]
    owner_upsert_batch(connection=connection, rows=owners)
    organisation_upsert_batch(connection=connection, rows=accounts)
    person_upsert_batch(connection=connection, rows=contacts)

    with CaptureQueriesContext(db_connection) as queries:
        results = [
            owner_upsert_batch(connection=connection, rows=owners),
            organisation_upsert_batch(connection=connection, rows=accounts),
            person_upsert_batch(connection=connection, rows=contacts),
        ]

    assert _writes(queries) == []
    assert [r.unchanged for r in results] == [1, 2, 3]
    assert sum(r.created + r.updated for r in results) == 0


def test_it_makes_no_query_per_record():
    connection = SalesforceConnectionFactory()
    organisation_upsert_batch(
        connection=connection, rows=[_account(ACCOUNT_A, website="acme.example")]
    )

    with CaptureQueriesContext(db_connection) as small:
        person_upsert_batch(
            connection=connection, rows=[_contact("003000000000001AAA")]
        )
    with CaptureQueriesContext(db_connection) as large:
        person_upsert_batch(
            connection=connection,
            rows=[_contact(f"0030000000{n:05d}AAA") for n in range(2, 400)],
        )

    # SQLite caps the variables of one statement, so a large insert may take
    # a few statements; the count still must not follow the number of rows.
    assert len(small.captured_queries) <= 8
    assert len(large.captured_queries) <= 14


@pytest.mark.skipif(db_connection.vendor != "postgresql", reason="a PostgreSQL setting")
def test_a_batch_is_committed_without_waiting_for_the_disk():
    connection = SalesforceConnectionFactory()

    with db_connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)
        person_upsert_batch(
            connection=connection, rows=[_contact("003000000000001AAA")]
        )
        # The test's own transaction is still open: the batch's SET LOCAL
        # holds until it ends.
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("off",)


def test_it_updates_only_what_changed():
    connection = SalesforceConnectionFactory()
    person_upsert_batch(connection=connection, rows=[_contact("003000000000001AAA")])

    result = person_upsert_batch(
        connection=connection,
        rows=[_contact("003000000000001AAA", title="CTO", has_opted_out_of_email=True)],
    )

    person = Person.objects.get()
    assert result.updated == 1
    assert (person.title, person.has_opted_out_of_email) == ("CTO", True)


def test_it_imports_bad_records_with_what_is_valid_and_names_each_problem():
    connection = SalesforceConnectionFactory()
    rows = [
        _contact("003000000000001AAA", email="not-an-email"),
        _contact("003000000000002AAA", last_name=None),
        _contact("003000000000003AAA", title="x" * 500),
        _contact("003000000000004AAA", first_name="Null\x00byte"),
        _contact("003000000000005AAA"),
    ]

    result = person_upsert_batch(connection=connection, rows=rows)

    assert result.created == 5
    assert result.failed == 0
    people = {p.salesforce_id: p for p in Person.objects.all()}
    assert people["003000000000001AAA"].email == ""
    assert people["003000000000001AAA"].last_name == "Lovelace"
    assert people["003000000000002AAA"].last_name == ""
    assert len(people["003000000000003AAA"].title) == 200
    assert people["003000000000004AAA"].first_name == "Nullbyte"
    assert {(p.salesforce_id, p.attribute) for p in result.problems} == {
        ("003000000000001AAA", "email"),
        ("003000000000002AAA", "last_name"),
        ("003000000000003AAA", "title"),
    }


def test_it_keeps_stored_values_of_fields_that_were_not_read():
    connection = SalesforceConnectionFactory()
    person_upsert_batch(
        connection=connection,
        rows=[_contact("003000000000001AAA", has_opted_out_of_email=True)],
    )
    row = _contact("003000000000001AAA", title="CTO")
    del row["has_opted_out_of_email"], row["email"]

    person_upsert_batch(connection=connection, rows=[row])

    person = Person.objects.get()
    assert person.title == "CTO"
    assert person.has_opted_out_of_email is True
    assert person.email == "ada@example.com"


def test_marking_missing_rows_takes_two_statements_however_many_there_are():
    from integrations.models import SeenRecord, SyncRun
    from people.rows import rows_insert
    from people.services import mark_missing_deleted

    connection = SalesforceConnectionFactory()
    run = SyncRun.objects.create(connection=connection)
    count = 5_000
    ids = [f"003{n:012d}AAA" for n in range(count)]
    rows_insert(
        Person,
        [
            {
                "workspace_id": connection.workspace_id,
                "connection_id": connection.pk,
                "salesforce_id": sf_id,
            }
            for sf_id in ids
        ],
    )
    still_there = ids[:100]
    rows_insert(
        SeenRecord,
        [
            {"run_id": run.pk, "object_name": "Contact", "salesforce_id": sf_id}
            for sf_id in still_there
        ],
    )

    with CaptureQueriesContext(db_connection) as queries:
        marked = mark_missing_deleted(
            connection=connection,
            model=Person,
            seen=SeenRecord.objects.filter(run=run, object_name="Contact"),
            written_since=run.started_at,
        )

    assert marked == count - 100
    assert len(queries.captured_queries) == 2
    gone = Person.objects.filter(deleted_at__isnull=False)
    assert gone.count() == count - 100
    assert not gone.filter(salesforce_id__in=still_there).exists()


def test_marking_missing_rows_leaves_ids_of_other_prefixes_whatever_their_case():
    from integrations.models import SeenRecord, SyncRun
    from people.rows import rows_insert
    from people.services import mark_missing_deleted

    connection = SalesforceConnectionFactory()
    run = SyncRun.objects.create(connection=connection)
    # Two custom objects whose prefixes differ only in case.
    ids = ["a0B000000000001AAA", "a0B000000000002AAA", "a0b000000000001AAA"]
    rows_insert(
        Person,
        [
            {
                "workspace_id": connection.workspace_id,
                "connection_id": connection.pk,
                "salesforce_id": sf_id,
            }
            for sf_id in ids
        ],
    )
    rows_insert(
        SeenRecord,
        [{"run_id": run.pk, "object_name": "Member__c", "salesforce_id": ids[0]}],
    )

    marked = mark_missing_deleted(
        connection=connection,
        model=Person,
        seen=SeenRecord.objects.filter(run=run, object_name="Member__c"),
        written_since=run.started_at,
        key_prefix="a0B",
    )

    assert marked == 1
    gone = Person.objects.filter(deleted_at__isnull=False)
    assert list(gone.values_list("salesforce_id", flat=True)) == [ids[1]]


def test_a_write_hook_sees_what_each_row_held_before_in_the_write_transaction():
    connection = SalesforceConnectionFactory()
    person_upsert_batch(
        connection=connection,
        rows=[_contact("003000000000001AAA"), _contact("003000000000002AAA")],
    )
    seen = []

    def on_written(written):
        # Inside the transaction: the rows are already written.
        seen.extend(
            (
                w.salesforce_id,
                w.previous and w.previous["title"],
                Person.objects.get(salesforce_id=w.salesforce_id).title,
            )
            for w in written
        )

    hook = WriteHook(watched=frozenset({"title"}), on_written=on_written)

    person_upsert_batch(
        connection=connection,
        rows=[
            _contact("003000000000001AAA", title="Director"),
            _contact("003000000000002AAA"),
            _contact("003000000000003AAA", title="Analyst"),
        ],
        hook=hook,
    )

    assert sorted(seen) == [
        ("003000000000001AAA", "Engineer", "Director"),
        ("003000000000003AAA", None, "Analyst"),
    ]


def test_a_batch_the_database_refuses_runs_the_hook_with_each_row_stored():
    connection = SalesforceConnectionFactory()
    calls = []

    def on_written(written):
        calls.append([w.salesforce_id for w in written])
        if len(written) > 1:
            raise DatabaseError("refused")

    hook = WriteHook(watched=frozenset(), on_written=on_written)

    result = person_upsert_batch(
        connection=connection,
        rows=[_contact("003000000000001AAA"), _contact("003000000000002AAA")],
        hook=hook,
    )

    assert result.created == 2
    assert calls == [
        ["003000000000001AAA", "003000000000002AAA"],
        ["003000000000001AAA"],
        ["003000000000002AAA"],
    ]
    assert Person.objects.count() == 2
