"""The only door to Salesforce.

It refreshes the access token when Salesforce says it expired, counts the API
calls it makes, and turns Salesforce's errors into two kinds of ours:
`SalesforceTransientError` (try again later) and `SalesforceRejectedError`
(Salesforce refused the request; record it, do not retry). It reads and it
describes; it has no way to create or delete a record.
"""

import codecs
import io
import logging
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote_plus

import requests
from django.conf import settings
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession
from tenacity import (
    Retrying,
    retry_if_exception,
    wait_exponential_jitter,
)

from integrations.models import SalesforceConnection
from integrations.salesforce.http import salesforce_session

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SalesforceClientError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: str = ""):
        self.status = status
        self.code = code
        super().__init__(message)


class SalesforceTransientError(SalesforceClientError):
    """A failure that may pass: an outage, a timeout, a lock."""


class SalesforceRejectedError(SalesforceClientError):
    """Salesforce refused the request; sending it again will not help."""


class ReconnectRequired(SalesforceClientError):
    """The OAuth grant is gone; the customer must connect the org again."""


class ApiLimitReached(SalesforceClientError):
    """Salesforce refuses more calls for now: stop at a checkpoint, go on later."""


class DailyLimitReached(ApiLimitReached):
    """The org's daily API allocation is spent; nothing more until it renews."""


class _RequestLimitBusy(SalesforceTransientError):
    """REQUEST_LIMIT_EXCEEDED while the day is not known to be spent."""


class ApiVersionRetired(SalesforceClientError):
    """Salesforce no longer serves the API version Trig is pinned to."""


class OrgSettingRefused(SalesforceClientError):
    """Refused because of how the org is set up: only its admin can change it."""


class SessionRefused(OrgSettingRefused):
    """A session refused again right after a refresh: an org setting, not us."""


class TransactionSecurityRefused(OrgSettingRefused):
    """The org's Transaction Security policies refused or timed out the call."""


class _PolicyMetering(SalesforceTransientError):
    """TXN_SECURITY_METERING_ERROR, tried once more before it is believed."""


# https://help.salesforce.com/s/articleView?id=sf.enhanced_transaction_security_exempt.htm
POLICY_METERING = "TXN_SECURITY_METERING_ERROR"
POLICY_ATTEMPTS = 2


# Error codes that name a passing condition rather than a bad request.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
TRANSIENT_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "SERVER_UNAVAILABLE",
        "QUERY_TIMEOUT",
        "REQUEST_RUNNING_TOO_LONG",
    }
)


def _error_from(exc: SalesforceError) -> SalesforceClientError:
    """Turn simple-salesforce's exception into one of ours, keeping the message."""
    status = getattr(exc, "status", None)
    content = getattr(exc, "content", None)
    code, message = "", ""
    # Salesforce's error bodies are a JSON list of {message, errorCode}; the
    # transport layer (414, 431, outages) answers with HTML instead.
    if isinstance(content, list) and content and isinstance(content[0], dict):
        code = str(content[0].get("errorCode", ""))
        message = str(content[0].get("message", ""))
    if isinstance(content, str):
        return _non_json(status)
    if not message:
        message = f"HTTP {status} from Salesforce"
    text = f"{code}: {message}" if code else message

    if code in TRANSIENT_CODES or (status is not None and status >= 500):
        return SalesforceTransientError(text, status=status, code=code)
    return SalesforceRejectedError(text, status=status, code=code)


def _non_json(status: int | None) -> SalesforceClientError:
    """Report an answer whose body is not JSON by its status alone.

    Such a page comes from in front of the API: an outage (5xx), a request
    too long for the proxy (414, 431), a maintenance or sign-in page sent
    with 200, or a body cut short. An outage passes and is tried again; any
    other would come back the same if the request were sent unchanged.
    https://help.salesforce.com/s/articleView?id=000386264&type=1
    """
    text = f"HTTP {status} from Salesforce, non-JSON body"
    if status is not None and status >= 500:
        return SalesforceTransientError(text, status=status)
    return SalesforceRejectedError(text, status=status)


