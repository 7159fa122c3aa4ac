import re
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection as connection_for_queries
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jobs.models import Action, ApiKey, FieldWrite, Job, JobRun
from jobs.services import api_key_authenticate
from jobs.writeback import connection_write_pending
from tests.jobs.factories import ActionFactory, EventFactory, FieldWriteFactory

pytestmark = pytest.mark.django_db


def _job_form(connection, **action) -> dict:
    fields = {
        "connection": connection.pk,
        "target": Action.Target.PERSON_CONTACT,
        "object_name": "",
        "field_name": "Last_Trig_Email__c",
        "value_source": Action.ValueSource.EVENT_TIME,
        "value": "",
        "is_enabled": "on",
        "follows_merges": "on",
        **action,
    }
    return {
        "workspace": connection.workspace_id,
        "name": "Stamp the last Trig e-mail",
        "trigger_kind": "email.sent",
        "conditions": "[]",
        "is_enabled": "on",
        "actions-TOTAL_FORMS": "1",
        "actions-INITIAL_FORMS": "0",
        "actions-MIN_NUM_FORMS": "1",
        "actions-MAX_NUM_FORMS": "1000",
        **{f"actions-0-{name}": value for name, value in fields.items()},
    }


def test_a_representative_sets_up_the_stamp_after_email_job(
    org,
    org_http,
    connection,
    person,
    staff_client,
    django_capture_on_commit_callbacks,
):
    # As the README tells it: a Job with its Action, a key for the sender,
    # then an e-mail sent.
    response = staff_client.post(
        reverse("admin:jobs_job_add"),
        _job_form(connection, field_name="last_trig_email__c"),
    )
    page = staff_client.post(
        reverse("admin:jobs_apikey_add"),
        {"workspace": connection.workspace_id, "name": "E-mail sender"},
        follow=True,
    ).content.decode()
    secret = re.search(r"trig_[A-Za-z0-9_-]{40,}", page).group()
    with django_capture_on_commit_callbacks(execute=True):
        sent = staff_client.post(
            reverse("jobs:events"),
            {
                "kind": "email.sent",
                "idempotency_key": "message-1",
                "occurred_at": "2025-03-12T09:30:00Z",
                "person_id": person.pk,
            },
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get()
    action = job.actions.get()
    assert job.is_enabled and job.trigger_kind == "email.sent"
    assert (action.object_name, action.field_name) == ("Contact", "Last_Trig_Email__c")
    assert sent.status_code == 201
    contact = org.store.get(person.salesforce_id)
    assert str(contact["Last_Trig_Email__c"]) == "2025-03-12"
    assert action.writes.get().status == FieldWrite.Status.WRITTEN


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"field_name": "Name"}, "is not a field the connected user may update"),
        (
            {
                "field_name": "Trig_Engagement__c",
                "value_source": "literal",
                "value": "Lukewarm",
            },
            "is not a value of the picklist Trig_Engagement__c (Cold, Warm, Hot)",
        ),
        ({"value_source": "literal", "value": "soon"}, "takes a date"),
    ],
)
def test_the_admin_refuses_an_action_describe_does_not_allow(
    org_http, connection, staff_client, action, message
):
    response = staff_client.post(
        reverse("admin:jobs_job_add"), _job_form(connection, **action)
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Job.objects.exists()


def test_the_job_page_offers_only_updateable_fields_and_shows_recent_runs(
    org, org_http, connection, person, staff_client
):
    action = ActionFactory(connection=connection)
    FieldWriteFactory(
        action=action, event=EventFactory(workspace=connection.workspace, person=person)
    )
    run = connection_write_pending(connection=connection)

    page = staff_client.get(
        reverse("admin:jobs_job_change", args=[action.job.pk])
    ).content.decode()

    options = re.findall(r'<option value="([^"]+)"', page)
    assert "Last_Trig_Email__c" in options and "Title" in options
    assert "Name" not in options and "LastModifiedDate" not in options
    assert reverse("admin:jobs_jobrun_change", args=[run.pk]) in page


def test_a_run_shows_its_counts_and_its_failed_records(
    org, org_http, connection, people, staff_client
):
    action = ActionFactory(connection=connection)
    for person in people[:2]:
        FieldWriteFactory(
            action=action,
            event=EventFactory(workspace=connection.workspace, person=person),
        )
    org.writes.fail(
        people[1].salesforce_id,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        message="Gold tier requires a mailing country",
    )
    run = connection_write_pending(connection=connection)

    page = staff_client.get(
        reverse("admin:jobs_jobrun_change", args=[run.pk])
    ).content.decode()
    listing = staff_client.get(reverse("admin:jobs_jobrun_changelist")).content

    assert "Completed with errors" in page
    assert people[1].salesforce_id in page and people[0].salesforce_id not in page
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in page
    assert "Gold tier requires a mailing country" in page
    assert b"Completed with errors" in listing


def test_a_run_is_shown_but_cannot_be_edited_by_hand(
    org, org_http, connection, people, staff_client
):
    FieldWriteFactory(
        action=ActionFactory(connection=connection),
        event=EventFactory(workspace=connection.workspace, person=people[0]),
    )
    run = connection_write_pending(connection=connection)
    url = reverse("admin:jobs_jobrun_change", args=[run.pk])

    page = staff_client.get(url).content.decode()
    response = staff_client.post(
        url, {"status": JobRun.Status.FAILED, "writes_written": "0"}
    )

    run.refresh_from_db()
    assert 'name="writes_written"' not in page and 'name="_save"' not in page
    assert response.status_code == 403
    assert run.status == JobRun.Status.COMPLETED and run.writes_written == 1


def test_an_event_is_shown_with_its_writes_but_cannot_be_edited_by_hand(
    connection, people, staff_client
):
    write = FieldWriteFactory(
        action=ActionFactory(connection=connection),
        event=EventFactory(workspace=connection.workspace, person=people[0]),
    )
    url = reverse("admin:jobs_event_change", args=[write.event.pk])

    page = staff_client.get(url).content.decode()
    response = staff_client.post(url, {"kind": "email.opened"})

    write.event.refresh_from_db()
    assert write.record_id in page
    assert 'name="kind"' not in page and 'name="_save"' not in page
    assert response.status_code == 403
    assert write.event.kind == "email.sent"


def test_retrying_selected_failures_resends_only_the_failures(
    org,
    org_http,
    connection,
    people,
    staff_client,
    django_capture_on_commit_callbacks,
):
    action = ActionFactory(connection=connection)
    written, failed = (
        FieldWriteFactory(
            action=action,
            event=EventFactory(workspace=connection.workspace, person=person),
        )
        for person in people[:2]
    )
    org.writes.fail(
        people[1].salesforce_id, "FIELD_CUSTOM_VALIDATION_EXCEPTION", times=1
    )
    connection_write_pending(connection=connection)

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:jobs_fieldwrite_changelist"),
            {"action": "retry_selected", "_selected_action": [written.pk, failed.pk]},
            follow=True,
        )

    failed.refresh_from_db()
    page = response.content.decode()
    assert "1 failed write queued again." in page
    assert "1 selected write was left as it is: only failures are retried" in page
    assert "a written value is never sent twice" in page
    assert failed.status == FieldWrite.Status.WRITTEN
    assert org.writes.updates_of(people[0].salesforce_id) == [
        {"Last_Trig_Email__c": "2025-03-12"}
    ]
    assert JobRun.objects.latest("pk").trigger == JobRun.Trigger.MANUAL


