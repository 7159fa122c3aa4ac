import json
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import SalesforceConnection
from jobs.models import Action, Event, FieldWrite, JobRun
from jobs.services import api_key_create, event_record
from jobs.writeback import WritebackBusy, connection_write_pending
from tests.jobs.factories import ActionFactory, EventFactory, FieldWriteFactory
from tests.jobs.support import api_requests, people_for, sent_ids, update_requests

pytestmark = pytest.mark.django_db

SENT_AT = datetime(2025, 3, 12, 9, 30, tzinfo=UTC)


def _writes(action, people, *, occurred_at=SENT_AT, field_value=None):
    return [
        FieldWriteFactory(
            action=action,
            event=EventFactory(
                workspace=action.job.workspace, person=p, occurred_at=occurred_at
            ),
            **({"value": field_value} if field_value is not None else {}),
        )
        for p in people
    ]


def test_an_email_sent_event_stamps_the_date_on_the_persons_contact(
    org, org_http, connection, person, django_capture_on_commit_callbacks
):
    ActionFactory(connection=connection)

    with django_capture_on_commit_callbacks(execute=True):
        event, created = event_record(
            workspace=connection.workspace,
            kind=Event.Kind.EMAIL_SENT,
            idempotency_key="message-1",
            occurred_at=SENT_AT,
            person=person,
        )

    write = FieldWrite.objects.get()
    run = JobRun.objects.get()
    assert created
    assert (
        str(org.store.get(person.salesforce_id)["Last_Trig_Email__c"]) == "2025-03-12"
    )
    assert write.status == FieldWrite.Status.WRITTEN and write.run == run
    assert write.event == event and write.written_at is not None
    assert run.status == JobRun.Status.COMPLETED
    assert (run.writes_written, run.update_calls, run.api_calls) == (1, 1, 2)
    assert update_requests(org_http) == [
        [
            {
                "attributes": {"type": "Contact"},
                "id": person.salesforce_id,
                "Last_Trig_Email__c": "2025-03-12",
            }
        ]
    ]


def test_a_time_from_the_event_is_sent_in_salesforces_form_or_refused(
    org, org_http, connection, django_capture_on_commit_callbacks
):
    first, second = (r["Id"] for r in org.store.records("Experience__c")[:2])
    ActionFactory(
        connection=connection,
        target=Action.Target.EVENT_RECORD,
        object_name="Experience__c",
        field_name="Default_Start_Time__c",
        value_source=Action.ValueSource.EVENT,
        value="starts",
    )

    with django_capture_on_commit_callbacks(execute=True):
        for key, record_id, starts in (
            ("evening", first, "18:45"),
            ("vague", second, "quarter to seven"),
        ):
            event_record(
                workspace=connection.workspace,
                kind=Event.Kind.EMAIL_SENT,
                idempotency_key=key,
                occurred_at=SENT_AT,
                record_id=record_id,
                payload={"starts": starts},
            )

    written = FieldWrite.objects.get(record_id=first)
    refused = FieldWrite.objects.get(record_id=second)
    assert written.status == FieldWrite.Status.WRITTEN
    assert org.store.get(first)["Default_Start_Time__c"] == "18:45:00.000Z"
    assert refused.status == FieldWrite.Status.FAILED
    assert "takes a time of day" in refused.message
    assert update_requests(org_http) == [
        [
            {
                "attributes": {"type": "Experience__c"},
                "id": first,
                "Default_Start_Time__c": "18:45:00.000Z",
            }
        ]
    ]


def test_1000_pending_writes_go_in_5_calls_of_200(org, org_http, connection):
    accounts = [a["Id"] for a in org.store.records("Account")]
    for n in range(1000):
        org.store.insert(
            "Contact", {"LastName": f"Reader {n}", "AccountId": accounts[n % 40]}
        )
    people = people_for(org=org, connection=connection, count=1000)
    action = ActionFactory(connection=connection)
    events = Event.objects.bulk_create(
        EventFactory.build(
            workspace=connection.workspace, person=p, occurred_at=SENT_AT
        )
        for p in people
    )
    FieldWrite.objects.bulk_create(
        FieldWriteFactory.build(action=action, event=e) for e in events
    )

    run = connection_write_pending(connection=connection)

    batches = update_requests(org_http)
    assert [len(batch) for batch in batches] == [200] * 5
    assert sorted(sent_ids(org_http)) == sorted(p.salesforce_id for p in people)
    assert run.update_calls == 5
    assert run.api_calls == 6  # and one describe of Contact
    assert run.writes_written == 1000
    assert FieldWrite.objects.filter(status=FieldWrite.Status.WRITTEN).count() == 1000
    assert all(
        str(org.store.get(p.salesforce_id)["Last_Trig_Email__c"]) == "2025-03-12"
        for p in people
    )


