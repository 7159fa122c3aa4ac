"""Every writeback path, replayed against the offline org: nothing but updates."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from jobs.models import Action, Event, FieldWrite, JobRun
from jobs.services import event_record, writes_retry
from jobs.writeback import connection_write_pending
from tests.jobs.factories import ActionFactory

pytestmark = pytest.mark.django_db

SENT_AT = datetime(2025, 3, 12, 9, 30, tzinfo=UTC)
UPDATE_PATH = re.compile(r"/services/data/v[\d.]+/composite/sobjects")


def test_no_writeback_path_ever_sends_a_create_upsert_or_delete(
    org, org_http, connection, people, settings, django_capture_on_commit_callbacks
):
    settings.JOBS_WRITE_RETRY_SECONDS = 0
    stamp = ActionFactory(connection=connection, is_conflict_check_enabled=True)
    ActionFactory(
        connection=connection,
        job=stamp.job,
        field_name="Title",
        value_source=Action.ValueSource.TEMPLATE,
        value="Read {{ event.payload.subject }}",
    )
    ActionFactory(
        connection=connection,
        job=stamp.job,
        target=Action.Target.EVENT_RECORD,
        object_name="Account",
        field_name="Description",
        value_source=Action.ValueSource.LITERAL,
        value="Engaged",
    )
    contacts_before = org.store.count("Contact", include_deleted=True)
    accounts_before = org.store.count("Account", include_deleted=True)
    survivor = org.store.records("Contact")[-1]["Id"]
    org.writes.fail(people[1].salesforce_id, "UNABLE_TO_LOCK_ROW", times=4)
    org.writes.fail(people[2].salesforce_id, "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    org.writes.fail(people[3].salesforce_id, "ENTITY_IS_DELETED", merged_into=survivor)
    org.writes.fail(people[4].salesforce_id, "ENTITY_IS_DELETED")
    org.writes.fail_requests(status=503, times=1)
    org.store.update(people[5].salesforce_id, {"Last_Trig_Email__c": "2025-03-12"})

    def record(key: str, days: int, person) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            event_record(
                workspace=connection.workspace,
                kind=Event.Kind.EMAIL_SENT,
                idempotency_key=key,
                occurred_at=SENT_AT + timedelta(days=days),
                person=person,
                record_id=person.salesforce_account_id,
                payload={"subject": "the spring offer"},
            )

    # Every person once; then, after edits in Salesforce, the conflict check;
    # then Title made read-only; then the run after the lock passes; then a
    # retry from the admin; then an event for a deleted Contact.
    for n, person in enumerate(people[:8]):
        record(f"first-{n}", 0, person)
    org.store.update(people[0].salesforce_id, {"Last_Trig_Email__c": "2020-01-01"})
    record("conflict", 1, people[0])
    org.writes.make_read_only("Contact", "Title")
    record("read-only", 2, people[6])
    connection_write_pending(connection=connection)
    with django_capture_on_commit_callbacks(execute=True):
        writes_retry(writes=FieldWrite.objects.all())
    record("after-delete", 3, people[4])

    requests = [call.request for call in org_http.calls]
    messages = " ".join(FieldWrite.objects.values_list("message", flat=True))
    for path in (
        "Written on merged record",
        "deleted in Salesforce",
        "changed in Salesforce since Trig last read it",
        "read-only for the connected user",
        "already holds this value",
        "failed a validation rule",
    ):
        assert path in messages
    assert FieldWrite.objects.filter(status="written", attempts__gt=3).exists()
    assert any("/queryAll/" in r.url for r in requests)
    assert any(call.response.status_code == 503 for call in org_http.calls)
    assert JobRun.objects.filter(status=JobRun.Status.FAILED).count() == 0
    for request in requests:
        path = urlsplit(request.url).path
        assert request.method in {"GET", "POST", "PATCH"}, request.url
        if request.method == "POST":
            assert path.startswith("/services/oauth2/"), request.url
        if request.method == "PATCH":
            assert UPDATE_PATH.fullmatch(path), request.url
    assert sum(r.method == "PATCH" for r in requests) >= 6
    assert org.store.count("Contact", include_deleted=True) == contacts_before
    assert org.store.count("Account", include_deleted=True) == accounts_before
