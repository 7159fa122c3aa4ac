"""Broken answers and hostile values: a clear error, nothing stored is lost."""

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_plus

import pytest
import responses
from django.utils import timezone

from integrations.models import SalesforceConnection, SyncCursor, SyncRun
from integrations.offline_org import offline_org_connect
from integrations.salesforce.client import SalesforceRejectedError
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.testing import mocked
from integrations.services import connection_client
from integrations.sync.plan import CURSOR_OVERLAP
from integrations.sync.run import connection_sync
from people.models import CrmAccount, Person
from tests.conftest import OFFLINE_HOST
from tests.integrations.support import sent_queries

pytestmark = pytest.mark.django_db


class _FaultyOrg(OfflineOrg):
    """An org whose answers a test can replace: `answer(environ)` returns
    (status line, content type, body) to answer instead, or None."""

    answer = staticmethod(lambda environ: None)

    def __call__(self, environ, start_response):
        replaced = self.answer(environ)
        if replaced is None:
            return super().__call__(environ, start_response)
        status, content_type, body = replaced
        start_response(status, [("Content-Type", content_type)])
        return [body.encode() if isinstance(body, str) else body]


def _queries(environ, sobject: str) -> bool:
    query = unquote_plus(environ.get("QUERY_STRING", ""))
    return "/query" in environ["PATH_INFO"] and f"FROM {sobject}" in query


@pytest.fixture
def faulty(member):
    org = _FaultyOrg()
    with mocked(org, base_url=f"https://{OFFLINE_HOST}") as mock:
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )
        yield org, connection, mock


def _contacts_answer(org, status, content_type, body):
    org.answer = lambda environ: (
        (status, content_type, body) if _queries(environ, "Contact") else None
    )


def _contact_queries(mock) -> list:
    return [
        call
        for call in mock.calls
        if "/query" in call.request.url and "FROM+Contact" in call.request.url
    ]


@pytest.mark.parametrize(
    "body",
    [
        "<html><h1>Down for maintenance</h1></html>",
        '<html><form action="/login">Sign in</form></html>',
        '{"totalSize": 3, "done": true, "records": [{"Id": "003',
    ],
)
def test_a_200_answer_that_is_not_json_fails_the_object_by_status_once(faulty, body):
    org, connection, mock = faulty
    _contacts_answer(org, "200 OK", "text/html", body)

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert run.object_errors == {"Contact": "HTTP 200 from Salesforce, non-JSON body"}
    assert len(_contact_queries(mock)) == 1
    assert "Expecting" not in run.error_message
    assert CrmAccount.objects.count() == org.store.count("Account")


def test_a_next_page_that_is_not_json_is_asked_for_once(faulty):
    org, connection, mock = faulty
    org.answer = lambda environ: (
        ("200 OK", "text/html", "<html>Maintenance</html>")
        if environ["PATH_INFO"].startswith("/services/data/v62.0/query/01g")
        else None
    )
    client = connection_client(connection=connection, batch_size=200)

    with pytest.raises(SalesforceRejectedError) as refused:
        for _ in client.query_pages(soql="SELECT Id FROM Contact"):
            pass

    next_pages = [c for c in mock.calls if "/query/01g" in c.request.url]
    assert str(refused.value) == "HTTP 200 from Salesforce, non-JSON body"
    assert refused.value.status == 200
    assert len(next_pages) == 1
    assert client.calls == 2


@pytest.mark.parametrize(
    "body",
    [
        '{"totalSize": 3, "done": true, "records": [{"Id": "003',
        "[]",
        '"a string"',
        '{"totalSize": 1, "done": true, "records": "nope"}',
        '{"totalSize": 1, "done": true, "records": [null]}',
    ],
)
def test_a_malformed_page_fails_that_object_cleanly(faulty, body):
    org, connection, _ = faulty
    _contacts_answer(org, "200 OK", "application/json", body)

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert "Contact" in run.object_errors
    assert "Internal error" not in run.error_message


@pytest.mark.parametrize("done", [None, "false", 0])
def test_a_page_whose_done_is_not_a_boolean_never_ends_the_read_quietly(faulty, done):
    org, connection, _ = faulty
    page = {"totalSize": 1, "records": [{"Id": "0035g00000AAAAAAAA", "LastName": "X"}]}
    if done is not None:
        page["done"] = done
    _contacts_answer(org, "200 OK", "application/json", json.dumps(page))

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert "done=" in run.object_errors["Contact"]