def test_the_outcomes_list_finds_a_record_by_its_salesforce_id(
    org, org_http, connection, person, staff_client
):
    action = ActionFactory(connection=connection)
    FieldWriteFactory(
        action=action, event=EventFactory(workspace=connection.workspace, person=person)
    )
    connection_write_pending(connection=connection)

    page = staff_client.get(
        reverse("admin:jobs_fieldwrite_changelist"), {"q": person.salesforce_id}
    ).content.decode()

    assert page.count('name="_selected_action"') == 1
    assert f"{connection.instance_url}/{person.salesforce_id}" in page
    assert "written" in page


def test_an_api_key_is_shown_once_and_stored_only_as_a_hash(member, staff_client):
    response = staff_client.post(
        reverse("admin:jobs_apikey_add"),
        {"workspace": member.workspace.pk, "name": "E-mail sender"},
        follow=True,
    )

    api_key = ApiKey.objects.get()
    secret = re.search(r"trig_[A-Za-z0-9_-]{40,}", response.content.decode()).group()
    assert api_key_authenticate(secret=secret) == api_key
    change_page = staff_client.get(
        reverse("admin:jobs_apikey_change", args=[api_key.pk])
    ).content.decode()
    assert secret not in change_page and api_key.key_hash not in change_page
    assert api_key.prefix in change_page