def test_450_writes_go_as_200_200_and_50(org, org_http, connection):
    for n in range(450):
        org.store.insert("Contact", {"LastName": f"Reader {n}"})
    people = people_for(
        org=org, connection=connection, count=10**6, with_account=False
    )[-450:]
    _writes(ActionFactory(connection=connection), people)

    connection_write_pending(connection=connection)

    assert [len(batch) for batch in update_requests(org_http)] == [200, 200, 50]


def test_children_of_one_account_travel_in_the_same_request(
    org, org_http, connection, settings
):
    settings.JOBS_WRITE_BATCH_SIZE = 4
    accounts = [a["Id"] for a in org.store.records("Account")[:3]]
    for n in range(9):
        org.store.insert(
            "Contact", {"LastName": f"Child {n}", "AccountId": accounts[n % 3]}
        )
    people = people_for(org=org, connection=connection, count=10**6)[-9:]
    _writes(ActionFactory(connection=connection), people)

    connection_write_pending(connection=connection)

    parent = {p.salesforce_id: p.salesforce_account_id for p in people}
    batches = update_requests(org_http)
    assert [len(batch) for batch in batches] == [3, 3, 3]
    for batch in batches:
        assert len({parent[record["id"]] for record in batch}) == 1


def test_the_latest_event_wins_and_one_call_carries_it(
    org, org_http, connection, person
):
    action = ActionFactory(connection=connection)
    older, newest, middle = (
        _writes(action, [person], occurred_at=SENT_AT + timedelta(days=d))[0]
        for d in (0, 2, 1)
    )

    run = connection_write_pending(connection=connection)

    for write in (older, newest, middle):
        write.refresh_from_db()
    assert update_requests(org_http) == [
        [
            {
                "attributes": {"type": "Contact"},
                "id": person.salesforce_id,
                "Last_Trig_Email__c": "2025-03-14",
            }
        ]
    ]
    assert newest.status == FieldWrite.Status.WRITTEN
    assert older.status == middle.status == FieldWrite.Status.SKIPPED
    assert older.superseded_by == newest and "later event" in older.message
    assert (run.writes_written, run.writes_skipped) == (1, 2)
    assert run.status == JobRun.Status.COMPLETED


def test_an_older_event_arriving_late_does_not_overwrite_a_newer_value(
    org, org_http, connection, person
):
    action = ActionFactory(connection=connection)
    _writes(action, [person], occurred_at=SENT_AT + timedelta(days=3))
    connection_write_pending(connection=connection)
    (late,) = _writes(action, [person], occurred_at=SENT_AT)

    connection_write_pending(connection=connection)

    late.refresh_from_db()
    assert late.status == FieldWrite.Status.SKIPPED
    assert "later event is already written" in late.message
    assert len(update_requests(org_http)) == 1
    assert (
        str(org.store.get(person.salesforce_id)["Last_Trig_Email__c"]) == "2025-03-15"
    )


def test_two_fields_of_one_record_travel_as_one_record(
    org, org_http, connection, person
):
    stamp = ActionFactory(connection=connection)
    title = ActionFactory(
        connection=connection,
        job=stamp.job,
        field_name="Trig_Engagement__c",
        value_source="literal",
        value="Warm",
    )
    event = EventFactory(workspace=connection.workspace, person=person)
    FieldWriteFactory(action=stamp, event=event)
    FieldWriteFactory(action=title, event=event, value="Warm")

    connection_write_pending(connection=connection)

    assert update_requests(org_http) == [
        [
            {
                "attributes": {"type": "Contact"},
                "id": person.salesforce_id,
                "Last_Trig_Email__c": "2025-03-12",
                "Trig_Engagement__c": "Warm",
            }
        ]
    ]


def test_nothing_due_makes_no_run_and_no_call(org_http, connection, person):
    write = _writes(ActionFactory(connection=connection), [person])[0]
    FieldWrite.objects.filter(pk=write.pk).update(status=FieldWrite.Status.WRITTEN)

    assert connection_write_pending(connection=connection) is None
    assert not JobRun.objects.exists()
    assert api_requests(org_http) == []


def test_a_second_run_of_a_connection_waits_for_the_first(connection, person):
    _writes(ActionFactory(connection=connection), [person])
    JobRun.objects.create(connection=connection)

    with pytest.raises(WritebackBusy):
        connection_write_pending(connection=connection)

    assert JobRun.objects.count() == 1


def test_a_run_abandoned_by_a_dead_worker_does_not_block_the_next(
    org, org_http, connection, person
):
    _writes(ActionFactory(connection=connection), [person])
    dead = JobRun.objects.create(connection=connection)
    JobRun.objects.filter(pk=dead.pk).update(
        started_at=dead.started_at - timedelta(hours=2)
    )

    run = connection_write_pending(connection=connection)

    dead.refresh_from_db()
    assert dead.status == JobRun.Status.FAILED and "Abandoned" in dead.error_message
    assert run.status == JobRun.Status.COMPLETED


