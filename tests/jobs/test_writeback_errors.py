"""How the writeback meets Salesforce's errors, deleted records and bad values."""

import json
import re
from datetime import UTC, datetime

import pytest
import requests
import responses

from integrations.salesforce.emulator.testing import mount
from jobs.models import DeletedRecord, Event, FieldWrite, JobRun
from jobs.services import event_record
from jobs.writeback import connection_write_pending
from people.models import Person
from tests.conftest import OFFLINE_HOST
from tests.jobs.factories import ActionFactory, EventFactory, FieldWriteFactory
from tests.jobs.support import api_requests, sent_ids, update_requests

pytestmark = pytest.mark.django_db

SENT_AT = datetime(2025, 3, 12, 9, 30, tzinfo=UTC)
LOCK = "UNABLE_TO_LOCK_ROW"
VALIDATION = "FIELD_CUSTOM_VALIDATION_EXCEPTION"


def _write(action, person, **fields):
    event = EventFactory(workspace=action.job.workspace, person=person)
    return FieldWriteFactory(action=action, event=event, **fields)


def _siblings(people):
    """Two people whose Contacts belong to one Account."""
    by_account = {}
    for p in people:
        by_account.setdefault(p.salesforce_account_id, []).append(p)
    return next(group[:2] for group in by_account.values() if len(group) >= 2)


def _stamp(org, person):
    return org.store.get(person.salesforce_id).get("Last_Trig_Email__c")


# ---------------------------------------------------------------- Row locks


def test_a_locked_row_is_retried_alone_with_growing_waits_then_queued(
    org, org_http, connection, people, settings, monkeypatch
):
    settings.JOBS_WRITE_BACKOFF_SECONDS = 0.5
    waits = []
    monkeypatch.setattr("jobs.writeback.time.sleep", waits.append)
    first, locked = _siblings(people)
    action = ActionFactory(connection=connection)
    written, waiting = _write(action, first), _write(action, locked)
    org.writes.fail(locked.salesforce_id, LOCK)

    run = connection_write_pending(connection=connection)

    written.refresh_from_db()
    waiting.refresh_from_db()
    assert [[r["id"] for r in batch] for batch in update_requests(org_http)] == [
        sorted([first.salesforce_id, locked.salesforce_id]),
        [locked.salesforce_id],
        [locked.salesforce_id],
    ]
    assert waits == [0.5, 1.0]
    assert written.status == FieldWrite.Status.WRITTEN
    assert waiting.outcome == "failed, temporary"
    assert waiting.status_code == LOCK and waiting.attempts == 3
    assert "unable to obtain exclusive access" in waiting.message
    assert waiting.next_attempt_at is not None
    assert run.status == JobRun.Status.COMPLETED_WITH_ERRORS
    assert (run.writes_written, run.writes_waiting, run.writes_failed) == (1, 1, 0)


def test_the_next_run_retries_only_the_locked_row(
    org, org_http, connection, people, settings
):
    settings.JOBS_WRITE_RETRY_SECONDS = 0
    first, locked = _siblings(people)
    action = ActionFactory(connection=connection)
    waiting = _write(action, locked)
    _write(action, first)
    org.writes.fail(locked.salesforce_id, LOCK, times=3)
    connection_write_pending(connection=connection)

    second = connection_write_pending(connection=connection)

    waiting.refresh_from_db()
    assert update_requests(org_http)[-1] == [
        {
            "attributes": {"type": "Contact"},
            "id": locked.salesforce_id,
            "Last_Trig_Email__c": "2025-03-12",
        }
    ]
    assert sent_ids(org_http).count(first.salesforce_id) == 1
    assert org.writes.updates_of(first.salesforce_id) == [
        {"Last_Trig_Email__c": "2025-03-12"}
    ]
    assert waiting.status == FieldWrite.Status.WRITTEN and waiting.attempts == 4
    assert second.status == JobRun.Status.COMPLETED and second.writes_written == 1