def test_an_api_key_is_revoked_from_the_admin(member, staff_client):
    from jobs.services import api_key_create

    api_key, secret = api_key_create(workspace=member.workspace, name="Old")

    response = staff_client.post(
        reverse("admin:jobs_apikey_changelist"),
        {"action": "revoke", "_selected_action": [api_key.pk]},
        follow=True,
    )

    assert api_key_authenticate(secret=secret) is None
    assert "1 key revoked." in response.content.decode()


@pytest.mark.parametrize("model", ["event", "rejectedevent", "fieldwrite", "jobrun"])
def test_the_operator_lists_open(staff_client, model):
    assert staff_client.get(reverse(f"admin:jobs_{model}_changelist")).status_code == (
        200
    )


def test_conditions_that_cannot_be_evaluated_are_refused_on_save(
    org_http, connection, staff_client
):
    form = _job_form(connection)
    form["conditions"] = '[{"on": "event", "field": "subject", "operator": "equals"}]'

    response = staff_client.post(reverse("admin:jobs_job_add"), form)

    assert response.status_code == 200
    assert "Condition 1: &#x27;subject&#x27; is not a field of an event" in (
        response.content.decode()
    )
    assert not Job.objects.exists()


# A moment late on the 12th in New York: already the 13th in UTC, the day a
# date field receives.
LATE_EVENING = datetime(2025, 3, 12, 23, 30, tzinfo=timezone(timedelta(hours=-5)))


def test_writes_to_a_date_field_show_the_date_that_is_sent(
    org, org_http, connection, person, staff_client
):
    staff_client.post(reverse("admin:jobs_job_add"), _job_form(connection))
    action = Action.objects.get()
    event = EventFactory(
        workspace=connection.workspace, person=person, occurred_at=LATE_EVENING
    )
    write = FieldWriteFactory(action=action, event=event)

    listing, own_page, event_page = (
        staff_client.get(url).content.decode()
        for url in (
            reverse("admin:jobs_fieldwrite_changelist"),
            reverse("admin:jobs_fieldwrite_change", args=[write.pk]),
            reverse("admin:jobs_event_change", args=[event.pk]),
        )
    )

    assert action.field_type == "date"
    assert write.value == "2025-03-12T23:30:00-05:00"
    assert '<td class="field-value_shown">2025-03-13</td>' in listing
    assert '<div class="readonly">2025-03-13</div>' in own_page
    assert re.search(r'field-value_shown">\s*<p>2025-03-13</p>', event_page)
    assert not [page for page in (listing, own_page, event_page) if write.value in page]


def test_other_values_are_shown_as_before(connection, person, staff_client):
    action = ActionFactory(
        connection=connection,
        field_name="Trig_Engagement__c",
        field_type="picklist",
        value_source=Action.ValueSource.LITERAL,
        value="Warm",
    )
    FieldWriteFactory(
        action=action,
        event=EventFactory(workspace=connection.workspace, person=person),
        value="Warm",
    )

    page = staff_client.get(reverse("admin:jobs_fieldwrite_changelist")).content

    assert b'<td class="field-value_shown">&quot;Warm&quot;</td>' in page


