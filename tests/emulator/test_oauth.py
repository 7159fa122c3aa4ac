import base64
import hashlib
import hmac
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from integrations.salesforce.emulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    OfflineOrg,
)
from integrations.salesforce.emulator.testing import mocked, mount
from tests.emulator.support import API, BASE_URL, error_code

AUTHORIZE = f"{BASE_URL}/services/oauth2/authorize"
TOKEN = f"{BASE_URL}/services/oauth2/token"
REVOKE = f"{BASE_URL}/services/oauth2/revoke"
CALLBACK = "http://127.0.0.1:8000/integrations/salesforce/callback"
VERIFIER = "a-verifier-of-enough-length-for-pkce-0123456789abcdefghijk"


def challenge_for(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_params(**overrides: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": CALLBACK,
        "state": "state-123",
        "scope": "api refresh_token",
        "code_challenge": challenge_for(VERIFIER),
        "code_challenge_method": "S256",
    } | overrides


def consent(decision: str, **overrides: str) -> requests.Response:
    return requests.post(
        AUTHORIZE,
        data=authorize_params(**overrides) | {"decision": decision},
        allow_redirects=False,
    )


def code_from(response: requests.Response) -> str:
    return parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]


def exchange(code: str, **overrides: str) -> requests.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "redirect_uri": CALLBACK,
        "code_verifier": VERIFIER,
    }
    form.update(overrides)
    return requests.post(TOKEN, data={k: v for k, v in form.items() if v})


def refresh(refresh_token: str) -> requests.Response:
    return requests.post(
        TOKEN,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },
    )


def test_it_shows_a_consent_page_naming_the_app_and_the_user(mock):
    response = requests.get(AUTHORIZE, params=authorize_params())

    assert response.status_code == 200
    assert "Allow access?" in response.text
    assert "Trig" in response.text and "Ada Admin" in response.text
    form = re.search(r"<form (.*?)</form>", response.text, re.S).group(0)
    assert 'method="post" action="/services/oauth2/authorize"' in form
    assert 'name="decision" value="allow"' in form
    assert 'name="decision" value="deny"' in form
    assert f'name="code_challenge" value="{challenge_for(VERIFIER)}"' in form


def test_it_runs_the_web_server_flow_with_pkce(mock, org):
    allowed = consent("allow")

    response = exchange(code_from(allowed))

    assert allowed.status_code == 302
    location = urlsplit(allowed.headers["Location"])
    assert location._replace(query="").geturl() == CALLBACK
    assert parse_qs(location.query)["state"] == ["state-123"]
    body = response.json()
    assert response.status_code == 200
    assert list(body) == [
        "access_token",
        "refresh_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ]
    assert body["instance_url"] == BASE_URL
    assert body["id"] == f"{BASE_URL}/id/{org.org_id}/{org.admin_user_id}"
    assert body["token_type"] == "Bearer"
    assert body["issued_at"].isdigit() and len(body["issued_at"]) == 13
    expected = hmac.new(
        DEFAULT_CLIENT_SECRET.encode(),
        (body["id"] + body["issued_at"]).encode(),
        hashlib.sha256,
    ).digest()
    assert base64.b64decode(body["signature"]) == expected


def test_it_lets_the_new_token_call_the_api(mock):
    body = exchange(code_from(consent("allow"))).json()

    response = requests.get(
        f"{API}/limits/", headers={"Authorization": f"Bearer {body['access_token']}"}
    )

    assert response.status_code == 200


@pytest.mark.parametrize("verifier", ["", "not-the-right-verifier"])
def test_it_refuses_a_missing_or_wrong_code_verifier(mock, verifier):
    response = exchange(code_from(consent("allow")), code_verifier=verifier)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "invalid code verifier",
    }


def test_it_accepts_a_code_only_once(mock):
    code = code_from(consent("allow"))
    exchange(code)

    response = exchange(code)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_it_refuses_a_redirect_uri_other_than_the_authorized_one(mock):
    response = exchange(code_from(consent("allow")), redirect_uri="https://evil.test/")

    assert response.status_code == 400
    assert response.json()["error"] == "redirect_uri_mismatch"


def test_it_sends_the_user_back_with_an_error_on_deny(mock):
    response = consent("deny")

    assert response.status_code == 302
    assert response.headers["Location"] == (
        f"{CALLBACK}?error=access_denied"
        "&error_description=end-user+denied+authorization&state=state-123"
    )


def test_it_shows_an_error_page_for_an_unknown_client(mock):
    response = requests.get(
        AUTHORIZE,
        params=authorize_params(client_id="someone-else"),
        allow_redirects=False,
    )

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")
    assert "invalid_client_id" in response.text
    assert "Location" not in response.headers


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_id": "someone-else"}, "invalid_client_id"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
    ],
)
def test_it_refuses_bad_clients_and_grant_types(mock, overrides, error):
    response = exchange(code_from(consent("allow")), **overrides)

    assert response.status_code == 400
    assert response.json()["error"] == error


def test_it_refreshes_without_a_new_refresh_token(mock, org):
    tokens = org.issue_tokens()

    response = refresh(tokens.refresh_token)

    body = response.json()
    assert response.status_code == 200
    assert "refresh_token" not in body
    assert body["access_token"] != tokens.access_token
    assert body["instance_url"] == BASE_URL


