import csv
import re
from datetime import timedelta

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from integrations.models import FieldMapping, ObjectMapping, SyncRun
from integrations.offline_org import offline_org_connect
from integrations.salesforce.client import _text_lines
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator import bulk as emulator_bulk
from integrations.salesforce.emulator.testing import mocked
from integrations.sync.bulk import _cell as cell_reader
from integrations.sync.run import connection_sync, sync_claim
from people.models import CrmAccount, Person
from tests.conftest import OFFLINE_HOST

pytestmark = pytest.mark.django_db

CONTACTS = 3000


@pytest.fixture(autouse=True)
def _bulk_settings(settings):
    settings.SALESFORCE_BULK_THRESHOLD = 1000
    settings.SALESFORCE_BULK_MAX_RECORDS = 1000
    settings.SALESFORCE_BULK_POLL_SECONDS = 0


@pytest.fixture
def org():
    return OfflineOrg(
        generate={"contacts": CONTACTS},
        seed=1,
        load_sample=False,
        bulk_polls_to_complete=2,
    )


@pytest.fixture
def org_http(org):
    with mocked(org, base_url=f"https://{OFFLINE_HOST}") as mock:
        yield mock


@pytest.fixture
def connection(org_http, member):
    return offline_org_connect(
        workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
    )


def _paths(mock, part: str) -> list[str]:
    return [
        f"{call.request.method} {call.request.url}"
        for call in mock.calls
        if part in call.request.url
    ]


def _people() -> dict[str, dict]:
    return {
        person.salesforce_id: model_to_dict(
            person, exclude=["id", "created_at", "updated_at", "synced_at"]
        )
        for person in Person.objects.all()
    }


def _map_billing_address(connection) -> None:
    mapping = ObjectMapping.objects.get(connection=connection, object_name="Account")
    FieldMapping.objects.create(
        object_mapping=mapping, salesforce_field="BillingAddress", attribute=""
    )


def test_it_reads_a_large_object_through_bulk(org, org_http, connection):
    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.count() == CONTACTS
    contact_jobs = [
        path for path in _paths(org_http, "/jobs/query") if path.startswith("POST")
    ]
    # Contacts are above the threshold; Accounts (about 300) are not. The
    # first REST page of Contacts, which tells their number, is the last.
    assert len(contact_jobs) == 1
    assert len(_paths(org_http, "FROM+Contact")) == 1
    assert not re.search(r"/data/v[\d.]+/query/[^?]", " ".join(_paths(org_http, "")))


def test_a_first_page_read_inside_a_composite_still_sends_a_large_object_to_bulk(
    org, org_http, connection
):
    connection_sync(connection=connection)
    org.store.delete(org.store.records("Contact")[0]["Id"])
    before = len(org_http.calls)

    run = connection_sync(connection=connection)

    sent = org_http.calls[before:]
    composite = next(c for c in sent if c.request.url.endswith("/composite"))
    contact_jobs = [
        c for c in sent if c.request.method == "POST" and "/jobs/query" in c.request.url
    ]
    assert b"FROM+Contact" in composite.request.body
    assert len(contact_jobs) == 1
    # The size came with the composite: no REST query of Contacts of its own.
    assert not any("FROM+Contact" in c.request.url for c in sent)
    assert run.status == SyncRun.Status.SUCCESS
    assert run.records_deleted == 1
    assert Person.objects.filter(deleted_at__isnull=True).count() == CONTACTS - 1


def test_bulk_and_rest_store_the_same(org, org_http, connection, settings):
    _map_billing_address(connection)
    settings.SALESFORCE_BULK_THRESHOLD = 10**9
    rest = connection_sync(connection=connection)
    through_rest = _people()
    addresses = dict(CrmAccount.objects.values_list("salesforce_id", "custom_values"))

    settings.SALESFORCE_BULK_THRESHOLD = 100
    bulk = connection_sync(connection=connection)

    assert rest.status == bulk.status == SyncRun.Status.SUCCESS
    assert _paths(org_http, "/jobs/query")
    # Nothing read through Bulk differs from what REST stored.
    assert bulk.records_created == bulk.records_updated == 0
    assert _people() == through_rest
    assert (
        dict(CrmAccount.objects.values_list("salesforce_id", "custom_values"))
        == addresses
    )
    assert any(values.get("BillingAddress") for values in addresses.values())


