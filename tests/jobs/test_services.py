from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from jobs.models import Action, ApiKey, Event, FieldWrite, RejectedEvent
from jobs.services import (
    EventRejected,
    action_validate,
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
    event_record,
    events_record,
    writes_retry,
)
from jobs.writeback import connection_write_pending
from people.models import CrmAccount, Organisation
from tests.factories import SalesforceConnectionFactory, WorkspaceFactory
from tests.jobs.factories import ActionFactory, JobFactory, PersonFactory

pytestmark = pytest.mark.django_db

SENT_AT = datetime(2025, 3, 12, 9, 30, tzinfo=UTC)


def _record(workspace, key="message-1", **fields):
    fields.setdefault("kind", Event.Kind.EMAIL_SENT)
    fields.setdefault("occurred_at", SENT_AT)
    return event_record(workspace=workspace, idempotency_key=key, **fields)


# ---------------------------------------------------------------- Events


def test_the_same_event_sent_twice_is_recorded_once(connection, person):
    ActionFactory(connection=connection)

    first, created = _record(connection.workspace, person=person)
    again, created_again = _record(connection.workspace, person=person)

    assert (created, created_again) == (True, False)
    assert first == again
    assert Event.objects.count() == 1
    assert FieldWrite.objects.count() == 1


def test_idempotency_keys_are_unique_per_workspace_only(db):
    one, other = WorkspaceFactory(), WorkspaceFactory()

    _record(one)
    _record(other)

    assert Event.objects.count() == 2


def test_an_unknown_kind_is_rejected(connection):
    with pytest.raises(EventRejected, match="Unknown event kind 'email.bounced'"):
        _record(connection.workspace, kind="email.bounced")

    assert not Event.objects.exists()


def test_a_matching_event_makes_a_pending_write_per_enabled_action(
    connection, person, django_capture_on_commit_callbacks
):
    action = ActionFactory(connection=connection)
    ActionFactory(connection=connection, job=action.job, is_enabled=False)
    JobFactory(workspace=connection.workspace, is_enabled=False).actions.create(
        connection=connection, object_name="Contact", field_name="Title"
    )
    JobFactory(workspace=connection.workspace, trigger_kind=Event.Kind.EMAIL_OPENED)

    with django_capture_on_commit_callbacks() as queued:
        event, _ = _record(connection.workspace, person=person)

    write = FieldWrite.objects.get()
    assert write.action == action and write.event == event
    assert write.status == FieldWrite.Status.PENDING
    assert write.record_id == person.salesforce_id
    assert write.parent_id == person.salesforce_account_id
    assert write.value == "2025-03-12T09:30:00+00:00"
    assert len(queued) == 1


def test_conditions_decide_whether_a_job_takes_the_event(connection, people):
    action = ActionFactory(connection=connection)
    action.job.conditions = [
        {
            "on": "event",
            "field": "payload.campaign",
            "operator": "equals",
            "value": "Spring",
        }
    ]
    action.job.save()

    _record(connection.workspace, "a", person=people[0], payload={"campaign": "Spring"})
    _record(connection.workspace, "b", person=people[1], payload={"campaign": "Autumn"})

    assert list(FieldWrite.objects.values_list("record_id", flat=True)) == [
        people[0].salesforce_id
    ]


def test_a_person_without_a_contact_in_the_org_is_skipped_with_the_reason(
    connection, django_capture_on_commit_callbacks
):
    ActionFactory(connection=connection)
    elsewhere = PersonFactory(
        connection=SalesforceConnectionFactory(workspace=connection.workspace)
    )

    with django_capture_on_commit_callbacks() as queued:
        _record(connection.workspace, "a", person=elsewhere)
        _record(connection.workspace, "b")

    assert list(FieldWrite.objects.values_list("status", "message")) == [
        ("skipped", "Skipped: the person has no Contact in this Salesforce org."),
        ("skipped", "Skipped: the event names no person."),
    ]
    assert queued == []


