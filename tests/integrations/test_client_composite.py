import json

import pytest

from integrations.salesforce.client import (
    ReconnectRequired,
    SalesforceRejectedError,
    describe_path,
    query_path,
)
from integrations.services import connection_client

pytestmark = pytest.mark.django_db


def _api_calls(mock) -> list:
    return [c for c in mock.calls if "/services/data/v" in c.request.url]


def test_it_sends_reads_together_as_one_api_call_and_keeps_their_order(
    org, org_http, connection
):
    client = connection_client(connection=connection)

    describe, accounts, leads = client.composite_reads(
        paths=[
            describe_path("Contact"),
            query_path(soql="SELECT Id FROM Account"),
            query_path(soql="SELECT Id, IsDeleted FROM Lead", include_deleted=True),
        ]
    )

    (call,) = _api_calls(org_http)
    sent = json.loads(call.request.body)["compositeRequest"]
    assert call.request.url.endswith("/services/data/v62.0/composite")
    assert [request["method"] for request in sent] == ["GET", "GET", "GET"]
    assert sent[2]["url"].startswith("/services/data/v62.0/queryAll/?q=SELECT+Id")
    assert (describe.status, describe.body["name"]) == (200, "Contact")
    assert accounts.body["totalSize"] == org.store.count("Account")
    assert leads.is_success
    assert client.calls == 1
    assert client.api_usage == (org.usage.used, org.usage.maximum)


def test_a_failed_request_inside_is_returned_not_raised(org, org_http, connection):
    client = connection_client(connection=connection)

    refused, described = client.composite_reads(
        paths=[
            query_path(soql="SELECT Nope FROM Contact"),
            describe_path("Account"),
        ]
    )

    assert (refused.is_success, refused.status) == (False, 400)
    assert refused.error_code == "INVALID_FIELD"
    assert described.is_success


def test_queries_inside_ask_for_the_clients_batch_size(org, org_http, connection):
    client = connection_client(connection=connection, batch_size=200)

    (contacts,) = client.composite_reads(
        paths=[query_path(soql="SELECT Id FROM Contact")]
    )
    total, pages = client.query_pages_from(first=contacts.body)

    pages = list(pages)
    assert len(pages[0]) == 200
    assert total == sum(len(page) for page in pages) == org.store.count("Contact")


def test_an_outage_of_the_composite_request_is_retried(org, org_http, connection):
    org.faults.outage(status=503, path_contains="/composite")
    client = connection_client(connection=connection)

    (described,) = client.composite_reads(paths=[describe_path("Contact")])

    assert described.is_success
    assert [c.response.status_code for c in _api_calls(org_http)] == [503, 200]


def test_a_refused_composite_request_raises_as_any_read_does(org, org_http, connection):
    org.faults.fail_next(
        status=400, error_code="INVALID_INPUT", path_contains="/composite"
    )
    client = connection_client(connection=connection)

    with pytest.raises(SalesforceRejectedError, match="INVALID_INPUT"):
        client.composite_reads(paths=[describe_path("Contact")])


def test_a_grant_revoked_before_the_composite_request_asks_for_a_reconnect(
    org, org_http, connection
):
    client = connection_client(connection=connection)
    org.expire_access_tokens()
    org.revoke_grants()

    with pytest.raises(ReconnectRequired):
        client.composite_reads(paths=[describe_path("Contact")])


@pytest.mark.parametrize(
    "paths",
    [
        [query_path(soql="SELECT Id FROM Account")] * 6,
        [describe_path("Account")] * 26,
    ],
)
def test_it_refuses_more_than_salesforce_takes_before_sending(
    org_http, connection, paths
):
    client = connection_client(connection=connection)

    with pytest.raises(ValueError, match="At most"):
        client.composite_reads(paths=paths)

    assert _api_calls(org_http) == []
