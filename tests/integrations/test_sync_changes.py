"""Recent changes, deletions, merges, drift and resuming: no change is lost."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.urls import reverse

from integrations.configuration import object_mapping_mark_changed
from integrations.models import (
    FieldMapping,
    ObjectMapping,
    SeenRecord,
    SyncCursor,
    SyncRun,
)
from integrations.offline_org import offline_org_connect
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.testing import mocked
from integrations.salesforce.schema import ObjectSchema
from integrations.sync import load
from integrations.sync.defaults import mapping_create_defaults
from integrations.sync.plan import cursor_field_choose
from integrations.sync.run import connection_sync
from jobs.models import Event
from people.models import CrmAccount, CrmRecord, Person
from people.rows import rows_insert
from tests.conftest import OFFLINE_HOST
from tests.emulator.support import FakeClock
from tests.integrations.support import sent_queries

pytestmark = pytest.mark.django_db


def _recent(connection, **kwargs) -> SyncRun:
    return connection_sync(connection=connection, kind=SyncRun.Kind.RECENT, **kwargs)


def test_a_deleted_contact_is_marked_deleted_with_its_time_not_erased(clocked):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    gone = org.store.records("Contact")[0]
    clock.now += timedelta(hours=1)
    org.store.delete(gone["Id"])

    run = _recent(connection)

    person = Person.objects.get(salesforce_id=gone["Id"])
    assert person.deleted_at == clock.now
    assert run.records_deleted == 1
    assert Person.objects.filter(deleted_at__isnull=True).count() == (
        org.store.count("Contact")
    )


def test_a_merged_contact_hands_its_history_to_the_survivor(clocked):
    org, clock, connection, _ = clocked
    cases = ObjectMapping.objects.create(
        connection=connection,
        object_name="Case",
        target=ObjectMapping.Target.RECORD,
        person_lookup_field="ContactId",
        position=60,
    )
    cases.field_mappings.create(salesforce_field="Subject", attribute="name")
    connection_sync(connection=connection)
    case = org.store.records("Case")[0]
    loser_id = case["ContactId"]
    survivor_id = next(
        c["Id"] for c in org.store.records("Contact") if c["Id"] != loser_id
    )
    clock.now += timedelta(hours=1)
    org.store.update(loser_id, {"MasterRecordId": survivor_id})
    org.store.delete(loser_id)

    _recent(connection)

    loser = Person.objects.get(salesforce_id=loser_id)
    survivor = Person.objects.get(salesforce_id=survivor_id)
    assert loser.deleted_at is not None
    assert loser.merged_into == survivor
    assert CrmRecord.objects.get(salesforce_id=case["Id"]).person == survivor


def test_a_full_sync_marks_what_the_org_no_longer_has_and_counts_the_drift(clocked):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    purged, quiet = org.store.records("Contact")[1:3]
    org.store.delete(purged["Id"])
    # A change that moves no stamp the recent-changes syncs read.
    _, live = org.store.lookup(quiet["Id"])
    live["Title"] = "Changed without a stamp"

    run = connection_sync(connection=connection)

    assert Person.objects.get(salesforce_id=purged["Id"]).deleted_at is not None
    assert Person.objects.get(salesforce_id=quiet["Id"]).title == (
        "Changed without a stamp"
    )
    assert run.drift_repaired == 2


def test_rows_rewritten_for_a_changed_configuration_are_not_counted_as_drift(
    clocked,
):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    purged = org.store.records("Contact")[0]
    org.store.delete(purged["Id"])
    contacts = ObjectMapping.objects.get(connection=connection, object_name="Contact")
    FieldMapping.objects.create(object_mapping=contacts, salesforce_field="Department")
    object_mapping_mark_changed(mapping=contacts)

    run = connection_sync(connection=connection)

    assert run.records_updated > 300
    assert run.drift_repaired == 1


def test_a_full_read_keeps_only_the_ids_of_rows_it_did_not_write(clocked, monkeypatch):
    org, clock, connection, _ = clocked
    kept = []

    def keep(model, rows):
        if model is SeenRecord:
            kept.extend(row["salesforce_id"] for row in rows)
        return rows_insert(model, rows)

    monkeypatch.setattr(load, "rows_insert", keep)
    connection_sync(connection=connection)
    assert kept == []

    edited, purged = org.store.records("Contact")[:2]
    org.store.update(edited["Id"], {"Title": "Edited in the org"})
    org.store.delete(purged["Id"])
    run = connection_sync(connection=connection)

    stored = Person.objects.filter(deleted_at__isnull=True)
    assert set(kept) >= set(
        stored.exclude(salesforce_id=edited["Id"]).values_list(
            "salesforce_id", flat=True
        )
    )
    assert edited["Id"] not in kept and purged["Id"] not in kept
    assert Person.objects.get(salesforce_id=edited["Id"]).deleted_at is None
    assert Person.objects.get(salesforce_id=purged["Id"]).deleted_at is not None
    assert run.records_deleted == 1
    assert not SeenRecord.objects.exists()


def test_the_ids_a_full_read_keeps_are_let_go_of_even_after_a_killed_run(clocked):
    org, clock, connection, _ = clocked
    # A full read whose worker died after keeping some Ids.
    killed = SyncRun.objects.create(connection=connection, kind=SyncRun.Kind.FULL)
    SeenRecord.objects.create(
        run=killed, object_name="Contact", salesforce_id="003000000000001AAA"
    )
    purged = org.store.records("Contact")[0]

    connection_sync(connection=connection)
    assert not SeenRecord.objects.exists()
    org.store.delete(purged["Id"])
    run = connection_sync(connection=connection)

    assert not SeenRecord.objects.exists()
    assert run.records_deleted == 1
    assert (
        Person.objects.filter(deleted_at__isnull=False).get().salesforce_id
        == (purged["Id"])
    )


def test_a_contact_read_in_field_groups_is_still_seen_deleted(clocked, settings):
    org, clock, connection, mock = clocked
    settings.SALESFORCE_QUERY_URL_BUDGET = 400
    mapping_create_defaults(connection=connection)
    contact = connection.object_mappings.get(object_name="Contact")
    for name in ("Department", "MobilePhone", "Birthdate", "LeadSource", "Description"):
        FieldMapping.objects.create(object_mapping=contact, salesforce_field=name)
    connection_sync(connection=connection)
    gone = org.store.records("Contact")[0]
    clock.now += timedelta(hours=1)
    org.store.delete(gone["Id"])
    before = len(mock.calls)

    run = _recent(connection)

    groups = [
        c.request.url for c in mock.calls[before:] if "FROM+Contact" in c.request.url
    ]
    assert len(groups) > 1
    assert all("/queryAll/" in url for url in groups)
    assert run.status == SyncRun.Status.SUCCESS
    assert run.records_deleted == 1
    assert Person.objects.get(salesforce_id=gone["Id"]).deleted_at == clock.now


def test_a_restored_record_comes_back_to_life(clocked):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    record = org.store.records("Contact")[0]
    Person.objects.filter(salesforce_id=record["Id"]).update(deleted_at=clock.now)

    connection_sync(connection=connection)

    assert Person.objects.get(salesforce_id=record["Id"]).deleted_at is None


def test_a_record_committed_late_within_the_overlap_is_not_lost(clocked):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    first, late = org.store.records("Contact")[:2]
    clock.now += timedelta(hours=1)
    org.store.update(first["Id"], {"Title": "Read first"})
    # A record whose transaction began earlier commits after the run read:
    # its stamp is older than the newest stamp already read.
    clock.now -= timedelta(minutes=2)
    _recent(connection)
    org.store.update(late["Id"], {"Title": "Committed late"})
    clock.now += timedelta(minutes=10)

    _recent(connection)

    assert Person.objects.get(salesforce_id=late["Id"]).title == "Committed late"


def test_records_sharing_one_stamp_across_pages_survive_a_crash(clocked):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    clock.now += timedelta(hours=1)
    contacts = org.store.records("Contact")
    for contact in contacts:
        org.store.update(contact["Id"], {"Title": "Same second"})
    pages = []

    def crash_after_first_page(object_name, count):
        if object_name == "Contact":
            pages.append(count)
            if len(pages) == 1:
                raise KeyboardInterrupt("worker killed")

    with pytest.raises(KeyboardInterrupt):
        _recent(connection, batch_size=200, on_page=crash_after_first_page)
    checkpoint = SyncCursor.objects.get(connection=connection, object_name="Contact")
    resumed = _recent(connection, batch_size=200)

    interrupted = SyncRun.objects.exclude(pk=resumed.pk).latest("started_at")
    assert checkpoint.value == clock.now
    assert resumed.status == SyncRun.Status.SUCCESS
    assert interrupted.status == SyncRun.Status.FAILED
    assert "Interrupted" in interrupted.error_message
    assert Person.objects.filter(title="Same second").count() == len(contacts) > 200
    assert Person.objects.count() == org.store.count("Contact")


def test_a_no_change_recent_sync_of_five_objects_costs_one_call_and_writes_nothing(
    clocked,
):
    org, clock, connection, mock = clocked
    connection_sync(connection=connection)
    clock.now += timedelta(hours=1)
    before = len(mock.calls)
    used = org.usage.used

    run = _recent(connection)

    sent = [c for c in mock.calls[before:] if "/services/data/v" in c.request.url]
    assert connection.object_mappings.filter(is_enabled=True).count() == 5
    assert run.status == SyncRun.Status.SUCCESS
    assert len(run.objects_done) == 5
    assert run.api_calls == len(sent) == org.usage.used - used == 1
    assert sent[0].request.url.endswith("/composite")
    # What the checkpoint's overlap reads again is left as it was.
    assert run.records_unchanged == run.records_fetched
    assert run.records_created == run.records_updated == run.records_deleted == 0


def test_a_full_sync_killed_midway_is_followed_by_one_that_goes_on(clocked):
    org, clock, connection, mock = clocked

    def crash_in_contacts(object_name, count):
        if object_name == "Contact":
            raise KeyboardInterrupt("worker killed")

    with pytest.raises(KeyboardInterrupt):
        connection_sync(connection=connection, on_page=crash_in_contacts)
    before = len(mock.calls)
    resumed = connection_sync(connection=connection)

    queried = [c.request.url for c in mock.calls[before:] if "/query" in c.request.url]
    assert resumed.status == SyncRun.Status.SUCCESS
    assert not any("FROM+User" in url or "FROM+Account" in url for url in queried)
    assert Person.objects.count() == org.store.count("Contact")


def _queried_all(mock, since: int) -> list[str]:
    return [c.request.url for c in mock.calls[since:] if "/queryAll" in c.request.url]


def test_a_full_read_narrowed_by_a_filter_marks_no_record_the_org_still_has(clocked):
    org, clock, connection, mock = clocked
    connection_sync(connection=connection)
    kept = org.store.records("Contact")[0]
    ObjectMapping.objects.filter(connection=connection, object_name="Contact").update(
        filter=f"Id = '{kept['Id']}'"
    )
    before = len(mock.calls)

    run = connection_sync(connection=connection)

    assert run.records_deleted == 0
    assert not Person.objects.filter(deleted_at__isnull=False).exists()
    assert not SeenRecord.objects.exists()
    left_out = org.store.count("Contact") - 1
    # Asked after by Id, 200 to a call.
    assert len(_queried_all(mock, before)) == -(-left_out // 200)
    assert any(
        p["problem"].startswith(f"{left_out:,} stored records are still in Salesforce")
        for p in run.problems
    )
    assert run.status == SyncRun.Status.SUCCESS


def _filtered_to_one_account(org, connection) -> tuple[str, list[dict]]:
    by_account: dict[str, list[dict]] = {}
    for contact in org.store.records("Contact"):
        if contact.get("AccountId"):
            by_account.setdefault(contact["AccountId"], []).append(contact)
    account_id, contacts = max(by_account.items(), key=lambda item: len(item[1]))
    ObjectMapping.objects.filter(connection=connection, object_name="Contact").update(
        filter=f"AccountId = '{account_id}'"
    )
    return account_id, contacts


def test_a_filtered_full_read_marks_a_record_purged_from_the_recycle_bin(clocked):
    org, clock, connection, mock = clocked
    _, contacts = _filtered_to_one_account(org, connection)
    assert len(contacts) >= 2
    connection_sync(connection=connection)
    gone = contacts[0]["Id"]
    clock.now += timedelta(hours=1)
    # Deleted and purged before any recent-changes sync could see it.
    org.store.delete(gone)
    org.store.empty_recycle_bin(sobject="Contact")
    before = len(mock.calls)

    run = connection_sync(connection=connection)

    assert run.records_deleted == 1
    assert run.drift_repaired == 1
    assert Person.objects.get(salesforce_id=gone).deleted_at is not None
    assert list(
        Person.objects.filter(deleted_at__isnull=False).values_list(
            "salesforce_id", flat=True
        )
    ) == [gone]
    assert len(_queried_all(mock, before)) == 1


def test_a_filtered_full_read_hands_a_missed_merge_to_its_survivor(clocked):
    org, clock, connection, _ = clocked
    _, contacts = _filtered_to_one_account(org, connection)
    connection_sync(connection=connection)
    loser, survivor = contacts[0]["Id"], contacts[1]["Id"]
    clock.now += timedelta(hours=1)
    org.store.merge(loser, survivor)

    run = connection_sync(connection=connection)

    assert run.records_deleted == 1
    row = Person.objects.get(salesforce_id=loser)
    assert row.deleted_at == clock.now
    assert row.merged_into == Person.objects.get(salesforce_id=survivor)


def test_a_filtered_full_read_asks_after_a_bounded_number_of_records(
    clocked, monkeypatch
):
    org, clock, connection, mock = clocked
    connection_sync(connection=connection)
    kept = org.store.records("Contact")[0]
    ObjectMapping.objects.filter(connection=connection, object_name="Contact").update(
        filter=f"Id = '{kept['Id']}'"
    )
    monkeypatch.setattr(load, "GONE_CHECK_LIMIT", 250)
    before = len(mock.calls)

    run = connection_sync(connection=connection)

    assert len(_queried_all(mock, before)) == 2
    more = org.store.count("Contact") - 1 - 250
    assert any(
        p["problem"].startswith(f"{more:,} more stored records") for p in run.problems
    )


def test_a_full_read_refused_midway_lets_go_of_the_ids_it_kept(
    org, org_http, connection
):
    # The Contacts' first page is stored; their second is refused.
    org.faults.fail_next(
        status=400,
        error_code="INVALID_QUERY_LOCATOR",
        path_contains="/query/01g",
        times=3,
    )

    run = connection_sync(connection=connection, batch_size=200)

    assert "Contact" in run.object_errors
    assert Person.objects.exists()
    assert not SeenRecord.objects.exists()


def _leads_as_people(connection) -> None:
    """Map Leads to people, beside Contacts."""
    ObjectMapping.objects.filter(connection=connection, object_name="Lead").delete()
    leads = ObjectMapping.objects.create(
        connection=connection,
        object_name="Lead",
        target=ObjectMapping.Target.PERSON,
        position=35,
    )
    leads.field_mappings.create(salesforce_field="LastName", attribute="last_name")


def test_a_full_read_marks_nothing_of_another_object_stored_as_people(clocked):
    org, clock, connection, _ = clocked
    _leads_as_people(connection)
    connection_sync(connection=connection)
    gone = org.store.records("Lead")[0]
    org.store.delete(gone["Id"])

    run = connection_sync(connection=connection)

    assert run.records_deleted == 1
    assert Person.objects.get(deleted_at__isnull=False).salesforce_id == gone["Id"]
    assert Person.objects.filter(deleted_at__isnull=True).count() == (
        org.store.count("Contact") + org.store.count("Lead")
    )


def test_a_merge_a_full_sync_took_for_a_deletion_still_hands_over_the_history(
    clocked,
):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    loser, survivor, other = org.store.records("Contact")[:3]
    clock.now += timedelta(hours=1)
    org.store.merge(loser["Id"], survivor["Id"])
    # A later change, which the full read sees and a merge's loser is not.
    clock.now += timedelta(hours=1)
    org.store.update(other["Id"], {"Title": "Changed after the merge"})
    full = connection_sync(connection=connection)
    clock.now += timedelta(hours=1)

    _recent(connection)

    assert full.records_deleted == 1
    gone = Person.objects.get(salesforce_id=loser["Id"])
    assert gone.deleted_at is not None
    assert gone.merged_into == Person.objects.get(salesforce_id=survivor["Id"])


def test_a_merge_between_the_parts_of_a_first_read_is_still_handed_over(
    member, settings
):
    # The org's clock runs with ours: the read's parts see its changes as
    # they happen.
    clock = FakeClock(datetime.now(UTC))
    org = OfflineOrg(clock=clock)
    ids = sorted(record["Id"] for record in org.store.records("Contact"))
    loser, survivor, later = ids[0], ids[1], ids[-1]
    settings.SALESFORCE_QUERY_URL_BUDGET = 4000
    with mocked(org, base_url=f"https://{OFFLINE_HOST}"):
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )
        mapping_create_defaults(connection=connection)
        ObjectMapping.objects.filter(
            connection=connection, object_name="Contact"
        ).update(filter="Id IN ({})".format(", ".join(f"'{i}'" for i in ids)))
        merged = []

        def between_parts(object_name, count):
            # After the first part, which read the loser as it was.
            if object_name == "Contact" and not merged:
                clock.now += timedelta(minutes=1)
                org.store.merge(loser, survivor)
                clock.now += timedelta(minutes=10)
                org.store.update(later, {"Title": "Edited later"})
                merged.append(True)

        connection_sync(connection=connection, batch_size=200, on_page=between_parts)
        assert merged
        assert Person.objects.get(salesforce_id=loser).merged_into is None

        clock.now += timedelta(minutes=1)
        _recent(connection)

    loser_row = Person.objects.get(salesforce_id=loser)
    assert loser_row.deleted_at is not None
    assert loser_row.merged_into == Person.objects.get(salesforce_id=survivor)
    assert Person.objects.get(salesforce_id=later).title == "Edited later"


def test_a_change_salesforce_made_itself_is_read_by_its_system_stamp(clocked):
    org, clock, connection, mock = clocked
    connection_sync(connection=connection)
    account = next(a for a in org.store.records("Account") if a.get("Industry"))
    clock.now += timedelta(hours=1)
    # A renamed picklist value: the row changes, LastModifiedDate stays.
    _, live = org.store.lookup(account["Id"])
    live["Industry"] = "Technology"
    org.store.touch(account["Id"])
    before = len(mock.calls)

    run = _recent(connection)

    # The reads went inside a Composite request.
    sent = " ".join(
        f"{c.request.url} {c.request.body or ''}" for c in mock.calls[before:]
    )
    assert "FROM+Account+WHERE+SystemModstamp+%3E%3D" in sent
    assert "LastModifiedDate+%3E%3D" not in sent
    assert run.records_updated == 1
    stored = CrmAccount.objects.get(salesforce_id=account["Id"])
    assert stored.industry == "Technology"


@pytest.mark.parametrize(
    ("configured", "present", "chosen"),
    [
        ("SystemModstamp", {"SystemModstamp", "LastModifiedDate"}, "SystemModstamp"),
        (
            "LastModifiedDate",
            {"SystemModstamp", "LastModifiedDate"},
            "LastModifiedDate",
        ),
        ("LastModifiedDate", {"SystemModstamp"}, "SystemModstamp"),
        ("SystemModstamp", {"LastModifiedDate", "CreatedDate"}, "LastModifiedDate"),
        ("SystemModstamp", {"CreatedDate"}, "CreatedDate"),
        ("SystemModstamp", set(), None),
    ],
)
def test_the_stamp_is_the_configured_one_or_the_next_the_object_has(
    configured, present, chosen
):
    described = ObjectSchema(
        name="Thing__c",
        fields={
            name.lower(): {"name": name, "type": "datetime"}
            for name in {"Id", *present}
        },
    )
    mapping = ObjectMapping(object_name="Thing__c", cursor_field=configured)

    assert cursor_field_choose(mapping=mapping, described=described) == chosen


def test_the_connection_page_shows_the_stamp_each_object_is_read_by(
    clocked, client, member
):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    ObjectMapping.objects.filter(connection=connection, object_name="Lead").update(
        cursor_field="LastModifiedDate"
    )
    client.force_login(member.user)

    page = client.get(
        reverse("integrations:connection-detail", args=[connection.pk])
    ).content.decode()

    rows = re.findall(r"<tr><td>(\w+)</td><td>[^<]*</td><td>(\w+)</td>", page)
    # In use since the first sync, until the next read by the new one.
    assert dict(rows) == {
        "Account": "SystemModstamp",
        "Contact": "SystemModstamp",
        "Lead": "SystemModstamp",
        "Opportunity": "SystemModstamp",
        "User": "SystemModstamp",
    }


def test_a_full_sync_ends_by_counting_each_object_in_salesforce_and_in_trig(
    clocked,
):
    org, clock, connection, _ = clocked

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert run.record_counts["Contact"] == {
        "salesforce": org.store.count("Contact"),
        "stored": org.store.count("Contact"),
    }
    assert set(run.record_counts) == {
        "User",
        "Account",
        "Contact",
        "Opportunity",
        "Lead",
    }


def test_a_full_sync_that_ends_short_of_salesforce_says_by_how_many(clocked):
    org, clock, connection, _ = clocked
    lost = []

    def lose_a_person(object_name, count):
        # A row gone after its object was read: nothing else would tell.
        if object_name == "Lead" and not lost:
            person = Person.objects.order_by("pk").first()
            lost.append(person.salesforce_id)
            person.delete()

    run = connection_sync(connection=connection, on_page=lose_a_person)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    total = org.store.count("Contact")
    assert run.record_counts["Contact"] == {"salesforce": total, "stored": total - 1}
    (gap,) = [p for p in run.problems if p["object"] == "Contact"]
    assert "1 missing" in gap["problem"]
    assert f"Salesforce holds {total:,} Contact records" in gap["problem"]


class _OrgChangingBetweenGroups(OfflineOrg):
    """An org that runs `between` once, right after it answered the first
    Contact query of a read cut into field groups."""

    between = None

    def _run_query(self, context, *, include_deleted):
        answer = super()._run_query(context, include_deleted=include_deleted)
        if self.between and "FROM Contact" in context.request.args.get("q", ""):
            between, self.between = self.between, None
            between()
        return answer


WIDE = ("Department", "MobilePhone", "Birthdate", "LeadSource", "Description")


@pytest.fixture
def grouped(member, settings):
    """Contacts read in field groups, from an org whose clock runs with ours."""
    clock = FakeClock(datetime.now(UTC))
    org = _OrgChangingBetweenGroups(clock=clock)
    settings.SALESFORCE_QUERY_URL_BUDGET = 400
    with mocked(org, base_url=f"https://{OFFLINE_HOST}") as mock:
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )
        mapping_create_defaults(connection=connection)
        contact = connection.object_mappings.get(object_name="Contact")
        for name in WIDE:
            FieldMapping.objects.create(object_mapping=contact, salesforce_field=name)
        yield org, clock, connection, mock


def _is_whole(person, record) -> bool:
    return (
        person.last_name == record["LastName"]
        and person.custom_values.get("MobilePhone") == record.get("MobilePhone")
        and person.custom_values.get("Description") == record.get("Description")
    )


@pytest.mark.parametrize("kind", [SyncRun.Kind.FULL, SyncRun.Kind.RECENT])
def test_records_created_changed_or_deleted_between_field_groups_are_never_half_stored(
    grouped, kind
):
    org, clock, connection, _ = grouped
    connection_sync(connection=connection)
    contacts = org.store.records("Contact")
    doomed, edited = contacts[0], next(c for c in contacts[1:] if c.get("MobilePhone"))
    clock.now += timedelta(minutes=1)
    org.store.update(doomed["Id"], {"Title": "Seen by the first group"})
    org.store.update(edited["Id"], {"Title": "Seen by the first group"})
    account = org.store.records("Account")[0]["Id"]
    born = []

    def between():
        clock.now += timedelta(minutes=1)
        org.store.delete(doomed["Id"])
        org.store.update(
            edited["Id"],
            {"LastName": "Renamed", "Description": "Changed between the groups"},
        )
        born.append(
            org.store.insert(
                "Contact",
                {
                    "LastName": "Newborn",
                    "AccountId": account,
                    "MobilePhone": "+61 400 000 111",
                    "Description": "Created between the groups",
                },
            )
        )

    org.between = between
    clock.now += timedelta(minutes=1)
    run = connection_sync(connection=connection, kind=kind)
    stored = Person.objects.get(salesforce_id=edited["Id"])
    halves = (stored.last_name, stored.custom_values.get("Description"))
    edited_is_live = stored.deleted_at is None
    new_one = Person.objects.filter(salesforce_id=born[0]).first()
    clock.now += timedelta(minutes=1)
    again = _recent(connection)

    assert born, "the org did not change between the groups"
    assert halves in (
        (edited["LastName"], edited.get("Description")),
        ("Renamed", "Changed between the groups"),
    )
    assert edited_is_live
    assert new_one is None or new_one.custom_values.get("MobilePhone")
    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert {p["id"] for p in run.problems if "read in parts" in p["problem"]} == {
        doomed["Id"],
        edited["Id"],
        born[0],
    }
    assert again.status == SyncRun.Status.SUCCESS
    for record in org.store.records("Contact"):
        person = Person.objects.get(salesforce_id=record["Id"])
        assert _is_whole(person, record), record["Id"]
    assert Person.objects.get(salesforce_id=doomed["Id"]).deleted_at is not None
    assert Person.objects.get(salesforce_id=born[0]).last_name == "Newborn"
    assert Person.objects.get(salesforce_id=edited["Id"]).last_name == "Renamed"


def _merge_pair(org, object_name: str, *, differ_by: str = "") -> tuple[str, str]:
    """Two records of an object to merge; with `differ_by`, they differ there."""
    records = org.store.records(object_name)
    loser = records[0]
    survivor = next(
        r
        for r in records[1:]
        if not differ_by or (r.get(differ_by) and r[differ_by] != loser[differ_by])
    )
    return loser["Id"], survivor["Id"]


def test_a_merged_lead_is_kept_deleted_and_resolves_to_its_survivor(clocked):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    loser_id, survivor_id = _merge_pair(org, "Lead")
    clock.now += timedelta(hours=1)
    org.store.merge(loser_id, survivor_id)

    run = _recent(connection)

    loser = CrmRecord.objects.get(object_name="Lead", salesforce_id=loser_id)
    survivor = CrmRecord.objects.get(object_name="Lead", salesforce_id=survivor_id)
    assert loser.deleted_at == clock.now
    assert loser.merged_into == survivor
    assert survivor.deleted_at is None
    assert run.records_deleted == 1
    assert CrmRecord.objects.filter(object_name="Lead").count() == (
        org.store.count("Lead") + 1
    )


def test_a_merged_lead_stored_as_a_person_hands_its_history_to_the_survivor(
    clocked,
):
    org, clock, connection, _ = clocked
    _leads_as_people(connection)
    connection_sync(connection=connection)
    loser_id, survivor_id = _merge_pair(org, "Lead")
    opened = Event.objects.create(
        workspace=connection.workspace,
        kind=Event.Kind.EMAIL_OPENED,
        idempotency_key="opened-1",
        person=Person.objects.get(salesforce_id=loser_id),
        occurred_at=clock.now,
    )
    clock.now += timedelta(hours=1)
    org.store.merge(loser_id, survivor_id)

    _recent(connection)

    loser = Person.objects.get(salesforce_id=loser_id)
    survivor = Person.objects.get(salesforce_id=survivor_id)
    opened.refresh_from_db()
    assert loser.deleted_at == clock.now
    assert loser.merged_into == survivor
    assert opened.person == survivor


def test_a_merged_account_hands_its_people_and_records_to_the_survivor(clocked):
    org, clock, connection, _ = clocked
    contacts = org.store.records("Contact")
    opportunities = org.store.records("Opportunity")
    loser_id = next(
        c["AccountId"]
        for c in contacts
        if c.get("AccountId")
        and any(o.get("AccountId") == c["AccountId"] for o in opportunities)
    )
    loser_website = org.store.get(loser_id).get("Website")
    survivor_id = next(
        a["Id"]
        for a in org.store.records("Account")
        if a["Id"] != loser_id and a.get("Website") and a["Website"] != loser_website
    )
    their_people = [c["Id"] for c in contacts if c.get("AccountId") == loser_id]
    their_deals = [o["Id"] for o in opportunities if o.get("AccountId") == loser_id]
    connection_sync(connection=connection)
    clock.now += timedelta(hours=1)
    org.store.merge(loser_id, survivor_id)

    run = _recent(connection)

    loser = CrmAccount.objects.get(salesforce_id=loser_id)
    survivor = CrmAccount.objects.get(salesforce_id=survivor_id)
    assert loser.deleted_at == clock.now
    assert loser.merged_into == survivor
    assert survivor.organisation_id != loser.organisation_id
    assert set(
        Person.objects.filter(salesforce_id__in=their_people).values_list(
            "organisation_id", flat=True
        )
    ) == {survivor.organisation_id}
    assert set(
        CrmRecord.objects.filter(salesforce_id__in=their_deals).values_list(
            "organisation_id", flat=True
        )
    ) == {survivor.organisation_id}
    assert run.status == SyncRun.Status.SUCCESS


@pytest.mark.parametrize(
    ("object_name", "model"),
    [("Contact", Person), ("Lead", CrmRecord), ("Account", CrmAccount)],
)
def test_a_record_restored_from_the_recycle_bin_is_live_again_not_a_second_row(
    clocked, object_name, model
):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    record_id = org.store.records(object_name)[0]["Id"]
    stored = model.objects.get(salesforce_id=record_id)
    clock.now += timedelta(hours=1)
    org.store.delete(record_id)
    _recent(connection)
    assert model.objects.get(salesforce_id=record_id).deleted_at is not None
    clock.now += timedelta(hours=1)
    org.store.undelete(record_id)

    run = _recent(connection)

    restored = model.objects.get(salesforce_id=record_id)
    assert restored.pk == stored.pk
    assert restored.deleted_at is None
    assert run.records_created == 0
    assert model.objects.filter(deleted_at__isnull=True).count() == (
        model.objects.count()
    )


def test_a_merged_record_restored_from_the_recycle_bin_stands_alone_again(clocked):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    loser_id, survivor_id = _merge_pair(org, "Contact")
    clock.now += timedelta(hours=1)
    org.store.merge(loser_id, survivor_id)
    _recent(connection)
    assert Person.objects.get(salesforce_id=loser_id).merged_into is not None
    clock.now += timedelta(hours=1)
    org.store.undelete(loser_id)

    _recent(connection)

    restored = Person.objects.get(salesforce_id=loser_id)
    assert restored.deleted_at is None
    assert restored.merged_into is None


def test_a_saved_cursor_never_moves_back_from_one_run_to_the_next(clocked):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    first, late, other = org.store.records("Contact")[:3]
    saved = []

    def cursor():
        return SyncCursor.objects.get(connection=connection, object_name="Contact")

    saved.append(cursor().value)
    clock.now += timedelta(hours=1)
    org.store.update(first["Id"], {"Title": "Read first"})
    _recent(connection)
    saved.append(cursor().value)
    # Committed late: stamped before what the last run read; and the record
    # the cursor was saved from is gone for good, so the next read finds
    # nothing newer.
    clock.now -= timedelta(minutes=2)
    org.store.update(late["Id"], {"Title": "Committed late"})
    org.store.delete(first["Id"])
    org.store.empty_recycle_bin()
    clock.now += timedelta(minutes=10)
    _recent(connection)
    saved.append(cursor().value)
    # Nothing new at all.
    _recent(connection)
    saved.append(cursor().value)
    # A full sync reads everything, and leaves the cursor where it was.
    org.store.update(other["Id"], {"Title": "Changed before a full sync"})
    connection_sync(connection=connection)
    saved.append(cursor().value)

    assert Person.objects.get(salesforce_id=late["Id"]).title == "Committed late"
    assert saved == sorted(saved)
    assert saved[2] == saved[1] == clock.now - timedelta(minutes=8)


def test_a_chain_of_merges_in_one_second_hands_the_history_to_the_last_survivor(
    clocked,
):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    # Read in order of stamp, then Id: the middle record comes first.
    middle, first, last = sorted(c["Id"] for c in org.store.records("Contact"))[:3]
    opened = Event.objects.create(
        workspace=connection.workspace,
        kind=Event.Kind.EMAIL_OPENED,
        idempotency_key="opened-1",
        person=Person.objects.get(salesforce_id=first),
        occurred_at=clock.now,
    )
    clock.now += timedelta(hours=1)
    org.store.merge(first, middle)
    org.store.merge(middle, last)

    _recent(connection)

    opened.refresh_from_db()
    survivor = Person.objects.get(salesforce_id=last)
    assert opened.person == survivor
    assert Person.objects.get(salesforce_id=middle).merged_into == survivor


def test_a_change_behind_a_part_already_read_is_read_by_the_next_sync(member, settings):
    # An org whose clock runs with ours.
    clock = FakeClock(datetime.now(UTC))
    org = _OrgChangingBetweenGroups(clock=clock)
    with mocked(org, base_url=f"https://{OFFLINE_HOST}") as mock:
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )
        mapping_create_defaults(connection=connection)
        contacts = org.store.records("Contact")
        names = sorted({c["LastName"] for c in contacts})
        # A filter too long for one statement: read in parts, one by one.
        quoted = ", ".join(f"'{name}'" for name in names if "'" not in name)
        connection.object_mappings.filter(object_name="Contact").update(
            filter=f"LastName IN ({quoted})"
        )
        settings.SALESFORCE_QUERY_URL_BUDGET = 1500
        connection_sync(connection=connection)
        first_part = next(c for c in contacts if c["LastName"] == names[0])
        last_part = next(c for c in contacts if c["LastName"] == names[-1])

        def between():
            clock.now += timedelta(minutes=10)
            org.store.update(first_part["Id"], {"Title": "Behind the read"})
            clock.now += timedelta(minutes=10)
            org.store.update(last_part["Id"], {"Title": "Ahead of the read"})

        org.between = between
        before = len(sent_queries(mock))
        _recent(connection)
        clock.now += timedelta(minutes=1)

        _recent(connection)
        parts = [q for q in sent_queries(mock)[before:] if "FROM Contact" in q]

    assert len(parts) > 2
    assert Person.objects.get(salesforce_id=last_part["Id"]).title == (
        "Ahead of the read"
    )
    assert Person.objects.get(salesforce_id=first_part["Id"]).title == (
        "Behind the read"
    )


def test_a_full_sync_stopped_by_its_time_limit_is_followed_by_one_that_goes_on(
    clocked,
):
    org, clock, connection, mock = clocked

    def out_of_time_in_contacts(object_name, count):
        if object_name == "Contact":
            raise SoftTimeLimitExceeded()

    with pytest.raises(SoftTimeLimitExceeded):
        connection_sync(connection=connection, on_page=out_of_time_in_contacts)
    stopped = SyncRun.objects.get()
    before = len(mock.calls)
    resumed = connection_sync(connection=connection)

    queried = [c.request.url for c in mock.calls[before:] if "/query" in c.request.url]
    assert stopped.status == SyncRun.Status.FAILED
    assert stopped.error_message.startswith("Interrupted:")
    assert resumed.status == SyncRun.Status.SUCCESS
    assert not any("FROM+User" in url or "FROM+Account" in url for url in queried)
    assert Person.objects.count() == org.store.count("Contact")


def test_a_merge_read_before_the_run_was_killed_is_still_handed_over(clocked):
    org, clock, connection, _ = clocked
    connection_sync(connection=connection)
    loser_id, survivor_id = _merge_pair(org, "Contact")
    opened = Event.objects.create(
        workspace=connection.workspace,
        kind=Event.Kind.EMAIL_OPENED,
        idempotency_key="opened-1",
        person=Person.objects.get(salesforce_id=loser_id),
        occurred_at=clock.now,
    )
    clock.now += timedelta(hours=1)
    org.store.merge(loser_id, survivor_id)
    # Later changes fill the rest of the first page, past the overlap.
    clock.now += timedelta(minutes=10)
    for contact in org.store.records("Contact")[:300]:
        org.store.update(contact["Id"], {"Title": "Changed later"})

    def killed_after_the_first_page(object_name, count):
        if object_name == "Contact":
            raise KeyboardInterrupt("worker killed")

    with pytest.raises(KeyboardInterrupt):
        _recent(connection, batch_size=200, on_page=killed_after_the_first_page)
    _recent(connection, batch_size=200)

    opened.refresh_from_db()
    survivor = Person.objects.get(salesforce_id=survivor_id)
    assert Person.objects.get(salesforce_id=loser_id).merged_into == survivor
    assert opened.person == survivor


def test_an_opt_out_the_filter_leaves_out_survives_a_run_killed_midway(clocked):
    org, clock, connection, _ = clocked
    mapping_create_defaults(connection=connection)
    connection.object_mappings.filter(object_name="Contact").update(
        filter="HasOptedOutOfEmail = false"
    )
    connection_sync(connection=connection)
    contacts = [
        c for c in org.store.records("Contact") if not c.get("HasOptedOutOfEmail")
    ]
    leaving = contacts[0]
    clock.now += timedelta(hours=1)
    org.store.update(leaving["Id"], {"HasOptedOutOfEmail": True})
    # Later changes the filter lets through fill the first page.
    clock.now += timedelta(minutes=10)
    for contact in contacts[1:301]:
        org.store.update(contact["Id"], {"Title": "Changed later"})

    def killed_after_the_first_page(object_name, count):
        if object_name == "Contact":
            raise KeyboardInterrupt("worker killed")

    with pytest.raises(KeyboardInterrupt):
        _recent(connection, batch_size=200, on_page=killed_after_the_first_page)
    _recent(connection, batch_size=200)

    person = Person.objects.get(salesforce_id=leaving["Id"])
    assert person.has_opted_out_of_email is True
