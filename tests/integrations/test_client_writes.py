import json

import pytest

from integrations.salesforce.client import SalesforceClient
from integrations.services import connection_client

pytestmark = pytest.mark.django_db


def _api_calls(mock) -> list:
    return [c for c in mock.calls if "/services/data/v" in c.request.url]


def _contacts(org, count: int) -> list[dict]:
    return org.store.records("Contact")[:count]


def test_it_updates_records_in_one_collections_call_and_keeps_their_order(
    org, org_http, connection
):
    first, second = _contacts(org, 2)
    org.writes.fail(second["Id"], "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    client = connection_client(connection=connection)

    results = client.update_records(
        object_name="Contact",
        records=[
            {"id": first["Id"], "Last_Trig_Email__c": "2025-03-12"},
            {"id": second["Id"], "Last_Trig_Email__c": "2025-03-12"},
        ],
    )

    (call,) = _api_calls(org_http)
    assert call.request.method == "PATCH"
    assert call.request.url.endswith("/services/data/v62.0/composite/sobjects")
    assert json.loads(call.request.body) == {
        "allOrNone": False,
        "records": [
            {
                "attributes": {"type": "Contact"},
                "id": first["Id"],
                "Last_Trig_Email__c": "2025-03-12",
            },
            {
                "attributes": {"type": "Contact"},
                "id": second["Id"],
                "Last_Trig_Email__c": "2025-03-12",
            },
        ],
    }
    assert [r["success"] for r in results] == [True, False]
    assert results[1]["errors"][0]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert client.calls == 1


@pytest.mark.parametrize(
    "records",
    [
        [{"id": "0035g00000AbCdEAAV", "Title": "A"}] * 201,
        [{"Title": "No Id"}],
        [{"id": "not-an-id", "Title": "A"}],
        [{"id": "0035g00000AbCdEAAV", "Title) FROM": "A"}],
    ],
    ids=["201 records", "no id", "bad id", "bad field name"],
)
def test_it_refuses_an_update_it_cannot_send_without_calling(
    org_http, connection, records
):
    client = connection_client(connection=connection)

    with pytest.raises(ValueError):
        client.update_records(object_name="Contact", records=records)

    assert _api_calls(org_http) == []


def test_an_expired_session_is_refreshed_and_the_update_replayed(
    org, org_http, connection
):
    contact = _contacts(org, 1)[0]
    org.expire_access_tokens()
    client = connection_client(connection=connection)

    results = client.update_records(
        object_name="Contact", records=[{"id": contact["Id"], "Title": "Replayed"}]
    )

    assert results == [{"id": contact["Id"], "success": True, "errors": []}]
    assert org.writes.updates_of(contact["Id"]) == [{"Title": "Replayed"}]


def test_it_reads_current_values_200_ids_to_a_query(org, org_http, connection):
    for n in range(250):
        org.store.insert("Contact", {"LastName": f"Extra {n}"})
    contacts = org.store.records("Contact")[:450]
    client = connection_client(connection=connection)

    values = client.record_values(
        object_name="Contact",
        record_ids=[c["Id"] for c in contacts],
        field_names=["LastName", "Last_Trig_Email__c"],
    )

    assert len(values) == 450
    assert values[contacts[0]["Id"]] == {
        "Id": contacts[0]["Id"],
        "LastName": contacts[0]["LastName"],
        "Last_Trig_Email__c": None,
    }
    assert len(_api_calls(org_http)) == 3


def test_it_finds_what_became_of_a_merged_record_through_query_all(
    org, org_http, connection
):
    loser, survivor = _contacts(org, 2)
    org.writes.delete(loser["Id"], merged_into=survivor["Id"])
    client = connection_client(connection=connection)

    live = client.record_values(
        object_name="Contact", record_ids=[loser["Id"]], field_names=["IsDeleted"]
    )
    found = client.record_values(
        object_name="Contact",
        record_ids=[loser["Id"]],
        field_names=["IsDeleted", "MasterRecordId"],
        include_deleted=True,
    )

    assert live == {}
    assert found[loser["Id"]]["IsDeleted"] is True
    assert found[loser["Id"]]["MasterRecordId"] == survivor["Id"]
    assert "/queryAll/" in _api_calls(org_http)[-1].request.url


def test_the_client_has_no_method_that_creates_or_deletes():
    verbs = ("create", "insert", "upsert", "delete", "remove", "destroy", "undelete")

    names = [n for n in dir(SalesforceClient) if n.lstrip("_").startswith(verbs)]

    assert names == []