def test_it_reads_compound_fields_through_their_components(
    org, org_http, connection, settings
):
    _map_billing_address(connection)
    settings.SALESFORCE_BULK_THRESHOLD = 100
    account = org.store.records("Account")[0]

    connection_sync(connection=connection)

    creates = [
        call.request.body
        for call in org_http.calls
        if call.request.method == "POST" and "/jobs/query" in call.request.url
    ]
    account_job = next(body for body in creates if b"FROM Account" in body)
    assert b"BillingAddress" not in account_job
    assert b"BillingCity" in account_job
    stored = CrmAccount.objects.get(salesforce_id=account["Id"])
    assert stored.custom_values["BillingAddress"]["city"] == account["BillingCity"]


def test_the_bulk_path_costs_a_few_calls_whatever_the_size(member, settings):
    settings.SALESFORCE_BULK_THRESHOLD = 10_000
    settings.SALESFORCE_BULK_MAX_RECORDS = 50_000
    org = OfflineOrg(generate={"contacts": 20_000}, seed=2, load_sample=False)
    with mocked(org, base_url=f"https://{OFFLINE_HOST}") as mock:
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )

        connection_sync(connection=connection)

        contact_calls = [
            call.request.url
            for call in mock.calls
            if "/jobs/query" in call.request.url
            or "FROM+Contact" in call.request.url
            or "/limits" in call.request.url
        ]
    # The first REST page (which tells the size), the Bulk allocations left,
    # a job, one status read and one result page of up to 50,000 rows.
    assert len(contact_calls) == 5
    assert Person.objects.count() == 20_000


def test_a_page_holding_other_than_its_declared_rows_is_an_error(
    org, org_http, connection, monkeypatch
):
    # The org loses a row of every page, and still declares the whole count.
    whole_pages = emulator_bulk._csv
    monkeypatch.setattr(
        emulator_bulk, "_csv", lambda job, rows: whole_pages(job, rows[:-1])
    )

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert "declared 1,000" in run.object_errors["Contact"]
    # A read cut short takes nothing as deleted.
    assert not Person.objects.filter(deleted_at__isnull=False).exists()


def test_a_byte_order_mark_before_the_header_is_read_past(
    org, org_http, connection, monkeypatch
):
    connection_sync(connection=connection)
    # Some CSV writers open UTF-8 with one.
    plain = emulator_bulk._csv
    monkeypatch.setattr(
        emulator_bulk, "_csv", lambda job, rows: "\ufeff" + plain(job, rows)
    )

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert run.records_fetched >= CONTACTS
    assert not Person.objects.filter(deleted_at__isnull=False).exists()


def test_a_result_page_of_other_columns_fails_the_object_not_the_run(
    org, org_http, connection, monkeypatch
):
    plain = emulator_bulk._csv

    def renamed(job, rows):
        header, rest = plain(job, rows).split("\n", 1)
        return header.replace('"Id"', '"Ident"') + "\n" + rest

    monkeypatch.setattr(emulator_bulk, "_csv", renamed)

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert "Ident" in run.object_errors["Contact"]
    assert "Opportunity" in run.objects_done
    assert not Person.objects.exists()


def test_a_cell_not_of_its_type_fails_that_value_not_the_run(org, org_http, connection):
    contact = org.store.records("Contact")[0]
    # A value the CSV holds as no boolean: written past the org's own checks.
    org.store.lookup(contact["Id"])[1]["HasOptedOutOfEmail"] = "maybe"

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.count() == CONTACTS
    person = Person.objects.get(salesforce_id=contact["Id"])
    # Unknown, which counts as opted out; never taken for "false".
    assert person.has_opted_out_of_email is None
    assert [
        problem["field"] for problem in run.problems if problem["id"] == contact["Id"]
    ] == ["HasOptedOutOfEmail"]