def test_the_organisation_target_writes_to_each_account_of_the_organisation(
    connection, person
):
    organisation = Organisation.objects.create(workspace=connection.workspace)
    for salesforce_id in ("001000000000001AAA", "001000000000002AAA"):
        CrmAccount.objects.create(
            workspace=connection.workspace,
            connection=connection,
            salesforce_id=salesforce_id,
            organisation=organisation,
        )
    ActionFactory(
        connection=connection,
        target=Action.Target.ORGANISATION_ACCOUNT,
        object_name="Account",
        field_name="Description",
        value_source=Action.ValueSource.TEMPLATE,
        value="Opened {{ event.payload.subject }}",
    )

    _record(connection.workspace, organisation=organisation, payload={"subject": "Hi"})
    _record(connection.workspace, "no-account", person=person)

    assert sorted(FieldWrite.objects.values_list("record_id", "status", "value")) == [
        ("", "skipped", None),
        ("001000000000001AAA", "pending", "Opened Hi"),
        ("001000000000002AAA", "pending", "Opened Hi"),
    ]


def test_the_event_record_target_writes_to_the_record_the_event_names(connection):
    ActionFactory(
        connection=connection,
        target=Action.Target.EVENT_RECORD,
        object_name="Opportunity",
        field_name="NextStep",
        value_source=Action.ValueSource.EVENT,
        value="step",
    )

    _record(
        connection.workspace,
        record_id="0065g00000AbCdEAAV",
        payload={"step": "Call back"},
    )
    _record(connection.workspace, "without-step", record_id="0065g00000AbCdEAAV")

    assert list(FieldWrite.objects.values_list("status", "value", "message")) == [
        ("pending", "Call back", ""),
        ("failed", None, "The event has no value 'step'."),
    ]


@pytest.mark.parametrize("given", ["0065g00000AbCdE", "0065g00000AbCdEAAV"])
def test_the_service_keeps_a_record_id_in_its_18_character_form(connection, given):
    event, _ = _record(connection.workspace, record_id=given)

    event.refresh_from_db()
    assert event.record_id == "0065g00000AbCdEAAV"


@pytest.mark.parametrize("given", ["0065g00000AbCdE-x", "0065g00000AbCdEAAV" * 2])
def test_the_service_refuses_what_is_not_a_record_id(connection, given):
    with pytest.raises(EventRejected, match="not a Salesforce record Id"):
        _record(connection.workspace, record_id=given)

    assert not Event.objects.exists()


def test_a_batch_records_the_good_events_and_the_reasons_for_the_others(
    connection, person, django_capture_on_commit_callbacks
):
    ActionFactory(connection=connection)
    good = {"kind": "email.sent", "person_id": person.pk}

    with django_capture_on_commit_callbacks() as queued:
        outcomes = events_record(
            workspace=connection.workspace,
            items=[
                {**good, "idempotency_key": "m-1"},
                {**good, "idempotency_key": "m-2"},
                {**good, "idempotency_key": "m-1"},
                {"kind": "email.bounced", "idempotency_key": "m-3"},
                {"kind": "email.sent", "idempotency_key": "m-4", "person_id": 999999},
                {"kind": "email.sent"},
                ["not", "an", "object"],
            ],
        )

    assert [o.status for o in outcomes] == [
        "recorded",
        "recorded",
        "duplicate",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
    ]
    reasons = list(
        RejectedEvent.objects.order_by("pk").values_list("reason", flat=True)
    )
    assert "Unknown event kind 'email.bounced'" in reasons[0]
    assert "No person 999999 in this workspace." in reasons[1]
    assert "idempotency_key: This field is required." in reasons[2]
    assert reasons[3] == "An event must be a JSON object."
    assert FieldWrite.objects.count() == 2
    assert len(queued) == 2  # one per event; the first run sends both


# ---------------------------------------------------------------- API keys


def test_an_api_key_is_kept_as_a_hash_and_authenticates_until_revoked(member):
    api_key, secret = api_key_create(workspace=member.workspace, name="E-mail sender")

    stored = ApiKey.objects.get()
    assert secret.startswith("trig_") and len(secret) > 40
    assert secret not in (stored.key_hash, stored.prefix) and stored.prefix in secret
    assert api_key_authenticate(secret=secret) == api_key
    assert api_key_authenticate(secret=secret + "x") is None

    assert api_key_revoke(api_key=api_key) is True
    assert api_key_authenticate(secret=secret) is None
    assert api_key_revoke(api_key=api_key) is False


# ---------------------------------------------------------------- Actions


def _action(connection, **fields) -> Action:
    job = JobFactory(workspace=connection.workspace)
    fields.setdefault("field_name", "Last_Trig_Email__c")
    return Action(job=job, connection=connection, **fields)


