"""Values and requests that must cost their own write or answer, nothing more."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from jobs.models import Action, FieldWrite, RejectedEvent
from jobs.services import (
    EventRejected,
    action_validate,
    api_key_create,
    event_record,
)
from jobs.writeback import connection_write_pending
from tests.jobs.factories import ActionFactory
from tests.jobs.support import people_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(org, connection):
    return people_for(org=org, connection=connection, count=2)


def _latitude_action(connection, **fields):
    return ActionFactory(
        connection=connection,
        field_name="MailingLatitude",
        value_source=Action.ValueSource.EVENT,
        value="payload.lat",
        **fields,
    )


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "1e400"])
def test_a_number_that_is_not_finite_fails_its_write_and_not_the_run(
    org, org_http, connection, people, bad
):
    _latitude_action(connection)
    for key, person, lat in (("bad", people[0], bad), ("good", people[1], "1.5")):
        event_record(
            workspace=connection.workspace,
            kind="email.sent",
            idempotency_key=key,
            occurred_at=timezone.now(),
            person=person,
            payload={"lat": lat},
        )

    connection_write_pending(connection=connection)
    again = connection_write_pending(connection=connection)

    statuses = dict(FieldWrite.objects.values_list("event__idempotency_key", "status"))
    assert statuses == {"bad": "failed", "good": "written"}
    assert again is None or again.writes_failed == 0


def test_a_literal_that_is_not_a_finite_number_is_refused_on_save(
    org, org_http, connection
):
    action = ActionFactory.build(
        connection=connection,
        job=None,
        field_name="MailingLatitude",
        value_source=Action.ValueSource.LITERAL,
        value="NaN",
    )

    with pytest.raises(ValidationError):
        action_validate(action=action, workspace=connection.workspace)


def _post(client, body, secret):
    return client.post(
        reverse("jobs:events"),
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )


def test_deeply_nested_json_is_refused_with_a_400(client, member):
    _, secret = api_key_create(workspace=member.workspace, name="sender")

    response = _post(client, "[" * 100_000 + "]" * 100_000, secret)

    assert response.status_code == 400


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
)
def test_a_time_out_of_range_is_refused_with_a_400(
    client, member, org, connection, when
):
    _, secret = api_key_create(workspace=member.workspace, name="sender")
    person = people_for(org=org, connection=connection, count=1)[0]
    body = {
        "kind": "email.sent",
        "idempotency_key": "k1",
        "person_id": person.pk,
        "occurred_at": when,
    }

    response = _post(client, json.dumps(body), secret)

    assert response.status_code == 400


@pytest.mark.parametrize("when", [0, 1741771800, 1.5, True, {"at": "now"}, [2025]])
def test_a_time_that_is_not_text_is_refused_with_the_reason(
    client, member, org, connection, when
):
    _, secret = api_key_create(workspace=member.workspace, name="sender")
    person = people_for(org=org, connection=connection, count=1)[0]
    body = {
        "events": [
            {"kind": "email.sent", "idempotency_key": "k1", "occurred_at": when},
            {"kind": "email.sent", "idempotency_key": "k2", "person_id": person.pk},
        ]
    }

    response = _post(client, json.dumps(body), secret)

    results = response.json()["results"]
    assert response.status_code == 200
    assert [r["status"] for r in results] == ["rejected", "recorded"]
    assert "ISO 8601" in results[0]["error"]
    assert "ISO 8601" in RejectedEvent.objects.get().reason


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("idempotency_key", "message-\ud800", "not valid Unicode"),
        ("payload", {"subject": "Hi \udc00"}, "not valid Unicode"),
        ("payload", {"\ud83d": "key"}, "not valid Unicode"),
        ("payload", {"score": float("nan")}, "NaN"),
        ("payload", {"score": float("inf")}, "Infinity"),
    ],
)
def test_text_or_numbers_no_database_can_store_reject_only_their_event(
    client, member, org, connection, field, value, reason
):
    _, secret = api_key_create(workspace=member.workspace, name="sender")
    person = people_for(org=org, connection=connection, count=1)[0]
    bad = {"kind": "email.sent", "idempotency_key": "bad", "person_id": person.pk}
    good = {"kind": "email.sent", "idempotency_key": "good", "person_id": person.pk}
    body = json.dumps({"events": [bad | {field: value}, good]})

    response = _post(client, body, secret)

    results = response.json()["results"]
    assert response.status_code == 200
    assert [r["status"] for r in results] == ["rejected", "recorded"]
    assert reason in results[0]["error"]
    assert reason in RejectedEvent.objects.get().reason


def test_a_kind_that_is_not_valid_unicode_is_kept_readable_in_the_rejection(
    client, member
):
    _, secret = api_key_create(workspace=member.workspace, name="sender")
    body = {"kind": "email.\ud800", "idempotency_key": "key-\udfff"}

    response = _post(client, json.dumps(body), secret)

    rejected = RejectedEvent.objects.get()
    assert response.status_code == 400
    assert (rejected.kind, rejected.idempotency_key) == ("email.?", "key-?")


@pytest.mark.parametrize(
    "payload", [{"score": float("nan")}, {"subject": "\ud800"}], ids=["nan", "half"]
)
def test_the_service_refuses_a_payload_no_database_can_store(connection, payload):
    with pytest.raises(EventRejected):
        event_record(
            workspace=connection.workspace,
            kind="email.sent",
            idempotency_key="k1",
            occurred_at=timezone.now(),
            payload=payload,
        )


@pytest.mark.parametrize(
    ("text", "status"),
    [("日本" * 1_300, "recorded"), ("日本" * 1_340, "rejected")],
    ids=["7,800 bytes", "8,040 bytes"],
)
def test_a_payloads_size_is_counted_in_utf8_bytes(
    client, member, org, connection, text, status
):
    _, secret = api_key_create(workspace=member.workspace, name="sender")
    person = people_for(org=org, connection=connection, count=1)[0]
    body = {
        "kind": "email.sent",
        "idempotency_key": "k1",
        "person_id": person.pk,
        "payload": {"subject": text},
    }

    response = _post(client, json.dumps(body), secret)

    assert response.json()["status"] == status


@pytest.mark.parametrize(
    ("field_name", "bad"),
    [
        ("Last_Trig_Email__c", "2025-02-30T10:00:00"),
        ("Last_Trig_Email__c", "0001-01-01T00:00:00+05:00"),
        ("EmailBouncedDate", "9999-12-31T23:00:00-05:00"),
    ],
)
def test_a_date_that_does_not_exist_fails_its_write_and_not_the_run(
    org, org_http, connection, people, field_name, bad
):
    ActionFactory(
        connection=connection,
        field_name=field_name,
        value_source=Action.ValueSource.EVENT,
        value="payload.when",
    )
    for key, person, when in (
        ("bad", people[0], bad),
        ("good", people[1], "2025-03-12T09:30:00Z"),
    ):
        event_record(
            workspace=connection.workspace,
            kind="email.sent",
            idempotency_key=key,
            occurred_at=timezone.now(),
            person=person,
            payload={"when": when},
        )

    run = connection_write_pending(connection=connection)

    bad_write = FieldWrite.objects.get(event__idempotency_key="bad")
    statuses = dict(FieldWrite.objects.values_list("event__idempotency_key", "status"))
    assert statuses == {"bad": "failed", "good": "written"}
    assert "takes a date" in bad_write.message
    assert run.error_message == ""