def test_a_failed_job_falls_back_to_rest(org, org_http, connection):
    org.faults.fail_bulk_jobs(times=5)

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.count() == CONTACTS
    assert _paths(org_http, "FROM+Contact")
    (job,) = org.bulk.all()
    assert _notes(run) == [
        f"The Bulk query job {job.id} ended Failed; the object was read through REST."
    ]


def _creates(mock) -> list[str]:
    return [p for p in _paths(mock, "/jobs/query") if p.startswith("POST")]


def _notes(run: SyncRun) -> list[str]:
    return [problem["problem"] for problem in run.problems]


@pytest.mark.parametrize(
    ("usage", "told"),
    [
        ({"jobs": 10_000}, "0 of 10,000 query jobs left"),
        ({"jobs": 9_995}, "5 of 10,000 query jobs left"),
        ({"storage_mb": 976_562 - 100}, "100 of 976,562 MB of query results left"),
    ],
)
def test_a_spent_bulk_allocation_reads_through_rest_without_a_job(
    org, org_http, connection, usage, told
):
    org.set_bulk_usage(**usage)

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.count() == CONTACTS
    assert _creates(org_http) == []
    assert len(_paths(org_http, "/limits")) == 1
    assert _notes(run) == [f"Bulk daily cap reached, read through REST ({told})."]
    assert run.problems[0]["object"] == "Contact"


def test_bulk_is_used_again_once_limits_show_room(org, org_http, connection):
    org.set_bulk_usage(jobs=10_000)
    connection_sync(connection=connection)
    org.set_bulk_usage(jobs=0)

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert len(_creates(org_http)) == 1
    assert _notes(run) == []


JOBS_CAP = "Max bulk v2 query jobs (10000) per 24 hrs has been reached (10021)."
RESULTS_CAP = (
    "Max bulk v2 query result size stored (1000000000) kb per 24 hrs has been exceeded"
)


def _refuse_the_next_job(org, message: str) -> None:
    org.faults.fail_next(
        status=400,
        error_code="LIMIT_EXCEEDED",
        message=message,
        path_contains="/jobs/query",
        method="POST",
    )


@pytest.mark.parametrize("message", [JOBS_CAP, RESULTS_CAP])
def test_a_job_refused_for_the_daily_cap_reads_through_rest_and_says_so(
    org, org_http, connection, message
):
    # /limits still shows room, as it can while other integrations start jobs.
    org.faults.fail_next(
        status=400,
        error_code="LIMIT_EXCEEDED",
        message=message,
        path_contains="/jobs/query",
        method="POST",
    )

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.count() == CONTACTS
    assert len(_creates(org_http)) == 1
    assert _notes(run) == [
        f"Bulk daily cap reached, read through REST (LIMIT_EXCEEDED: {message})."
    ]


def test_a_job_refused_by_transaction_security_fails_the_run_asking_the_admin(
    org, org_http, connection
):
    org.faults.fail_next(
        status=400,
        error_code="TXN_SECURITY_METERING_ERROR",
        message="Transaction security policies took too long to complete.",
        path_contains="/jobs/query",
        method="POST",
        times=1000,
    )

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.FAILED
    assert "Exempt from Transaction Security" in run.error_message
    # Never asked twice, as any job creation.
    assert len(_creates(org_http)) == 1
    assert run.object_errors == {}


def test_a_job_that_takes_too_long_is_aborted_and_the_object_read_through_rest(
    org, org_http, connection, settings
):
    settings.SALESFORCE_BULK_MAX_WAIT_SECONDS = 0

    run = connection_sync(connection=connection)

    (job,) = org.bulk.all()
    assert job.state == "Aborted"
    patches = [
        (call.request.url.rsplit("/", 1)[-1], call.request.body)
        for call in org_http.calls
        if call.request.method == "PATCH"
    ]
    assert patches == [(job.id, b'{"state": "Aborted"}')]
    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.count() == CONTACTS
    assert _notes(run) == [
        f"The Bulk query job {job.id} did not finish within 0 minutes; it was "
        "aborted and the object read through REST."
    ]