def _page_records(page: Any) -> list[dict[str, Any]]:
    """Return a query page's records, refusing a page of another shape."""
    records = page.get("records") if isinstance(page, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise SalesforceRejectedError(
            "Salesforce answered a query with a malformed page."
        )
    for record in records:
        record.pop("attributes", None)
    return records


def _policy_refused(exc: SalesforceClientError) -> TransactionSecurityRefused:
    return TransactionSecurityRefused(
        "Salesforce's Transaction Security policies refused this "
        f"integration's calls ({exc}). A Salesforce admin must give the "
        'connected user the "Exempt from Transaction Security" '
        "permission, or change the policy; syncs go on once they have.",
        status=exc.status,
        code=exc.code,
    )


def daily_allowance_spent(usage: tuple[int, int]) -> str:
    """Say that the org's daily API allowance is spent, with its figures."""
    used, maximum = usage
    return f"Daily API allowance used up ({used:,}/{maximum:,})"


def _is_spent(usage: tuple[int, int]) -> bool:
    used, maximum = usage
    return used >= maximum


def _day_spent(
    usage: tuple[int, int], *, code: str = "REQUEST_LIMIT_EXCEEDED"
) -> "DailyLimitReached":
    return DailyLimitReached(
        f"{daily_allowance_spent(usage)}; syncs go on when it renews.",
        status=403,
        code=code,
    )


def _wait_before_retry(retry_state: Any) -> float:
    """Wait longer when the org has too many long requests running at once.

    Other failures pass within a second or two; long requests of the org's
    own users take seconds to minutes to end.
    https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm
    """
    failure = retry_state.outcome.exception() if retry_state.outcome else None
    is_busy = isinstance(failure, _RequestLimitBusy)
    wait = wait_exponential_jitter(
        multiplier=(
            settings.SALESFORCE_BUSY_BACKOFF_SECONDS
            if is_busy
            else settings.SALESFORCE_HTTP_BACKOFF_SECONDS
        ),
        max=300 if is_busy else 60,
        jitter=settings.SALESFORCE_HTTP_BACKOFF_SECONDS,
    )
    return wait(retry_state)


def retry_wait(seconds: float) -> None:
    """Wait between two tries of a read: the one place the client sleeps."""
    time.sleep(seconds)


def _stop_retrying(retry_state: Any) -> bool:
    """Stop after the allowed attempts; a policy refusal is tried only twice."""
    failure = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(failure, _PolicyMetering):
        return retry_state.attempt_number >= POLICY_ATTEMPTS
    return retry_state.attempt_number >= settings.SALESFORCE_TRANSIENT_ATTEMPTS


def _next_page_url(page: dict[str, Any]) -> tuple[str, SalesforceClientError | None]:
    """Return the next page's URL ("" at the end), or why the page is wrong."""
    done = page.get("done")
    if done is True:
        return "", None
    if done is not False:
        return "", SalesforceRejectedError(
            f"Salesforce answered a query page with done={done!r}."
        )
    next_url = page.get("nextRecordsUrl")
    # The next page is on the instance we already call; a URL that could lead
    # elsewhere would carry our token with it.
    if not isinstance(next_url, str) or not next_url.startswith("/services/data/"):
        return "", SalesforceRejectedError(
            "Salesforce said the query was not done but gave no usable next page."
        )
    return next_url, None


class _ReadAhead:
    """Ask for a query's next page in a thread while the caller stores this one.

    Only a plain 200 answer with a JSON object is taken; anything else (an
    expired session, a lock, an outage, no answer) is dropped, and the page
    is asked for again the usual way, with its refresh, retries and errors.
    The thread touches neither the database nor the token: it sends one GET
    with the headers of the moment, through a session of its own that goes
    through the same guard and reads the same usage figures.
    """

    def __init__(self, client: "SalesforceClient") -> None:
        self._client = client
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def start(self, next_url: str) -> None:
        client = self._client
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1)
        url = f"https://{client._sf.sf_instance}{next_url}"
        headers = dict(client._sf.headers)
        self._pending = self._executor.submit(
            _get_quietly, client._ahead_session(), url, headers
        )

    def take(self) -> dict[str, Any] | None:
        """Return the next page if it came whole, else None."""
        response = self._settle()
        if response is None or response.status_code != 200:
            return None
        try:
            body = response.json()
        except ValueError:
            # Asked again, it would come back the same.
            raise _non_json(response.status_code) from None
        return body if isinstance(body, dict) else None

    def _settle(self) -> requests.Response | None:
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        response = pending.result()
        if response is not None:
            # It reached Salesforce, whatever it says: a call of the run.
            self._client.calls += 1
        return response

    def close(self) -> None:
        # A page asked for and never used is still a call made.
        self._settle()
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def _get_quietly(
    session: requests.Session, url: str, headers: dict[str, str]
) -> requests.Response | None:
    try:
        return session.get(url, headers=headers)
    except requests.RequestException:
        return None


