import json

import pytest
from django.urls import reverse

from jobs.models import Event, FieldWrite, RejectedEvent
from jobs.services import api_key_create, api_key_revoke
from tests.jobs.factories import ActionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(member):
    return api_key_create(workspace=member.workspace, name="E-mail sender")


def _post(client, body, secret=None, **headers):
    if secret:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(
        reverse("jobs:events"), data, content_type="application/json", **headers
    )


def _event(person, key="message-1", **fields):
    return {
        "kind": "email.sent",
        "idempotency_key": key,
        "occurred_at": "2025-03-12T09:30:00Z",
        "person_id": person.pk,
        "payload": {"subject": "Spring offer"},
        **fields,
    }


def test_one_event_is_recorded_and_its_write_sent(
    org, client, key, connection, person, django_capture_on_commit_callbacks
):
    ActionFactory(connection=connection)
    _, secret = key

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, _event(person), secret)

    event = Event.objects.get()
    assert response.status_code == 201
    assert response.json() == {"status": "recorded", "id": event.pk}
    assert event.payload == {"subject": "Spring offer"} and event.api_key == key[0]
    assert FieldWrite.objects.get().status == FieldWrite.Status.WRITTEN
    assert str(org.store.get(person.salesforce_id)["Last_Trig_Email__c"]) == (
        "2025-03-12"
    )


def test_the_same_event_sent_twice_is_recorded_once(client, key, person):
    _, secret = key

    first = _post(client, _event(person), secret)
    second = _post(client, _event(person), secret)

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == {"status": "duplicate", "id": first.json()["id"]}
    assert Event.objects.count() == 1


def test_a_batch_answers_for_each_event_and_one_bad_event_stops_nothing(
    client, key, person
):
    _, secret = key

    response = _post(
        client,
        {
            "events": [
                _event(person, "m-1"),
                _event(person, "m-2", kind="email.bounced"),
                _event(person, "m-3", occurred_at="yesterday"),
                _event(person, "m-1"),
            ]
        },
        secret,
    )

    body = response.json()
    assert response.status_code == 200
    assert (body["recorded"], body["duplicates"], body["rejected"]) == (1, 1, 2)
    assert [r["status"] for r in body["results"]] == [
        "recorded",
        "rejected",
        "rejected",
        "duplicate",
    ]
    assert "Unknown event kind 'email.bounced'" in body["results"][1]["error"]
    assert "occurred_at" in body["results"][2]["error"]
    assert RejectedEvent.objects.count() == 2


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Send your API key as 'Authorization: Bearer KEY'."),
        ({"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"}, "Send your API key"),
        (
            {"HTTP_AUTHORIZATION": "Bearer trig_not-a-key"},
            "unknown or has been revoked",
        ),
    ],
)
def test_a_request_without_a_valid_key_is_refused(client, person, headers, message):
    response = _post(client, _event(person), **headers)

    assert response.status_code == 401
    assert message in response.json()["error"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Event.objects.exists()


def test_a_revoked_key_is_refused(client, key, person):
    api_key, secret = key
    api_key_revoke(api_key=api_key)

    response = _post(client, _event(person), secret)

    assert response.status_code == 401
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not a JSON object"),
        ([{"kind": "email.sent"}], "not a JSON object"),
        ({"events": []}, "'events' must be a list of at least one event"),
        ({"events": [{}] * 501}, "At most 500 events go in one request"),
    ],
)
def test_a_malformed_request_is_refused_with_the_reason_recorded(
    client, key, body, message
):
    _, secret = key

    response = _post(client, body, secret)

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert message in RejectedEvent.objects.get().reason
    assert not Event.objects.exists()


def test_nul_characters_are_refused_in_a_payload_and_dropped_from_reasons(
    client, key, person
):
    _, secret = key

    response = _post(
        client,
        {
            "events": [
                _event(person, "m-1", payload={"subject": "Hi\u0000"}),
                _event(person, "m-2\u0000", kind="email.\u0000"),
            ]
        },
        secret,
    )

    results = response.json()["results"]
    assert "NUL character" in results[0]["error"]
    assert "Null characters are not allowed" in results[1]["error"]
    assert not Event.objects.exists()
    stored = RejectedEvent.objects.order_by("pk").last()
    assert (stored.kind, stored.idempotency_key) == ("email.", "m-2")


def test_a_single_rejected_event_answers_400_with_the_reason(client, key, person):
    _, secret = key

    response = _post(client, _event(person, kind="signal.lost"), secret)

    assert response.status_code == 400
    assert response.json()["status"] == "rejected"
    assert "Unknown event kind 'signal.lost'" in response.json()["error"]


def test_the_endpoint_takes_posts_only(client, key):
    _, secret = key

    response = client.get(reverse("jobs:events"), HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert response.status_code == 405


def test_a_full_batch_of_the_largest_events_is_taken(client, key, person):
    _, secret = key
    payload = {"subject": "x" * 7_950}
    events = [_event(person, f"m-{n}", payload=payload) for n in range(500)]

    response = _post(client, {"events": events}, secret)

    assert response.status_code == 200
    assert response.json()["recorded"] == 500


def test_a_body_larger_than_any_batch_needs_is_refused_with_the_reason(
    client, key, person, settings
):
    settings.JOBS_EVENTS_PER_REQUEST = 2
    _, secret = key
    body = json.dumps(_event(person)) + " " * 100_000

    response = _post(client, body, secret)

    assert response.status_code == 413
    assert "larger than" in response.json()["error"]
    assert "larger than" in RejectedEvent.objects.get().reason
    assert not Event.objects.exists()