def test_csv_lines_keep_quoted_line_breaks_and_crlf_split_between_chunks():
    body = '"Id","Description"\r\n"003A","two\nlines, one comma"\r\n"003B",""\r\n'
    chunks = [part.encode() for part in (body[:25], body[25:40], body[40:])]
    # Cut right between a \r and its \n as well.
    cut = body.index("\r\n", 30) + 1
    split_crlf = [body[:cut].encode(), body[cut:].encode()]

    for pieces in (chunks, split_crlf):
        rows = list(csv.reader(_text_lines(iter(pieces))))

        assert rows == [
            ["Id", "Description"],
            ["003A", "two\nlines, one comma"],
            ["003B", ""],
        ]


def test_waiting_for_a_job_stops_at_the_runs_budget_and_aborts_it(member):
    # 300 calls a day: one run may spend 30, and the job never ends in them.
    org = OfflineOrg(
        generate={"contacts": CONTACTS},
        seed=1,
        load_sample=False,
        bulk_polls_to_complete=1000,
        daily_api_requests=300,
    )
    with mocked(org, base_url=f"https://{OFFLINE_HOST}"):
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )
        run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.PARTIAL
    assert "Partial — API budget" in run.error_message
    # The budget, and the abort that frees the org's allocation.
    assert run.api_calls <= 30 + 1
    (job,) = org.bulk.all()
    assert job.state == "Aborted"


def test_a_job_refused_for_compound_data_reads_through_rest_and_says_so(
    org, org_http, connection
):
    org.faults.fail_next(
        status=400,
        error_code="API_ERROR",
        message="Selecting compound data not supported in Bulk Query",
        path_contains="/jobs/query",
        method="POST",
    )

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.count() == CONTACTS
    notes = [p["problem"] for p in run.problems if p["object"] == "Contact"]
    assert any("Bulk refused the query" in text for text in notes)
    assert any("compound data" in text for text in notes)


def test_reading_through_rest_after_a_capped_job_stops_when_the_day_is_spent(
    org, org_http, connection
):
    _refuse_the_next_job(org, JOBS_CAP)
    # The describes, Users, Accounts, Contacts' first page and /limits; then
    # the Contacts' next page, through REST, meets a spent day.
    org.faults.spend_daily_limit(after_calls=5)

    run = connection_sync(connection=connection)

    api = [c for c in org_http.calls if "/services/data/v" in c.request.url]
    refused = [c for c in api if c.response.status_code == 403]
    assert run.status == SyncRun.Status.PARTIAL
    assert "Daily API allowance used up (15,000/15,000)" in run.error_message
    assert _notes(run) == [
        f"Bulk daily cap reached, read through REST (LIMIT_EXCEEDED: {JOBS_CAP})."
    ]
    assert len(refused) == 1 and api[-1] is refused[0]
    assert "/query/01g" in refused[0].request.url
    assert 0 < Person.objects.count() < CONTACTS
    assert not any("/oauth2/token" in c.request.url for c in org_http.calls[3:])


@pytest.fixture
def two_large(member):
    """An org where Accounts and Contacts both go through Bulk."""
    org = OfflineOrg(
        generate={"contacts": CONTACTS, "accounts": 1500},
        seed=1,
        load_sample=False,
        bulk_polls_to_complete=2,
    )
    with mocked(org, base_url=f"https://{OFFLINE_HOST}") as mock:
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )
        yield org, mock, connection


def test_after_a_capped_job_no_other_is_tried_until_limits_show_room(two_large):
    org, mock, connection = two_large
    _refuse_the_next_job(org, RESULTS_CAP)

    run = connection_sync(connection=connection)
    creates, limits = len(_creates(mock)), len(_paths(mock, "/limits"))

    assert run.status == SyncRun.Status.SUCCESS
    assert CrmAccount.objects.count() == 1500 and Person.objects.count() == CONTACTS
    # One job tried, for Accounts; none for Contacts, and /limits not asked.
    assert (creates, limits) == (1, 1)
    assert [p["object"] for p in run.problems] == ["Account", "Contact"]
    assert all(text.startswith("Bulk daily cap reached") for text in _notes(run))

    # The next run asks /limits before each job, sees room, and uses Bulk.
    again = connection_sync(connection=connection)

    assert again.status == SyncRun.Status.SUCCESS
    assert len(_creates(mock)) - creates == 2
    assert len(_paths(mock, "/limits")) - limits == 2
    assert _notes(again) == []


