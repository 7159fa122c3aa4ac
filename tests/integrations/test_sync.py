import json
import re
from pathlib import Path

import pytest
import responses
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext

from integrations.models import SalesforceConnection, SyncRun
from integrations.offline_org import offline_org_connect
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.testing import mocked, mount
from integrations.sync.run import connection_sync
from people.models import CrmAccount, CrmRecord, Owner, Person
from tests.conftest import OFFLINE_HOST

pytestmark = pytest.mark.django_db

SAMPLE_DIR = (
    Path(__file__).resolve().parents[2]
    / "integrations/salesforce/emulator/data/sample-org"
)


def _sample_count(sobject: str) -> int:
    """Count an object's records in the shipped sObject-tree files."""
    count = 0
    for path in SAMPLE_DIR.glob("*/*.json"):
        body = json.loads(path.read_text())
        if not isinstance(body, dict):
            continue
        for record in body.get("records", []):
            if record.get("attributes", {}).get("type", "").lower() == sobject.lower():
                count += 1
    return count


def _api_requests(mock) -> list[str]:
    return [
        call.request.url
        for call in mock.calls
        if "/services/data/v" in call.request.url
    ]


def test_it_imports_every_contact_account_and_owner_of_the_sample_org(
    org, org_http, connection
):
    run = connection_sync(connection=connection)

    contacts, accounts = _sample_count("Contact"), _sample_count("Account")
    assert contacts > 300 and accounts > 80
    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.count() == contacts
    assert CrmAccount.objects.count() == accounts
    assert Owner.objects.count() == org.store.count("User")
    opportunities, leads = _sample_count("Opportunity"), _sample_count("Lead")
    assert CrmRecord.objects.filter(object_name="Opportunity").count() == opportunities
    assert CrmRecord.objects.filter(object_name="Lead").count() == leads
    assert run.records_fetched == (
        contacts + accounts + org.store.count("User") + opportunities + leads
    )
    assert run.records_created == run.records_fetched
    assert run.api_calls == len(_api_requests(org_http))
    connection.refresh_from_db()
    assert connection.last_full_sync_at == run.started_at
    assert connection.api_usage_used is not None and connection.api_usage_max > 0


def test_it_maps_each_default_field(org, org_http, connection):
    connection_sync(connection=connection)

    record = next(
        c for c in org.store.records("Contact") if c.get("AccountId") and c.get("Email")
    )
    person = Person.objects.get(salesforce_id=record["Id"])
    account = org.store.get(record["AccountId"])
    assert person.first_name == (record.get("FirstName") or "")
    assert person.last_name == record["LastName"]
    assert person.email == record["Email"]
    assert person.phone == (record.get("Phone") or "")
    assert person.title == (record.get("Title") or "")
    assert person.country == (record.get("MailingCountry") or "")
    assert person.has_opted_out_of_email == bool(record.get("HasOptedOutOfEmail"))
    assert person.owner.salesforce_id == record["OwnerId"]
    assert person.organisation.crm_accounts.get().salesforce_id == account["Id"]
    owner = org.store.get(record["OwnerId"])
    assert (person.owner.name, person.owner.email) == (owner["Name"], owner["Email"])


def test_leads_and_opportunities_are_named_as_salesforce_names_them(
    org, org_http, connection
):
    connection_sync(connection=connection)

    for object_name in ("Lead", "Opportunity"):
        for record in org.store.records(object_name):
            stored = CrmRecord.objects.get(salesforce_id=record["Id"])
            assert stored.name == record["Name"]


def test_it_reads_every_page_of_a_query(org, org_http, connection):
    for n in range(600):
        org.store.insert(
            "Contact", {"LastName": f"Paged {n}", "Email": f"p{n}@example.com"}
        )
    contacts = org.store.count("Contact")

    run = connection_sync(connection=connection, batch_size=200)

    more = [url for url in _api_requests(org_http) if re.search(r"/query/[^?]", url)]
    assert Person.objects.count() == contacts
    # The first page comes with the query; every further page of 200 is one
    # call to nextRecordsUrl. Accounts and Users fit one page.
    assert len(more) == (contacts - 1) // 200 == 4
    assert run.status == SyncRun.Status.SUCCESS


def test_a_second_sync_with_nothing_changed_writes_nothing(org, org_http, connection):
    first = connection_sync(connection=connection)

    with CaptureQueriesContext(db_connection) as queries:
        second = connection_sync(connection=connection)

    people_writes = [
        q["sql"]
        for q in queries.captured_queries
        if re.match(r"\s*(INSERT|UPDATE|DELETE)", q["sql"], re.I)
        and "people_" in q["sql"]
    ]
    assert people_writes == []
    assert second.records_created == second.records_updated == 0
    assert second.records_unchanged == first.records_created


def test_it_imports_a_changed_record_on_the_next_sync(org, org_http, connection):
    connection_sync(connection=connection)
    record = org.store.records("Contact")[0]
    org.store.update(record["Id"], {"Title": "Chief Trust Officer"})

    run = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    assert Person.objects.get(salesforce_id=record["Id"]).title == "Chief Trust Officer"
    assert run.records_updated == 1


