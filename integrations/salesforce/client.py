"""The only door to Salesforce.

It refreshes the access token when Salesforce says it expired, counts the API
calls it makes, and turns Salesforce's errors into two kinds of ours:
`SalesforceTransientError` (try again later) and `SalesforceRejectedError`
(Salesforce refused the request; record it, do not retry). It reads and it
describes; it has no way to create or delete a record.
"""

import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import requests
from django.conf import settings
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
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


class DailyLimitReached(SalesforceClientError):
    """The org's daily API allocation is spent; nothing more until it renews."""


class SessionRefused(SalesforceClientError):
    """A session refused again right after a refresh: an org setting, not us."""


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
    if not message:
        message = f"HTTP {status} from Salesforce"
        if isinstance(content, str) and content.strip().startswith("<"):
            message += " (an HTML page instead of a JSON error)"
    text = f"{code}: {message}" if code else message

    if code in TRANSIENT_CODES or (status is not None and status >= 500):
        return SalesforceTransientError(text, status=status, code=code)
    return SalesforceRejectedError(text, status=status, code=code)


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
        self._on_token_expired = on_token_expired
        self._batch_size = batch_size
        self._session = salesforce_session()
        self._sf = self._build()

    def _build(self) -> Salesforce:
        sf = Salesforce(
            instance_url=self.connection.instance_url,
            session_id=self.connection.access_token,
            version=settings.SALESFORCE_API_VERSION,
            session=self._session,
        )
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
                if error.code == "REQUEST_LIMIT_EXCEEDED":
                    raise self._limit_error(error) from exc
                raise error from exc
            except ValueError as exc:
                # An answer that is not JSON where JSON was due: a proxy's or
                # an outage's HTML page. The decoder's words mean nothing here.
                self.calls += 1
                raise SalesforceTransientError(
                    "HTTP 200 from Salesforce, non-JSON body", status=200
                ) from exc
            except requests.RequestException as exc:
                raise SalesforceTransientError(
                    f"Salesforce did not answer: {type(exc).__name__}"
                ) from exc
            self.calls += 1
            return result
        raise AssertionError("unreachable")

    def _limit_error(self, error: SalesforceClientError) -> SalesforceClientError:
        """Tell a spent daily allocation from too many long requests at once.

        Both answer 403 REQUEST_LIMIT_EXCEEDED; the usage figures, not the
        message, tell which: at or past the maximum, the day is spent.
        https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm
        """
        usage = self.api_usage or self._usage_from_limits()
        if usage is not None and usage[0] >= usage[1]:
            figures = f" ({usage[0]:,}/{usage[1]:,})" if usage[1] > 1 else ""
            return DailyLimitReached(
                f"Daily API allowance used up{figures}; syncs go on when it renews.",
                status=403,
                code=error.code,
            )
        return SalesforceTransientError(str(error), status=403, code=error.code)

    def _usage_from_limits(self) -> tuple[int, int] | None:
        """Ask /limits for the day's usage when no answer has told it yet."""
        if self._asking_limits:
            return None
        self._asking_limits = True
        try:
            daily = self._call(lambda sf: sf.limits()).get("DailyApiRequests", {})
            maximum, remaining = int(daily["Max"]), int(daily["Remaining"])
        except SalesforceClientError as exc:
            # /limits is a short call: refused for the limit too, the day is spent.
            return (1, 1) if exc.code == "REQUEST_LIMIT_EXCEEDED" else None
        except (KeyError, TypeError, ValueError):
            return None
        finally:
            self._asking_limits = False
        return maximum - remaining, maximum

    def _read(self, request: Callable[[Salesforce], T]) -> T:
        """Send a read, retrying passing failures with growing, jittered waits."""
        retrying = Retrying(
            retry=retry_if_exception_type(SalesforceTransientError),
            stop=stop_after_attempt(settings.SALESFORCE_TRANSIENT_ATTEMPTS),
            wait=wait_exponential_jitter(
                multiplier=settings.SALESFORCE_HTTP_BACKOFF_SECONDS,
                max=60,
                jitter=settings.SALESFORCE_HTTP_BACKOFF_SECONDS,
            ),
            reraise=True,
        )
        return retrying(self._call, request)

    def limits(self) -> dict[str, Any]:
        """Return the org's limits; `DailyApiRequests` has Max and Remaining."""
        return self._read(lambda sf: sf.limits())

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """Return (used, max) of the org's daily API requests, as last reported."""
        usage = self._sf.api_usage.get("api-usage")
        if usage is None:
            return None
        return usage.used, usage.total

    def describe(self, *, object_name: str) -> dict[str, Any]:
        return self._read(lambda sf: getattr(sf, object_name).describe())

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
        page = self._read(lambda sf: sf.query(soql, include_deleted=include_deleted))
        while True:
            records = _page_records(page)
            yield records
            done = page.get("done")
            if done is True:
                return
            if done is not False:
                raise SalesforceRejectedError(
                    f"Salesforce answered a query page with done={done!r}."
                )
            next_url = page.get("nextRecordsUrl")
            # The next page is on the instance we already call; a URL that
            # could lead elsewhere would carry our token with it.
            if not isinstance(next_url, str) or not next_url.startswith(
                "/services/data/"
            ):
                raise SalesforceRejectedError(
                    "Salesforce said the query was not done but gave no usable "
                    "next page."
                )
            page = self._read(
                lambda sf, url=next_url: sf.query_more(url, identifier_is_url=True)
            )

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
        results = self._call(
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
            page = self._call(
                lambda sf, q=soql: sf.query(q, include_deleted=include_deleted)
            )
            while True:
                for record in page.get("records") or []:
                    record.pop("attributes", None)
                    values[record["Id"]] = record
                next_url = page.get("nextRecordsUrl")
                if page.get("done", True) or not next_url:
                    break
                page = self._call(
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
