import csv
import io

import pytest

from integrations.salesforce.emulator import ids
from tests.emulator.support import API, BASE_URL, error_code

JOBS = f"{API}/jobs/query"


def _create(api, query: str, operation: str = "query", **options: str):
    body = {"operation": operation, "query": query, **options}
    return api.post(JOBS, json=body)


def _finished_job(api, query: str, operation: str = "query", **options: str) -> str:
    job_id = _create(api, query, operation, **options).json()["id"]
    assert api.get(f"{JOBS}/{job_id}").json()["state"] == "JobComplete"
    return job_id


def _rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.text)))


def _read_all(api, job_id: str, max_records: int) -> tuple[list[dict], list]:
    rows, pages, locator = [], [], None
    while True:
        params = {"maxRecords": max_records}
        if locator:
            params["locator"] = locator
        response = api.get(f"{JOBS}/{job_id}/results", params=params)
        page = _rows(response)
        rows += page
        pages.append((len(page), response.headers["Sforce-NumberOfRecords"], response))
        locator = response.headers["Sforce-Locator"]
        if locator == "null":
            return rows, pages


def test_it_creates_a_query_job_as_bulk_api_2_answers(api, org, clock):
    response = _create(api, "SELECT Id, Name FROM Account")

    job = response.json()
    assert response.status_code == 200
    assert ids.is_valid_id(job["id"]) and job["id"].startswith("750")
    assert job == {
        "id": job["id"],
        "operation": "query",
        "object": "Account",
        "createdById": org.connecting_user_id,
        "createdDate": "2025-03-12T09:30:00.000+0000",
        "systemModstamp": "2025-03-12T09:30:00.000+0000",
        "state": "UploadComplete",
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": 62.0,
        "lineEnding": "LF",
        "columnDelimiter": "COMMA",
    }


def test_it_completes_a_job_after_the_polls_it_is_told(api, org):
    org.bulk.polls_to_complete = 2
    job_id = _create(api, "SELECT Id FROM Contact").json()["id"]

    states = [api.get(f"{JOBS}/{job_id}").json() for _ in range(3)]

    assert [state["state"] for state in states] == [
        "InProgress",
        "InProgress",
        "JobComplete",
    ]
    assert states[0]["numberRecordsProcessed"] == 0
    assert states[2]["numberRecordsProcessed"] == org.store.count("Contact")
    assert states[2]["jobType"] == "V2Query"


def test_it_pages_results_linked_by_locators(api, org):
    job_id = _finished_job(api, "SELECT Id FROM Contact")

    rows, pages = _read_all(api, job_id, max_records=100)

    live = org.store.count("Contact")
    assert [int(count) for _, count, _ in pages] == [100, 100, 100, live - 300]
    assert [len_ for len_, _, _ in pages] == [100, 100, 100, live - 300]
    assert [row["Id"] for row in rows] == [
        record["Id"] for record in org.store.records("Contact")
    ]
    assert pages[0][2].headers["Content-Type"].startswith("text/csv")


def test_it_writes_csv_as_bulk_does(api, org):
    contact = [c for c in org.store.records("Contact") if c.get("AccountId")][0]
    org.store.update(
        contact["Id"],
        {"Description": 'Says "hi",\nthen leaves', "HasOptedOutOfEmail": True},
    )
    query = (
        "SELECT Id, Account.Name, Description, HasOptedOutOfEmail, DoNotCall, "
        "Birthdate, Department, LastModifiedDate FROM Contact "
        f"WHERE Id = '{contact['Id']}'"
    )
    job_id = _finished_job(api, query)

    response = api.get(f"{JOBS}/{job_id}/results")

    account = org.store.get(contact["AccountId"])
    assert response.text.splitlines()[0] == (
        '"Id","Account.Name","Description","HasOptedOutOfEmail","DoNotCall",'
        '"Birthdate","Department","LastModifiedDate"'
    )
    assert _rows(response) == [
        {
            "Id": contact["Id"],
            "Account.Name": account["Name"],
            "Description": 'Says "hi",\nthen leaves',
            "HasOptedOutOfEmail": "true",
            "DoNotCall": "false",
            "Birthdate": "",
            "Department": "",
            "LastModifiedDate": "2025-03-12T09:30:00.000Z",
        }
    ]
    assert '"Says ""hi"",\nthen leaves"' in response.text
    assert "\r" not in response.text


