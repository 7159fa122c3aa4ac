"""Salesforce's OAuth 2.0 web-server flow with PKCE, and token refresh.

https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm
"""

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from tenacity import (
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

from integrations.salesforce.http import salesforce_session

SCOPES = "api refresh_token"

PRODUCTION_HOST = "login.salesforce.com"
SANDBOX_HOST = "test.salesforce.com"

# https://help.salesforce.com/s/articleView?id=sf.domain_name_url_formats.htm
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_MY_DOMAIN = re.compile(rf"^{_LABEL}\.my\.salesforce\.com$")
_SANDBOX_MY_DOMAIN = re.compile(rf"^{_LABEL}\.sandbox\.my\.salesforce\.com$")
_LIGHTNING = re.compile(rf"^({_LABEL})(\.sandbox)?\.lightning\.force\.com$")
# Where a token answer may point Trig, and so where its tokens may go.
_SALESFORCE_DOMAINS = (".salesforce.com", ".force.com")
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")

# The identity URL names the org and the user: /id/<org Id>/<user Id>.
# https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_using_openid.htm&type=5
_RECORD_ID = r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?"
_IDENTITY_PATH = re.compile(rf"^/id/(?=00D){_RECORD_ID}/{_RECORD_ID}/?$")


class LoginHostError(ValueError):
    """A login host we will not send a customer to."""


class OAuthError(Exception):
    """Salesforce refused an OAuth request."""

    def __init__(self, error: str, description: str = "") -> None:
        self.error = error
        self.description = description
        super().__init__(f"{error}: {description}" if description else error)

    @property
    def is_grant_gone(self) -> bool:
        # `invalid_grant` on a refresh means the grant itself is gone: the
        # user was deactivated, the app revoked, or a newer approval evicted it.
        return self.error == "invalid_grant"


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    refresh_token: str | None
    instance_url: str
    identity_url: str
    issued_at: datetime | None

    @property
    def org_id(self) -> str:
        return self.identity_url.rstrip("/").split("/")[-2]

    @property
    def user_id(self) -> str:
        return self.identity_url.rstrip("/").split("/")[-1]


@dataclass(frozen=True)
class Identity:
    username: str
    display_name: str


def login_host_normalize(*, raw: str, environment: str) -> str:
    """Return the login host for what a customer typed, or refuse it.

    Empty means the generic host of the environment. A Lightning browser URL
    is turned into its My Domain form, which is the API host.
    """
    text = raw.strip().lower()
    if not text:
        return SANDBOX_HOST if environment == "sandbox" else PRODUCTION_HOST
    if "://" not in text:
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = parts.port
    except ValueError as exc:
        raise LoginHostError(f"{raw!r} is not a URL.") from exc
    netloc = f"{host}:{port}" if port else host

    if netloc in {h.lower() for h in settings.SALESFORCE_EXTRA_LOGIN_HOSTS}:
        return netloc
    if port not in (None, 443) or parts.username or parts.password:
        raise _not_a_login_address(raw)

    lightning = _LIGHTNING.match(host)
    if lightning:
        suffix = ".sandbox.my.salesforce.com" if lightning[2] else ".my.salesforce.com"
        host = lightning[1] + suffix

    is_sandbox_host = host == SANDBOX_HOST or bool(_SANDBOX_MY_DOMAIN.match(host))
    is_production_host = host == PRODUCTION_HOST or (
        bool(_MY_DOMAIN.match(host)) and not is_sandbox_host
    )
    if environment == "sandbox" and is_sandbox_host:
        return host
    if environment == "production" and is_production_host:
        return host
    if is_sandbox_host or is_production_host:
        raise LoginHostError(
            f"{host} is a {'sandbox' if is_sandbox_host else 'production'} "
            f"address, but {environment} was chosen."
        )
    raise _not_a_login_address(raw)


def _not_a_login_address(raw: str) -> LoginHostError:
    return LoginHostError(
        f"{raw!r} is not a Salesforce login address. Use login.salesforce.com, "
        "test.salesforce.com or your My Domain (NAME.my.salesforce.com)."
    )


def is_salesforce_url(url: str) -> bool:
    """Tell whether a URL may be sent a token: HTTPS to a host of Salesforce
    (or one of SALESFORCE_EXTRA_LOGIN_HOSTS), with no user part in front of
    the host, which would make `x.salesforce.com:1@elsewhere` look like one.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != "https" or "@" in parts.netloc:
        return False
    netloc = f"{host}:{port}" if port else host
    if netloc in {h.lower() for h in settings.SALESFORCE_EXTRA_LOGIN_HOSTS}:
        return True
    return (
        port in (None, 443)
        and bool(_HOSTNAME.match(host))
        and host.endswith(_SALESFORCE_DOMAINS)
    )


def pkce_pair() -> tuple[str, str]:
    """Return a PKCE code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def authorize_url(
    *, login_host: str, state: str, code_challenge: str, redirect_uri: str
) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.SALESFORCE_CLIENT_ID,
            "redirect_uri": redirect_uri,
            "scope": SCOPES,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            # Always ask, so a customer can pick which org's user to connect.
            "prompt": "login consent",
        }
    )
    return f"https://{login_host}/services/oauth2/authorize?{query}"