def test_it_rotates_refresh_tokens_when_asked(clock):
    org = OfflineOrg(clock=clock, rotate_refresh_tokens=True)
    tokens = org.issue_tokens()

    with mocked(org):
        first = refresh(tokens.refresh_token)
        again = refresh(tokens.refresh_token)
        second = refresh(first.json()["refresh_token"])

    assert first.status_code == 200
    assert again.json()["error"] == "invalid_grant"
    assert second.status_code == 200


def test_it_answers_invalid_session_after_tokens_expire(api, org, mock):
    org.expire_access_tokens()

    response = api.get(f"{API}/limits/")

    assert response.status_code == 401
    assert response.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    assert "Sforce-Limit-Info" not in response.headers


def test_it_refreshes_after_tokens_expire(mock, org):
    tokens = org.issue_tokens()
    org.expire_access_tokens()

    new_token = refresh(tokens.refresh_token).json()["access_token"]

    response = requests.get(
        f"{API}/limits/", headers={"Authorization": f"Bearer {new_token}"}
    )
    assert response.status_code == 200


def test_it_expires_a_session_left_unused(api, clock):
    clock.advance(hours=2, seconds=1)

    response = api.get(f"{API}/limits/")

    assert error_code(response) == "INVALID_SESSION_ID"


def test_it_refuses_refresh_after_grants_are_revoked(mock, org):
    tokens = org.issue_tokens()
    org.revoke_grants()

    response = refresh(tokens.refresh_token)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }


def test_it_revokes_a_refresh_token_and_its_sessions(mock, org):
    tokens = org.issue_tokens()

    revoked = requests.post(REVOKE, data={"token": tokens.refresh_token})

    assert revoked.status_code == 200
    assert refresh(tokens.refresh_token).json()["error"] == "invalid_grant"
    response = requests.get(
        f"{API}/limits/", headers={"Authorization": f"Bearer {tokens.access_token}"}
    )
    assert response.status_code == 401


def test_it_revokes_a_single_access_token(mock, org):
    tokens = org.issue_tokens()

    requests.post(REVOKE, data={"token": tokens.access_token})

    assert refresh(tokens.refresh_token).status_code == 200


def test_it_describes_the_user_at_the_identity_url(mock, org):
    body = exchange(code_from(consent("allow"))).json()

    response = requests.get(
        body["id"], headers={"Authorization": f"Bearer {body['access_token']}"}
    )

    identity = response.json()
    assert identity["user_id"] == org.admin_user_id
    assert identity["organization_id"] == org.org_id
    assert identity["display_name"] == "Ada Admin"
    assert identity["username"].startswith("ada.admin@")
    assert identity["urls"]["rest"] == f"{BASE_URL}/services/data/v{{version}}/"


def test_it_names_its_instance_and_refreshes_only_at_the_host_that_issued_the_grant(
    clock,
):
    org = OfflineOrg(clock=clock, instance_url="https://na139.salesforce.com/")
    other_host = "https://login.salesforce.com/services/oauth2/token"

    with mocked(org) as mock:
        mount(org, base_url="https://login.salesforce.com", mock=mock)
        body = exchange(code_from(consent("allow"))).json()
        elsewhere = requests.post(
            other_host,
            data={
                "grant_type": "refresh_token",
                "refresh_token": body["refresh_token"],
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
            },
        )
        at_issuer = refresh(body["refresh_token"])

    assert body["instance_url"] == "https://na139.salesforce.com"
    assert body["id"] == f"{BASE_URL}/id/{org.org_id}/{org.admin_user_id}"
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"] == "invalid_grant"
    assert at_issuer.status_code == 200
    assert at_issuer.json()["instance_url"] == "https://na139.salesforce.com"


def test_grants_kept_in_a_file_outlive_a_restart_and_sessions_do_not(clock, tmp_path):
    grants = tmp_path / "offline_org" / "grants.json"
    before = OfflineOrg(clock=clock, grants_path=grants)
    kept = before.issue_tokens()
    revoked = before.issue_tokens()
    before.auth.revoke(revoked.refresh_token)

    after = OfflineOrg(clock=clock, grants_path=grants)
    with mocked(after):
        old_session = requests.get(
            f"{API}/limits/", headers={"Authorization": f"Bearer {kept.access_token}"}
        )
        refreshed = refresh(kept.refresh_token)
        refused = refresh(revoked.refresh_token)

    assert old_session.status_code == 401
    assert refreshed.status_code == 200
    assert refused.json()["error"] == "invalid_grant"
    assert grants.stat().st_mode & 0o777 == 0o600


def test_a_rotated_refresh_token_is_the_one_kept(clock, tmp_path):
    grants = tmp_path / "grants.json"
    org = OfflineOrg(clock=clock, rotate_refresh_tokens=True, grants_path=grants)
    tokens = org.issue_tokens()
    with mocked(org):
        rotated = refresh(tokens.refresh_token).json()["refresh_token"]

    with mocked(OfflineOrg(clock=clock, grants_path=grants)):
        old = refresh(tokens.refresh_token)
        new = refresh(rotated)

    assert old.json()["error"] == "invalid_grant"
    assert new.status_code == 200


@pytest.mark.parametrize("content", ["{not json", '[{"grant_id": "a", "x": 1}]'])
def test_it_refuses_to_start_on_grants_it_cannot_read(clock, tmp_path, content):
    grants = tmp_path / "grants.json"
    grants.write_text(content)

    with pytest.raises(ValueError, match="grants at .*grants.json"):
        OfflineOrg(clock=clock, grants_path=grants)