def _results_answered(monkeypatch, change) -> None:
    """Let `change(response, locator_asked)` alter each Bulk results answer."""
    plain = OfflineOrg._api_bulk_results

    def answer(self, context, job_id):
        response = plain(self, context, job_id)
        change(response, context.request.args.get("locator"))
        return response

    monkeypatch.setattr(OfflineOrg, "_api_bulk_results", answer)


def test_a_result_page_without_its_locator_takes_nothing_as_deleted(
    org, org_http, connection, monkeypatch
):
    connection_sync(connection=connection)
    _results_answered(
        monkeypatch, lambda response, _: response.headers.pop("Sforce-Locator")
    )

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert "Sforce-Locator" in run.object_errors["Contact"]
    assert Person.objects.count() == CONTACTS
    assert not Person.objects.filter(deleted_at__isnull=False).exists()


def test_results_leading_back_to_a_page_already_read_stop_the_read(
    org, org_http, connection, monkeypatch
):
    pages = []

    def back_to_the_second(response, locator):
        pages.append(locator)
        if locator:
            response.headers["Sforce-Locator"] = locator

    _results_answered(monkeypatch, back_to_the_second)

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert "led back to a page already read" in run.object_errors["Contact"]
    assert len(pages) == 2


def test_results_ending_short_of_what_the_job_found_take_nothing_as_deleted(
    org, org_http, connection, monkeypatch
):
    connection_sync(connection=connection)

    def last_page_at_once(response, _):
        response.headers["Sforce-Locator"] = "null"

    _results_answered(monkeypatch, last_page_at_once)

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert f"where the job found {CONTACTS:,}" in run.object_errors["Contact"]
    assert not Person.objects.filter(deleted_at__isnull=False).exists()


class _OrgWhoseJobsTakeHours(OfflineOrg):
    """An org where each status read of a Bulk job finds an hour gone by, and
    where `on_poll` runs then."""

    on_poll = None

    def _api_bulk_job(self, context, job_id):
        self.on_poll()
        return super()._api_bulk_job(context, job_id)


def test_a_long_wait_for_a_bulk_job_keeps_the_runs_claim(member, settings, monkeypatch):
    settings.SALESFORCE_SYNC_CLAIM_TIMEOUT_SECONDS = 3 * 60 * 60
    org = _OrgWhoseJobsTakeHours(
        generate={"contacts": CONTACTS},
        seed=1,
        load_sample=False,
        bulk_polls_to_complete=5,
    )
    real_now = timezone.now
    hours = []
    monkeypatch.setattr(
        timezone, "now", lambda: real_now() + timedelta(hours=len(hours))
    )
    others = []

    def an_hour_later():
        hours.append(1)
        others.append(sync_claim(connection=connection))

    org.on_poll = an_hour_later

    with mocked(org, base_url=f"https://{OFFLINE_HOST}"):
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )
        run = connection_sync(connection=connection)

    assert len(hours) > 3
    assert others and all(claim is None for claim in others)
    assert run.status == SyncRun.Status.SUCCESS


@pytest.mark.parametrize(
    ("field_type", "text", "value"),
    [
        ("string", "", None),
        ("string", "Acme", "Acme"),
        ("boolean", "true", True),
        ("boolean", "false", False),
        ("boolean", "", None),
        ("boolean", "maybe", "maybe"),
        ("int", "42", 42),
        ("currency", "1250.5", 1250.5),
        ("percent", "", None),
        ("double", "many", "many"),
        ("datetime", "2026-01-02T03:04:05.000Z", "2026-01-02T03:04:05.000+0000"),
        ("datetime", "2026-01-02T03:04:05.000+0000", "2026-01-02T03:04:05.000+0000"),
        ("date", "2026-01-02", "2026-01-02"),
    ],
)
def test_a_cell_reads_as_rests_json_would_have_it(field_type, text, value):
    assert cell_reader(field_type)(text) == value
    assert type(cell_reader(field_type)(text)) is type(value)
