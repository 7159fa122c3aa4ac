"""The HTTP session every call to Salesforce goes through."""

from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


class _SalesforceAdapter(HTTPAdapter):
    """Apply a default timeout and, for the offline org, its own CA."""

    def __init__(self, *, timeout: float, ca_bundle: str | None, **kwargs):
        self._timeout = timeout
        self._ca_bundle = ca_bundle
        super().__init__(**kwargs)

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        # The environment's REQUESTS_CA_BUNDLE would otherwise win over any
        # `verify` set on the session, so the offline org's CA is forced here.
        if self._ca_bundle:
            kwargs["verify"] = self._ca_bundle
        return super().send(request, **kwargs)


def _retry() -> Retry:
    # Transport-level failures of idempotent calls: connection errors and the
    # gateway statuses an outage gives. Salesforce's own error codes are
    # classified by the client, not here.
    return Retry(
        total=settings.SALESFORCE_HTTP_RETRIES,
        connect=settings.SALESFORCE_HTTP_RETRIES,
        read=settings.SALESFORCE_HTTP_RETRIES,
        status=settings.SALESFORCE_HTTP_RETRIES,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        backoff_factor=settings.SALESFORCE_HTTP_BACKOFF_SECONDS,
        backoff_jitter=settings.SALESFORCE_HTTP_BACKOFF_SECONDS,
        raise_on_status=False,
        respect_retry_after_header=True,
    )


def offline_org_hosts() -> list[str]:
    return list(settings.SALESFORCE_EXTRA_LOGIN_HOSTS)


def salesforce_session() -> requests.Session:
    """Return a session with timeouts and retries for calls to Salesforce."""
    session = requests.Session()
    timeout = settings.SALESFORCE_TIMEOUT_SECONDS
    session.mount(
        "https://",
        _SalesforceAdapter(timeout=timeout, ca_bundle=None, max_retries=_retry()),
    )

    ca_bundle = settings.SALESFORCE_CA_BUNDLE or None
    for host in offline_org_hosts():
        session.mount(
            f"https://{host}/",
            _SalesforceAdapter(
                timeout=timeout, ca_bundle=ca_bundle, max_retries=_retry()
            ),
        )
    return session


def host_of(url: str) -> str:
    """Return `host[:port]` of a URL."""
    return urlsplit(url).netloc.lower()