def test_a_grant_gone_fails_the_run_and_keeps_the_writes_pending(
    org, org_http, connection, person
):
    (write,) = _writes(ActionFactory(connection=connection), [person])
    org.expire_access_tokens()
    org.revoke_grants()

    run = connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert run.status == JobRun.Status.FAILED
    assert "Reconnect the org" in run.error_message
    assert write.status == FieldWrite.Status.PENDING
    assert update_requests(org_http) == []


def test_a_transaction_security_refusal_fails_the_run_asking_the_admin(
    org, org_http, connection, person
):
    (write,) = _writes(ActionFactory(connection=connection), [person])
    org.faults.fail_next(
        status=400,
        error_code="TXN_SECURITY_METERING_ERROR",
        message="Transaction security policies took too long to complete.",
        path_contains="/composite/sobjects",
        times=1000,
    )

    run = connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert run.status == JobRun.Status.FAILED
    assert "Exempt from Transaction Security" in run.error_message
    # Refused before anything was written: the write waits for the next run.
    assert write.status == FieldWrite.Status.PENDING
    assert len(update_requests(org_http)) == 1

    org.faults.clear()
    connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert write.status == FieldWrite.Status.WRITTEN
    assert len(update_requests(org_http)) == 2


def _usage_seen(connection, used: int) -> None:
    # As the last sync left it.
    SalesforceConnection.objects.filter(pk=connection.pk).update(
        api_usage_used=used, api_usage_max=15_000, api_usage_seen_at=timezone.now()
    )
    connection.refresh_from_db()


def test_writes_stop_at_their_share_of_the_api_allocation(
    org, org_http, connection, person
):
    (write,) = _writes(ActionFactory(connection=connection), [person])
    _usage_seen(connection, used=2_000)
    # 15,000 a day, 10 % for writes: 1,500 calls, spent today already.
    JobRun.objects.create(
        connection=connection, status=JobRun.Status.COMPLETED, api_calls=1_500
    )

    run = connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert api_requests(org_http) == []
    assert write.status == FieldWrite.Status.PENDING
    assert write.next_attempt_at > run.started_at
    assert "Waiting" in write.message
    assert run.status == JobRun.Status.COMPLETED_WITH_ERRORS
    assert run.writes_waiting == 1 and "Stopped early" in run.error_message


def test_writes_make_no_call_when_the_org_has_none_left(
    org, org_http, connection, person
):
    _writes(ActionFactory(connection=connection), [person])
    org.set_api_usage(15_000)
    _usage_seen(connection, used=15_000)

    run = connection_write_pending(connection=connection)

    assert api_requests(org_http) == []
    assert run.writes_waiting == 1


def test_the_last_call_of_the_day_is_not_followed_by_an_update(
    org, org_http, connection, person
):
    (write,) = _writes(ActionFactory(connection=connection), [person])
    org.set_api_usage(14_999)  # the describe takes the last call

    run = connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert [r.method for r in api_requests(org_http)] == ["GET"]
    assert write.status == FieldWrite.Status.PENDING
    assert run.writes_waiting == 1


def test_an_allocation_spent_under_way_leaves_the_writes_waiting(
    org, org_http, connection, person
):
    (write,) = _writes(ActionFactory(connection=connection), [person])
    org.faults.spend_daily_limit(after_calls=1)  # after the describe

    run = connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert [r.method for r in api_requests(org_http)][:2] == ["GET", "PATCH"]
    assert write.status == FieldWrite.Status.PENDING and not write.is_in_flight
    assert "Waiting" in write.message
    assert run.writes_waiting == 1
    assert run.status == JobRun.Status.COMPLETED_WITH_ERRORS


def test_the_events_date_is_its_utc_date_whatever_zone_the_sender_wrote(
    org, client, member, connection, person, django_capture_on_commit_callbacks
):
    ActionFactory(
        connection=connection,
        field_name="Title",
        value_source=Action.ValueSource.TEMPLATE,
        value="Mailed {{ event.date }}",
    )
    _, secret = api_key_create(workspace=member.workspace, name="sender")
    body = {
        "kind": "email.sent",
        "idempotency_key": "evening-in-new-york",
        "occurred_at": "2025-03-12T23:30:00-05:00",
        "person_id": person.pk,
    }

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("jobs:events"),
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )

    assert org.store.get(person.salesforce_id)["Title"] == "Mailed 2025-03-13"


def test_a_time_without_a_zone_given_to_the_service_is_taken_as_utc(
    org, org_http, connection, person, django_capture_on_commit_callbacks
):
    ActionFactory(connection=connection, field_name="EmailBouncedDate")

    with django_capture_on_commit_callbacks(execute=True):
        event, _ = event_record(
            workspace=connection.workspace,
            kind=Event.Kind.EMAIL_SENT,
            idempotency_key="naive",
            occurred_at=datetime(2025, 3, 12, 9, 30),  # noqa: DTZ001
            person=person,
        )

    write = FieldWrite.objects.get()
    assert write.status == FieldWrite.Status.WRITTEN, write.message
    assert event.occurred_at == SENT_AT
    assert org.store.get(person.salesforce_id)["EmailBouncedDate"] == SENT_AT
