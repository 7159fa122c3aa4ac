import pytest
from simple_salesforce import Salesforce

from integrations.salesforce.http import ForbiddenRequest, salesforce_session
from tests.conftest import OFFLINE_HOST

BASE = f"https://{OFFLINE_HOST}"
DATA = f"{BASE}/services/data/v62.0"
CONTACT_ID = "0035g00000AbCdEAAV"


@pytest.fixture
def token(org, org_http):
    return org.issue_tokens().access_token


@pytest.fixture
def sf(token):
    return Salesforce(
        instance_url=BASE,
        session_id=token,
        version="62.0",
        session=salesforce_session(),
    )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/sobjects/Contact/", {"LastName": "New"}),
        ("POST", "/composite/sobjects", {"records": []}),
        ("POST", "/composite", {"compositeRequest": []}),
        ("POST", "/composite/tree/Contact", {"records": []}),
        ("POST", "/jobs/ingest", {"operation": "insert"}),
        ("PATCH", "/sobjects/Contact/Email/ada@example.com", {"LastName": "A"}),
        ("PATCH", "/sobjects/Contact/External_Id__c/42", {"LastName": "A"}),
        ("PATCH", "/composite/sobjects/Contact/Email", {"records": []}),
        ("PUT", f"/sobjects/Contact/{CONTACT_ID}", {"LastName": "A"}),
        ("DELETE", f"/sobjects/Contact/{CONTACT_ID}", None),
        ("DELETE", f"/composite/sobjects?ids={CONTACT_ID}", None),
    ],
)
def test_it_refuses_anything_that_could_create_upsert_or_delete_before_sending(
    org_http, method, path, body
):
    session = salesforce_session()

    with pytest.raises(ForbiddenRequest, match="never creates, upserts or deletes"):
        session.request(method, f"{DATA}{path}", json=body)

    assert len(org_http.calls) == 0


def test_it_refuses_an_update_of_records_without_their_id(org_http):
    records = [
        {"attributes": {"type": "Contact"}, "id": CONTACT_ID, "Title": "A"},
        {"attributes": {"type": "Contact"}, "LastName": "Created?"},
    ]

    with pytest.raises(ForbiddenRequest, match="needs its Id"):
        salesforce_session().patch(
            f"{DATA}/composite/sobjects", json={"records": records}
        )

    assert len(org_http.calls) == 0


def test_it_refuses_soap_calls(org_http):
    with pytest.raises(ForbiddenRequest):
        salesforce_session().post(f"{BASE}/services/Soap/u/62.0", data="<xml/>")

    assert len(org_http.calls) == 0


def test_simple_salesforce_cannot_create_upsert_or_delete_through_our_session(org, sf):
    contacts = org.store.count("Contact")

    with pytest.raises(ForbiddenRequest):
        sf.Contact.create({"LastName": "New"})
    with pytest.raises(ForbiddenRequest):
        sf.Contact.upsert("Email/ada@example.com", {"LastName": "New"})
    with pytest.raises(ForbiddenRequest):
        sf.Contact.delete(org.store.records("Contact")[0]["Id"])

    assert org.store.count("Contact") == contacts


def test_reads_sign_ins_and_updates_of_existing_records_go_out(org, org_http, sf):
    contact = org.store.records("Contact")[0]

    sf.Contact.update(contact["Id"], {"Title": "Head of Data"})
    sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Contact"}, "id": contact["Id"], "Title": "X"}
            ]
        },
    )
    sf.query("SELECT Id FROM Contact LIMIT 1")
    token = salesforce_session().post(
        f"{BASE}/services/oauth2/token", data={"grant_type": "nope"}
    )

    assert org.store.get(contact["Id"])["Title"] == "X"
    assert token.status_code == 400
    assert [call.request.method for call in org_http.calls] == [
        "PATCH",
        "PATCH",
        "GET",
        "POST",
    ]


def _subrequest(method: str, url: str, **extra) -> dict:
    return {"method": method, "url": url, "referenceId": "r" + method, **extra}


@pytest.mark.parametrize(
    "subrequest",
    [
        _subrequest("POST", "/services/data/v62.0/sobjects/Contact", body={"A": 1}),
        _subrequest("PATCH", f"/services/data/v62.0/sobjects/Contact/{CONTACT_ID}"),
        _subrequest("DELETE", f"/services/data/v62.0/sobjects/Contact/{CONTACT_ID}"),
        _subrequest("PUT", f"/services/data/v62.0/sobjects/Contact/{CONTACT_ID}"),
        _subrequest("get", "/services/data/v62.0/sobjects/Contact/describe"),
        {"url": "/services/data/v62.0/sobjects/Contact/describe", "referenceId": "x"},
    ],
)
def test_it_refuses_a_composite_request_holding_anything_but_gets(org_http, subrequest):
    describe = _subrequest("GET", "/services/data/v62.0/sobjects/Contact/describe")
    body = {"allOrNone": False, "compositeRequest": [describe, subrequest]}

    with pytest.raises(ForbiddenRequest, match="GET subrequests only"):
        salesforce_session().post(f"{DATA}/composite", json=body)

    assert len(org_http.calls) == 0


@pytest.mark.parametrize("body", [b"{", b"[]", b'{"compositeRequest": "GET"}'])
def test_it_refuses_a_composite_request_it_cannot_read(org_http, body):
    with pytest.raises(ForbiddenRequest):
        salesforce_session().post(
            f"{DATA}/composite",
            data=body,
            headers={"Content-Type": "application/json"},
        )

    assert len(org_http.calls) == 0


@pytest.mark.parametrize("resource", ["batch", "graph", "tree/Contact"])
def test_other_composite_resources_stay_refused_even_with_reads(org_http, resource):
    describe = _subrequest("GET", "/services/data/v62.0/sobjects/Contact/describe")

    with pytest.raises(ForbiddenRequest):
        salesforce_session().post(
            f"{DATA}/composite/{resource}",
            json={"compositeRequest": [describe], "batchRequests": [describe]},
        )

    assert len(org_http.calls) == 0


def test_a_composite_request_of_reads_goes_out(token, org_http):
    reads = [
        _subrequest("GET", "/services/data/v62.0/sobjects/Contact/describe"),
        {
            "method": "GET",
            "url": "/services/data/v62.0/query/?q=SELECT+Id+FROM+Account",
            "referenceId": "accounts",
        },
    ]

    response = salesforce_session().post(
        f"{DATA}/composite",
        json={"allOrNone": False, "compositeRequest": reads},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 200
    statuses = [
        reply["httpStatusCode"] for reply in response.json()["compositeResponse"]
    ]
    assert statuses == [200, 200]
    assert len(org_http.calls) == 1