def test_a_row_locked_for_good_is_given_up_after_the_last_attempt(
    org, org_http, connection, person, settings
):
    settings.JOBS_WRITE_RETRY_SECONDS = 0
    settings.JOBS_WRITE_MAX_ATTEMPTS = 5
    write = _write(ActionFactory(connection=connection), person)
    org.writes.fail(person.salesforce_id, LOCK)

    connection_write_pending(connection=connection)
    connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert write.attempts == 6
    assert write.outcome == "failed"
    assert "Gave up after 6 attempts" in write.message
    assert connection_write_pending(connection=connection) is None


# ---------------------------------------------------------------- Partial success


def test_a_validation_failure_fails_its_record_only_and_is_never_sent_again(
    org, org_http, connection, people
):
    healthy, invalid = people[:2]
    action = ActionFactory(connection=connection)
    written, rejected = _write(action, healthy), _write(action, invalid)
    org.writes.fail(
        invalid.salesforce_id,
        VALIDATION,
        message="Gold tier requires a mailing country",
    )

    run = connection_write_pending(connection=connection)
    again = connection_write_pending(connection=connection)

    written.refresh_from_db()
    rejected.refresh_from_db()
    assert len(update_requests(org_http)) == 1
    assert str(_stamp(org, healthy)) == "2025-03-12"
    assert _stamp(org, invalid) is None
    assert written.status == FieldWrite.Status.WRITTEN
    assert rejected.status == FieldWrite.Status.FAILED and not rejected.is_retryable
    assert rejected.status_code == VALIDATION
    assert rejected.message == "Gold tier requires a mailing country"
    assert rejected.attempts == 1
    assert run.status == JobRun.Status.COMPLETED_WITH_ERRORS
    assert (run.writes_written, run.writes_failed) == (1, 1)
    assert again is None


@pytest.mark.parametrize(
    "code", ["INVALID_FIELD_FOR_INSERT_UPDATE", "INSUFFICIENT_ACCESS_OR_READONLY"]
)
def test_permanent_errors_are_recorded_with_their_fields_and_not_retried(
    org, org_http, connection, person, code
):
    write = _write(ActionFactory(connection=connection), person)
    org.writes.fail(person.salesforce_id, code, fields=["Last_Trig_Email__c"])

    connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert write.status_code == code and write.outcome == "failed"
    assert write.error_fields == ["Last_Trig_Email__c"]
    assert len(update_requests(org_http)) == 1


def test_a_message_with_nul_characters_is_stored_without_them(
    org, org_http, connection, person
):
    write = _write(ActionFactory(connection=connection), person)
    org.writes.fail(person.salesforce_id, VALIDATION, message="Gold\x00 tier\x00")

    connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert write.message == "Gold tier"


def _answer_first_update_with(org, answer):
    """Serve the org, but answer the first update with `answer` (a function)."""
    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mock.add_callback(
        "PATCH",
        re.compile(rf"https://{re.escape(OFFLINE_HOST)}/.*/composite/sobjects"),
        callback=answer,
    )
    mount(org, base_url=f"https://{OFFLINE_HOST}", mock=mock)
    return mock


def test_results_that_do_not_line_up_assign_no_outcome_by_guesswork(
    org, connection, people
):
    first, second = people[:2]
    action = ActionFactory(connection=connection)
    writes = [_write(action, first), _write(action, second)]

    def swapped(request):
        ids = [r["id"] for r in json.loads(request.body)["records"]]
        body = [{"id": i, "success": True, "errors": []} for i in reversed(ids)]
        return 200, {}, json.dumps(body)

    with _answer_first_update_with(org, swapped):
        run = connection_write_pending(connection=connection)

    for write in writes:
        write.refresh_from_db()
        assert write.status == FieldWrite.Status.FAILED and write.is_in_flight
        assert "Outcome unknown" in write.message
    assert run.status == JobRun.Status.COMPLETED_WITH_ERRORS
    assert "did not line up" in run.error_message


