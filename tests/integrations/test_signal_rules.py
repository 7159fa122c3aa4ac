"""Signal rules raise one `signal.raised` event per transition the sync writes."""

import re
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext

from integrations.configuration import object_mapping_mark_changed
from integrations.models import FieldMapping, ObjectMapping, SignalRule, SyncRun
from integrations.sync.run import connection_sync
from jobs.models import Action, Event, FieldWrite, Job
from people.models import CrmAccount, CrmRecord, Person

pytestmark = pytest.mark.django_db


def _recent(connection) -> SyncRun:
    return connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)


def _mapping(connection, object_name: str) -> ObjectMapping:
    return ObjectMapping.objects.get(connection=connection, object_name=object_name)


def _won_rule(connection) -> SignalRule:
    return SignalRule.objects.create(
        object_mapping=_mapping(connection, "Opportunity"),
        name="Opportunity won",
        kind=SignalRule.Kind.MOVED_TO,
        field_name="StageName",
        value="Closed Won",
    )


def _lead_rule(connection) -> SignalRule:
    return SignalRule.objects.create(
        object_mapping=_mapping(connection, "Lead"),
        name="Inbound lead in target segment",
        kind=SignalRule.Kind.NEW_MATCHING,
        condition="LeadSource = 'Web' AND Industry IN ('Banking', 'Insurance')",
    )


def _open_opportunity(org) -> dict:
    return next(
        record
        for record in org.store.records("Opportunity")
        if record["StageName"] == "Negotiation/Review" and record.get("AccountId")
    )


def _synced(clocked, *rules):
    """An org imported once, with the rules, an hour before what follows."""
    org, clock, connection, mock = clocked
    connection_sync(connection=connection)
    made = [rule(connection) for rule in rules]
    clock.now += timedelta(hours=1)
    return made


def test_it_raises_one_signal_when_an_opportunity_moves_to_closed_won(clocked):
    org, clock, connection, _ = clocked
    (rule,) = _synced(clocked, _won_rule)
    opportunity = _open_opportunity(org)
    org.store.update(opportunity["Id"], {"StageName": "Closed Won"})

    run = _recent(connection)

    event = Event.objects.get(kind=Event.Kind.SIGNAL_RAISED)
    account = CrmAccount.objects.get(salesforce_id=opportunity["AccountId"])
    assert event.record_id == opportunity["Id"]
    assert event.organisation_id == account.organisation_id
    assert event.person is None
    assert event.occurred_at == clock.now
    assert event.payload == {
        "rule": "Opportunity won",
        "rule_id": rule.pk,
        "rule_kind": "moved_to",
        "object": "Opportunity",
        "salesforce_id": opportunity["Id"],
        "field": "StageName",
        "from": "Negotiation/Review",
        "to": "Closed Won",
        "has_opted_out_of_email": None,
        "may_email": False,
    }
    assert run.signals_raised == 1
    assert run.status == SyncRun.Status.SUCCESS


def test_a_job_triggered_by_signals_writes_to_the_won_opportunity(
    clocked, django_capture_on_commit_callbacks
):
    org, clock, connection, _ = clocked
    _synced(clocked, _won_rule)
    job = Job.objects.create(
        workspace=connection.workspace,
        name="Note the win",
        trigger_kind=Event.Kind.SIGNAL_RAISED,
        conditions=[
            {
                "on": "event",
                "field": "payload.rule",
                "operator": "equals",
                "value": "Opportunity won",
            }
        ],
        is_enabled=True,
    )
    job.actions.create(
        connection=connection,
        target=Action.Target.EVENT_RECORD,
        object_name="Opportunity",
        field_name="NextStep",
        value_source=Action.ValueSource.TEMPLATE,
        value="Won: {{ event.payload.from }} to {{ event.payload.to }}",
    )
    opportunity = _open_opportunity(org)
    org.store.update(opportunity["Id"], {"StageName": "Closed Won"})

    with django_capture_on_commit_callbacks(execute=True):
        _recent(connection)

    write = FieldWrite.objects.get()
    assert write.event.kind == Event.Kind.SIGNAL_RAISED
    assert write.status == FieldWrite.Status.WRITTEN
    assert org.store.get(opportunity["Id"])["NextStep"] == (
        "Won: Negotiation/Review to Closed Won"
    )