def test_a_next_page_on_another_host_is_never_followed(faulty):
    org, connection, mock = faulty
    page = {
        "totalSize": 2,
        "done": False,
        "nextRecordsUrl": ".evil.example/services/data/v62.0/query/x-1",
        "records": [],
    }
    _contacts_answer(org, "200 OK", "application/json", json.dumps(page))

    run = connection_sync(connection=connection)

    assert "Contact" in run.object_errors
    assert not any("evil" in call.request.url for call in mock.calls)


def _contacts_page(records):
    body = {"totalSize": len(records), "done": True, "records": records}
    return json.dumps(body)


def test_hostile_values_cost_the_value_not_the_run(faulty):
    org, connection, _ = faulty
    account = org.store.records("Account")[0]["Id"]
    base = {"LastModifiedDate": "2026-01-01T00:00:00.000+0000", "LastName": "Kept"}
    records = [
        {**base, "Id": "0035g0000HOST01AAA", "AccountId": {"nested": "dict"}},
        {**base, "Id": "0035g0000HOST02AAA", "OwnerId": ["a", "list"]},
        {**base, "Id": "0035g0000HOST03AAA", "AccountId": "001\x00bad"},
        {
            **base,
            "Id": "0035g0000HOST04AAA",
            "LastModifiedDate": "2026-02-30T99:00:00Z",
        },
        {**base, "Id": "0035g0000HOST05AAA", "LastModifiedDate": 12345},
        {**base, "Id": "0035g0000HOST06AAA", "Title": "Lone \ud800 surrogate"},
        {**base, "Id": "0035g0000HOST07AAA", "Title": {"value": "CEO"}},
        {**base, "Id": "0035g0000HOST08AAA", "Email": "a" * 245 + "@example.com.au"},
        {**base, "Id": "0035g0000HOST09AAA", "HasOptedOutOfEmail": "false"},
        {**base, "Id": {"not": "an id"}},
        {**base, "Id": "0035g0000HOST10AAA", "AccountId": account},
    ]
    _contacts_answer(org, "200 OK", "application/json", _contacts_page(records))

    run = connection_sync(connection=connection)

    people = {p.salesforce_id: p for p in Person.objects.all()}
    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert run.object_errors == {}
    assert len(people) == 10
    assert people["0035g0000HOST01AAA"].organisation is None
    assert people["0035g0000HOST03AAA"].salesforce_account_id == ""
    assert "\ud800" not in people["0035g0000HOST06AAA"].title
    assert people["0035g0000HOST07AAA"].title == ""
    assert people["0035g0000HOST08AAA"].email == ""
    assert people["0035g0000HOST09AAA"].has_opted_out_of_email is None
    assert people["0035g0000HOST10AAA"].organisation is not None
    assert run.records_failed == 1


def test_an_id_with_a_line_break_after_it_is_no_id(faulty):
    org, connection, _ = faulty
    base = {"LastModifiedDate": "2026-01-01T00:00:00.000+0000", "LastName": "Kept"}
    records = [
        {**base, "Id": "0035g0000HOST11AAA\n"},
        {**base, "Id": "0035g0000HOST12AAA", "AccountId": "0015g0000HOST12AAA\n"},
    ]
    _contacts_answer(org, "200 OK", "application/json", _contacts_page(records))

    run = connection_sync(connection=connection)

    assert list(Person.objects.values_list("salesforce_id", flat=True)) == [
        "0035g0000HOST12AAA"
    ]
    assert Person.objects.get().salesforce_account_id == ""
    assert run.records_failed == 1


def test_people_whose_opt_out_cannot_be_read_are_never_emailable(
    org, org_http, connection
):
    org.hide_field("Contact", "HasOptedOutOfEmail")

    connection_sync(connection=connection)

    assert Person.objects.exists()
    assert not any(p.may_email for p in Person.objects.all())


