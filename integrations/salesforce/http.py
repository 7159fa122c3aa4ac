"""The HTTP session every call to Salesforce goes through."""

import json
import re
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


class ForbiddenRequest(RuntimeError):
    """A request that could create or delete Salesforce records; never sent."""


_VERSION = r"/services/data/v\d+\.\d+"
_RECORD_ID = r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?"
_COLLECTION_UPDATE = re.compile(rf"{_VERSION}/composite/sobjects/?")
# Only the plain Composite resource; batch, tree and graph stay refused.
_COMPOSITE = re.compile(rf"{_VERSION}/composite/?")

# Every request that is not a plain read must match one of these. Trig only
# signs in and updates fields of existing records; it never creates, upserts
# or deletes. Reading through Bulk API 2.0 query jobs is allowed.
_ALLOWED_WRITES = (
    ("POST", re.compile(r"/services/oauth2/(?:authorize|token|revoke)/?")),
    ("POST", re.compile(rf"{_VERSION}/jobs/query/?")),
    # Aborting a query job.
    ("PATCH", re.compile(rf"{_VERSION}/jobs/query/{_RECORD_ID}/?")),
    # One record: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_update_fields.htm
    ("PATCH", re.compile(rf"{_VERSION}/sobjects/\w+/{_RECORD_ID}/?")),
    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
    ("PATCH", _COLLECTION_UPDATE),
    # Reads sent together, when every subrequest is a GET (checked below).
    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm
    ("POST", _COMPOSITE),
)
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def refuse_unless_read_or_update(request: requests.PreparedRequest) -> None:
    """Raise ForbiddenRequest for anything but a read, a sign-in or an update.

    POST to sObjects (a create), any DELETE, an upsert (PATCH to
    `/sobjects/X/ExternalIdField/value` or `/composite/sobjects/X/Field`),
    composite batch, tree and graph requests and Bulk ingest requests are
    all refused here, before they leave the machine. An sObject Collections
    update must name the Id of every record, or Salesforce would be asked
    for something else. A Composite request goes out only when every one of
    its subrequests is a GET: any other could create or delete records.
    """
    method = (request.method or "GET").upper()
    if method in _READS:
        return
    path = urlsplit(request.url or "").path
    allowed = any(
        method == allowed_method and pattern.fullmatch(path)
        for allowed_method, pattern in _ALLOWED_WRITES
    )
    if not allowed:
        raise ForbiddenRequest(
            f"Refused {method} {path}: Trig only updates existing Salesforce "
            "records; it never creates, upserts or deletes them."
        )
    if method == "PATCH" and _COLLECTION_UPDATE.fullmatch(path):
        try:
            records = json.loads(request.body or b"{}").get("records")
        except (ValueError, AttributeError):
            records = None
        if not isinstance(records, list) or not all(
            isinstance(record, dict) and (record.get("id") or record.get("Id"))
            for record in records
        ):
            raise ForbiddenRequest(
                f"Refused PATCH {path}: every record of an update needs its Id."
            )
    if method == "POST" and _COMPOSITE.fullmatch(path) and not _only_reads(request):
        raise ForbiddenRequest(
            f"Refused POST {path}: a composite request may hold GET subrequests "
            "only. Trig only updates existing Salesforce records; it never "
            "creates, upserts or deletes them."
        )


def _only_reads(request: requests.PreparedRequest) -> bool:
    """Tell whether a composite request's body holds GET subrequests only."""
    try:
        subrequests = json.loads(request.body or b"{}").get("compositeRequest")
    except (ValueError, AttributeError):
        return False
    return (
        isinstance(subrequests, list)
        and bool(subrequests)
        and all(
            isinstance(subrequest, dict) and subrequest.get("method") == "GET"
            for subrequest in subrequests
        )
    )


class _SalesforceAdapter(HTTPAdapter):
    """Apply a default timeout and, for the offline org, its own CA.

    Also the last check before a request leaves: only reads and updates of
    existing records go out (`refuse_unless_read_or_update`).
    """

    def __init__(self, *, timeout: float, ca_bundle: str | None, **kwargs):
        self._timeout = timeout
        self._ca_bundle = ca_bundle
        super().__init__(**kwargs)

    def send(self, request, **kwargs):
        refuse_unless_read_or_update(request)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        # The environment's REQUESTS_CA_BUNDLE would otherwise win over any
        # `verify` set on the session, so the offline org's CA is forced here.
        if self._ca_bundle:
            kwargs["verify"] = self._ca_bundle
        return super().send(request, **kwargs)


def _retry() -> Retry:
    # Only connections that could not be made: such a request never reached
    # Salesforce. Statuses and timeouts are the client's to retry, with its
    # own waits and its count of calls; retried here as well, each of its
    # tries would send several requests.
    return Retry(
        total=settings.SALESFORCE_HTTP_RETRIES,
        connect=settings.SALESFORCE_HTTP_RETRIES,
        read=0,
        status=0,
        other=0,
        allowed_methods=frozenset({"GET", "HEAD"}),
        backoff_factor=settings.SALESFORCE_HTTP_BACKOFF_SECONDS,
        backoff_jitter=settings.SALESFORCE_HTTP_BACKOFF_SECONDS,
        raise_on_status=False,
    )


def offline_org_hosts() -> list[str]:
    return list(settings.SALESFORCE_EXTRA_LOGIN_HOSTS)


def salesforce_session() -> requests.Session:
    """Return a session with timeouts and retries for calls to Salesforce."""
    session = requests.Session()
    timeout = settings.SALESFORCE_TIMEOUT_SECONDS
    # Plain HTTP too, so that no request escapes the write guard.
    for scheme in ("https://", "http://"):
        session.mount(
            scheme,
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
