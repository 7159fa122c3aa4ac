from datetime import UTC, datetime, timedelta

import pytest

from jobs.models import FieldWrite, JobRun, KnownValue
from jobs.writeback import connection_write_pending
from tests.jobs.factories import ActionFactory, EventFactory, FieldWriteFactory
from tests.jobs.support import api_requests, update_requests

pytestmark = pytest.mark.django_db

SENT_AT = datetime(2025, 3, 12, 9, 30, tzinfo=UTC)


def _send(action, person, days: int = 0) -> FieldWrite:
    event = EventFactory(
        workspace=action.job.workspace,
        person=person,
        occurred_at=SENT_AT + timedelta(days=days),
    )
    FieldWriteFactory(action=action, event=event)
    connection_write_pending(connection=action.connection)
    return FieldWrite.objects.get(event=event)


def _queries(mock) -> int:
    return sum(1 for r in api_requests(mock) if "/query/" in r.url)


def test_it_is_off_by_default_and_overwrites_without_reading(
    org, org_http, connection, person
):
    action = ActionFactory(connection=connection)
    _send(action, person)
    org.store.update(person.salesforce_id, {"Last_Trig_Email__c": "2024-01-01"})

    write = _send(action, person, days=1)

    assert write.status == FieldWrite.Status.WRITTEN
    assert _queries(org_http) == 0
    assert str(org.store.get(person.salesforce_id)["Last_Trig_Email__c"]) == (
        "2025-03-13"
    )


def test_it_skips_a_field_changed_in_salesforce_since_trig_last_read_it(
    org, org_http, connection, person
):
    action = ActionFactory(connection=connection, is_conflict_check_enabled=True)
    first = _send(action, person)
    org.store.update(person.salesforce_id, {"Last_Trig_Email__c": "2024-01-01"})

    second = _send(action, person, days=1)

    assert first.status == FieldWrite.Status.WRITTEN
    assert second.status == FieldWrite.Status.SKIPPED
    assert second.message == (
        "Skipped: Last_Trig_Email__c was changed in Salesforce since Trig last read "
        "it (Trig read '2025-03-12', Salesforce now holds '2024-01-01')."
    )
    assert len(update_requests(org_http)) == 1
    assert str(org.store.get(person.salesforce_id)["Last_Trig_Email__c"]) == (
        "2024-01-01"
    )
    assert JobRun.objects.latest("pk").status == JobRun.Status.COMPLETED


def test_once_trig_has_read_the_change_the_next_write_goes_ahead(
    org, org_http, connection, person
):
    action = ActionFactory(connection=connection, is_conflict_check_enabled=True)
    _send(action, person)
    org.store.update(person.salesforce_id, {"Last_Trig_Email__c": "2024-01-01"})
    _send(action, person, days=1)

    third = _send(action, person, days=2)

    assert third.status == FieldWrite.Status.WRITTEN
    known = KnownValue.objects.get(record_id=person.salesforce_id)
    assert known.value == "2025-03-14"
    assert _queries(org_http) == 3


def test_a_field_already_holding_the_value_is_not_written_again(
    org, org_http, connection, person
):
    org.store.update(person.salesforce_id, {"Last_Trig_Email__c": "2025-03-12"})
    action = ActionFactory(connection=connection, is_conflict_check_enabled=True)

    write = _send(action, person)

    assert write.status == FieldWrite.Status.WRITTEN
    assert write.message == "Salesforce already holds this value; nothing sent."
    assert update_requests(org_http) == []


def test_it_checks_the_survivor_when_the_record_lost_a_merge(
    org, org_http, connection, people
):
    loser, kept = people[:2]
    action = ActionFactory(connection=connection, is_conflict_check_enabled=True)
    _send(action, kept)
    org.store.update(kept.salesforce_id, {"Last_Trig_Email__c": "2024-01-01"})
    org.writes.fail(
        loser.salesforce_id, "ENTITY_IS_DELETED", merged_into=kept.salesforce_id
    )

    merged = _send(action, loser, days=1)

    assert merged.status == FieldWrite.Status.SKIPPED
    assert "was changed in Salesforce since Trig last read it" in merged.message
    assert str(org.store.get(kept.salesforce_id)["Last_Trig_Email__c"]) == (
        "2024-01-01"
    )


def test_a_survivor_unchanged_since_trig_read_it_is_written_and_remembered(
    org, org_http, connection, people
):
    loser, kept = people[:2]
    action = ActionFactory(connection=connection, is_conflict_check_enabled=True)
    _send(action, kept)
    org.writes.fail(
        loser.salesforce_id, "ENTITY_IS_DELETED", merged_into=kept.salesforce_id
    )

    merged = _send(action, loser, days=1)

    assert merged.status == FieldWrite.Status.WRITTEN
    assert JobRun.objects.latest("pk").status == JobRun.Status.COMPLETED
    known = KnownValue.objects.get(record_id=kept.salesforce_id)
    assert known.value == "2025-03-13"