def test_a_refresh_during_a_login_host_outage_fails_the_run_cleanly(faulty):
    org, connection, _ = faulty
    org.expire_access_tokens()
    org.answer = lambda environ: (
        ("503 Service Unavailable", "text/html", "<h1>Down</h1>")
        if environ["PATH_INFO"] == "/services/oauth2/token"
        else None
    )

    run = connection_sync(connection=connection)

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert "Refreshing the access token failed" in run.error_message
    assert connection.status == SalesforceConnection.Status.CONNECTED
    assert connection.sync_claimed_at is None


def test_a_session_refused_after_a_refresh_names_the_ip_lock(faulty):
    org, connection, mock = faulty
    org.answer = lambda environ: (
        (
            "401 Unauthorized",
            "application/json",
            json.dumps(
                [{"message": "Session expired", "errorCode": "INVALID_SESSION_ID"}]
            ),
        )
        if environ["PATH_INFO"].startswith("/services/data/")
        else None
    )

    run = connection_sync(connection=connection)

    connection.refresh_from_db()
    refreshes = [c for c in mock.calls if c.request.url.endswith("/oauth2/token")]
    assert run.status == SyncRun.Status.FAILED
    assert "Lock sessions to the IP address" in run.error_message
    assert connection.status == SalesforceConnection.Status.CONNECTED
    assert len(refreshes) == 2  # the connect, then one refresh


def test_a_message_the_database_cannot_hold_is_cleaned_and_the_claim_released(faulty):
    org, connection, _ = faulty
    message = "bad \x00 value \ud800 here"
    _contacts_answer(
        org,
        "400 Bad Request",
        "application/json",
        json.dumps([{"message": message, "errorCode": "MALFORMED_QUERY"}]),
    )

    run = connection_sync(connection=connection)

    run.refresh_from_db()
    connection.refresh_from_db()
    assert "\x00" not in run.error_message
    assert run.finished_at is not None
    assert connection.sync_claimed_at is None


def test_a_long_run_renews_its_claim_so_no_second_run_overlaps(
    org, org_http, connection, settings
):
    settings.SALESFORCE_SYNC_CLAIM_TIMEOUT_SECONDS = 60
    seen = []

    def on_page(object_name, count):
        # Each page renews the claim; pretend the run is old at that point.
        from integrations.sync.run import sync_claim

        seen.append(sync_claim(connection=connection))

    SalesforceConnection.objects.filter(pk=connection.pk).update(sync_claimed_at=None)
    connection_sync(connection=connection, on_page=on_page)

    assert seen and all(claim is None for claim in seen)


def test_an_identity_url_answering_html_ends_on_the_failure_page(
    client, member, org, org_http
):
    from tests.integrations.test_connect_flow import _consent, _start

    client.force_login(member.user)
    callback = _consent(_start(client), "allow")
    org_http.add(
        responses.GET,
        f"https://{OFFLINE_HOST}/id/{org.org_id}/{org.connecting_user_id}",
        body="<html>login</html>",
        status=200,
        content_type="text/html",
    )
    org_http.registered().insert(0, org_http.registered().pop())

    response = client.get(callback)

    assert response.status_code == 400
    assert not SalesforceConnection.objects.exists()


def test_a_callback_after_leaving_the_workspace_connects_nothing(
    client, member, org, org_http
):
    from tests.integrations.test_connect_flow import _consent, _start

    client.force_login(member.user)
    callback = _consent(_start(client), "allow")
    member.delete()

    response = client.get(callback)

    assert response.status_code == 400
    assert not SalesforceConnection.objects.exists()


def test_a_stale_claim_is_not_released_by_the_run_that_lost_it(
    org, org_http, connection
):
    claimed = timezone.now() - timedelta(days=1)
    SalesforceConnection.objects.filter(pk=connection.pk).update(
        sync_claimed_at=claimed
    )

    run = connection_sync(connection=connection)

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCESS
    assert connection.sync_claimed_at is None


# Three pages of one Contact each, as Salesforce may cut them however many
# rows were asked for; the next pages' URLs exactly as Salesforce gives them.
_PAGED_CONTACTS = [
    ("0035g00000AbCdEAAV", "lin@example.org", "2026-01-01T10:00:00.000+0000"),
    ("0035g00000XyZ12AAF", "ada@example.org", "2026-01-01T11:00:00.000+0000"),
    ("0035g00000Pq1AbAAJ", "sam@example.org", "2026-01-01T12:00:00.000+0000"),
]
_NEXT_PAGES = [
    "/services/data/v61.0/query/01gRO0000016PIAYA2-1",
    "/services/data/v61.0/query/01gRO0000016PIAYA2-2",
]