def test_an_action_on_an_updateable_field_is_accepted_in_the_fields_own_casing(
    org_http, connection
):
    action = _action(connection, field_name="last_trig_email__c")

    action_validate(action=action, workspace=connection.workspace)

    assert (action.object_name, action.field_name) == ("Contact", "Last_Trig_Email__c")


@pytest.mark.parametrize(
    ("fields", "error_on", "message"),
    [
        (
            {"field_name": "Name"},
            "field_name",
            "not a field the connected user may update",
        ),
        ({"field_name": "LastModifiedDate"}, "field_name", "Fields Trig may update: "),
        (
            {
                "field_name": "Trig_Engagement__c",
                "value_source": "literal",
                "value": "Lukewarm",
            },
            "value",
            "not a value of the picklist",
        ),
        ({"value_source": "literal", "value": "soon"}, "value", "takes a date"),
        (
            {"field_name": "HasOptedOutOfEmail", "value_source": "event_time"},
            "value",
            "needs a date field",
        ),
        (
            {"field_name": "Title", "value_source": "person", "value": "salary"},
            "value",
            "Name one of the person's values",
        ),
        (
            {"value_source": "template", "value": "{{ event.date }}"},
            "value",
            "A template makes text",
        ),
        (
            {"field_name": "Title", "value_source": "template", "value": "{{ x.y }}"},
            "value",
            "names nothing Trig knows",
        ),
        (
            {"target": "event_record", "object_name": ""},
            "object_name",
            "Name the object",
        ),
    ],
)
def test_an_action_is_refused_with_a_reason_the_representative_can_act_on(
    org_http, connection, fields, error_on, message
):
    action = _action(connection, **fields)

    with pytest.raises(ValidationError) as caught:
        action_validate(action=action, workspace=connection.workspace)

    assert message in " ".join(caught.value.message_dict[error_on])


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("17:30", None),
        ("17:30:00.000Z", None),
        ("5.30pm", "takes a time of day (HH:MM, HH:MM:SS or HH:MM:SS.sss"),
        ("25:00", "not '25:00'"),
    ],
)
def test_a_literal_for_a_time_field_must_be_a_time_of_day(
    org_http, connection, value, problem
):
    action = _action(
        connection,
        target=Action.Target.EVENT_RECORD,
        object_name="Experience__c",
        field_name="Default_Start_Time__c",
        value_source=Action.ValueSource.LITERAL,
        value=value,
    )

    if problem is None:
        action_validate(action=action, workspace=connection.workspace)
    else:
        with pytest.raises(ValidationError) as caught:
            action_validate(action=action, workspace=connection.workspace)
        assert problem in " ".join(caught.value.message_dict["value"])


def test_a_field_made_read_only_can_no_longer_be_chosen(org, org_http, connection):
    org.writes.make_read_only("Contact", "Last_Trig_Email__c")

    with pytest.raises(ValidationError, match="not a field the connected user"):
        action_validate(action=_action(connection), workspace=connection.workspace)


def test_an_action_cannot_use_another_workspaces_connection(org_http, connection):
    with pytest.raises(ValidationError, match="another workspace"):
        action_validate(action=_action(connection), workspace=WorkspaceFactory())


# ---------------------------------------------------------------- Retries


def test_a_retry_never_sends_a_value_the_event_could_not_give(
    org, org_http, connection, person
):
    action = ActionFactory(
        connection=connection,
        field_name="Title",
        value_source=Action.ValueSource.EVENT,
        value="payload.title",
    )
    title = org.store.get(person.salesforce_id)["Title"]
    _record(connection.workspace, person=person, payload={"subject": "Spring"})

    queued = writes_retry(writes=FieldWrite.objects.all())
    connection_write_pending(connection=connection)

    write = FieldWrite.objects.get()
    assert queued == 0
    assert write.status == FieldWrite.Status.FAILED
    assert "no value 'payload.title'" in write.message
    assert org.store.get(person.salesforce_id)["Title"] == title
    Action.objects.filter(pk=action.pk).update(value="payload.subject")

    queued = writes_retry(writes=FieldWrite.objects.all())
    connection_write_pending(connection=connection)

    write.refresh_from_db()
    assert queued == 1
    assert write.status == FieldWrite.Status.WRITTEN
    assert org.store.get(person.salesforce_id)["Title"] == "Spring"