# Far beyond any org's daily allocation, and what the connection's columns hold.
MAX_API_USAGE = 2**31 - 1
_API_USAGE = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")


@dataclass(frozen=True)
class SubResponse:
    """One subrequest's answer inside a Composite request."""

    status: int
    body: Any

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_code(self) -> str:
        """The first errorCode of a failed subrequest's error list, if any."""
        if isinstance(self.body, list) and self.body and isinstance(self.body[0], dict):
            return str(self.body[0].get("errorCode", ""))
        return ""


def describe_path(object_name: str) -> str:
    """The describe resource of an object, relative to the API version's root."""
    SalesforceClient._check_names(object_name)
    return f"sobjects/{object_name}/describe"


# The org's own record: one per org, its Id the org's Id, its Name the
# company name set in Setup → Company Information.
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_organization.htm
ORG_NAME_SOQL = "SELECT Name FROM Organization LIMIT 1"


def org_name_path(org_id: str) -> str:
    """The org's own record with its Name only, relative to the API version's
    root. A record read, not a query: inside a Composite request it does not
    count against the five queries one may hold."""
    SalesforceClient._check_names(org_id)
    return f"sobjects/Organization/{org_id}?fields=Name"


def org_name_from(body: Any) -> str:
    """Return the Name of an Organization record as Salesforce gave it."""
    name = body.get("Name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise SalesforceRejectedError("Salesforce answered without the org's name.")
    return name.strip()


def query_path(*, soql: str, include_deleted: bool = False) -> str:
    """The query (or queryAll) resource running a statement, relative to the
    API version's root."""
    resource = "queryAll" if include_deleted else "query"
    return f"{resource}/?q={quote_plus(soql)}"


class SalesforceClient:
    """Reads one connection's org through simple-salesforce."""

    def __init__(
        self,
        *,
        connection: SalesforceConnection,
        on_token_expired: Callable[[SalesforceConnection], SalesforceConnection],
        batch_size: int | None = None,
    ) -> None:
        self.connection = connection
        self.calls = 0
        self._asking_limits = False
        # Whether /limits was asked because no answer told the usage.
        self._limits_asked = False
        # Off once Salesforce says too many long requests run at once.
        self._reads_ahead = True
        self._on_token_expired = on_token_expired
        self._batch_size = batch_size
        self._session = salesforce_session()
        self._usage: tuple[int, int] | None = None
        # The last `Warning` header Salesforce sent, if any.
        self.api_warning = ""
        self._session.hooks["response"].append(self._note_usage)
        # The status of the last answer on this session (not the read-ahead
        # one), for an answer whose body could not be read.
        self._last_status: int | None = None
        self._session.hooks["response"].append(self._note_status)
        self._read_ahead_session: requests.Session | None = None
        self._sf = self._build()

    def _ahead_session(self) -> requests.Session:
        """Return the session pages are read ahead through (see `_ReadAhead`)."""
        if self._read_ahead_session is None:
            self._read_ahead_session = salesforce_session()
            self._read_ahead_session.hooks["response"].append(self._note_usage)
        return self._read_ahead_session

    def _note_status(self, response: requests.Response, *args, **kwargs) -> None:
        self._last_status = response.status_code

    def _note_usage(self, response: requests.Response, *args, **kwargs) -> None:
        """Read the org's daily API usage off every answer, refusals included.

        The header may carry more elements (`per-app-api-usage`, `api-bursts`).
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm
        """
        found = _API_USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        # A figure no org has (an allocation of none, more digits than a
        # count holds) is a garbled header: taken as said, it would stop
        # every sync at once, or fail the run when it is stored.
        if (
            found
            and 0 < int(found[2]) <= MAX_API_USAGE
            and int(found[1]) <= (MAX_API_USAGE)
        ):
            self._usage = (int(found[1]), int(found[2]))
        # A deprecated API version still answers, with a warning that it will
        # stop: the only notice before it does.
        warning = response.headers.get("Warning")
        if warning:
            self.api_warning = warning

    def _build(self) -> Salesforce:
        sf = Salesforce(
            instance_url=self.connection.instance_url,
            session_id=self.connection.access_token,
            version=settings.SALESFORCE_API_VERSION,
            session=self._session,
            # Plain dicts, decoded by json's own C code: simple-salesforce's
            # default builds an OrderedDict for every record and attributes.
            object_pairs_hook=None,
        )
        # simple-salesforce asks for indented JSON, a larger answer to send
        # and to read; nothing here shows an answer to a person.
        sf.headers.pop("X-PrettyPrint", None)
        # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm
        if self._batch_size:
            sf.headers["Sforce-Query-Options"] = f"batchSize={self._batch_size}"
        return sf

    def _call(self, request: Callable[[Salesforce], T]) -> T:
        """Send one API call, refreshing the token and replaying it once on 401."""
        for attempt in (1, 2):
            try:
                result = request(self._sf)
            except SalesforceExpiredSession:
                self.calls += 1
                if attempt == 2:
                    # https://help.salesforce.com/s/articleView?id=sf.admin_sessions.htm
                    raise SessionRefused(
                        "Salesforce refused the session again right after it was "
                        "refreshed. The org probably locks sessions to the IP "
                        "address they started from (Setup → Session Settings → "
                        '"Lock sessions to the IP address from which they '
                        "originated\"); allow Trig's addresses or turn it off.",
                        status=401,
                        code="INVALID_SESSION_ID",
                    ) from None
                self.connection = self._on_token_expired(self.connection)
                self._sf = self._build()
                continue
            except SalesforceError as exc:
                self.calls += 1
                error = _error_from(exc)
                if error.status == 410 or error.code == "InvalidVersion":
                    # REST answers 410 Gone, Bulk 400 InvalidVersion.
                    raise ApiVersionRetired(
                        "Salesforce no longer serves API version "
                        f"{settings.SALESFORCE_API_VERSION}; update the pinned "
                        f"version (SALESFORCE_API_VERSION). ({error})",
                        status=error.status,
                        code=error.code,
                    ) from exc
                if error.code == "REQUEST_LIMIT_EXCEEDED":
                    raise self._limit_error(error) from exc
                if error.code == POLICY_METERING:
                    raise _PolicyMetering(
                        str(error), status=error.status, code=error.code
                    ) from exc
                raise error from exc
            except ValueError as exc:
                # An answer that is not JSON where JSON was due. The decoder's
                # words mean nothing here; the status says what came.
                self.calls += 1
                raise _non_json(self._last_status) from exc
            except requests.RequestException as exc:
                raise SalesforceTransientError(
                    f"Salesforce did not answer: {type(exc).__name__}"
                ) from exc
            self.calls += 1
            return result
        raise AssertionError("unreachable")

    def _call_once(self, request: Callable[[Salesforce], T]) -> T:
        """Send one API call that is not tried again.

        A Transaction Security refusal is then believed at once, and told as
        one, rather than left to pass for a failure that may pass.
        """
        try:
            return self._call(request)
        except _PolicyMetering as exc:
            raise _policy_refused(exc) from exc

    def _limit_error(self, error: SalesforceClientError) -> SalesforceClientError:
        """Tell a spent daily allocation from too many long requests at once.

        Both answer 403 REQUEST_LIMIT_EXCEEDED; the usage figures, not the
        message, tell which: at or past the maximum, the day is spent.
        https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm
        """
        usage = self.api_usage or self._usage_from_limits()
        if usage is not None and _is_spent(usage):
            return _day_spent(usage, code=error.code)
        # One long read fewer: pages are no longer read ahead.
        self._reads_ahead = False
        return _RequestLimitBusy(str(error), status=403, code=error.code)

    def _usage_from_limits(self) -> tuple[int, int] | None:
        """Ask /limits for the day's usage when no answer has told it yet."""
        if self._asking_limits:
            return None
        self._asking_limits = True
        try:
            daily = self._call(lambda sf: sf.limits()).get("DailyApiRequests", {})
            maximum, remaining = int(daily["Max"]), int(daily["Remaining"])
        except (
            SalesforceClientError,
            AttributeError,
            KeyError,
            TypeError,
            ValueError,
        ):
            return None
        finally:
            self._asking_limits = False
        self._usage = (maximum - remaining, maximum)
        return self._usage

    def api_usage_or_limits(self) -> tuple[int, int] | None:
        """Return the org's daily usage as last reported or, when no answer
        carried a readable `Sforce-Limit-Info` (a proxy that drops headers),
        as /limits tells it: asked once per client, so a run still knows its
        share. None when neither says, or before any call was answered.
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm
        """
        if self._usage is None and self.calls and not self._limits_asked:
            self._limits_asked = True
            self._usage_from_limits()
        return self._usage

    def _read(self, request: Callable[[Salesforce], T]) -> T:
        """Send a read, retrying passing failures with growing, jittered waits."""
        retrying = Retrying(
            # A query that timed out would time out again: the sync narrows it.
            retry=retry_if_exception(
                lambda exc: (
                    isinstance(exc, SalesforceTransientError)
                    and exc.code != "QUERY_TIMEOUT"
                )
            ),
            stop=_stop_retrying,
            wait=_wait_before_retry,
            sleep=retry_wait,
            reraise=True,
        )
        try:
            return retrying(self._call, request)
        except _PolicyMetering as exc:
            raise _policy_refused(exc) from exc
        except _RequestLimitBusy as exc:
            # Still refused after waiting: stop here and go on next run.
            raise ApiLimitReached(
                f"Salesforce kept refusing calls for its request limit ({exc}); "
                "the next run goes on from here.",
                status=403,
                code=exc.code,
            ) from exc

    def limits(self) -> dict[str, Any]:
        """Return the org's limits; `DailyApiRequests` has Max and Remaining."""
        return self._read(lambda sf: sf.limits())

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """Return (used, max) of the org's daily API requests, as last reported."""
        return self._usage

    def describe(self, *, object_name: str) -> dict[str, Any]:
        # The name goes into the request's path: `../limits` would reach
        # another resource.
        try:
            self._check_names(object_name)
        except ValueError as exc:
            raise SalesforceRejectedError(
                f"{object_name!r} is not a Salesforce API name; nothing was sent."
            ) from exc
        return self._read(lambda sf: getattr(sf, object_name).describe())

    def org_name(self) -> str:
        """Return the org's name, asked once and not tried again.

        For showing which org a connection is: a failure is the caller's to
        shrug off, and waiting out an outage for it is not worth a wait.
        """
        page = self._call_once(lambda sf: sf.query(ORG_NAME_SOQL))
        records = _page_records(page)
        return org_name_from(records[0] if records else None)

    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm
    MAX_COMPOSITE_SUBREQUESTS = 25
    MAX_COMPOSITE_QUERIES = 5

    def composite_reads(self, *, paths: list[str]) -> list[SubResponse]:
        """Send GET requests together as one Composite request: one API call.

        Each path is relative to the API version's root (`describe_path`,
        `query_path`). Returns each subrequest's status and body, in the
        order asked; a subrequest that failed carries Salesforce's error list
        as its body and raises nothing. A failure of the Composite request
        itself is retried and raised as for any read. At most 25 paths, of
        which at most 5 queries (query, queryAll and their next pages).
        """
        if not paths:
            return []
        if len(paths) > self.MAX_COMPOSITE_SUBREQUESTS:
            raise ValueError(
                f"At most {self.MAX_COMPOSITE_SUBREQUESTS} requests go in a composite."
            )
        if sum(path.startswith("query") for path in paths) > (
            self.MAX_COMPOSITE_QUERIES
        ):
            raise ValueError(
                f"At most {self.MAX_COMPOSITE_QUERIES} queries go in a composite."
            )

        root = f"/services/data/v{self._sf.sf_version}/"
        subrequests = []
        for number, path in enumerate(paths):
            subrequest: dict[str, Any] = {
                "method": "GET",
                "url": root + path,
                "referenceId": f"read{number}",
            }
            # Subrequests do not carry the composite request's own headers.
            if self._batch_size:
                subrequest["httpHeaders"] = {
                    "Sforce-Query-Options": f"batchSize={self._batch_size}"
                }
            subrequests.append(subrequest)
        body = {"allOrNone": False, "compositeRequest": subrequests}
        # Only reads inside, so sending it again after a passing failure is
        # as safe as any GET.
        answer = self._read(
            lambda sf: sf.restful("composite", method="POST", json=body)
        )

        replies = answer.get("compositeResponse") if isinstance(answer, dict) else None
        by_reference = {
            reply.get("referenceId"): reply
            for reply in replies or []
            if isinstance(reply, dict)
        }
        results = []
        for subrequest in subrequests:
            reply = by_reference.get(subrequest["referenceId"], {})
            status = reply.get("httpStatusCode")
            if not isinstance(status, int) or isinstance(status, bool):
                raise SalesforceRejectedError(
                    "Salesforce answered a composite request without an answer "
                    "to each of its requests."
                )
            results.append(SubResponse(status=status, body=reply.get("body")))
        return results

    def query_pages(
        self, *, soql: str, include_deleted: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the records of a query page by page, following nextRecordsUrl.

        The end is `done: true`, never a short page: Salesforce may return
        fewer records than the batch size asked for.
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
        """
        # queryAll also returns deleted and merged records (IsDeleted = true)
        # while they are in the recycle bin.
        _, pages = self.query_pages_sized(soql=soql, include_deleted=include_deleted)
        yield from pages

    # ------------------------------------------------------------ Writing
    # Updates of fields of records that exist, and the reads that go with
    # them. There is no method to create or delete a record, and the HTTP
    # session refuses such requests before they leave (see http.py).

    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
    MAX_UPDATE_RECORDS = 200
    # Ids per query when reading records back: 200 quoted Ids keep the
    # request line far below Salesforce's 16,384-byte limit.
    IDS_PER_QUERY = 200

    def update_records(
        self, *, object_name: str, records: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Update existing records with one sObject Collections call.

        Each record is `{"id": ..., field: value, ...}`, at most 200 of them.
        With allOrNone false each record succeeds or fails on its own; the
        answer is HTTP 200 with one result per record, in request order,
        and a failed result may carry no `id`: only its position ties it to
        its record. The results are returned as Salesforce gave them.
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
        """
        if not records:
            return []
        if len(records) > self.MAX_UPDATE_RECORDS:
            raise ValueError(
                f"At most {self.MAX_UPDATE_RECORDS} records go in one update."
            )
        self._check_names(object_name)
        payload = []
        for record in records:
            record_id = record.get("id")
            if not self._is_record_id(record_id):
                raise ValueError("Every record to update needs its Salesforce Id.")
            fields = {name: value for name, value in record.items() if name != "id"}
            self._check_names(*fields)
            payload.append(
                {"attributes": {"type": object_name}, "id": record_id, **fields}
            )

        body = {"allOrNone": False, "records": payload}
        results = self._call_once(
            lambda sf: sf.restful("composite/sobjects", method="PATCH", json=body)
        )
        if not isinstance(results, list) or not all(
            isinstance(result, dict) for result in results
        ):
            raise SalesforceRejectedError(
                "Salesforce answered an update with something other than a list "
                "of results."
            )
        return results

    def record_values(
        self,
        *,
        object_name: str,
        record_ids: list[str],
        field_names: list[str],
        include_deleted: bool = False,
    ) -> dict[str, dict[str, Any]]:
        """Return the current values of some fields of some records, by Id.

        With `include_deleted` the records are read through queryAll, which
        still finds deleted and merged records (IsDeleted, MasterRecordId)
        while they are in the recycle bin. A record that cannot be found is
        absent from the answer.
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_queryall.htm
        """
        self._check_names(object_name, *field_names)
        wanted = [record_id for record_id in record_ids if record_id]
        if not all(self._is_record_id(record_id) for record_id in wanted):
            raise ValueError("Only Salesforce Ids can be read back.")
        select = ", ".join(dict.fromkeys(["Id", *field_names]))

        values: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), self.IDS_PER_QUERY):
            chunk = wanted[start : start + self.IDS_PER_QUERY]
            quoted = ", ".join(f"'{record_id}'" for record_id in chunk)
            soql = f"SELECT {select} FROM {object_name} WHERE Id IN ({quoted})"
            page = self._call_once(
                lambda sf, q=soql: sf.query(q, include_deleted=include_deleted)
            )
            while True:
                for record in page.get("records") or []:
                    record.pop("attributes", None)
                    values[record["Id"]] = record
                next_url = page.get("nextRecordsUrl")
                if page.get("done", True) or not next_url:
                    break
                page = self._call_once(
                    lambda sf, url=next_url: sf.query_more(url, identifier_is_url=True)
                )
        return values

    @staticmethod
    def _is_record_id(value: Any) -> bool:
        return (
            isinstance(value, str)
            and len(value) in (15, 18)
            and value.isascii()
            and value.isalnum()
        )

    @staticmethod
    def _check_names(*names: str) -> None:
        """Refuse anything but API names, which go into paths and SOQL as is."""
        for name in names:
            if not (name and name.isascii() and name.replace("_", "").isalnum()):
                raise ValueError(f"Not a Salesforce API name: {name!r}")

    # ------------------------------------------------------------ Bulk API 2.0
    # Query jobs for full reads of large objects: a job, a few status reads
    # and CSV result pages cost a handful of calls where REST needs one per
    # 2,000 records.
    # https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/queries.htm

    def query_pages_sized(
        self, *, soql: str, include_deleted: bool = False
    ) -> tuple[int | None, Iterator[list[dict[str, Any]]]]:
        """Send a query's first call; return its `totalSize` and all its pages.

        The size comes with the first page, so choosing between REST and Bulk
        costs no call of its own. The pages are those `query_pages` yields.
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
        """
        first = self._read(lambda sf: sf.query(soql, include_deleted=include_deleted))
        return self.query_pages_from(first=first)

    def query_pages_from(
        self, *, first: Any
    ) -> tuple[int | None, Iterator[list[dict[str, Any]]]]:
        """Return a query's `totalSize` and all its pages from its first page.

        For a first page already received (inside a Composite request); the
        next pages are fetched as `query_pages_sized` fetches them.
        """
        total = first.get("totalSize") if isinstance(first, dict) else None
        return (total if isinstance(total, int) else None), self._pages_from(first)

    def _pages_from(self, page: Any) -> Iterator[list[dict[str, Any]]]:
        """Yield a query's pages from its first answer, following nextRecordsUrl.

        The end is `done: true`, never a short page: Salesforce may return
        fewer records than the batch size asked for. While a page is being
        stored, the next one is already asked for (see `_ReadAhead`).
        """
        ahead = _ReadAhead(self)
        # A locator that leads back to a page already read would be followed
        # until the run's budget is spent, run after run.
        followed: set[str] = set()
        try:
            while True:
                records = _page_records(page)
                next_url, refusal = _next_page_url(page)
                if next_url in followed:
                    next_url, refusal = (
                        "",
                        SalesforceRejectedError(
                            "Salesforce's next page of a query led back to a page "
                            "already read; the read stopped there."
                        ),
                    )
                followed.add(next_url)
                if next_url and self._reads_ahead:
                    ahead.start(next_url)
                yield records
                if refusal:
                    raise refusal
                if not next_url:
                    return
                page = ahead.take()
                if page is None and self.api_usage and _is_spent(self.api_usage):
                    # The page read ahead was refused for a spent day: asking
                    # again would only be refused again.
                    raise _day_spent(self.api_usage)
                page = page or self._read(
                    lambda sf, url=next_url: sf.query_more(url, identifier_is_url=True)
                )
        finally:
            ahead.close()

    def bulk_query_create(self, *, soql: str, include_deleted: bool = False) -> str:
        """Start a Bulk 2.0 query job and return its Id.

        https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_create_job.htm
        """
        body = {
            "operation": "queryAll" if include_deleted else "query",
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        # Not retried: a job created twice would be read twice.
        job = self._call_once(
            lambda sf: sf.restful("jobs/query", method="POST", json=body)
        )
        job_id = job.get("id") if isinstance(job, dict) else None
        if not self._is_record_id(job_id):
            raise SalesforceRejectedError("Salesforce created a query job without Id.")
        return job_id

    def bulk_query_state(self, *, job_id: str) -> dict[str, Any]:
        """Return a query job's status: `state`, and `errorMessage` if it failed.

        https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_one_job.htm
        """
        self._check_names(job_id)
        job = self._read(lambda sf: sf.restful(f"jobs/query/{job_id}"))
        if not isinstance(job, dict) or not isinstance(job.get("state"), str):
            raise SalesforceRejectedError("Salesforce answered a job status oddly.")
        return job

    def bulk_query_abort(self, *, job_id: str) -> None:
        """Abort a query job that has not ended, so it stops using the allocation.

        https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_abort_job.htm
        """
        self._check_names(job_id)
        body = {"state": "Aborted"}
        self._call_once(
            lambda sf: sf.restful(f"jobs/query/{job_id}", method="PATCH", json=body)
        )

    def bulk_query_results(
        self, *, job_id: str, max_records: int, locator: str | None
    ) -> "BulkResultsPage":
        """Open one CSV page of a finished job's results, to be read as it streams.

        https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm
        """
        self._check_names(job_id)
        params: dict[str, Any] = {"maxRecords": max_records}
        if locator:
            params["locator"] = locator
        url = f"jobs/query/{job_id}/results"
        response = self._read(
            lambda sf: sf._call_salesforce(
                "GET", sf.base_url + url, name=url, params=params, stream=True
            )
        )
        # Salesforce says "null" after the last page. A page without the
        # header cannot tell whether more follow: taken for the last, it
        # would leave the rest of the records unread and then marked deleted.
        next_locator = response.headers.get("Sforce-Locator")
        if next_locator is None or not next_locator.strip():
            response.close()
            raise SalesforceRejectedError(
                "Salesforce sent a Bulk result page without its Sforce-Locator "
                "header, so whether more pages follow is unknown.",
                status=response.status_code,
                code="BULK_LOCATOR_MISSING",
            )
        count = response.headers.get("Sforce-NumberOfRecords", "")
        return BulkResultsPage(
            next_locator=None if next_locator.strip() == "null" else next_locator,
            records=int(count) if count.isdigit() else None,
            lines=_text_lines(response.iter_content(chunk_size=64 * 1024)),
        )


class BulkResultsPage:
    """One page of CSV results: its declared row count and its text, by line."""

    def __init__(
        self, *, next_locator: str | None, records: int | None, lines: Iterator[str]
    ) -> None:
        self.next_locator = next_locator
        self.records = records
        self.lines = lines


def _text_lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Decode UTF-8 chunks into lines that keep their line ends, for `csv`.

    A line is cut only after a "\\n", so a "\\r\\n" never splits and a quoted
    field holding a line break reaches the CSV parser whole.
    """
    # A byte order mark, if the page opens with one, is not part of the header.
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    rest = ""
    for chunk in chunks:
        rest += decoder.decode(chunk)
        end = rest.rfind("\n") + 1
        if end:
            yield from io.StringIO(rest[:end], newline="")
            rest = rest[end:]
    rest += decoder.decode(b"", final=True)
    if rest:
        yield from io.StringIO(rest, newline="")