def _paged_contacts(total_size: int):
    def page(number: int) -> tuple[str, str, str]:
        record_id, email, stamp = _PAGED_CONTACTS[number]
        body = {
            "totalSize": total_size,
            "done": number == len(_PAGED_CONTACTS) - 1,
            "records": [
                {
                    "attributes": {"type": "Contact"},
                    "Id": record_id,
                    "LastName": email.split("@")[0].title(),
                    "Email": email,
                    "LastModifiedDate": stamp,
                    "SystemModstamp": stamp,
                }
            ],
        }
        if number < len(_NEXT_PAGES):
            body["nextRecordsUrl"] = _NEXT_PAGES[number]
        return "200 OK", "application/json", json.dumps(body)

    def answer(environ):
        if environ["PATH_INFO"] in _NEXT_PAGES:
            return page(_NEXT_PAGES.index(environ["PATH_INFO"]) + 1)
        return page(0) if _queries(environ, "Contact") else None

    return answer


def _contact_reads(mock) -> list[str]:
    return [
        call.request.url
        for call in mock.calls
        if "/query/01gRO" in call.request.url
        or "FROM+Contact" in call.request.url
        and "COUNT" not in call.request.url
    ]


# totalSize as the rows that come, and two figures that disagree with them.
@pytest.mark.parametrize("total_size", [3, 1, 7])
def test_short_pages_are_followed_to_done_whatever_total_size_says(faulty, total_size):
    org, connection, mock = faulty
    org.answer = _paged_contacts(total_size)

    # Recent changes only: the closing counts of a full sync would rightly
    # find Salesforce's own Contacts missing.
    run = connection_sync(
        connection=connection, kind=SyncRun.Kind.RECENT, batch_size=1000
    )

    reads = _contact_reads(mock)
    ids = [record_id for record_id, _, _ in _PAGED_CONTACTS]
    assert sorted(Person.objects.values_list("salesforce_id", flat=True)) == sorted(ids)
    assert run.status == SyncRun.Status.SUCCESS
    assert "Contact" not in run.object_errors
    # The query, then each next page, sent to the URL given, on the instance.
    assert len(reads) == 3
    assert reads[1:] == [f"{connection.instance_url}{url}" for url in _NEXT_PAGES]
    assert all("OFFSET" not in unquote_plus(url) for url in reads)
    query = next(c.request for c in mock.calls if c.request.url == reads[0])
    assert query.headers["Sforce-Query-Options"] == "batchSize=1000"
    # Past the last page's stamp: the next run does not begin again at the
    # first page.
    cursor = SyncCursor.objects.get(connection=connection, object_name="Contact")
    assert cursor.value == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_the_next_run_after_paged_reads_starts_past_the_first_page(faulty):
    org, connection, mock = faulty
    org.answer = _paged_contacts(3)
    connection_sync(connection=connection, kind=SyncRun.Kind.RECENT, batch_size=1000)
    read = len(sent_queries(mock))

    connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    [statement] = [q for q in sent_queries(mock)[read:] if "FROM Contact" in q]
    since = datetime(2026, 1, 1, 12, tzinfo=UTC) - CURSOR_OVERLAP
    assert f"WHERE SystemModstamp >= {since:%Y-%m-%dT%H:%M:%SZ}" in statement


def test_a_next_page_leading_back_to_one_already_read_stops_the_read(faulty):
    org, connection, mock = faulty
    paged = _paged_contacts(3)

    def round_in_circles(environ):
        status, content_type, body = paged(environ) or (None, None, None)
        if status is None:
            return None
        page = json.loads(body)
        if not page["done"]:
            # The second page names itself as the next one.
            page["nextRecordsUrl"] = _NEXT_PAGES[0]
        return status, content_type, json.dumps(page)

    org.answer = round_in_circles

    run = connection_sync(
        connection=connection, kind=SyncRun.Kind.RECENT, batch_size=1000
    )

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert "already read" in run.object_errors["Contact"]
    assert len(_contact_reads(mock)) == 2
    assert Person.objects.count() == 2
