"""Token answers pointing somewhere Trig must not send a token."""

import re
from datetime import timedelta

import pytest
import responses
from django.urls import reverse
from django.utils import timezone

from integrations.models import PendingAuthorization, SalesforceConnection
from integrations.salesforce.client import SalesforceTransientError
from integrations.services import connection_refresh_token
from tests.factories import MembershipFactory, SalesforceConnectionFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "https://login.salesforce.com/services/oauth2/token"
ORG_ID = "00D5g000000XXXXEA4"
USER_ID = "0055g00000AbCdEAAV"
GOOD = {
    "access_token": f"{ORG_ID[:15]}!AQ.access",
    "refresh_token": "5Aep861.refresh",
    "instance_url": "https://acme.my.salesforce.com",
    "id": f"https://login.salesforce.com/id/{ORG_ID}/{USER_ID}",
    "token_type": "Bearer",
    "issued_at": "1717224000000",
}
HOSTILE = [
    {"id": f"https://login.salesforce.com:443@evil.example/id/{ORG_ID}/{USER_ID}"},
    {"id": f"http://login.salesforce.com/id/{ORG_ID}/{USER_ID}"},
    {"id": f"https://login.salesforce.com.evil.example/id/{ORG_ID}/{USER_ID}"},
    {"instance_url": "https://acme.my.salesforce.com:1@evil.example"},
    {"instance_url": "https://acme.my.salesforce.com:8443"},
    {"instance_url": "https://10.0.0.1"},
    {"id": f"https://login.salesforce.com/id/{'0' * 40}/{USER_ID}"},
    {"id": "https://login.salesforce.com/"},
    {"id": f"https://login.salesforce.com/id/{USER_ID}/{USER_ID}"},
]


@pytest.fixture
def member(client):
    membership = MembershipFactory()
    client.force_login(membership.user)
    return membership


@pytest.fixture
def identity():
    return {"username": "admin@acme.example", "display_name": "Admin"}


@pytest.fixture
def salesforce(identity):
    """Any host answering as Salesforce would, so that where Trig sends its
    requests is what decides the outcome."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(
            responses.GET,
            re.compile(r".*/services/data/$"),
            json=[{"version": "62.0"}],
        )
        mock.add(
            responses.GET,
            re.compile(r".*"),
            json=identity,
        )
        yield mock


def _callback(client, salesforce, answer: dict):
    """Start a connect and come back with Salesforce's token answer."""
    client.post(
        reverse("integrations:salesforce-connect"),
        {"environment": "production", "my_domain": ""},
    )
    state = PendingAuthorization.objects.get().state
    salesforce.add(responses.POST, TOKEN_URL, json={**GOOD, **answer})
    return client.get(
        reverse("integrations:salesforce-callback"), {"state": state, "code": "abc"}
    )


@pytest.mark.parametrize("answer", HOSTILE)
def test_it_sends_no_token_where_a_token_answer_points_outside_salesforce(
    client, member, salesforce, answer
):
    response = _callback(client, salesforce, answer)

    assert response.status_code == 400
    assert "Salesforce refused the connection" in response.content.decode()
    assert [call.request.url for call in salesforce.calls] == [TOKEN_URL]
    assert not SalesforceConnection.objects.exists()


@pytest.mark.parametrize("answer", HOSTILE[:6])
def test_a_refresh_pointing_outside_salesforce_changes_nothing(salesforce, answer):
    connection = SalesforceConnectionFactory(access_token="old")
    salesforce.add(responses.POST, TOKEN_URL, json={**GOOD, **answer})

    with pytest.raises(SalesforceTransientError):
        connection_refresh_token(connection=connection)

    connection.refresh_from_db()
    assert connection.access_token == "old"
    assert connection.instance_url == "https://acme.my.salesforce.com"
    assert connection.status == SalesforceConnection.Status.CONNECTED


@pytest.mark.parametrize("issued_at", ["9" * 30, 99999999999999999, "²", "soon"])
def test_an_issue_time_that_is_no_time_is_taken_as_now(
    client, member, salesforce, issued_at
):
    response = _callback(client, salesforce, {"issued_at": issued_at})

    connection = SalesforceConnection.objects.get()
    assert response.status_code == 302
    assert connection.token_issued_at > timezone.now() - timedelta(minutes=1)


@pytest.mark.parametrize(
    "answer",
    [{"access_token": {"token": "x"}}, {"access_token": 5}, {"refresh_token": ["x"]}],
)
def test_a_token_that_is_not_text_is_refused(client, member, salesforce, answer):
    response = _callback(client, salesforce, answer)

    assert response.status_code == 400
    assert "Salesforce refused the connection" in response.content.decode()
    assert not SalesforceConnection.objects.exists()


@pytest.mark.parametrize(
    "identity",
    [
        {"username": "a" * 300, "display_name": "Ann\x00 Admin" * 30},
        {"username": {"name": "admin"}, "display_name": 7},
    ],
)
def test_who_connected_is_kept_as_text_that_fits_its_columns(
    client, member, salesforce, identity
):
    response = _callback(client, salesforce, {})

    connection = SalesforceConnection.objects.get()
    assert response.status_code == 302
    for name in ("username", "user_display_name"):
        value = getattr(connection, name)
        assert "\x00" not in value and "{" not in value
        assert len(value) <= SalesforceConnection._meta.get_field(name).max_length