def test_a_record_rolled_back_for_anothers_failure_is_queued_again(
    org, connection, people
):
    healthy, invalid = people[:2]
    action = ActionFactory(connection=connection)
    written, rejected = _write(action, healthy), _write(action, invalid)

    def all_or_none(request):
        ids = sorted([healthy.salesforce_id, invalid.salesforce_id])
        failure = {
            "statusCode": VALIDATION,
            "message": "Gold tier requires a mailing country",
            "fields": [],
        }
        rolled_back = {
            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "message": "Record rolled back because not all records were valid",
            "fields": [],
        }
        body = [
            {
                "id": i,
                "success": False,
                "errors": [failure if i == invalid.salesforce_id else rolled_back],
            }
            for i in ids
        ]
        return 200, {}, json.dumps(body)

    with _answer_first_update_with(org, all_or_none) as mock:
        connection_write_pending(connection=connection)
        sent = sent_ids(mock)

    written.refresh_from_db()
    rejected.refresh_from_db()
    assert sent[2:] == [healthy.salesforce_id]
    assert written.status == FieldWrite.Status.WRITTEN and written.attempts == 2
    assert rejected.status_code == VALIDATION and rejected.attempts == 1


# ---------------------------------------------------------------- Deleted and merged


def test_a_merged_record_is_followed_to_its_survivor_once(
    org, org_http, connection, people
):
    person, kept = people[0], people[1]
    survivor = kept.salesforce_id
    write = _write(ActionFactory(connection=connection), person)
    loser = person.salesforce_id
    org.writes.fail(loser, "ENTITY_IS_DELETED", merged_into=survivor)

    run = connection_write_pending(connection=connection)

    write.refresh_from_db()
    query_all = [r for r in api_requests(org_http) if "/queryAll/" in r.url]
    assert [[r["id"] for r in b] for b in update_requests(org_http)] == [
        [loser],
        [survivor],
    ]
    assert len(query_all) == 1 and loser in requests.utils.unquote(query_all[0].url)
    assert str(org.store.get(survivor)["Last_Trig_Email__c"]) == "2025-03-12"
    assert write.outcome == f"written on merged record {survivor}"
    assert write.merged_into_id == survivor and write.record_id == loser
    assert Person.objects.get(pk=person.pk).merged_into == kept
    assert DeletedRecord.objects.get(salesforce_id=loser).master_record_id == survivor
    assert run.status == JobRun.Status.COMPLETED


def test_a_merged_record_is_not_followed_when_the_action_says_so(
    org, org_http, connection, person
):
    survivor = org.store.records("Contact")[-1]["Id"]
    write = _write(ActionFactory(connection=connection, follows_merges=False), person)
    org.writes.fail(person.salesforce_id, "ENTITY_IS_DELETED", merged_into=survivor)

    connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert len(update_requests(org_http)) == 1
    assert write.status == FieldWrite.Status.SKIPPED
    assert f"merged into {survivor}" in write.message


def _write_at(action, person, day):
    event = EventFactory(
        workspace=action.job.workspace,
        person=person,
        occurred_at=datetime(2025, 3, day, 9, 30, tzinfo=UTC),
    )
    return FieldWriteFactory(action=action, event=event)


@pytest.mark.parametrize(
    "newer_names", ["survivor", "loser"], ids=["newer on survivor", "newer on loser"]
)
def test_a_late_older_event_does_not_overwrite_a_merge_survivors_newer_value(
    org, org_http, connection, people, newer_names
):
    loser, kept = people[:2]
    org.writes.fail(
        loser.salesforce_id, "ENTITY_IS_DELETED", merged_into=kept.salesforce_id
    )
    newer_person, older_person = (
        (kept, loser) if newer_names == "survivor" else (loser, kept)
    )
    action = ActionFactory(connection=connection)
    _write_at(action, newer_person, 20)
    connection_write_pending(connection=connection)
    older = _write_at(action, older_person, 10)

    connection_write_pending(connection=connection)

    older.refresh_from_db()
    assert str(_stamp(org, kept)) == "2025-03-20"
    assert older.status == FieldWrite.Status.SKIPPED
    assert "later event is already written" in older.message