def test_it_writes_the_delimiter_and_line_ending_asked_for(api):
    job_id = _finished_job(
        api,
        "SELECT Id, Name FROM Account LIMIT 2",
        columnDelimiter="PIPE",
        lineEnding="CRLF",
    )

    response = api.get(f"{JOBS}/{job_id}/results")

    assert response.text.startswith('"Id"|"Name"\r\n')
    assert response.text.count("\r\n") == 3


def test_query_all_jobs_include_deleted_and_merged_records(api, org):
    loser, survivor = org.store.records("Contact")[:2]
    org.store.merge(loser["Id"], survivor["Id"])
    query = "SELECT Id, IsDeleted, MasterRecordId FROM Contact WHERE IsDeleted = true"

    live = _rows(api.get(f"{JOBS}/{_finished_job(api, query)}/results"))
    every = _rows(api.get(f"{JOBS}/{_finished_job(api, query, 'queryAll')}/results"))

    assert live == []
    assert every == [
        {"Id": loser["Id"], "IsDeleted": "true", "MasterRecordId": survivor["Id"]}
    ]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT Id, BillingAddress FROM Account",
        "SELECT Id, MailingAddress FROM Contact",
        "SELECT Id, Location__c FROM Property__c",
        "SELECT Id, Account.ShippingAddress FROM Contact",
    ],
)
def test_it_refuses_compound_fields(api, query):
    response = _create(api, query)

    assert response.status_code == 400
    assert response.json() == [
        {
            "message": "Selecting compound data not supported in Bulk Query",
            "errorCode": "API_ERROR",
        }
    ]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", "Aggregate Relat"),
        ("SELECT COUNT() FROM Contact", "Aggregate functions"),
        ("SELECT Id FROM Contact LIMIT 5 OFFSET 10", "OFFSET"),
    ],
)
def test_it_refuses_what_bulk_queries_cannot_do(api, query, words):
    response = _create(api, query)

    assert response.status_code == 400
    assert error_code(response) == "API_ERROR"
    assert words in response.json()[0]["message"]


def test_it_runs_order_by_and_limit(api, org):
    job_id = _finished_job(api, "SELECT Name FROM Account ORDER BY Name DESC LIMIT 3")

    rows = _rows(api.get(f"{JOBS}/{job_id}/results"))

    names = sorted((a["Name"] for a in org.store.records("Account")), key=str.lower)
    assert [row["Name"] for row in rows] == names[::-1][:3]


def test_it_refuses_bad_queries_as_the_rest_api_does(api):
    unknown_field = _create(api, "SELECT Id, Nope__c FROM Contact")
    bad_operation = _create(api, "SELECT Id FROM Contact", operation="upsert")

    assert unknown_field.status_code == 400
    assert error_code(unknown_field) == "INVALID_FIELD"
    assert bad_operation.status_code == 400


def test_it_counts_bulk_requests_and_jobs_against_the_allocations(api, org):
    job_id = _finished_job(api, "SELECT Id FROM Account")

    results = api.get(f"{JOBS}/{job_id}/results")
    limits = api.get(f"{API}/limits/").json()

    assert results.headers["Sforce-Limit-Info"] == "api-usage=3/15000"
    assert limits["DailyApiRequests"]["Remaining"] == 15000 - 4
    assert limits["DailyBulkV2QueryJobs"] == {"Max": 10000, "Remaining": 9999}
    assert limits["DailyBulkV2QueryFileStorageMB"]["Max"] == 976562


def test_it_refuses_jobs_once_the_daily_job_allocation_is_spent(api, org):
    org.set_bulk_usage(jobs=10000)

    response = _create(api, "SELECT Id FROM Contact")
    limits = api.get(f"{API}/limits/").json()

    assert response.status_code == 400
    assert response.json() == [
        {
            "message": "Max bulk v2 query jobs (10000) per 24 hrs has been "
            "reached (10001).",
            "errorCode": "LIMIT_EXCEEDED",
        }
    ]
    assert limits["DailyBulkV2QueryJobs"] == {"Max": 10000, "Remaining": 0}
    assert limits["DailyApiRequests"]["Remaining"] > 0