def test_it_imports_bad_records_with_what_is_valid_and_names_the_problems(
    org, org_http, connection
):
    bad_email, no_last_name, too_long = org.store.records("Contact")[:3]
    org.store.update(bad_email["Id"], {"Email": "ada at example"})
    org.store.update(no_last_name["Id"], {"LastName": None})
    org.store.update(too_long["Id"], {"Title": "T" * 300})

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.count() == org.store.count("Contact")
    assert Person.objects.get(salesforce_id=bad_email["Id"]).email == ""
    assert Person.objects.get(salesforce_id=no_last_name["Id"]).last_name == ""
    assert len(Person.objects.get(salesforce_id=too_long["Id"]).title) == 200
    named = {(p["id"], p["field"]) for p in run.problems}
    assert {
        (bad_email["Id"], "Email"),
        (no_last_name["Id"], "LastName"),
        (too_long["Id"], "Title"),
    } <= named
    assert run.problem_count >= 3


def test_it_skips_a_field_hidden_from_the_connected_user_and_keeps_its_values(
    org, org_http, connection
):
    connection_sync(connection=connection)
    titled = Person.objects.exclude(title="").first()
    org.hide_field("Contact", "Title")

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.get(pk=titled.pk).title == titled.title
    assert {"object": "Contact", "id": "", "field": "Title"}.items() <= next(
        p for p in run.problems if p["field"] == "Title"
    ).items()


def test_it_refreshes_an_expired_session_and_replays_the_call(
    org, org_http, connection
):
    stale_token = connection.access_token
    org.expire_access_tokens()

    run = connection_sync(connection=connection)

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCESS
    assert connection.access_token != stale_token
    assert Person.objects.count() == org.store.count("Contact")


def test_a_grant_gone_asks_for_a_reconnect_and_keeps_the_data(
    org, org_http, connection
):
    connection_sync(connection=connection)
    org.expire_access_tokens()
    org.revoke_grants()

    run = connection_sync(connection=connection)

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert connection.status == SalesforceConnection.Status.RECONNECT_REQUIRED
    assert "Reconnect the org" in connection.status_reason
    assert Person.objects.count() == org.store.count("Contact")


def test_a_query_error_fails_that_object_keeps_the_message_and_the_rest_goes_on(
    org, connection
):
    message = "unexpected token: 'FROM'"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(
            responses.GET,
            re.compile(
                rf"https://{re.escape(OFFLINE_HOST)}/services/data/v[\d.]+/query/?"
                r"\?q=SELECT.*FROM\+Contact"
            ),
            json=[{"message": message, "errorCode": "MALFORMED_QUERY"}],
            status=400,
        )
        mount(org, base_url=f"https://{OFFLINE_HOST}", mock=mock)

        run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert run.object_errors == {"Contact": f"MALFORMED_QUERY: {message}"}
    assert f"Contact: MALFORMED_QUERY: {message}" in run.error_message
    assert not Person.objects.exists()
    assert CrmAccount.objects.count() == org.store.count("Account")
    assert CrmRecord.objects.filter(object_name="Opportunity").exists()


class _OrgBehindABrokenProxy(OfflineOrg):
    """An org whose queries all come back as the transport layer's HTML 414."""

    def __call__(self, environ, start_response):
        if "/query" in environ["PATH_INFO"]:
            start_response("414 URI Too Long", [("Content-Type", "text/html")])
            return [b"<h1>Bad Message 414</h1><pre>reason: URI Too Long</pre>"]
        return super().__call__(environ, start_response)


def test_a_run_whose_every_object_fails_has_failed_and_says_why(member):
    org = _OrgBehindABrokenProxy()
    with mocked(org, base_url=f"https://{OFFLINE_HOST}"):
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )

        run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.FAILED
    assert set(run.object_errors) == {
        "User",
        "Account",
        "Contact",
        "Opportunity",
        "Lead",
    }
    assert run.object_errors["Contact"] == ("HTTP 414 from Salesforce, non-JSON body")


def test_two_syncs_of_one_connection_never_overlap(org, org_http, connection):
    from integrations.sync.run import SyncAlreadyRunning, sync_claim

    sync_claim(connection=connection)

    with pytest.raises(SyncAlreadyRunning):
        connection_sync(connection=connection)
    assert not SyncRun.objects.exists()


def test_it_imports_email_opt_outs(org, org_http, connection):
    opted_out = org.store.records("Contact")[5]
    org.store.update(opted_out["Id"], {"HasOptedOutOfEmail": True})

    run = connection_sync(connection=connection)

    assert Person.objects.get(salesforce_id=opted_out["Id"]).has_opted_out_of_email
    assert Person.objects.filter(has_opted_out_of_email=True).count() == 1
    assert "Contact.HasOptedOutOfEmail" not in run.skipped_fields


def test_an_old_token_is_refreshed_before_it_is_used(org, org_http, connection):
    from datetime import timedelta

    from django.utils import timezone

    SalesforceConnection.objects.filter(pk=connection.pk).update(
        token_issued_at=timezone.now() - timedelta(hours=3)
    )
    connection.refresh_from_db()
    org.expire_access_tokens()
    before = len(org_http.calls)

    run = connection_sync(connection=connection)

    statuses = [c.response.status_code for c in org_http.calls[before:]]
    assert run.status == SyncRun.Status.SUCCESS
    assert "/oauth2/token" in org_http.calls[before].request.url
    assert 401 not in statuses