def test_of_a_survivors_own_write_and_its_losers_in_one_run_the_later_wins(
    org, org_http, connection, people
):
    loser, kept = people[:2]
    org.writes.fail(
        loser.salesforce_id, "ENTITY_IS_DELETED", merged_into=kept.salesforce_id
    )
    action = ActionFactory(connection=connection)
    own, merged = _write_at(action, kept, 10), _write_at(action, loser, 20)

    connection_write_pending(connection=connection)

    own.refresh_from_db()
    merged.refresh_from_db()
    assert str(_stamp(org, kept)) == "2025-03-20"
    assert (own.status, merged.status) == ("written", "written")
    assert merged.merged_into_id == kept.salesforce_id


def test_of_two_losers_merged_into_one_survivor_the_later_event_wins(
    org, org_http, connection, people
):
    first, second, kept = people[:3]
    for loser in (first, second):
        org.writes.fail(
            loser.salesforce_id, "ENTITY_IS_DELETED", merged_into=kept.salesforce_id
        )
    action = ActionFactory(connection=connection)
    # The later event names the record sent first.
    ordered = sorted([first, second], key=lambda p: p.salesforce_id)
    newer, older = _write_at(action, ordered[0], 20), _write_at(action, ordered[1], 10)

    connection_write_pending(connection=connection)

    newer.refresh_from_db()
    older.refresh_from_db()
    assert str(_stamp(org, kept)) == "2025-03-20"
    assert newer.status == FieldWrite.Status.WRITTEN
    assert older.status == FieldWrite.Status.SKIPPED
    assert older.superseded_by == newer
    assert [r["id"] for r in update_requests(org_http)[-1]] == [kept.salesforce_id]


@pytest.mark.parametrize("purged", [False, True], ids=["in the bin", "purged"])
def test_a_deleted_record_is_skipped_not_failed_and_never_recreated(
    org, org_http, connection, person, purged
):
    write = _write(ActionFactory(connection=connection), person)
    if purged:
        gone = "0035g00000ZzZzZAAV"
        Person.objects.filter(pk=person.pk).update(salesforce_id=gone)
        FieldWrite.objects.filter(pk=write.pk).update(record_id=gone)
    else:
        gone = person.salesforce_id
        org.writes.fail(gone, "ENTITY_IS_DELETED")
    contacts = org.store.count("Contact", include_deleted=True)

    run = connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert write.status == FieldWrite.Status.SKIPPED
    assert write.status_code == "ENTITY_IS_DELETED"
    assert write.message == "Skipped: the record was deleted in Salesforce."
    assert (run.writes_failed, run.writes_skipped) == (0, 1)
    assert run.status == JobRun.Status.COMPLETED
    assert DeletedRecord.objects.filter(
        salesforce_id=gone, master_record_id=""
    ).exists()
    assert org.store.count("Contact", include_deleted=True) == contacts
    assert {r.method for r in api_requests(org_http)} == {"GET", "PATCH"}


def test_later_jobs_make_no_call_for_a_person_whose_contact_was_deleted(
    org, org_http, connection, person, django_capture_on_commit_callbacks
):
    action = ActionFactory(connection=connection)
    org.writes.fail(person.salesforce_id, "ENTITY_IS_DELETED")
    _write(action, person)
    connection_write_pending(connection=connection)
    calls = len(api_requests(org_http))

    with django_capture_on_commit_callbacks(execute=True):
        event_record(
            workspace=connection.workspace,
            kind=Event.Kind.EMAIL_SENT,
            idempotency_key="after-the-delete",
            occurred_at=SENT_AT,
            person=person,
        )

    later = FieldWrite.objects.get(event__idempotency_key="after-the-delete")
    assert later.status == FieldWrite.Status.SKIPPED
    assert "deleted in Salesforce" in later.message
    assert len(api_requests(org_http)) == calls


