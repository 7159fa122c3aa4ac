from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.urls import reverse

from integrations.models import PendingAuthorization, SalesforceConnection, SyncRun
from integrations.offline_org import offline_org_connect
from integrations.sync.run import connection_sync
from tests.conftest import OFFLINE_HOST
from tests.factories import MembershipFactory, SalesforceConnectionFactory

pytestmark = pytest.mark.django_db

CONNECT_URL = reverse("integrations:salesforce-connect")
CALLBACK_URL = reverse("integrations:salesforce-callback")


@pytest.fixture
def member(client):
    membership = MembershipFactory()
    client.force_login(membership.user)
    return membership


def test_it_asks_a_visitor_to_sign_in_first(client):
    response = client.get(reverse("integrations:crm-settings"))

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_the_connect_page_leads_back_to_the_crm_settings(client, member):
    crm = reverse("integrations:crm-settings")

    page = client.get(CONNECT_URL).content.decode()

    assert f'<a href="{crm}">Settings → Integrations → CRM</a> → Add' in page
    assert f'<a href="{crm}">Cancel</a>' in page


def test_the_reconnect_page_leads_back_to_the_connection(client, member):
    connection = SalesforceConnectionFactory(workspace=member.workspace)
    detail = reverse("integrations:connection-detail", args=[connection.pk])

    page = client.get(CONNECT_URL, {"connection": connection.pk}).content.decode()

    assert "<title>Reconnect Salesforce" in page
    assert f'<a href="{detail}">Salesforce</a> → Reconnect' in page
    assert f'<a href="{detail}">Cancel</a>' in page


def test_it_sends_the_customer_to_the_org_with_state_pkce_and_scopes(client, member):
    response = client.post(
        CONNECT_URL,
        {"environment": "production", "my_domain": "https://acme.lightning.force.com"},
    )

    assert response.status_code == 302
    url = urlsplit(response["Location"])
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert url.netloc == "acme.my.salesforce.com"
    assert url.path == "/services/oauth2/authorize"
    assert query["scope"] == "api refresh_token"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == f"http://testserver{CALLBACK_URL}"
    pending = PendingAuthorization.objects.get()
    assert pending.state == query["state"]
    assert pending.user == member.user and pending.workspace == member.workspace


def test_it_uses_test_salesforce_com_for_a_sandbox(client, member):
    response = client.post(CONNECT_URL, {"environment": "sandbox", "my_domain": ""})

    assert urlsplit(response["Location"]).netloc == "test.salesforce.com"


def test_it_refuses_a_login_host_outside_salesforce_and_stores_nothing(client, member):
    response = client.post(
        CONNECT_URL, {"environment": "production", "my_domain": "https://evil.example"}
    )

    assert response.status_code == 200
    assert "is not a Salesforce login address" in response.content.decode()
    assert not PendingAuthorization.objects.exists()


def test_it_refuses_a_state_it_did_not_issue(client, member):
    response = client.get(CALLBACK_URL, {"state": "forged", "code": "abc"})

    assert response.status_code == 400
    assert (
        "unknown, expired or was started by someone else" in response.content.decode()
    )
    assert not SalesforceConnection.objects.exists()


def test_it_refuses_a_state_issued_to_another_user(client, member):
    client.post(CONNECT_URL, {"environment": "production", "my_domain": ""})
    state = PendingAuthorization.objects.get().state
    client.force_login(MembershipFactory().user)

    response = client.get(CALLBACK_URL, {"state": state, "code": "abc"})

    assert response.status_code == 400
    assert not SalesforceConnection.objects.exists()


def test_it_says_so_when_the_customer_denies_access(client, member):
    client.post(CONNECT_URL, {"environment": "production", "my_domain": ""})
    state = PendingAuthorization.objects.get().state

    response = client.get(
        CALLBACK_URL,
        {
            "state": state,
            "error": "access_denied",
            "error_description": "end-user denied authorization",
        },
    )

    assert response.status_code == 200
    assert "Access was denied in Salesforce" in response.content.decode()
    assert not SalesforceConnection.objects.exists()
    assert not PendingAuthorization.objects.exists()