def test_reading_the_overlap_again_raises_nothing_more(clocked):
    org, clock, connection, _ = clocked
    _synced(clocked, _won_rule)
    opportunity = _open_opportunity(org)
    org.store.update(opportunity["Id"], {"StageName": "Closed Won"})
    _recent(connection)
    clock.now += timedelta(minutes=2)

    again = _recent(connection)
    full = connection_sync(connection=connection)

    # The record was read again, within the overlap, and found unchanged.
    assert again.records_unchanged >= 1
    assert again.signals_raised == full.signals_raised == 0
    assert Event.objects.filter(kind=Event.Kind.SIGNAL_RAISED).count() == 1


def test_the_same_transition_read_again_is_recorded_once_by_its_key(clocked):
    org, clock, connection, _ = clocked
    _synced(clocked, _won_rule)
    opportunity = _open_opportunity(org)
    org.store.update(opportunity["Id"], {"StageName": "Closed Won"})
    _recent(connection)
    # The stored row loses the write (restored from an older copy), and the
    # overlap brings the same change, with the same stamp, once more.
    row = CrmRecord.objects.get(salesforce_id=opportunity["Id"])
    row.custom_values["StageName"] = "Negotiation/Review"
    row.save()

    again = _recent(connection)

    assert CrmRecord.objects.get(pk=row.pk).custom_values["StageName"] == "Closed Won"
    assert again.signals_raised == 0
    assert Event.objects.filter(kind=Event.Kind.SIGNAL_RAISED).count() == 1


def test_a_later_move_to_the_same_value_is_a_new_signal(clocked):
    org, clock, connection, _ = clocked
    _synced(clocked, _won_rule)
    opportunity = _open_opportunity(org)
    org.store.update(opportunity["Id"], {"StageName": "Closed Won"})
    _recent(connection)
    clock.now += timedelta(hours=1)
    org.store.update(opportunity["Id"], {"StageName": "Negotiation/Review"})
    _recent(connection)
    clock.now += timedelta(hours=1)
    org.store.update(opportunity["Id"], {"StageName": "Closed Won"})

    _recent(connection)

    assert Event.objects.filter(kind=Event.Kind.SIGNAL_RAISED).count() == 2


def test_the_first_import_raises_nothing(clocked):
    org, clock, connection, _ = clocked
    org.store.update(_open_opportunity(org)["Id"], {"StageName": "Closed Won"})
    Lead = org.store.insert(  # noqa: N806
        "Lead",
        {
            "LastName": "Early",
            "Company": "Bank",
            "LeadSource": "Web",
            "Industry": "Banking",
        },
    )
    from integrations.sync.defaults import mapping_create_defaults

    mapping_create_defaults(connection=connection)
    _won_rule(connection)
    _lead_rule(connection)

    run = connection_sync(connection=connection)

    assert CrmRecord.objects.filter(salesforce_id=Lead).exists()
    assert CrmRecord.objects.filter(custom_values__StageName="Closed Won").exists()
    assert run.signals_raised == 0
    assert not Event.objects.exists()


def test_a_full_read_for_a_changed_configuration_raises_nothing(clocked):
    org, clock, connection, _ = clocked
    _synced(clocked, _won_rule)
    opportunity = _open_opportunity(org)
    org.store.update(opportunity["Id"], {"StageName": "Closed Won"})
    opportunities = _mapping(connection, "Opportunity")
    FieldMapping.objects.create(
        object_mapping=opportunities, salesforce_field="Probability"
    )
    object_mapping_mark_changed(mapping=opportunities)

    run = connection_sync(connection=connection)

    stored = CrmRecord.objects.get(salesforce_id=opportunity["Id"])
    assert stored.custom_values["StageName"] == "Closed Won"
    assert not Event.objects.exists()
    assert any(
        p["problem"].startswith("signal rules not evaluated") for p in run.problems
    )