def test_a_person_the_sync_found_merged_is_written_on_the_survivor_directly(
    org, org_http, connection, people, django_capture_on_commit_callbacks
):
    loser, kept = people[:2]
    Person.objects.filter(pk=loser.pk).update(merged_into=kept, deleted_at=SENT_AT)
    loser.refresh_from_db()
    ActionFactory(connection=connection)

    with django_capture_on_commit_callbacks(execute=True):
        event_record(
            workspace=connection.workspace,
            kind=Event.Kind.EMAIL_SENT,
            idempotency_key="after-the-merge",
            occurred_at=SENT_AT,
            person=loser,
        )

    write = FieldWrite.objects.get()
    assert [[r["id"] for r in b] for b in update_requests(org_http)] == [
        [kept.salesforce_id]
    ]
    assert write.outcome == f"written on merged record {kept.salesforce_id}"


# ---------------------------------------------------------------- Read-only fields


def test_a_field_made_read_only_is_left_out_and_the_rest_is_sent_with_a_warning(
    org, org_http, connection, person
):
    stamp = ActionFactory(connection=connection)
    title = ActionFactory(
        connection=connection,
        job=stamp.job,
        field_name="Title",
        value_source="literal",
        value="Reader",
    )
    event = EventFactory(workspace=connection.workspace, person=person)
    sent = FieldWriteFactory(action=stamp, event=event)
    dropped = FieldWriteFactory(action=title, event=event, value="Reader")
    org.writes.make_read_only("Contact", "Title")

    connection_write_pending(connection=connection)

    sent.refresh_from_db()
    dropped.refresh_from_db()
    (batch,) = update_requests(org_http)
    assert set(batch[0]) == {"attributes", "id", "Last_Trig_Email__c"}
    assert sent.status == FieldWrite.Status.WRITTEN
    assert sent.warning == "Sent without Title: hidden or read-only now."
    assert dropped.status == FieldWrite.Status.SKIPPED
    assert dropped.message == "Skipped: Title is read-only for the connected user."


@pytest.mark.parametrize("change", ["make_read_only", "hide_field"])
def test_a_record_with_no_writable_field_left_makes_no_update_call(
    org, org_http, connection, person, change
):
    write = _write(ActionFactory(connection=connection, field_name="Title"), person)
    FieldWrite.objects.filter(pk=write.pk).update(value="Reader")
    getattr(org.writes if change == "make_read_only" else org, change)(
        "Contact", "Title"
    )

    run = connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert update_requests(org_http) == []
    assert run.api_calls == 1  # the describe
    assert write.status == FieldWrite.Status.SKIPPED
    assert "Title" in write.message


# ---------------------------------------------------------------- Bad values


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("Title", "T" * 129, "holds at most 128 characters; the value has 129"),
        ("Last_Trig_Email__c", "next tuesday", "takes a date"),
        ("Trig_Engagement__c", "Lukewarm", "not a value of the picklist"),
        ("Email", "ada at example", "takes an e-mail address"),
    ],
)
def test_a_value_that_does_not_fit_fails_with_its_reason_and_costs_no_call(
    org, org_http, connection, people, field, value, reason
):
    good = _write(ActionFactory(connection=connection), people[0])
    bad_action = ActionFactory(
        connection=connection, field_name=field, value_source="literal", value=value
    )
    bad = _write(bad_action, people[1], value=value)

    connection_write_pending(connection=connection)

    good.refresh_from_db()
    bad.refresh_from_db()
    assert sent_ids(org_http) == [people[0].salesforce_id]
    assert good.status == FieldWrite.Status.WRITTEN
    assert bad.status == FieldWrite.Status.FAILED and bad.status_code == ""
    assert reason in bad.message


