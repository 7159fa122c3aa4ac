"""Describes and first pages fetched together in Composite requests."""

import json

import pytest

from integrations.models import ObjectDescribe, ObjectMapping, SyncRun
from integrations.sync.run import connection_sync
from people.models import CrmAccount, CrmRecord, Owner, Person
from tests.integrations.support import composite_calls, sent_queries

pytestmark = pytest.mark.django_db


def _api_calls(mock, since: int = 0) -> list:
    return [c for c in mock.calls[since:] if "/services/data/v" in c.request.url]


def _subrequests(call) -> list[str]:
    return [r["url"] for r in json.loads(call.request.body)["compositeRequest"]]


def _replies(call) -> list[dict]:
    return call.response.json()["compositeResponse"]


def _recent(connection, **kwargs) -> SyncRun:
    return connection_sync(connection=connection, kind=SyncRun.Kind.RECENT, **kwargs)


def test_the_first_sync_ever_describes_together_and_reads_everything(
    org, org_http, connection
):
    run = connection_sync(connection=connection)

    (composite,) = composite_calls(org_http)
    *describes, org_name = _subrequests(composite)
    assert run.status == SyncRun.Status.SUCCESS
    assert all(url.endswith("/describe") for url in describes)
    assert len(describes) == 5
    # The org's own record rides along, to keep its name current.
    assert org_name.endswith(f"/sobjects/Organization/{org.org_id}?fields=Name")
    assert ObjectDescribe.objects.filter(connection=connection).count() == 5
    assert Person.objects.count() == org.store.count("Contact")
    assert CrmAccount.objects.count() == org.store.count("Account")
    assert Owner.objects.count() == org.store.count("User")
    # The describes together, each query, and the counts the sync ends with.
    assert run.api_calls == len(_api_calls(org_http)) == 2 + len(sent_queries(org_http))


def test_a_full_sync_after_the_first_reads_first_pages_with_the_describes(
    org, org_http, connection
):
    connection_sync(connection=connection)
    org.store.delete(org.store.records("Contact")[0]["Id"])
    before = len(org_http.calls)

    run = connection_sync(connection=connection, batch_size=200)

    (composite,) = composite_calls(org_http)[1:]
    sent = _api_calls(org_http, before)
    (counts,) = [c for c in composite_calls(org_http, counts=True) if c in sent][1:]
    further_pages = [c for c in sent if c is not composite and c is not counts]
    assert run.status == SyncRun.Status.SUCCESS
    # Five describes, five first pages, and the org's own record.
    assert len(_subrequests(composite)) == 11
    assert all(reply["httpStatusCode"] == 200 for reply in _replies(composite))
    # Only pages after the first are asked on their own.
    assert all("/query/01g" in c.request.url for c in further_pages)
    assert run.api_calls == len(sent) == 2 + len(further_pages)
    assert Person.objects.filter(deleted_at__isnull=True).count() == (
        org.store.count("Contact")
    )
    assert run.records_deleted == 1


def test_a_changed_record_arrives_through_the_first_page(org, org_http, connection):
    connection_sync(connection=connection)
    record = org.store.records("Contact")[0]
    org.store.update(record["Id"], {"Title": "Chief Trust Officer"})
    before = len(org_http.calls)

    run = _recent(connection)

    assert Person.objects.get(salesforce_id=record["Id"]).title == (
        "Chief Trust Officer"
    )
    assert run.records_updated == 1
    assert run.api_calls == len(_api_calls(org_http, before)) == 1


def test_a_field_hidden_between_two_runs_is_skipped_and_no_record_is_lost(
    org, org_http, connection
):
    connection_sync(connection=connection)
    titled = Person.objects.exclude(title="").first()
    changed = org.store.records("Contact")[5]
    org.store.update(changed["Id"], {"Email": "moved@example.com"})
    org.hide_field("Contact", "Title")
    before = len(org_http.calls)

    run = _recent(connection)

    # The first page asked with the stored describe named the hidden field;
    # Salesforce refused it, and Contact was read again without it.
    (composite,) = composite_calls(org_http)[1:]
    refused = [r for r in _replies(composite) if r["httpStatusCode"] != 200]
    assert [r["body"][0]["errorCode"] for r in refused] == ["INVALID_FIELD"]
    assert run.status == SyncRun.Status.SUCCESS
    assert run.object_errors == {}
    assert "Contact.Title" in run.skipped_fields
    assert not any("refused" in p["problem"] for p in run.problems)
    assert Person.objects.get(salesforce_id=changed["Id"]).email == (
        "moved@example.com"
    )
    assert Person.objects.get(pk=titled.pk).title == titled.title
    assert Person.objects.count() == org.store.count("Contact")
    assert run.api_calls == len(_api_calls(org_http, before)) == 2


def test_a_first_page_refused_inside_the_composite_is_read_the_usual_way(
    org, org_http, connection
):
    connection_sync(connection=connection)
    record = org.store.records("Contact")[0]
    org.store.update(record["Id"], {"Title": "Head of Locks"})
    # Users are read with query, the others with queryAll: Account's page
    # goes through, Contact's meets the lock.
    org.faults.fail_next(
        status=400,
        error_code="UNABLE_TO_LOCK_ROW",
        path_contains="/queryAll/",
        after=1,
    )
    before = len(org_http.calls)

    run = _recent(connection)

    sent = _api_calls(org_http, before)
    (composite,) = composite_calls(org_http)[1:]
    statuses = [r["httpStatusCode"] for r in _replies(composite)]
    assert statuses.count(400) == 1
    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.get(salesforce_id=record["Id"]).title == "Head of Locks"
    assert len(sent) == run.api_calls == 2
    assert "FROM+Contact" in sent[1].request.url