def _token_request(*, login_host: str, data: dict[str, str]) -> dict:
    url = f"https://{login_host}/services/oauth2/token"
    payload = {
        "client_id": settings.SALESFORCE_CLIENT_ID,
        "client_secret": settings.SALESFORCE_CLIENT_SECRET,
        **data,
    }
    try:
        response = salesforce_session().post(
            url, data=payload, headers={"Accept": "application/json"}
        )
    except requests.RequestException as exc:
        raise OAuthError("unreachable", f"{login_host} did not answer: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise OAuthError(
            "bad_response", f"HTTP {response.status_code} without a JSON body"
        )
    if response.status_code != 200 or "access_token" not in body:
        raise OAuthError(
            str(body.get("error", "unknown_error")),
            str(body.get("error_description", "")),
        )
    return body


def _issued_at(value: object) -> datetime | None:
    """Read `issued_at`, milliseconds since the epoch; None if it is not one."""
    text = str(value)
    if not (text.isascii() and text.isdigit()):
        return None
    try:
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _token_response(body: dict) -> TokenResponse:
    for key in ("access_token", "instance_url", "id"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise OAuthError("bad_response", f"the token response has no {key}")
    if not isinstance(body.get("refresh_token") or "", str):
        raise OAuthError(
            "bad_response", "the token response's refresh_token is not text"
        )
    # Both are fetched with the access token, and the API is called at the
    # instance URL from then on: an address outside Salesforce gets nothing.
    for key in ("instance_url", "id"):
        if not is_salesforce_url(body[key]):
            raise OAuthError(
                "bad_response", f"{key} is not an HTTPS address of Salesforce"
            )
    if not _IDENTITY_PATH.match(urlsplit(body["id"]).path):
        raise OAuthError("bad_response", "the identity URL names no org and user")
    return TokenResponse(
        access_token=body["access_token"],
        refresh_token=body.get("refresh_token") or None,
        instance_url=body["instance_url"].rstrip("/"),
        identity_url=body["id"],
        issued_at=_issued_at(body.get("issued_at", "")),
    )


def code_exchange(
    *, login_host: str, code: str, code_verifier: str, redirect_uri: str
) -> TokenResponse:
    body = _token_request(
        login_host=login_host,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": code_verifier,
            "redirect_uri": redirect_uri,
        },
    )
    return _token_response(body)


def token_refresh(*, login_host: str, refresh_token: str) -> TokenResponse:
    # Refresh at the host that issued the grant: a My Domain org may refuse
    # the generic login host.
    body = _token_request(
        login_host=login_host,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
    )
    return _token_response(body)


def token_revoke(*, login_host: str, token: str) -> bool:
    """Revoke a token; a refresh token takes every session of its grant along.

    Returns False when Salesforce no longer knows the token, so nothing was
    left to revoke: it answers 400 (`invalid_token`) for every such token.
    https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_revoke_token.htm&type=5
    """
    url = f"https://{login_host}/services/oauth2/revoke"
    try:
        response = salesforce_session().post(url, data={"token": token})
    except requests.RequestException as exc:
        raise OAuthError("unreachable", f"{login_host} did not answer: {exc}") from exc
    if response.status_code == 200:
        return True
    if response.status_code == 400:
        return False
    raise OAuthError("revoke_failed", f"HTTP {response.status_code}")


# Statuses of an outage at Salesforce's edge, which pass.
_OUTAGE_STATUSES = frozenset({500, 502, 503, 504})


def _read_through_outages(url: str, **kwargs) -> requests.Response:
    """GET a plain resource outside the client, tried again through an
    outage as the client tries its reads.

    During a connect the authorization code is spent by now: a failure
    sends the customer through Salesforce's consent page again.
    """
    retrying = Retrying(
        retry=retry_if_exception_type(requests.RequestException)
        | retry_if_result(lambda response: response.status_code in _OUTAGE_STATUSES),
        stop=stop_after_attempt(settings.SALESFORCE_TRANSIENT_ATTEMPTS),
        wait=wait_exponential_jitter(
            multiplier=settings.SALESFORCE_HTTP_BACKOFF_SECONDS,
            max=10,
            jitter=settings.SALESFORCE_HTTP_BACKOFF_SECONDS,
        ),
        retry_error_callback=lambda state: state.outcome.result(),
    )
    return retrying(salesforce_session().get, url, **kwargs)


def identity_fetch(*, identity_url: str, access_token: str) -> Identity:
    """Return who the connecting user is."""
    try:
        response = _read_through_outages(
            identity_url, headers={"Authorization": f"Bearer {access_token}"}
        )
        body = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError) as exc:
        raise OAuthError("identity", "the identity URL gave no usable answer") from exc
    if not isinstance(body, dict):
        raise OAuthError("identity", "the identity URL gave no usable answer")
    username, display_name = body.get("username"), body.get("display_name")
    return Identity(
        username=username if isinstance(username, str) else "",
        display_name=display_name if isinstance(display_name, str) else "",
    )


def api_versions_fetch(*, instance_url: str) -> list[str]:
    """Return the API versions an org serves, such as "62.0".

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_versions.htm
    """
    unreadable = "the org's API versions could not be read"
    try:
        response = _read_through_outages(f"{instance_url.rstrip('/')}/services/data/")
        body = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError) as exc:
        raise OAuthError("versions", unreadable) from exc
    if not isinstance(body, list):
        raise OAuthError("versions", unreadable)
    return [str(item.get("version")) for item in body if isinstance(item, dict)]