def test_it_shows_a_customer_only_their_own_workspace_connections(client, member):
    own = SalesforceConnectionFactory(workspace=member.workspace)
    other = SalesforceConnectionFactory()

    listing = client.get(reverse("integrations:crm-settings")).content.decode()
    foreign = client.get(reverse("integrations:connection-detail", args=[other.pk]))

    assert own.org_id in listing and other.org_id not in listing
    assert foreign.status_code == 404


def test_the_reconnect_link_of_a_connection_fills_in_its_org(client, member):
    connection = SalesforceConnectionFactory(
        workspace=member.workspace,
        environment=SalesforceConnection.Environment.SANDBOX,
        login_host="acme--uat.sandbox.my.salesforce.com",
        status=SalesforceConnection.Status.RECONNECT_REQUIRED,
        status_reason="Salesforce no longer accepts Trig's access to this org.",
    )
    detail = client.get(
        reverse("integrations:connection-detail", args=[connection.pk])
    ).content.decode()
    link = f"{CONNECT_URL}?connection={connection.pk}"

    form = client.get(link).context["form"]
    response = client.post(link, {**form.initial})

    assert f'href="{link}"' in detail
    assert form.initial == {
        "environment": "sandbox",
        "my_domain": "https://acme--uat.sandbox.my.salesforce.com",
    }
    assert urlsplit(response["Location"]).netloc == connection.login_host


def test_the_reconnect_link_ignores_another_workspaces_connection(client, member):
    other = SalesforceConnectionFactory(login_host="other.my.salesforce.com")

    response = client.get(f"{CONNECT_URL}?connection={other.pk}")

    assert response.context["form"].initial == {}
    assert "other.my.salesforce.com" not in response.content.decode()


def test_a_run_of_chosen_objects_is_shown_as_such(client, member, org_http):
    connection = offline_org_connect(
        workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
    )
    chosen = connection_sync(connection=connection, object_names=["Contact"])
    whole = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    page = client.get(
        reverse("integrations:connection-detail", args=[connection.pk])
    ).content.decode()

    assert chosen.objects_asked == ["Contact"] and whole.objects_asked == []
    assert "<td>Full: Contact only</td>" in page
    assert "<td>Recent changes</td>" in page


@pytest.mark.parametrize("state", ["a\x00b", "x" * 65, "has spaces", "é" * 43])
def test_it_refuses_a_state_it_could_never_have_issued(client, member, state):
    client.post(CONNECT_URL, {"environment": "production", "my_domain": ""})

    response = client.get(CALLBACK_URL, {"state": state, "code": "abc"})

    assert response.status_code == 400
    assert (
        "unknown, expired or was started by someone else" in response.content.decode()
    )
    assert PendingAuthorization.objects.count() == 1


@pytest.mark.parametrize("connection", ["²", "٣", "1e3", "-1", "99999999999999999999"])
def test_a_reconnect_link_naming_no_connection_offers_a_new_connection(
    client, member, connection
):
    SalesforceConnectionFactory(workspace=member.workspace)

    response = client.get(CONNECT_URL, {"connection": connection})

    assert response.status_code == 200
    assert response.context["reconnecting"] is None
    assert response.context["form"].initial == {}


def test_a_callback_after_the_member_left_the_workspace_connects_nothing(
    client, member
):
    client.post(CONNECT_URL, {"environment": "production", "my_domain": ""})
    state = PendingAuthorization.objects.get().state
    MembershipFactory(user=member.user)
    member.delete()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as salesforce:
        response = client.get(CALLBACK_URL, {"state": state, "code": "abc"})

    assert response.status_code == 400
    assert len(salesforce.calls) == 0
    assert not SalesforceConnection.objects.exists()
