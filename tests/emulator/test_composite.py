from datetime import timedelta
from urllib.parse import quote_plus

import pytest

from tests.emulator.support import API, BASE_URL, error_code

COMPOSITE = f"{API}/composite"
DATA = "/services/data/v62.0"


def _get(url: str, reference_id: str, **headers: str) -> dict:
    subrequest = {"method": "GET", "url": url, "referenceId": reference_id}
    if headers:
        subrequest["httpHeaders"] = headers
    return subrequest


def _query(soql: str, reference_id: str, *, resource: str = "query", **headers):
    return _get(f"{DATA}/{resource}/?q={quote_plus(soql)}", reference_id, **headers)


def _send(api, subrequests: list[dict], **extra):
    return api.post(COMPOSITE, json={"compositeRequest": subrequests, **extra})


def test_it_answers_describes_and_queries_in_one_api_call(api, org):
    response = _send(
        api,
        [
            _get(f"{DATA}/sobjects/Contact/describe", "describeContact"),
            _query("SELECT Id FROM Account", "accounts"),
            _query("SELECT Id, IsDeleted FROM Lead", "leads", resource="queryAll"),
        ],
    )

    describe, accounts, leads = response.json()["compositeResponse"]
    assert response.status_code == 200
    assert response.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    assert describe["referenceId"] == "describeContact"
    assert describe["httpStatusCode"] == 200
    assert describe["body"]["name"] == "Contact"
    assert accounts["body"]["totalSize"] == org.store.count("Account")
    assert leads["body"]["done"] is True
    assert len(leads["body"]["records"]) == len(org.store.rows("Lead"))


def test_a_query_page_inside_a_composite_is_followed_like_any_other(api, org):
    response = _send(
        api,
        [
            _query(
                "SELECT Id FROM Contact",
                "contacts",
                **{"Sforce-Query-Options": "batchSize=200"},
            )
        ],
    )

    (contacts,) = response.json()["compositeResponse"]
    pages = [contacts["body"]]
    while not pages[-1]["done"]:
        pages.append(api.get(BASE_URL + pages[-1]["nextRecordsUrl"]).json())
    ids = {record["Id"] for page in pages for record in page["records"]}
    assert len(pages[0]["records"]) == 200
    assert len(ids) == org.store.count("Contact") > 200


def test_a_failed_subrequest_carries_its_error_and_the_others_run(api, org):
    org.hide_field("Contact", "Title")

    response = _send(
        api,
        [
            _query("SELECT Id, Title FROM Contact", "refused"),
            _get(f"{DATA}/sobjects/Contact/describe", "describe"),
        ],
    )

    refused, describe = response.json()["compositeResponse"]
    assert response.status_code == 200
    assert refused["httpStatusCode"] == 400
    assert refused["body"][0]["errorCode"] == "INVALID_FIELD"
    assert describe["httpStatusCode"] == 200
    assert "Title" not in {field["name"] for field in describe["body"]["fields"]}


def test_all_or_none_halts_the_others_when_one_fails(api):
    response = _send(
        api,
        [
            _query("SELECT Id FROM Account", "accounts"),
            _query("SELECT Nope FROM Account", "refused"),
        ],
        allOrNone=True,
    )

    accounts, refused = response.json()["compositeResponse"]
    assert refused["body"][0]["errorCode"] == "INVALID_FIELD"
    assert accounts["httpStatusCode"] == 400
    assert accounts["body"][0]["errorCode"] == "PROCESSING_HALTED"


def test_it_refuses_more_than_five_query_operations(api, org):
    queries = [_query("SELECT Id FROM Account", f"q{n}") for n in range(6)]

    response = _send(api, queries)

    assert response.status_code == 400
    assert error_code(response) == "LIMIT_EXCEEDED"
    assert "5 query operations" in response.json()[0]["message"]


def test_it_refuses_more_than_twenty_five_subrequests(api):
    describes = [_get(f"{DATA}/sobjects/Account/describe", f"d{n}") for n in range(26)]

    response = _send(api, describes)

    assert response.status_code == 400
    assert error_code(response) == "LIMIT_EXCEEDED"
    assert "25 operations" in response.json()[0]["message"]


@pytest.mark.parametrize(
    "subrequest",
    [
        {
            "method": "POST",
            "url": f"{DATA}/sobjects/Contact",
            "body": {"LastName": "A"},
        },
        {"method": "DELETE", "url": f"{DATA}/sobjects/Contact/003000000000001AAA"},
        {"method": "GET", "url": f"{DATA}/limits"},
        {"method": "GET", "url": "/services/oauth2/token"},
    ],
)
def test_it_refuses_subrequests_it_does_not_run_and_runs_none(api, org, subrequest):
    contacts = org.store.count("Contact")

    response = _send(
        api,
        [
            _query("SELECT Id FROM Account", "accounts"),
            {**subrequest, "referenceId": "x"},
        ],
    )

    assert response.status_code == 400
    assert error_code(response) == "INVALID_INPUT"
    assert org.store.count("Contact") == contacts


def test_it_refuses_a_body_that_is_not_a_composite_request(api):
    empty = _send(api, [])
    not_json = api.post(
        COMPOSITE, data="{", headers={"Content-Type": "application/json"}
    )
    twice = _send(
        api,
        [
            _query("SELECT Id FROM Account", "same"),
            _query("SELECT Id FROM Lead", "same"),
        ],
    )

    assert (empty.status_code, error_code(empty)) == (400, "INVALID_INPUT")
    assert (not_json.status_code, error_code(not_json)) == (400, "JSON_PARSER_ERROR")
    assert (twice.status_code, error_code(twice)) == (400, "INVALID_INPUT")


def test_a_query_fault_lands_on_the_subrequest_it_matches(api, org):
    org.faults.lock_rows(path_contains="/queryAll/")

    response = _send(
        api,
        [
            _query("SELECT Id FROM Account", "accounts"),
            _query("SELECT Id FROM Lead", "leads", resource="queryAll"),
        ],
    )

    accounts, leads = response.json()["compositeResponse"]
    assert response.status_code == 200
    assert accounts["httpStatusCode"] == 200
    assert leads["httpStatusCode"] == 400
    assert leads["body"][0]["errorCode"] == "UNABLE_TO_LOCK_ROW"


def test_a_query_timeout_lands_on_its_subrequest(api, org, clock):
    org.faults.time_out_queries(wider_than=timedelta(days=1))
    since = (clock.now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")

    response = _send(
        api, [_query(f"SELECT Id FROM Contact WHERE SystemModstamp >= {since}", "q")]
    )

    (reply,) = response.json()["compositeResponse"]
    assert reply["httpStatusCode"] == 400
    assert reply["body"][0]["errorCode"] == "QUERY_TIMEOUT"


def test_an_outage_page_fails_the_whole_composite_request(api, org):
    org.faults.outage(status=503)

    response = _send(api, [_query("SELECT Id FROM Account", "accounts")])

    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/html")


def test_a_subrequest_may_not_ask_for_a_newer_version(api):
    response = _send(
        api, [_get("/services/data/v61.0/sobjects/Account/describe", "older")]
    )
    newer = api.post(
        "https://offline-org.test/services/data/v61.0/composite",
        json={"compositeRequest": [_get(f"{DATA}/sobjects/Account/describe", "x")]},
    )

    assert response.json()["compositeResponse"][0]["httpStatusCode"] == 200
    assert newer.status_code == 400
