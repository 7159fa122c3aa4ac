"""Connect a workspace to the offline org without a browser, for scripts."""

from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.urls import reverse

from integrations.models import SalesforceConnection
from integrations.salesforce.http import salesforce_session
from integrations.services import (
    ConnectError,
    authorization_complete,
    authorization_start,
)
from trig_crm.models import Workspace


def offline_org_connect(
    *,
    workspace: Workspace,
    user: AbstractBaseUser,
    login_host: str,
    environment: str = SalesforceConnection.Environment.PRODUCTION,
) -> SalesforceConnection:
    """Go through the OAuth round trip a browser would, pressing Allow.

    The same endpoints and checks as a customer's connection: state, PKCE,
    code exchange. Only the click on the consent page is scripted.
    """
    redirect_uri = settings.SITE_URL.rstrip("/") + reverse(
        "integrations:salesforce-callback"
    )
    url = authorization_start(
        user=user,
        workspace=workspace,
        environment=environment,
        login_host=login_host,
        redirect_uri=redirect_uri,
    )
    session = salesforce_session()
    consent = session.get(url, allow_redirects=False)
    if consent.status_code != 200:
        raise ConnectError(f"The consent page answered HTTP {consent.status_code}.")

    parts = urlsplit(url)
    form = {key: values[0] for key, values in parse_qs(parts.query).items()}
    answer = session.post(
        f"{parts.scheme}://{parts.netloc}{parts.path}",
        data={**form, "decision": "allow"},
        allow_redirects=False,
    )
    location = answer.headers.get("Location", "")
    if answer.status_code not in (302, 303) or not location.startswith(redirect_uri):
        raise ConnectError(
            f"The consent page did not send us back (HTTP {answer.status_code})."
        )

    callback = {
        key: values[0] for key, values in parse_qs(urlsplit(location).query).items()
    }
    connection, _ = authorization_complete(
        user=user,
        state=callback.get("state", ""),
        code=callback.get("code", ""),
        error=callback.get("error", ""),
        error_description=callback.get("error_description", ""),
    )
    return connection