def test_it_refuses_jobs_once_the_daily_result_storage_is_spent(api, org):
    org.set_bulk_usage(storage_mb=976562)

    response = _create(api, "SELECT Id FROM Contact")

    assert error_code(response) == "LIMIT_EXCEEDED"
    assert "Max bulk v2 query result size stored" in response.json()[0]["message"]


def test_it_gives_the_allocations_back_the_next_day(api, org, clock):
    org.set_bulk_usage(jobs=10000)
    clock.advance(days=1)
    api.headers["Authorization"] = f"Bearer {org.issue_tokens().access_token}"

    response = _create(api, "SELECT Id FROM Contact")

    assert response.status_code == 200


def test_it_aborts_and_deletes_jobs(api, org):
    org.bulk.polls_to_complete = 5
    job_id = _create(api, "SELECT Id FROM Contact").json()["id"]
    api.get(f"{JOBS}/{job_id}")

    aborted = api.patch(f"{JOBS}/{job_id}", json={"state": "Aborted"})
    results = api.get(f"{JOBS}/{job_id}/results")
    deleted = api.delete(f"{JOBS}/{job_id}")
    gone = api.get(f"{JOBS}/{job_id}")

    assert aborted.status_code == 200 and aborted.json()["state"] == "Aborted"
    assert results.status_code == 400
    assert deleted.status_code == 204
    assert gone.status_code == 404 and error_code(gone) == "NOT_FOUND"


def test_it_gives_no_results_before_the_job_completes(api, org):
    org.bulk.polls_to_complete = 1
    job_id = _create(api, "SELECT Id FROM Contact").json()["id"]

    early = api.get(f"{JOBS}/{job_id}/results")
    in_progress_delete = (api.get(f"{JOBS}/{job_id}"), api.delete(f"{JOBS}/{job_id}"))

    assert early.status_code == 400
    assert error_code(early) == "INVALIDJOBSTATE"
    assert in_progress_delete[1].status_code == 400


def test_it_refuses_a_locator_it_did_not_give(api):
    job_id = _finished_job(api, "SELECT Id FROM Contact")

    response = api.get(f"{JOBS}/{job_id}/results", params={"locator": "bm9wZQ"})

    assert response.status_code == 400


def test_it_lists_query_jobs(api):
    job_id = _finished_job(api, "SELECT Id FROM Lead")

    listed = api.get(JOBS).json()

    assert listed["done"] is True
    assert [job["id"] for job in listed["records"]] == [job_id]


def test_it_has_no_query_jobs_before_api_version_47(api):
    response = api.post(
        f"{BASE_URL}/services/data/v46.0/jobs/query",
        json={"operation": "query", "query": "SELECT Id FROM Contact"},
    )

    assert response.status_code == 404


def test_a_failed_job_says_why(api, org):
    org.faults.fail_bulk_jobs(message="InternalServerError : try again")
    job_id = _create(api, "SELECT Id FROM Contact").json()["id"]

    job = api.get(f"{JOBS}/{job_id}").json()
    results = api.get(f"{JOBS}/{job_id}/results")

    assert job["state"] == "Failed"
    assert job["errorMessage"] == "InternalServerError : try again"
    assert results.status_code == 400


def test_results_pages_may_be_shorter_than_asked(api, org):
    org.faults.short_pages(records=7)
    job_id = _finished_job(api, "SELECT Id FROM Account")

    rows, pages = _read_all(api, job_id, max_records=50)

    assert [count for count, _, _ in pages][:2] == [7, 50]
    assert len({row["Id"] for row in rows}) == org.store.count("Account")


def test_simple_salesforce_reads_a_job_through_bulk2(sf, org):
    pages = list(sf.bulk2.Contact.query("SELECT Id, Email FROM Contact", wait=0))

    rows = [row for page in pages for row in csv.DictReader(io.StringIO(page))]
    assert len(rows) == org.store.count("Contact")