def test_a_new_lead_matching_the_condition_raises_one_and_others_none(clocked):
    org, clock, connection, _ = clocked
    (rule,) = _synced(clocked, _lead_rule)
    matching = org.store.insert(
        "Lead",
        {
            "LastName": "Inbound",
            "Company": "Bank of Tests",
            "LeadSource": "Web",
            "Industry": "Insurance",
            "Email": "in@bank.example",
        },
    )
    org.store.insert(
        "Lead",
        {
            "LastName": "Retail",
            "Company": "Shop",
            "LeadSource": "Web",
            "Industry": "Retail",
        },
    )
    org.store.insert(
        "Lead",
        {
            "LastName": "Phone",
            "Company": "Bank",
            "LeadSource": "Phone Inquiry",
            "Industry": "Banking",
        },
    )
    # A stored Lead changing into the segment is not new to Trig.
    stored = org.store.records("Lead")[0]
    org.store.update(stored["Id"], {"LeadSource": "Web", "Industry": "Banking"})

    run = _recent(connection)

    event = Event.objects.get(kind=Event.Kind.SIGNAL_RAISED)
    assert event.record_id == matching
    assert event.payload["rule_id"] == rule.pk
    assert event.payload["rule_kind"] == "new_matching"
    assert event.payload["condition"] == rule.condition
    assert run.records_created == 3
    assert run.signals_raised == 1


def test_a_deleted_record_raises_nothing(clocked):
    org, clock, connection, _ = clocked
    _synced(clocked, _won_rule, _lead_rule)
    opportunity = _open_opportunity(org)
    org.store.update(opportunity["Id"], {"StageName": "Closed Won"})
    org.store.delete(opportunity["Id"])
    lead = org.store.insert(
        "Lead",
        {
            "LastName": "Gone",
            "Company": "Bank",
            "LeadSource": "Web",
            "Industry": "Banking",
        },
    )
    org.store.delete(lead)

    run = _recent(connection)

    assert CrmRecord.objects.get(salesforce_id=opportunity["Id"]).deleted_at
    assert run.records_deleted == 2
    assert not Event.objects.exists()


def test_a_rule_on_a_field_hidden_by_field_level_security_is_skipped_with_a_note(
    clocked,
):
    org, clock, connection, _ = clocked
    _synced(clocked, _won_rule)
    opportunity = _open_opportunity(org)
    org.store.update(opportunity["Id"], {"StageName": "Closed Won"})
    org.hide_field("Opportunity", "StageName")

    run = _recent(connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert not Event.objects.exists()
    notes = [p["problem"] for p in run.problems if p["object"] == "Opportunity"]
    assert (
        "signal rule 'Opportunity won' skipped: Opportunity.StageName is hidden by "
        "field-level security for the connected user (or deleted in Salesforce)"
    ) in notes


def test_a_signal_is_never_lost_when_the_worker_dies_before_the_commit(
    clocked, monkeypatch
):
    org, clock, connection, _ = clocked
    _synced(clocked, _won_rule)
    opportunity = _open_opportunity(org)
    org.store.update(opportunity["Id"], {"StageName": "Closed Won"})

    def dies(**kwargs):
        raise SystemExit("worker killed")

    # The worker stops while the event is being recorded, after the row's
    # write was sent: neither is kept.
    monkeypatch.setattr("jobs.services.writes_plan", dies)
    with pytest.raises(SystemExit):
        _recent(connection)
    monkeypatch.undo()
    stored = CrmRecord.objects.get(salesforce_id=opportunity["Id"])
    assert stored.custom_values["StageName"] == "Negotiation/Review"
    assert not Event.objects.exists()

    run = _recent(connection)

    assert run.signals_raised == 1
    assert Event.objects.filter(kind=Event.Kind.SIGNAL_RAISED).count() == 1


def test_a_signal_about_an_opted_out_person_is_recorded_and_shows_it(clocked):
    org, clock, connection, _ = clocked
    SignalRule.objects.create(
        object_mapping=_mapping(connection, "Contact"),
        name="New chief executive",
        kind=SignalRule.Kind.MOVED_TO,
        field_name="Title",
        value="CEO",
    )
    _synced(clocked)
    contact = org.store.records("Contact")[0]
    org.store.update(contact["Id"], {"Title": "CEO", "HasOptedOutOfEmail": True})
    # A campaign that respects opt-outs, as Jobs do today: by a condition.
    respectful = Job.objects.create(
        workspace=connection.workspace,
        name="Congratulate",
        trigger_kind=Event.Kind.SIGNAL_RAISED,
        conditions=[
            {
                "on": "person",
                "field": "has_opted_out_of_email",
                "operator": "equals",
                "value": False,
            }
        ],
        is_enabled=True,
    )
    respectful.actions.create(
        connection=connection,
        target=Action.Target.PERSON_CONTACT,
        object_name="Contact",
        field_name="Description",
        value_source=Action.ValueSource.LITERAL,
        value="Congratulated",
    )

    _recent(connection)

    event = Event.objects.get(kind=Event.Kind.SIGNAL_RAISED)
    person = Person.objects.get(salesforce_id=contact["Id"])
    assert event.person == person
    assert event.organisation_id == person.organisation_id
    assert event.payload["has_opted_out_of_email"] is True
    assert event.payload["may_email"] is False
    assert event.payload["to"] == "CEO"
    assert not FieldWrite.objects.exists()


def _rule_queries(queries) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if re.search(r"integrations_signalrule", q["sql"])
    ]