def test_a_run_learns_the_field_type_of_an_action_saved_before_types_were_kept(
    org, org_http, connection, person, staff_client
):
    action = ActionFactory(connection=connection)
    FieldWriteFactory(
        action=action,
        event=EventFactory(
            workspace=connection.workspace, person=person, occurred_at=LATE_EVENING
        ),
    )
    before = staff_client.get(reverse("admin:jobs_fieldwrite_changelist")).content

    connection_write_pending(connection=connection)

    action.refresh_from_db()
    after = staff_client.get(reverse("admin:jobs_fieldwrite_changelist")).content
    assert action.field_type == "date"
    assert b"2025-03-12T23:30:00-05:00" in before
    assert b"2025-03-13" in after and b"23:30" not in after
    assert org.store.get(person.salesforce_id)["Last_Trig_Email__c"].isoformat() == (
        "2025-03-13"
    )


def _queries_for(staff_client, url: str) -> int:
    with CaptureQueriesContext(connection_for_queries) as queries:
        response = staff_client.get(url)
    assert response.status_code == 200
    return len(queries)


def _retryable_failures(count: int, **fields) -> None:
    for number in range(count):
        FieldWriteFactory(
            record_id=f"003000000000{number:03d}AAA",
            status=FieldWrite.Status.FAILED,
            is_retryable=True,
            status_code="UNABLE_TO_LOCK_ROW",
            **fields,
        )


def test_it_shows_the_writes_of_an_event_and_a_run_in_a_fixed_number_of_queries(
    connection, people, staff_client
):
    # Each write's outcome reads its connection: one query for the page, not
    # one per write.
    action = ActionFactory(connection=connection)
    small_run, large_run = (
        JobRun.objects.create(connection=connection, status=JobRun.Status.COMPLETED)
        for _ in "ab"
    )
    small_event, large_event = (
        EventFactory(workspace=connection.workspace, person=people[0]) for _ in "ab"
    )
    _retryable_failures(1, action=action, event=small_event, run=small_run)
    _retryable_failures(4, action=action, event=large_event, run=large_run)
    # Once each, for what Django caches on a first visit.
    for url in (
        reverse("admin:jobs_event_change", args=[small_event.pk]),
        reverse("admin:jobs_jobrun_change", args=[small_run.pk]),
    ):
        staff_client.get(url)

    small_event_page, large_event_page, small_run_page, large_run_page = (
        _queries_for(staff_client, reverse(f"admin:jobs_{name}_change", args=[pk]))
        for name, pk in (
            ("event", small_event.pk),
            ("event", large_event.pk),
            ("jobrun", small_run.pk),
            ("jobrun", large_run.pk),
        )
    )

    assert small_event_page == large_event_page
    assert small_run_page == large_run_page


def test_staff_who_may_only_view_writes_cannot_send_them_again(
    org, org_http, connection, people, staff_who_may, django_capture_on_commit_callbacks
):
    failed = FieldWriteFactory(
        action=ActionFactory(connection=connection),
        event=EventFactory(workspace=connection.workspace, person=people[0]),
    )
    org.writes.fail(people[0].salesforce_id, "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    connection_write_pending(connection=connection)
    org_http.calls.reset()
    client = staff_who_may("view_fieldwrite")

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:jobs_fieldwrite_changelist"),
            {"action": "retry_selected", "_selected_action": [failed.pk]},
        )

    failed.refresh_from_db()
    assert failed.status == FieldWrite.Status.FAILED
    assert len(org_http.calls) == 0


def test_staff_who_may_only_view_api_keys_cannot_revoke_one(member, staff_who_may):
    from jobs.services import api_key_create

    api_key, secret = api_key_create(workspace=member.workspace, name="In use")
    client = staff_who_may("view_apikey")

    client.post(
        reverse("admin:jobs_apikey_changelist"),
        {"action": "revoke", "_selected_action": [api_key.pk]},
    )

    assert api_key_authenticate(secret=secret) == api_key


def test_a_job_posted_without_a_workspace_is_refused_with_the_form(
    org_http, connection, staff_client
):
    form = {**_job_form(connection), "workspace": ""}

    response = staff_client.post(reverse("admin:jobs_job_add"), form)

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Job.objects.exists()