def test_a_failed_composite_request_leaves_each_object_to_its_own_reads(
    org, org_http, connection
):
    connection_sync(connection=connection)
    org.faults.fail_next(
        status=400,
        error_code="INVALID_INPUT",
        message="Something about the request",
        path_contains="/composite",
    )
    before = len(org_http.calls)

    run = _recent(connection)

    sent = _api_calls(org_http, before)
    assert run.status == SyncRun.Status.SUCCESS
    assert sent[0].response.status_code == 400
    assert sum("/describe" in c.request.url for c in sent) == 5
    assert sum("/query" in c.request.url for c in sent) == 5
    assert run.api_calls == len(sent) == 11


def test_a_composite_refused_by_transaction_security_is_tried_twice_in_all(
    org, org_http, connection
):
    connection_sync(connection=connection)
    org.faults.fail_next(
        status=400,
        error_code="TXN_SECURITY_METERING_ERROR",
        message="Transaction security policies took too long to complete.",
        path_contains="/services/data/",
        times=1000,
    )
    before = len(org_http.calls)

    run = _recent(connection)

    sent = _api_calls(org_http, before)
    assert run.status == SyncRun.Status.FAILED
    assert "Exempt from Transaction Security" in run.error_message
    # No object is then described or read on its own: each would be refused.
    assert [c.request.url.rsplit("/", 1)[-1] for c in sent] == ["composite"] * 2
    assert run.api_calls == 2
    assert run.objects_done == []


def _tamper_composite(org, monkeypatch, *, reference_id: str, body) -> None:
    """Make the org answer one subrequest of each composite with `body`."""
    answer = org._api_composite

    def tampered(context):
        response = answer(context)
        replies = response.get_json()
        for reply in replies["compositeResponse"]:
            if reply["referenceId"] == reference_id:
                reply["body"] = body
        response.set_data(json.dumps(replies))
        return response

    monkeypatch.setattr(org, "_api_composite", tampered)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"fields": None},
        {"fields": 5},
        {"name": "Contact", "fields": [{"name": "Id"}]},
    ],
)
def test_a_describe_answered_with_something_else_is_asked_again_and_not_stored(
    org, org_http, connection, monkeypatch, body
):
    connection_sync(connection=connection)
    stored = ObjectDescribe.objects.get(object_name="Account").fields
    # Subrequests go User's describe and query, then Account's.
    _tamper_composite(org, monkeypatch, reference_id="read2", body=body)
    before = len(org_http.calls)

    run = _recent(connection)

    sent = [c.request.url for c in _api_calls(org_http, before)]
    assert run.status == SyncRun.Status.SUCCESS
    assert sum(url.endswith("/sobjects/Account/describe") for url in sent) == 1
    assert ObjectDescribe.objects.get(object_name="Account").fields == stored
    assert len(ObjectDescribe.objects.get(object_name="Contact").fields) > 1


@pytest.mark.parametrize(
    "body", [{}, {"totalSize": 3, "done": True}, {"records": [], "done": None}]
)
def test_a_first_page_answered_with_something_else_is_read_alone(
    org, org_http, connection, monkeypatch, body
):
    connection_sync(connection=connection)
    record = org.store.records("Account")[0]
    org.store.update(record["Id"], {"Name": "Renamed Ltd"})
    _tamper_composite(org, monkeypatch, reference_id="read3", body=body)
    before = len(org_http.calls)

    run = _recent(connection)

    sent = [c.request.url for c in _api_calls(org_http, before)]
    assert run.status == SyncRun.Status.SUCCESS
    assert sum("FROM+Account" in url for url in sent) == 1
    assert CrmAccount.objects.get(salesforce_id=record["Id"]).name == "Renamed Ltd"


def test_an_object_whose_describe_fails_fails_alone_with_salesforces_words(
    org, org_http, connection
):
    connection_sync(connection=connection)
    org.faults.fail_next(
        status=403,
        error_code="INSUFFICIENT_ACCESS",
        message="You cannot see leads any more",
        path_contains="/sobjects/Lead/describe",
        times=2,
    )

    run = _recent(connection)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert set(run.object_errors) == {"Lead"}
    assert "You cannot see leads any more" in run.object_errors["Lead"]
    assert len(run.objects_done) == 4


def test_a_grant_revoked_before_the_composite_asks_for_a_reconnect(
    org, org_http, connection
):
    connection_sync(connection=connection)
    org.expire_access_tokens()
    org.revoke_grants()

    run = _recent(connection)

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert connection.status != connection.Status.CONNECTED
    assert Person.objects.count() == org.store.count("Contact")


def test_more_than_five_objects_go_five_to_a_composite_request(
    org, org_http, connection
):
    connection_sync(connection=connection)
    cases = ObjectMapping.objects.create(
        connection=connection,
        object_name="Case",
        target=ObjectMapping.Target.RECORD,
        person_lookup_field="ContactId",
        position=60,
    )
    cases.field_mappings.create(salesforce_field="Subject", attribute="name")
    connection_sync(connection=connection)
    before = len(org_http.calls)

    run = _recent(connection)

    sent = _api_calls(org_http, before)
    assert [len(_subrequests(c)) for c in composite_calls(org_http)[-2:]] == [10, 2]
    assert run.status == SyncRun.Status.SUCCESS
    assert run.api_calls == len(sent) == 2
    assert CrmRecord.objects.filter(object_name="Case").count() == (
        org.store.count("Case")
    )
