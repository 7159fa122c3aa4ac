from datetime import timedelta

import pytest
import requests

from integrations.salesforce.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from tests.emulator.support import API, BASE_URL, error_code, query

TOKEN = f"{BASE_URL}/services/oauth2/token"


def _refresh(refresh_token: str) -> requests.Response:
    return requests.post(
        TOKEN,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },
    )


def _stamp(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_all(api, soql: str, **headers: str) -> tuple[list[dict], list[dict]]:
    pages = [query(api, soql, **headers).json()]
    while not pages[-1]["done"]:
        pages.append(api.get(BASE_URL + pages[-1]["nextRecordsUrl"]).json())
    return [row for page in pages for row in page["records"]], pages


@pytest.mark.parametrize("status", [500, 503])
def test_an_outage_answers_html_then_passes(api, org, status):
    org.faults.outage(status=status, times=2)

    answers = [api.get(f"{API}/limits/") for _ in range(3)]

    assert [answer.status_code for answer in answers] == [status, status, 200]
    assert answers[0].headers["Content-Type"].startswith("text/html")
    assert "<html>" in answers[0].text
    assert org.usage.used == 1


def test_a_fault_meets_only_the_requests_it_matches(api, org):
    org.faults.fail_next(
        status=400,
        error_code="TXN_SECURITY_METERING_ERROR",
        message="We can't complete the action because enabled transaction "
        "security policies took too long to complete.",
        path_contains="/query",
        method="GET",
        after=1,
    )

    limits = api.get(f"{API}/limits/")
    first_query = query(api, "SELECT Id FROM Lead")
    second_query = query(api, "SELECT Id FROM Lead")
    third_query = query(api, "SELECT Id FROM Lead")

    assert limits.status_code == 200 and first_query.status_code == 200
    assert second_query.status_code == 400
    assert error_code(second_query) == "TXN_SECURITY_METERING_ERROR"
    assert second_query.headers["Sforce-Limit-Info"] == "api-usage=2/15000"
    assert third_query.status_code == 200


def test_the_concurrency_limit_answers_403_without_spending_the_allocation(api, org):
    org.faults.limit_concurrency(times=1)

    refused = api.get(f"{API}/limits/")
    after = api.get(f"{API}/limits/")

    assert refused.status_code == 403
    assert refused.json() == [
        {
            "message": "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
        }
    ]
    assert after.json()["DailyApiRequests"]["Remaining"] == 15000 - 1


def test_locked_rows_refuse_an_update(api, org):
    contact = org.store.records("Contact")[0]
    org.faults.lock_rows(path_contains=f"/sobjects/Contact/{contact['Id']}")

    locked = api.patch(f"{API}/sobjects/Contact/{contact['Id']}", json={"Title": "T"})
    retried = api.patch(f"{API}/sobjects/Contact/{contact['Id']}", json={"Title": "T"})

    assert locked.status_code == 400 and error_code(locked) == "UNABLE_TO_LOCK_ROW"
    assert retried.status_code == 204


def test_sessions_expire_after_the_calls_asked_for(mock, org):
    tokens = org.issue_tokens()
    headers = {"Authorization": f"Bearer {tokens.access_token}"}
    org.faults.expire_sessions(after_calls=2)

    answers = [requests.get(f"{API}/limits/", headers=headers) for _ in range(3)]
    new_token = _refresh(tokens.refresh_token).json()["access_token"]
    again = requests.get(
        f"{API}/limits/", headers={"Authorization": f"Bearer {new_token}"}
    )

    assert [answer.status_code for answer in answers] == [200, 200, 401]
    assert error_code(answers[2]) == "INVALID_SESSION_ID"
    assert again.status_code == 200


def test_grants_are_revoked_after_the_calls_asked_for(mock, org):
    tokens = org.issue_tokens()
    headers = {"Authorization": f"Bearer {tokens.access_token}"}
    org.faults.revoke_grants(after_calls=1)

    answers = [requests.get(f"{API}/limits/", headers=headers) for _ in range(2)]
    refreshed = _refresh(tokens.refresh_token)

    assert [answer.status_code for answer in answers] == [200, 401]
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"


def test_the_daily_allocation_runs_out_after_the_calls_asked_for(api, org):
    org.faults.spend_daily_limit(after_calls=2)

    answers = [query(api, "SELECT Id FROM Lead") for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 403]
    assert answers[2].json() == [
        {
            "message": "TotalRequests Limit exceeded.",
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
        }
    ]
    assert answers[2].headers["Sforce-Limit-Info"] == "api-usage=15000/15000"


def test_a_short_page_is_not_the_last(api, org):
    org.faults.short_pages(records=3)

    rows, pages = _read_all(
        api, "SELECT Id FROM Contact", **{"Sforce-Query-Options": "batchSize=200"}
    )

    assert [len(page["records"]) for page in pages][:2] == [3, 200]
    assert pages[0]["done"] is False
    assert len({row["Id"] for row in rows}) == len(rows) == org.store.count("Contact")


def test_a_short_page_splits_even_a_result_that_fits_one_page(api, org):
    org.faults.short_pages(records=5)

    rows, pages = _read_all(api, "SELECT Id FROM Lead")

    assert [len(page["records"]) for page in pages] == [5, org.store.count("Lead") - 5]
    assert len(rows) == org.store.count("Lead")


def test_queries_over_too_wide_a_window_time_out_until_narrowed(api, org, clock):
    org.faults.time_out_queries(wider_than=timedelta(days=7), sobject="Contact")
    since = _stamp(clock.now - timedelta(days=10))
    halfway = _stamp(clock.now - timedelta(days=5))
    contacts = "SELECT Id FROM Contact WHERE"

    wide = query(api, f"{contacts} SystemModstamp >= {since}")
    open_start = query(api, f"{contacts} SystemModstamp < {halfway}")
    relative = query(api, f"{contacts} CreatedDate = LAST_N_DAYS:30")
    first_half = query(
        api,
        f"{contacts} SystemModstamp >= {since} AND SystemModstamp < {halfway}",
    )
    second_half = query(api, f"{contacts} SystemModstamp >= {halfway}")
    undated = query(api, "SELECT Id FROM Contact")
    other_object = query(api, f"SELECT Id FROM Lead WHERE SystemModstamp >= {since}")

    for refused in (wide, open_start, relative):
        assert refused.status_code == 400
        assert refused.json() == [
            {
                "message": "Your query request was running for too long.",
                "errorCode": "QUERY_TIMEOUT",
            }
        ]
    for answered in (first_half, second_half, undated, other_object):
        assert answered.status_code == 200


def test_a_bulk_job_over_too_wide_a_window_fails(api, org, clock):
    org.faults.time_out_queries(wider_than=timedelta(days=1), times=1)
    body = {
        "operation": "queryAll",
        "query": "SELECT Id FROM Contact WHERE SystemModstamp >= "
        f"{_stamp(clock.now - timedelta(days=3))}",
    }

    job_id = api.post(f"{API}/jobs/query", json=body).json()["id"]
    job = api.get(f"{API}/jobs/query/{job_id}").json()
    retried_id = api.post(f"{API}/jobs/query", json=body).json()["id"]

    assert job["state"] == "Failed"
    assert job["errorMessage"] == "Your query request was running for too long."
    assert api.get(f"{API}/jobs/query/{retried_id}").json()["state"] == "JobComplete"


def test_clearing_faults_ends_them_all(api, org):
    org.faults.outage(times=5)
    org.faults.spend_daily_limit(after_calls=0)
    org.faults.time_out_queries(wider_than=timedelta(0))

    org.faults.clear()

    assert api.get(f"{API}/limits/").status_code == 200
    assert query(api, "SELECT Id FROM Lead WHERE CreatedDate = TODAY").ok


def test_a_uri_too_long_needs_no_switch(api):
    response = query(
        api, "SELECT Id FROM Contact WHERE Email IN ('" + "x" * 17_000 + "')"
    )

    assert response.status_code == 414
    assert response.headers["Content-Type"].startswith("text/html")