def test_an_object_without_rules_costs_no_query_for_them(clocked):
    org, clock, connection, _ = clocked
    _synced(clocked, _won_rule)
    org.store.update(org.store.records("Contact")[0]["Id"], {"Title": "Changed"})
    org.store.update(_open_opportunity(org)["Id"], {"Amount": 12345})

    with CaptureQueriesContext(db_connection) as queries:
        run = _recent(connection)

    # The mappings' own query says which have rules; only Opportunity's
    # are read, once for the run.
    rule_queries = _rule_queries(queries)
    assert len(rule_queries) == 2
    assert "EXISTS" in rule_queries[0].upper()
    assert run.records_updated == 2
    assert not Event.objects.exists()


def test_a_page_where_no_rule_fires_costs_no_more_queries(clocked):
    org, clock, connection, _ = clocked
    _synced(clocked)
    opportunities = [
        r for r in org.store.records("Opportunity") if r["StageName"] != "Closed Won"
    ][:4]

    def change_and_count(amount: int) -> int:
        clock.now += timedelta(hours=1)
        for record in opportunities:
            org.store.update(record["Id"], {"Amount": amount})
        with CaptureQueriesContext(db_connection) as queries:
            run = _recent(connection)
        assert run.records_updated == len(opportunities)
        return len(queries.captured_queries)

    without = change_and_count(100)
    _won_rule(connection)
    with_rule = change_and_count(200)

    # Reading the object's rules, once per run.
    assert with_rule - without == 1
    assert not Event.objects.exists()


def _new_opportunity_of(org, account_id: str) -> str:
    return org.store.insert(
        "Opportunity",
        {
            "Name": "Expansion",
            "StageName": "Prospecting",
            "CloseDate": "2026-12-01",
            "AccountId": account_id,
        },
    )


def test_a_condition_naming_a_lookup_by_its_15_character_id_matches(clocked):
    org, clock, connection, _ = clocked
    _synced(clocked)
    account_id = org.store.records("Account")[0]["Id"]
    # Salesforce takes either form of an Id in a condition; records carry 18.
    SignalRule.objects.create(
        object_mapping=_mapping(connection, "Opportunity"),
        name="New business of a key account",
        kind=SignalRule.Kind.NEW_MATCHING,
        condition=f"AccountId IN ('{account_id[:15]}')",
    )
    opportunity = _new_opportunity_of(org, account_id)
    _new_opportunity_of(org, org.store.records("Account")[1]["Id"])

    run = _recent(connection)

    event = Event.objects.get(kind=Event.Kind.SIGNAL_RAISED)
    assert event.record_id == opportunity
    assert run.signals_raised == 1


