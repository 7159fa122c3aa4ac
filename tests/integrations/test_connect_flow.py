from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.urls import reverse

from integrations.models import PendingAuthorization, SalesforceConnection
from tests.conftest import OFFLINE_HOST

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, member):
    client.force_login(member.user)
    return client


def _start(client) -> str:
    response = client.post(
        reverse("integrations:salesforce-connect"),
        {"environment": "production", "my_domain": f"https://{OFFLINE_HOST}"},
    )
    assert response.status_code == 302
    return response["Location"]


def _consent(authorize_url: str, decision: str) -> str:
    """Answer the org's consent page as a browser would; return the callback."""
    page = requests.get(authorize_url, allow_redirects=False)
    assert page.status_code == 200 and "Allow" in page.text
    parts = urlsplit(authorize_url)
    form = {key: values[0] for key, values in parse_qs(parts.query).items()}
    answer = requests.post(
        f"{parts.scheme}://{parts.netloc}{parts.path}",
        data={**form, "decision": decision},
        allow_redirects=False,
    )
    assert answer.status_code in (302, 303)
    callback = urlsplit(answer.headers["Location"])
    assert callback.path == reverse("integrations:salesforce-callback")
    return f"{callback.path}?{callback.query}"


def test_a_customer_connects_the_org_and_sees_it_connected(
    org, org_http, signed_in, member
):
    callback = _consent(_start(signed_in), "allow")

    response = signed_in.get(callback, follow=True)

    connection = SalesforceConnection.objects.get()
    page = response.content.decode()
    assert connection.workspace == member.workspace
    assert connection.org_id == org.org_id
    assert connection.user_id == org.connecting_user_id
    assert connection.instance_url == f"https://{OFFLINE_HOST}"
    assert connection.login_host == OFFLINE_HOST
    assert connection.refresh_token and connection.access_token
    assert "Salesforce connected" in page
    assert org.org_id in page and connection.username in page and "Production" in page
    assert not PendingAuthorization.objects.exists()


def test_connecting_the_same_org_again_updates_its_connection(org, org_http, signed_in):
    signed_in.get(_consent(_start(signed_in), "allow"))
    first_token = SalesforceConnection.objects.get().refresh_token

    signed_in.get(_consent(_start(signed_in), "allow"))

    assert SalesforceConnection.objects.count() == 1
    assert SalesforceConnection.objects.get().refresh_token != first_token


def test_connecting_an_org_again_warns_that_older_approvals_get_revoked(
    org, org_http, signed_in
):
    first = signed_in.get(_consent(_start(signed_in), "allow"), follow=True)

    again = signed_in.get(_consent(_start(signed_in), "allow"), follow=True)

    assert "Salesforce is connected." in first.content.decode()
    page = again.content.decode()
    assert "was already connected here" in page
    assert "revokes the oldest without notice" in page


def test_reconnecting_an_org_that_needed_it_says_so_without_a_warning(
    org, org_http, signed_in
):
    signed_in.get(_consent(_start(signed_in), "allow"))
    SalesforceConnection.objects.update(
        status=SalesforceConnection.Status.RECONNECT_REQUIRED
    )

    again = signed_in.get(_consent(_start(signed_in), "allow"), follow=True)

    page = again.content.decode()
    assert "is reconnected." in page
    assert "was already connected here" not in page
    assert SalesforceConnection.objects.get().status == (
        SalesforceConnection.Status.CONNECTED
    )


def test_a_customer_who_denies_access_is_told_and_nothing_is_stored(
    org, org_http, signed_in
):
    response = signed_in.get(_consent(_start(signed_in), "deny"))

    assert response.status_code == 200
    assert "Access was denied" in response.content.decode()
    assert not SalesforceConnection.objects.exists()


def test_a_wrong_pkce_verifier_is_refused_by_the_org_and_nothing_is_stored(
    org, org_http, signed_in
):
    authorize_url = _start(signed_in)
    pending = PendingAuthorization.objects.get()
    pending.code_verifier = "a-verifier-that-does-not-match-the-challenge-" + "x" * 20
    pending.save()

    response = signed_in.get(_consent(authorize_url, "allow"))

    assert response.status_code == 400
    assert "invalid code verifier" in response.content.decode()
    assert not SalesforceConnection.objects.exists()


def test_a_callback_cannot_be_replayed(org, org_http, signed_in):
    callback = _consent(_start(signed_in), "allow")
    signed_in.get(callback)
    SalesforceConnection.objects.all().delete()

    response = signed_in.get(callback)

    assert response.status_code == 400
    assert not SalesforceConnection.objects.exists()


def test_a_missing_pkce_verifier_ends_the_attempt_and_nothing_is_stored(
    org, org_http, signed_in
):
    authorize_url = _start(signed_in)
    PendingAuthorization.objects.update(code_verifier="")

    response = signed_in.get(_consent(authorize_url, "allow"))

    assert response.status_code == 400
    assert "PKCE verifier" in response.content.decode()
    assert not SalesforceConnection.objects.exists()