def test_an_object_gone_from_the_org_skips_its_writes_and_not_the_others(
    org, org_http, connection, person
):
    experience = org.store.records("Experience__c")[0]["Id"]
    start = ActionFactory(
        connection=connection,
        target="event_record",
        object_name="Experience__c",
        field_name="Default_Start_Time__c",
        value_source="literal",
        value="18:45",
    )
    event = EventFactory(workspace=connection.workspace, record_id=experience)
    # Written first: the object that is gone comes before the Contacts.
    gone = FieldWriteFactory(
        action=start, event=event, record_id=experience, value="18:45"
    )
    stamp = _write(ActionFactory(connection=connection), person)
    org.schema.remove("Experience__c")

    run = connection_write_pending(connection=connection)

    gone.refresh_from_db()
    stamp.refresh_from_db()
    assert gone.status == FieldWrite.Status.SKIPPED
    assert gone.message == (
        "Skipped: Experience__c is hidden from the connected user or no longer exists."
    )
    assert stamp.status == FieldWrite.Status.WRITTEN
    assert run.status == JobRun.Status.COMPLETED


def test_an_event_record_of_another_object_is_not_written(org, org_http, connection):
    account = org.store.records("Account")[0]["Id"]
    action = ActionFactory(
        connection=connection, target="event_record", object_name="Contact"
    )
    event = EventFactory(workspace=connection.workspace, record_id=account)
    write = FieldWriteFactory(action=action, event=event, record_id=account)

    connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert write.status == FieldWrite.Status.FAILED
    assert write.message == f"{account} is not the Id of a record of Contact."
    assert update_requests(org_http) == []


def test_a_target_that_is_not_an_id_fails_without_a_call(org, org_http, connection):
    action = ActionFactory(
        connection=connection, target="event_record", object_name="Contact"
    )
    event = EventFactory(workspace=connection.workspace)
    write = FieldWriteFactory(action=action, event=event, record_id="003-not-an-id")

    connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert write.status == FieldWrite.Status.FAILED
    assert "not an 18-character Salesforce Id" in write.message
    assert update_requests(org_http) == []


# ---------------------------------------------------------------- Outages


def test_an_outage_is_retried_and_the_record_read_back_first(
    org, org_http, connection, person
):
    write = _write(ActionFactory(connection=connection), person)
    org.writes.fail_requests(status=503, times=1)

    run = connection_write_pending(connection=connection)

    write.refresh_from_db()
    methods = [r.method for r in api_requests(org_http)]
    assert methods == ["GET", "PATCH", "GET", "PATCH"]
    assert write.status == FieldWrite.Status.WRITTEN and write.attempts == 2
    assert len(org.writes.updates_of(person.salesforce_id)) == 1
    assert run.status == JobRun.Status.COMPLETED


def test_a_timeout_after_salesforce_wrote_is_not_written_twice(org, connection, person):
    write = _write(ActionFactory(connection=connection), person)
    forwarded = []

    def applied_then_lost(request):
        # Salesforce does the update; its answer never arrives.
        org.writes.update_collection(user_id=org.admin_user_id, body=request.body)
        forwarded.append(request)
        return requests.exceptions.ReadTimeout("Read timed out.")

    with _answer_first_update_with(org, applied_then_lost) as mock:
        run = connection_write_pending(connection=connection)
        updates = update_requests(mock)

    write.refresh_from_db()
    assert len(forwarded) == 1 and len(updates) == 1
    assert len(org.writes.updates_of(person.salesforce_id)) == 1
    assert write.status == FieldWrite.Status.WRITTEN and not write.is_in_flight
    assert write.message == "Salesforce already holds this value; nothing sent."
    assert run.status == JobRun.Status.COMPLETED


def test_a_write_left_in_flight_by_a_dead_worker_is_checked_before_sending(
    org, org_http, connection, person
):
    org.store.update(person.salesforce_id, {"Last_Trig_Email__c": "2025-03-12"})
    write = _write(ActionFactory(connection=connection), person)
    FieldWrite.objects.filter(pk=write.pk).update(is_in_flight=True, attempts=1)

    connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert update_requests(org_http) == []
    assert write.status == FieldWrite.Status.WRITTEN