def test_a_rule_whose_condition_no_longer_fits_its_field_is_skipped_with_a_note(
    clocked,
):
    org, clock, connection, _ = clocked
    _synced(clocked)
    # Saved when Company held numbers; the field is text now.
    SignalRule.objects.create(
        object_mapping=_mapping(connection, "Lead"),
        name="Large company",
        kind=SignalRule.Kind.NEW_MATCHING,
        condition="Company > 5",
    )
    lead = org.store.insert("Lead", {"LastName": "Typed", "Company": "Bank"})

    run = _recent(connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert CrmRecord.objects.filter(salesforce_id=lead).exists()
    assert not Event.objects.exists()
    notes = [p["problem"] for p in run.problems if p["object"] == "Lead"]
    assert any(
        note.startswith("signal rule 'Large company' skipped: ")
        and "Company is a string field" in note
        for note in notes
    ), notes


def test_a_move_to_a_user_named_by_a_15_character_id_raises_one(clocked):
    org, clock, connection, _ = clocked
    FieldMapping.objects.create(
        object_mapping=_mapping(connection, "Opportunity"), salesforce_field="OwnerId"
    )
    _synced(clocked)
    opportunity = _open_opportunity(org)
    other = next(
        user["Id"]
        for user in org.store.records("User")
        if user["Id"] != opportunity["OwnerId"]
    )
    SignalRule.objects.create(
        object_mapping=_mapping(connection, "Opportunity"),
        name="Handed over",
        kind=SignalRule.Kind.MOVED_TO,
        field_name="OwnerId",
        value=other[:15],
    )
    org.store.update(opportunity["Id"], {"OwnerId": other})

    run = _recent(connection)

    event = Event.objects.get(kind=Event.Kind.SIGNAL_RAISED)
    assert event.record_id == opportunity["Id"]
    assert run.signals_raised == 1


def test_a_move_from_a_long_text_raises_one_signal_with_the_text_cut(clocked):
    org, clock, connection, _ = clocked
    FieldMapping.objects.create(
        object_mapping=_mapping(connection, "Opportunity"),
        salesforce_field="Description",
    )
    opportunity = _open_opportunity(org)
    org.store.update(opportunity["Id"], {"Description": "Call notes. " * 1000})
    _synced(clocked)
    SignalRule.objects.create(
        object_mapping=_mapping(connection, "Opportunity"),
        name="Notes cleared",
        kind=SignalRule.Kind.MOVED_TO,
        field_name="Description",
        value="Cleared",
    )
    org.store.update(opportunity["Id"], {"Description": "Cleared"})

    run = _recent(connection)

    event = Event.objects.get(kind=Event.Kind.SIGNAL_RAISED)
    assert run.status == SyncRun.Status.SUCCESS
    assert event.payload["to"] == "Cleared"
    assert event.payload["from"].startswith("Call notes. Call notes.")
    assert len(event.payload["from"]) == 500
    stored = CrmRecord.objects.get(salesforce_id=opportunity["Id"])
    assert stored.custom_values["Description"] == "Cleared"


def test_a_new_record_matching_a_long_condition_raises_one_signal(clocked):
    org, clock, connection, _ = clocked
    _synced(clocked)
    companies = ", ".join(f"'Key Account {n}'" for n in range(600))
    rule = SignalRule.objects.create(
        object_mapping=_mapping(connection, "Lead"),
        name="Lead from a key account",
        kind=SignalRule.Kind.NEW_MATCHING,
        condition=f"Company IN ({companies})",
    )
    lead = org.store.insert("Lead", {"LastName": "Key", "Company": "Key Account 7"})

    run = _recent(connection)

    event = Event.objects.get(kind=Event.Kind.SIGNAL_RAISED)
    assert run.status == SyncRun.Status.SUCCESS
    assert event.record_id == lead
    assert rule.condition.startswith(event.payload["condition"].removesuffix("…"))