# ---------------------------------------------------------------- Permanent errors


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (VALIDATION, "Gold tier requires a mailing country"),
        ("REQUIRED_FIELD_MISSING", "Required fields are missing: [MailingCountry]"),
        ("INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id"),
    ],
)
def test_a_permanent_refusal_is_sent_once_and_again_only_with_new_data(
    org, org_http, connection, people, code, message
):
    healthy, refused = people[:2]
    action = ActionFactory(connection=connection)
    _write(action, healthy)
    rejected = _write(action, refused)
    org.writes.fail(refused.salesforce_id, code, message=message, times=1)

    first = connection_write_pending(connection=connection)
    second = connection_write_pending(connection=connection)
    assert sent_ids(org_http).count(refused.salesforce_id) == 1
    # New data for the same field of the same record: a write of its own.
    later = EventFactory(
        workspace=action.job.workspace,
        person=refused,
        occurred_at=datetime(2025, 4, 2, 8, 0, tzinfo=UTC),
    )
    FieldWriteFactory(action=action, event=later)
    third = connection_write_pending(connection=connection)

    rejected.refresh_from_db()
    assert rejected.status == FieldWrite.Status.FAILED and not rejected.is_retryable
    assert (rejected.status_code, rejected.message) == (code, message)
    assert rejected.outcome == "failed" and rejected.attempts == 1
    assert first.status == JobRun.Status.COMPLETED_WITH_ERRORS
    assert (first.writes_written, first.writes_failed) == (1, 1)
    assert second is None
    assert sent_ids(org_http).count(refused.salesforce_id) == 2
    assert third.status == JobRun.Status.COMPLETED
    assert str(_stamp(org, refused)) == "2025-04-02"


# ---------------------------------------------------------------- All or none


@pytest.mark.parametrize(
    "code", ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "PROCESSING_HALTED"]
)
def test_a_record_held_back_by_anothers_failure_is_shown_as_not_applied_and_queued(
    org, connection, people, settings, code
):
    settings.JOBS_WRITE_ATTEMPTS_PER_RUN = 1
    settings.JOBS_WRITE_RETRY_SECONDS = 0
    healthy, invalid = people[:2]
    action = ActionFactory(connection=connection)
    held_back, rejected = _write(action, healthy), _write(action, invalid)

    def all_or_none(request):
        ids = [r["id"] for r in json.loads(request.body)["records"]]
        failure = {
            "statusCode": VALIDATION,
            "message": "Gold tier requires a mailing country",
            "fields": [],
        }
        halted = {"statusCode": code, "message": "Record rolled back", "fields": []}
        body = [
            {
                "id": i,
                "success": False,
                "errors": [failure if i == invalid.salesforce_id else halted],
            }
            for i in ids
        ]
        return 200, {}, json.dumps(body)

    with _answer_first_update_with(org, all_or_none) as mock:
        run = connection_write_pending(connection=connection)
        held_back.refresh_from_db()
        rejected.refresh_from_db()
        assert held_back.status == FieldWrite.Status.FAILED
        assert held_back.is_retryable and held_back.next_attempt_at is not None
        assert held_back.outcome == "not applied, another record in the batch failed"
        assert held_back.status_code == code
        assert rejected.outcome == "failed" and rejected.status_code == VALIDATION
        assert run.status == JobRun.Status.COMPLETED_WITH_ERRORS
        assert (run.writes_written, run.writes_waiting, run.writes_failed) == (0, 1, 1)

        again = connection_write_pending(connection=connection)
        sent = sent_ids(mock)

    held_back.refresh_from_db()
    assert sent[2:] == [healthy.salesforce_id]
    assert held_back.status == FieldWrite.Status.WRITTEN
    assert again.status == JobRun.Status.COMPLETED
