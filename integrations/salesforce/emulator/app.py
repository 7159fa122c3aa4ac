"""The offline org: a WSGI app that answers like Salesforce's REST API.

`OfflineOrg()` loads the sample org and serves OAuth (authorize, token,
revoke), identity, the API versions, describes, query/queryAll with paging,
/limits, record reads and record updates (one record, or sObject Collections;
see `writes`), Composite requests of reads (`composite`), getUpdated and
getDeleted (`replication`) and Bulk API 2.0 query jobs (`bulk`).
`OfflineOrg(generate={"contacts": 100_000}, seed=1)` adds a large generated
org (`generate`). Tests and scripts change its state through the methods
below, without HTTP, and switch faults on through `org.faults` (`faults`).
"""

from __future__ import annotations

import functools
import html
import json
import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from integrations.salesforce.emulator import composite, ids, replication
from integrations.salesforce.emulator.auth import (
    AuthServer,
    ConnectedApp,
    Tokens,
)
from integrations.salesforce.emulator.bulk import OLDEST_BULK_VERSION, BulkQueryJobs
from integrations.salesforce.emulator.errors import ApiError, OAuthError, not_found
from integrations.salesforce.emulator.faults import Faults
from integrations.salesforce.emulator.generate import generate_org
from integrations.salesforce.emulator.limits import (
    DEVELOPER_EDITION_DAILY_API_REQUESTS,
    ApiUsage,
)
from integrations.salesforce.emulator.loader import (
    DATA_DIR,
    new_store,
    organization_id,
)
from integrations.salesforce.emulator.objects import SYSTEM_FIELD_NAMES
from integrations.salesforce.emulator.query import QueryEngine
from integrations.salesforce.emulator.schema import (
    render_describe,
    render_global_entry,
    serialise,
)
from integrations.salesforce.emulator.store import Clock
from integrations.salesforce.emulator.writes import RecordWrites

DEFAULT_CLIENT_ID = "trig-offline-client"
DEFAULT_CLIENT_SECRET = "trig-offline-secret"

# API versions: 21.0-30.0 are retired and answer 410 Gone; 31.0-40.0 still
# answer but carry a deprecation warning.
# https://help.salesforce.com/s/articleView?id=000354473&type=1
OLDEST_VERSION = 31
NEWEST_VERSION = 62
RETIRED_VERSIONS = range(21, 31)
DEPRECATED_VERSIONS = range(31, 41)
DEPRECATION_WARNING = (
    '299 - "This API is deprecated and will be removed by Summer \'28."'
)

# A request line plus headers longer than this is refused before Salesforce
# reads it, with an HTML page.
# https://help.salesforce.com/s/articleView?id=000386264&type=1
MAX_REQUEST_HEAD_BYTES = 16_384
URI_TOO_LONG_PAGE = "<h1>Bad Message 414</h1><pre>reason: URI Too Long</pre>"

# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm
DEFAULT_BATCH_SIZE = 2_000
MIN_BATCH_SIZE = 200
# Query cursors live two days, and since API v56.0 a user may hold any
# number of them (before, ten, the oldest released first); the change holds
# for every API version.
# https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-apicursors.html
CURSOR_LIFETIME = timedelta(days=2)

JSON_TYPE = "application/json;charset=UTF-8"
_VERSION_RE = re.compile(r"(\d{2,3})\.0")
_SEASONS = ("Summer", "Winter", "Spring")

FieldVisibility = Callable[[str, str, str], bool]


def release_label(version: int) -> str:
    """Name the release of an API version: 31 is Summer '14, 62 Winter '25."""
    steps = version - 31
    return f"{_SEASONS[steps % 3]} '{14 + (steps + 2) // 3:02d}"


@dataclass
class _Cursor:
    rows: list[dict[str, Any]]
    batch_size: int
    # The most rows a page may hold for this query, whatever is asked.
    cap: int | None
    created_at: datetime
    user_id: str


class OfflineOrg:
    """A Salesforce org in memory, served as a WSGI app.

    One lock guards all state: each request is answered whole under it, and
    every method below takes it, so a threaded server and a test may share
    the org.
    """

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        app_name: str = "Trig",
        redirect_uris: Iterable[str] | None = None,
        clock: Clock | None = None,
        daily_api_requests: int = DEVELOPER_EDITION_DAILY_API_REQUESTS,
        session_timeout: timedelta | None = timedelta(hours=2),
        rotate_refresh_tokens: bool = False,
        field_visibility: FieldVisibility | None = None,
        load_sample: bool = True,
        data_dir: Path = DATA_DIR,
        generate: Mapping[str, int] | None = None,
        seed: int = 1,
        bulk_polls_to_complete: int = 0,
        instance_url: str | None = None,
        org_name: str | None = None,
        grants_path: Path | None = None,
    ) -> None:
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self.store = new_store(
            data_dir=data_dir, load_sample=load_sample, clock=self.clock, lock=self.lock
        )
        self.schema = self.store.schema
        # The org's Id is the Id of its Organization record.
        self.org_id = organization_id(self.store)
        self.user_ids = [user["Id"] for user in self.store.records("User")]
        if generate:
            generate_org(self.store, spec=generate, seed=seed, owners=self.user_ids)
            org_name = org_name or f"Generated Org (seed {seed})"
        if org_name:
            # Named so from the start: no change is recorded.
            with self.lock:
                _, organization = self.store.lookup(self.org_id)
                organization["Name"] = org_name
        # The user who signs in on the consent page: the admin.
        self.connecting_user_id = self.user_ids[0]

        self.auth = AuthServer(
            app=ConnectedApp(
                client_id=client_id,
                client_secret=client_secret,
                name=app_name,
                redirect_uris=None if redirect_uris is None else tuple(redirect_uris),
            ),
            org_id=self.org_id,
            clock=self.clock,
            lock=self.lock,
            session_timeout=session_timeout,
            rotate_refresh_tokens=rotate_refresh_tokens,
            grants_path=grants_path,
        )
        self.usage = ApiUsage(maximum=daily_api_requests, clock=self.clock)
        self.faults = Faults(
            lock=self.lock,
            expire_access_tokens=self.auth.expire_access_tokens,
            revoke_grants=self.auth.revoke_grants,
            spend_daily_limit=lambda: self.usage.set_used(self.usage.maximum),
        )
        self.bulk = BulkQueryJobs(
            lock=self.lock,
            usage=self.usage,
            faults=self.faults,
            clock=self.clock,
            polls_to_complete=bulk_polls_to_complete,
        )
        # How far getUpdated's and getDeleted's latestDateCovered trails the
        # clock, as changes still being committed do.
        self.replication_lag = timedelta(0)
        self._field_visibility = field_visibility
        self._hidden: set[tuple[str, str, str]] = set()
        # Record updates, and the faults tests switch on for them.
        self.writes = RecordWrites(
            schema=self.schema,
            store=self.store,
            lock=self.lock,
            is_visible=self.is_field_visible,
        )
        # The API host token answers name, when it is not the login host
        # asked (an org on its own pod, or behind a My Domain): the same org
        # then answers on both, mounted at each.
        self.instance_url = instance_url.rstrip("/") if instance_url else None
        self._cursors: dict[str, _Cursor] = {}
        self._cursor_sequence = 0
        self._url_map = _url_map()

    # ------------------------------------------------------------ Python API

    @property
    def admin_user_id(self) -> str:
        return self.user_ids[0]

    @property
    def org_name(self) -> str:
        return self.store.get(self.org_id)["Name"]

    def rename_org(self, name: str) -> None:
        """Rename the org, as its admin does in Setup → Company Information."""
        self.store.update(self.org_id, {"Name": name})

    def issue_tokens(self, *, user_id: str | None = None) -> Tokens:
        """Return tokens as if the user had connected through the browser."""
        return self.auth.issue_tokens(user_id=user_id or self.connecting_user_id)

    def expire_access_tokens(self) -> None:
        """End every session: API calls answer 401 until a refresh."""
        self.auth.expire_access_tokens()

    def revoke_grants(self) -> None:
        """Revoke every grant: refreshing answers invalid_grant."""
        self.auth.revoke_grants()

    def hide_field(
        self, sobject: str, field: str, *, user_id: str | None = None
    ) -> None:
        """Hide a field from a user, the connecting user by default.

        As field-level security does: describe omits it, queries refuse it.
        """
        sobject_type = self.schema.get(sobject)
        field_describe = sobject_type.field(field) if sobject_type else None
        if field_describe is None:
            raise KeyError(f"No such field {sobject}.{field}")
        if field_describe["name"] in SYSTEM_FIELD_NAMES:
            raise ValueError(f"{field_describe['name']} is visible to everyone")
        with self.lock:
            user = user_id or self.connecting_user_id
            self._hidden.add((user, sobject_type.name, field_describe["name"]))

    def show_field(
        self, sobject: str, field: str, *, user_id: str | None = None
    ) -> None:
        sobject_type = self.schema.get(sobject)
        field_describe = sobject_type.field(field) if sobject_type else None
        if field_describe is None:
            raise KeyError(f"No such field {sobject}.{field}")
        with self.lock:
            user = user_id or self.connecting_user_id
            self._hidden.discard((user, sobject_type.name, field_describe["name"]))

    def is_field_visible(self, *, user_id: str, sobject: str, field: str) -> bool:
        """Tell whether a user may read a field; names must be canonical."""
        if (user_id, sobject, field) in self._hidden:
            return False
        if self._field_visibility is not None:
            return field in SYSTEM_FIELD_NAMES or self._field_visibility(
                user_id, sobject, field
            )
        return True

    def set_api_usage(self, used: int) -> None:
        """Set how many API calls today's allocation has already spent."""
        with self.lock:
            self.usage.set_used(used)

    def set_bulk_usage(
        self, *, jobs: int | None = None, storage_mb: int | None = None
    ) -> None:
        """Set how many Bulk query jobs, and MB of results, today has used."""
        with self.lock:
            self.usage.set_bulk_usage(jobs=jobs, storage_mb=storage_mb)

    def touch_random(
        self, sobject: str, fraction: float, *, seed: int = 1
    ) -> list[str]:
        """Change a share of an object's live records now, as users would.

        Their LastModifiedDate and SystemModstamp move to the clock's time;
        the same seed picks the same records. Return their Ids.
        """
        if not 0 <= fraction <= 1:
            raise ValueError("fraction is between 0 and 1")
        with self.lock:
            live = [
                record["Id"]
                for record in self.store.rows(sobject)
                if not record.get("IsDeleted")
            ]
            chosen = random.Random(seed).sample(live, round(len(live) * fraction))
            for record_id in chosen:
                self.store.save_unchanged(record_id)
            return chosen

    # ------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        request = Request(environ)
        with self.lock:
            response = self._respond(request)
        return response(environ, start_response)

    def _respond(self, request: Request) -> Response:
        if _head_size(request) > MAX_REQUEST_HEAD_BYTES:
            return Response(
                URI_TOO_LONG_PAGE, status=414, content_type="text/html;charset=utf-8"
            )
        failure = self.faults.take_request_fault(
            method=request.method, path=request.path
        )
        if failure is not None:
            if failure.error is None:
                return Response(
                    failure.page,
                    status=failure.status,
                    content_type="text/html;charset=utf-8",
                )
            response = _json(failure.error.body(), failure.status)
            if request.path.startswith("/services/data/v"):
                response.headers["Sforce-Limit-Info"] = self.usage.header()
            return response

        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, arguments = adapter.match()
        except NotFound:
            if request.path.startswith("/services/"):
                return _json(not_found().body(), 404)
            return Response("Not Found", status=404, content_type="text/plain")
        except MethodNotAllowed as error:
            allowed = ",".join(sorted(error.valid_methods or []))
            message = (
                f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}"
            )
            return _json(ApiError(405, "METHOD_NOT_ALLOWED", message).body(), 405)
        except HTTPException as error:
            return error.get_response()

        if "version" in arguments:
            return self._api(request, endpoint, arguments)
        try:
            return getattr(self, f"_{endpoint}")(request, **arguments)
        except OAuthError as error:
            return _json(error.body(), error.status)

    # ------------------------------------------------------------ OAuth

    def _authorize(self, request: Request) -> Response:
        # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm&type=5
        params = request.form if request.method == "POST" else request.args
        app = self.auth.app
        if params.get("client_id") != app.client_id:
            return _error_page("invalid_client_id", "client identifier invalid")
        redirect_uri = params.get("redirect_uri", "")
        if not app.allows_redirect(redirect_uri):
            return _error_page(
                "redirect_uri_mismatch", "redirect_uri must match configuration"
            )

        state = params.get("state")
        if params.get("response_type") != "code":
            return _redirect(
                redirect_uri,
                error="unsupported_response_type",
                error_description="response type not supported",
                state=state,
            )
        challenge = params.get("code_challenge")
        if challenge and params.get("code_challenge_method", "S256") != "S256":
            return _redirect(
                redirect_uri,
                error="invalid_request",
                error_description="unsupported code challenge method",
                state=state,
            )

        if request.method == "GET":
            return self._consent_page(params)
        if params.get("decision") != "allow":
            return _redirect(
                redirect_uri,
                error="access_denied",
                error_description="end-user denied authorization",
                state=state,
            )
        code = self.auth.issue_code(
            user_id=self.connecting_user_id,
            redirect_uri=redirect_uri,
            scope=params.get("scope"),
            code_challenge=challenge or None,
        )
        return _redirect(redirect_uri, code=code, state=state)

    def _consent_page(self, params: Any) -> Response:
        user = self.store.get(self.connecting_user_id)
        hidden = "\n".join(
            f'<input type="hidden" name="{html.escape(key)}" '
            f'value="{html.escape(value)}">'
            for key, value in params.items(multi=True)
            if key != "decision"
        )
        page = _CONSENT_PAGE.format(
            app=html.escape(self.auth.app.name),
            user=html.escape(user["Name"]),
            username=html.escape(user["Username"]),
            hidden=hidden,
        )
        return Response(page, content_type="text/html;charset=utf-8")

    def _token(self, request: Request) -> Response:
        # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_endpoints.htm&type=5
        form = request.form
        grant_type = form.get("grant_type")
        if grant_type not in {"authorization_code", "refresh_token"}:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        app = self.auth.app
        if form.get("client_id") != app.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if form.get("client_secret") != app.client_secret:
            raise OAuthError("invalid_client", "invalid client credentials")

        if grant_type == "authorization_code":
            grant, tokens = self.auth.redeem_code(
                code=form.get("code", ""),
                redirect_uri=form.get("redirect_uri", ""),
                code_verifier=form.get("code_verifier"),
                host=request.host,
            )
        else:
            grant, tokens = self.auth.refresh(
                refresh_token=form.get("refresh_token", ""), host=request.host
            )

        base = _base_url(request)
        identity_url = f"{base}/id/{self.org_id}/{grant.user_id}"
        issued_at = str(int(self.clock().timestamp() * 1000))
        body: dict[str, Any] = {"access_token": tokens.access_token}
        if tokens.refresh_token is not None:
            body["refresh_token"] = tokens.refresh_token
        body |= {
            "signature": self.auth.signature(
                identity_url=identity_url, issued_at=issued_at
            ),
            "scope": grant.scope,
            "instance_url": self.instance_url or base,
            "id": identity_url,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }
        response = _json(body, 200)
        response.headers["Cache-Control"] = "no-cache,no-store"
        return response

    def _home(self, request: Request) -> Response:
        """Say what this is at the org's address, where Trig's link to the
        org leads, with the records it holds."""
        with self.store.lock:
            counts = [
                (name, self.store.count(name))
                for name in ("Account", "Contact", "Opportunity", "Lead", "User")
            ]
        title = html.escape(f"{self.org_name} ({self.org_id})")
        rows = "".join(
            f"<tr><th>{name}</th><td>{count:,}</td></tr>" for name, count in counts
        )
        page = (
            f"<!doctype html><meta charset=utf-8><title>{title}</title>"
            f"<h1>{title}</h1><p>The offline Salesforce org. A record's page is "
            f"at /&lt;its Id&gt;.</p><table>{rows}</table>"
        )
        return Response(page, content_type="text/html;charset=utf-8")

    def _record_page(self, request: Request, record_id: str) -> Response:
        """Show a record's fields at its address, as Salesforce shows a
        record at `https://<instance>/<Id>`, for links to it from Trig."""
        with self.store.lock:
            found = self.store.lookup(record_id)
            if found is None:
                return Response("Not Found", status=404, content_type="text/plain")
            object_name, record = found
            fields = sorted(
                (name, value) for name, value in record.items() if name != "attributes"
            )
        title = html.escape(f"{object_name} {record.get('Id', record_id)}")
        rows = "".join(
            f"<tr><th>{html.escape(name)}</th><td>{html.escape(_shown(value))}</td></tr>"
            for name, value in fields
        )
        page = (
            f"<!doctype html><meta charset=utf-8><title>{title}</title>"
            f"<h1>{title}</h1><p>The offline org's record, as it holds it now."
            f"</p><table>{rows}</table>"
        )
        return Response(page, content_type="text/html;charset=utf-8")

    def _revoke(self, request: Request) -> Response:
        # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_revoke_token.htm&type=5
        token = request.form.get("token") or request.args.get("token") or ""
        self.auth.revoke(token)
        return Response(status=200)

    def _identity(self, request: Request, org_id: str, user_id: str) -> Response:
        # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_using_openid.htm&type=5
        token = _bearer(request) or request.args.get("oauth_token", "")
        acting_user = self.auth.authenticate(token)
        if acting_user is None:
            return Response("Bad_OAuth_Token", status=403, content_type="text/plain")
        user = self.store.get(user_id)
        if ids.to_18(org_id) != self.org_id or user is None or "Username" not in user:
            return Response("Bad_Id", status=404, content_type="text/plain")

        base = _base_url(request)
        rest = f"{base}/services/data/v{{version}}/"
        body = {
            "id": f"{base}/id/{self.org_id}/{user['Id']}",
            "asserted_user": acting_user == user["Id"],
            "user_id": user["Id"],
            "organization_id": self.org_id,
            "username": user["Username"],
            "nick_name": user["Alias"],
            "display_name": user["Name"],
            "email": user["Email"],
            "email_verified": True,
            "first_name": user.get("FirstName"),
            "last_name": user["LastName"],
            "timezone": user.get("TimeZoneSidKey"),
            "photos": {
                "picture": f"{base}/profilephoto/005/F",
                "thumbnail": f"{base}/profilephoto/005/T",
            },
            "addr_street": None,
            "addr_city": None,
            "addr_state": None,
            "addr_country": None,
            "addr_zip": None,
            "mobile_phone": None,
            "mobile_phone_verified": False,
            "is_lightning_login_user": False,
            "status": {"created_date": None, "body": None},
            "urls": {
                "enterprise": f"{base}/services/Soap/c/{{version}}/{self.org_id}",
                "metadata": f"{base}/services/Soap/m/{{version}}/{self.org_id}",
                "partner": f"{base}/services/Soap/u/{{version}}/{self.org_id}",
                "rest": rest,
                "sobjects": f"{rest}sobjects/",
                "search": f"{rest}search/",
                "query": f"{rest}query/",
                "recent": f"{rest}recent/",
                "tooling_rest": f"{rest}tooling/",
                "profile": f"{base}/{user['Id']}",
                "feeds": f"{rest}chatter/feeds",
                "groups": f"{rest}chatter/groups",
                "users": f"{rest}chatter/users",
                "feed_items": f"{rest}chatter/feed-items",
                "feed_elements": f"{rest}chatter/feed-elements",
                "custom_domain": base,
            },
            "active": bool(user.get("IsActive")),
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_GB",
            "utcOffset": 0,
            "last_modified_date": user["LastModifiedDate"].strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "is_app_installed": True,
        }
        return _json(body, 200)

    def _versions(self, request: Request) -> Response:
        # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_versions.htm
        body = [
            {
                "label": release_label(version),
                "url": f"/services/data/v{version}.0",
                "version": f"{version}.0",
            }
            for version in range(OLDEST_VERSION, NEWEST_VERSION + 1)
        ]
        response = _json(body, 200)
        response.headers["Sforce-Limit-Info"] = self.usage.header()
        return response

    # ------------------------------------------------------------ REST API

    def _api(self, request: Request, endpoint: str, arguments: dict) -> Response:
        """Check version, token and allocation, then answer and count."""
        version_text = arguments.pop("version")
        match = _VERSION_RE.fullmatch(version_text)
        number = int(match.group(1)) if match else 0
        if number in RETIRED_VERSIONS:
            # Salesforce answers errorCode GONE; the message is our wording.
            message = f"API version {version_text} is retired"
            return _json(ApiError(410, "GONE", message).body(), 410)
        if not OLDEST_VERSION <= number <= NEWEST_VERSION:
            return _json(not_found().body(), 404)

        # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
        self.faults.before_api_call()
        user_id = self.auth.authenticate(_bearer(request))
        if user_id is None:
            error = ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            response = _json(error.body(), 401)
            response.headers["WWW-Authenticate"] = "Token"
            return response
        if self.usage.is_spent():
            error = ApiError(
                403, "REQUEST_LIMIT_EXCEEDED", self.faults.daily_limit_message
            )
            return self._with_usage(_json(error.body(), 403), number)

        self.usage.count_call()
        self.faults.count_api_call()
        context = _Context(
            request=request,
            user_id=user_id,
            version=f"{number}.0",
            base_path=f"/services/data/v{number}.0",
        )
        try:
            response = getattr(self, f"_api_{endpoint}")(context, **arguments)
        except ApiError as error:
            response = _json(error.body(), error.status)
        return self._with_usage(response, number)

    def _with_usage(self, response: Response, version: int) -> Response:
        response.headers["Sforce-Limit-Info"] = self.usage.header()
        if version in DEPRECATED_VERSIONS:
            response.headers["Warning"] = DEPRECATION_WARNING
        return response

    def _api_not_found(self, context: _Context, rest: str) -> Response:
        # The catch-all rule also meets known resources asked with a method
        # they do not take: those answer 405, as Salesforce does.
        adapter = self._url_map.bind_to_environ(context.request.environ)
        allowed = []
        for method in ("GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"):
            endpoint, _ = adapter.match(method=method)
            if endpoint != "not_found":
                allowed.append(method)
        if not allowed:
            raise not_found()
        message = (
            f"HTTP Method '{context.request.method}' not allowed. "
            f"Allowed are {','.join(allowed)}"
        )
        raise ApiError(405, "METHOD_NOT_ALLOWED", message)

    def _api_resources(self, context: _Context) -> Response:
        names = ("sobjects", "query", "queryAll", "limits", "jobs", "composite")
        return _json({name: f"{context.base_path}/{name}" for name in names}, 200)

    def _api_limits(self, context: _Context) -> Response:
        return _json(self.usage.limits(), 200)

    def _visible(self, user_id: str) -> Callable[[str, str], bool]:
        return lambda sobject, field: self.is_field_visible(
            user_id=user_id, sobject=sobject, field=field
        )

    def _api_global_describe(self, context: _Context) -> Response:
        # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_describeGlobal.htm
        base = _base_url(context.request)
        body = {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [
                render_global_entry(sobject, base_url=base, version=context.version)
                for sobject in self.schema
            ],
        }
        return _json(body, 200)

    def _api_sobject(self, context: _Context, sobject: str) -> Response:
        sobject_type = self._sobject_type(sobject)
        entry = render_global_entry(
            sobject_type, base_url=_base_url(context.request), version=context.version
        )
        return _json({"objectDescribe": entry, "recentItems": []}, 200)

    def _api_describe(self, context: _Context, sobject: str) -> Response:
        # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
        sobject_type = self._sobject_type(sobject)
        visible = self._visible(context.user_id)
        body = render_describe(
            sobject_type,
            base_url=_base_url(context.request),
            version=context.version,
            is_visible=lambda field: visible(sobject_type.name, field),
        )
        return _json(body, 200)

    def _api_record(self, context: _Context, sobject: str, record_id: str) -> Response:
        # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_retrieve_get.htm
        sobject_type = self._sobject_type(sobject)
        canonical = ids.to_18(record_id)
        if canonical is None or not canonical.startswith(sobject_type.key_prefix):
            raise ApiError(
                400,
                "MALFORMED_ID",
                f"Record ID: id value of incorrect type: {record_id}",
                fields=["Id"],
            )
        record = self.store.get(canonical)
        if record is None:
            raise not_found()
        if record.get("IsDeleted"):
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", fields=[])

        visible = self._visible(context.user_id)
        wanted = context.request.args.get("fields")
        if wanted:
            chosen = []
            for name in wanted.split(","):
                field_describe = sobject_type.field(name.strip())
                if field_describe is None or not visible(
                    sobject_type.name, field_describe["name"]
                ):
                    message = (
                        f"No such column '{name.strip()}' on entity "
                        f"'{sobject_type.name}'"
                    )
                    raise ApiError(400, "INVALID_FIELD", message)
                chosen.append(field_describe)
        else:
            chosen = [
                field_describe
                for field_describe in sobject_type.describe["fields"]
                if field_describe["type"] not in {"address", "location"}
                and visible(sobject_type.name, field_describe["name"])
            ]
        body: dict[str, Any] = {
            "attributes": {
                "type": sobject_type.name,
                "url": f"{context.base_path}/sobjects/{sobject_type.name}/{canonical}",
            }
        }
        for field_describe in chosen:
            body[field_describe["name"]] = serialise(
                field_describe, record.get(field_describe["name"])
            )
        return _json(body, 200)

    def _api_record_update(
        self, context: _Context, sobject: str, record_id: str
    ) -> Response:
        self.writes.update_record(
            user_id=context.user_id,
            sobject=sobject,
            record_id=record_id,
            body=context.request.get_data(),
        )
        return Response(status=204)

    def _api_collection_update(self, context: _Context) -> Response:
        results = self.writes.update_collection(
            user_id=context.user_id, body=context.request.get_data()
        )
        return _json(results, 200)

    def _api_query(self, context: _Context) -> Response:
        return self._run_query(context, include_deleted=False)

    def _api_query_all(self, context: _Context) -> Response:
        return self._run_query(context, include_deleted=True)

    def _api_query_more(self, context: _Context, locator: str) -> Response:
        return self._next_page(context, locator)

    def _api_query_all_more(self, context: _Context, locator: str) -> Response:
        return self._next_page(context, locator)

    def _api_updated(self, context: _Context, sobject: str) -> Response:
        body = replication.updated(
            self.store,
            self._sobject_type(sobject),
            start=context.request.args.get("start"),
            end=context.request.args.get("end"),
            now=self.clock(),
            lag=self.replication_lag,
        )
        return _json(body, 200)

    def _api_deleted(self, context: _Context, sobject: str) -> Response:
        body = replication.deleted(
            self.store,
            self._sobject_type(sobject),
            start=context.request.args.get("start"),
            end=context.request.args.get("end"),
            now=self.clock(),
            lag=self.replication_lag,
        )
        return _json(body, 200)

    # ------------------------------------------------------------ Composite

    def _api_composite(self, context: _Context) -> Response:
        # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm
        all_or_none, subrequests = composite.parse(context.request.get_data())
        routes = [self._route(context, subrequest) for subrequest in subrequests]
        composite.check_queries([endpoint for endpoint, _, _ in routes])

        # The whole series is the one API call `_api` counted already.
        replies = []
        for subrequest, (endpoint, arguments, inner) in zip(
            subrequests, routes, strict=True
        ):
            status, body, headers = self._run_subrequest(
                inner, subrequest, endpoint, arguments
            )
            replies.append(
                composite.reply(
                    reference_id=subrequest.reference_id,
                    status=status,
                    body=body,
                    headers=headers,
                )
            )
        failed = [reply for reply in replies if reply["httpStatusCode"] >= 400]
        if all_or_none and failed:
            for reply in replies:
                if reply is not failed[0]:
                    reply.update(httpStatusCode=400, body=composite.halted())
        return _json({"compositeResponse": replies}, 200)

    def _route(
        self, context: _Context, subrequest: composite.Subrequest
    ) -> tuple[str, dict[str, Any], _Context]:
        """Find the resource a subrequest asks for; refuse what cannot run."""
        builder = EnvironBuilder(
            path=subrequest.url,
            base_url=context.request.host_url,
            method=subrequest.method,
            headers=subrequest.headers,
        )
        try:
            request = Request(builder.get_environ())
        finally:
            builder.close()
        if subrequest.method != "GET" or not request.path.startswith(
            "/services/data/v"
        ):
            raise composite.unsupported(subrequest)
        try:
            endpoint, arguments = self._url_map.bind_to_environ(request.environ).match()
        except HTTPException:
            raise composite.unsupported(subrequest) from None
        if endpoint not in composite.SUPPORTED_ENDPOINTS:
            raise composite.unsupported(subrequest)

        # A subrequest may not ask for a newer API version than its request.
        match = _VERSION_RE.fullmatch(arguments.pop("version"))
        number = int(match.group(1)) if match else 0
        if not OLDEST_VERSION <= number <= float(context.version):
            raise composite.unsupported(subrequest)
        inner = _Context(
            request=request,
            user_id=context.user_id,
            version=f"{number}.0",
            base_path=f"/services/data/v{number}.0",
        )
        return endpoint, arguments, inner

    def _run_subrequest(
        self,
        context: _Context,
        subrequest: composite.Subrequest,
        endpoint: str,
        arguments: dict[str, Any],
    ) -> tuple[int, Any, dict[str, str]]:
        failure = self.faults.take_request_fault(
            method=subrequest.method, path=context.request.path, is_subrequest=True
        )
        if failure is not None and failure.error is not None:
            return failure.status, failure.error.body(), {}
        try:
            response = getattr(self, f"_api_{endpoint}")(context, **arguments)
        except ApiError as error:
            return error.status, error.body(), {}
        text = response.get_data(as_text=True)
        headers = {
            name: value
            for name, value in response.headers.items()
            if name.lower() not in {"content-type", "content-length"}
        }
        return response.status_code, json.loads(text) if text else None, headers

    # ------------------------------------------------------------ Bulk API 2.0

    def _api_bulk_create(self, context: _Context) -> Response:
        self._check_bulk_version(context)
        job = self.bulk.create(
            engine=self._engine(context),
            user_id=context.user_id,
            version=context.version,
            body=context.request.get_data(),
        )
        return _json(job.info(full=False), 200)

    def _api_bulk_jobs(self, context: _Context) -> Response:
        self._check_bulk_version(context)
        records = [job.info(full=True) for job in self.bulk.all()]
        return _json({"done": True, "records": records, "nextRecordsUrl": None}, 200)

    def _api_bulk_job(self, context: _Context, job_id: str) -> Response:
        self._check_bulk_version(context)
        return _json(self.bulk.poll(job_id).info(full=True), 200)

    def _api_bulk_abort(self, context: _Context, job_id: str) -> Response:
        self._check_bulk_version(context)
        job = self.bulk.abort(job_id, body=context.request.get_data())
        return _json(job.info(full=False), 200)

    def _api_bulk_delete(self, context: _Context, job_id: str) -> Response:
        self._check_bulk_version(context)
        self.bulk.delete(job_id)
        return Response(status=204)

    def _api_bulk_results(self, context: _Context, job_id: str) -> Response:
        # https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm
        self._check_bulk_version(context)
        page = self.bulk.results(
            job_id,
            max_records=context.request.args.get("maxRecords"),
            locator=context.request.args.get("locator"),
        )
        response = Response(page.body, status=200, content_type="text/csv")
        response.headers["Sforce-Locator"] = page.next_locator or "null"
        response.headers["Sforce-NumberOfRecords"] = str(page.records)
        return response

    def _check_bulk_version(self, context: _Context) -> None:
        if float(context.version) < OLDEST_BULK_VERSION:
            raise not_found()

    def _sobject_type(self, name: str) -> Any:
        sobject_type = self.schema.get(name)
        if sobject_type is None:
            raise not_found()
        return sobject_type

    # ------------------------------------------------------------ Queries

    def _run_query(self, context: _Context, *, include_deleted: bool) -> Response:
        # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
        text = context.request.args.get("q")
        if not text:
            raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        result = self._engine(context).run(
            text,
            include_deleted=include_deleted,
            check=lambda plan: self.faults.check_query(plan, now=self.clock()),
        )
        if result.rows is None:
            return _json(
                {"totalSize": result.total_size, "done": True, "records": []}, 200
            )

        batch_size = _batch_size(context.request, default=DEFAULT_BATCH_SIZE)
        if result.max_batch_size is not None:
            batch_size = min(batch_size, result.max_batch_size)
        fits = len(result.rows) <= batch_size
        if fits and not self.faults.has_short_page(rows=len(result.rows)):
            body = {
                "totalSize": result.total_size,
                "done": True,
                "records": result.rows[:],
            }
            return _json(body, 200)

        self._release_cursors()
        self._cursor_sequence += 1
        locator = ids.make_id("01g", self._cursor_sequence)
        self._cursors[locator] = _Cursor(
            rows=result.rows,
            batch_size=batch_size,
            cap=result.max_batch_size,
            created_at=self.clock(),
            user_id=context.user_id,
        )
        return self._page(context, locator, offset=0, batch_size=batch_size)

    def _engine(self, context: _Context) -> QueryEngine:
        return QueryEngine(
            schema=self.schema,
            store=self.store,
            is_visible=self._visible(context.user_id),
            today=self.clock().astimezone(UTC).date(),
            base_path=context.base_path,
        )

    def _release_cursors(self) -> None:
        """Drop expired cursors."""
        now = self.clock()
        for locator, cursor in list(self._cursors.items()):
            if now - cursor.created_at > CURSOR_LIFETIME:
                del self._cursors[locator]

    def _next_page(self, context: _Context, locator_and_offset: str) -> Response:
        locator, _, offset_text = locator_and_offset.rpartition("-")
        cursor = self._cursors.get(locator)
        is_live = (
            cursor is not None
            and cursor.user_id == context.user_id
            and self.clock() - cursor.created_at <= CURSOR_LIFETIME
        )
        if not is_live or not offset_text.isdigit():
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        offset = int(offset_text)
        if not 0 < offset < len(cursor.rows):
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        # A page asks again for a size or keeps the one the query asked for.
        batch_size = _batch_size(context.request, default=cursor.batch_size)
        if cursor.cap is not None:
            batch_size = min(batch_size, cursor.cap)
        return self._page(context, locator, offset=offset, batch_size=batch_size)

    def _page(
        self, context: _Context, locator: str, *, offset: int, batch_size: int
    ) -> Response:
        cursor = self._cursors[locator]
        end = offset + self.faults.take_short_page(
            wanted=batch_size, remaining=len(cursor.rows) - offset
        )
        body: dict[str, Any] = {
            "totalSize": len(cursor.rows),
            "done": end >= len(cursor.rows),
        }
        if not body["done"]:
            # queryAll pages are fetched from /query/ too.
            body["nextRecordsUrl"] = f"{context.base_path}/query/{locator}-{end}"
        body["records"] = cursor.rows[offset:end]
        return _json(body, 200)


@dataclass(frozen=True)
class _Context:
    request: Request
    user_id: str
    version: str
    base_path: str


@functools.cache
def _url_map() -> Map:
    # Built once: compiling the rules costs more than loading the sample org.
    data = "/services/data/v<version>"
    rules = [
        Rule(
            "/services/oauth2/authorize", endpoint="authorize", methods=["GET", "POST"]
        ),
        Rule("/services/oauth2/token", endpoint="token", methods=["POST"]),
        Rule("/services/oauth2/revoke", endpoint="revoke", methods=["GET", "POST"]),
        Rule("/id/<org_id>/<user_id>", endpoint="identity", methods=["GET", "POST"]),
        Rule("/services/data/", endpoint="versions", methods=["GET"]),
        Rule(f"{data}/", endpoint="resources", methods=["GET"]),
        Rule(f"{data}/limits/", endpoint="limits", methods=["GET"]),
        Rule(f"{data}/sobjects/", endpoint="global_describe", methods=["GET"]),
        Rule(f"{data}/sobjects/<sobject>/", endpoint="sobject", methods=["GET"]),
        Rule(
            f"{data}/sobjects/<sobject>/describe/",
            endpoint="describe",
            methods=["GET"],
        ),
        Rule(
            f"{data}/sobjects/<sobject>/<record_id>",
            endpoint="record",
            methods=["GET"],
        ),
        Rule(
            f"{data}/sobjects/<sobject>/<record_id>",
            endpoint="record_update",
            methods=["PATCH"],
        ),
        Rule(
            f"{data}/composite/sobjects",
            endpoint="collection_update",
            methods=["PATCH"],
        ),
        Rule(f"{data}/composite", endpoint="composite", methods=["POST"]),
        Rule(
            f"{data}/sobjects/<sobject>/updated/", endpoint="updated", methods=["GET"]
        ),
        Rule(
            f"{data}/sobjects/<sobject>/deleted/", endpoint="deleted", methods=["GET"]
        ),
        Rule(f"{data}/jobs/query", endpoint="bulk_create", methods=["POST"]),
        Rule(f"{data}/jobs/query", endpoint="bulk_jobs", methods=["GET"]),
        Rule(f"{data}/jobs/query/<job_id>", endpoint="bulk_job", methods=["GET"]),
        Rule(f"{data}/jobs/query/<job_id>", endpoint="bulk_abort", methods=["PATCH"]),
        Rule(f"{data}/jobs/query/<job_id>", endpoint="bulk_delete", methods=["DELETE"]),
        Rule(
            f"{data}/jobs/query/<job_id>/results",
            endpoint="bulk_results",
            methods=["GET"],
        ),
        Rule(f"{data}/query/", endpoint="query", methods=["GET"]),
        Rule(f"{data}/query/<locator>", endpoint="query_more", methods=["GET"]),
        Rule(f"{data}/queryAll/", endpoint="query_all", methods=["GET"]),
        Rule(f"{data}/queryAll/<locator>", endpoint="query_all_more", methods=["GET"]),
        Rule(f"{data}/<path:rest>", endpoint="not_found"),
        Rule("/", endpoint="home", methods=["GET"]),
        # A record's page, as Trig's links to records lead to it.
        Rule("/<record_id>", endpoint="record_page", methods=["GET"]),
    ]
    return Map(rules, strict_slashes=False, merge_slashes=False)


# ---------------------------------------------------------------- Helpers


def _json(body: Any, status: int) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status=status, content_type=JSON_TYPE)


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() in {"bearer", "oauth"} else ""


def _base_url(request: Request) -> str:
    """The org's public URL, from the Host the client used."""
    return request.host_url.rstrip("/")


def _head_size(request: Request) -> int:
    """Measure the request line and headers as they came over the wire."""
    environ = request.environ
    uri = quote(environ.get("PATH_INFO", ""), safe="/:@!$&'()*+,;=-._~")
    if environ.get("QUERY_STRING"):
        uri += "?" + environ["QUERY_STRING"]
    size = len(f"{request.method} {uri} HTTP/1.1\r\n")
    return size + sum(len(f"{key}: {value}\r\n") for key, value in request.headers)


def _batch_size(request: Request, *, default: int) -> int:
    """Read `Sforce-Query-Options: batchSize=N`, kept within 200-2,000."""
    options = request.headers.get("Sforce-Query-Options", "")
    match = re.search(r"batchSize\s*=\s*(\d+)", options)
    if match is None:
        return default
    return min(max(int(match.group(1)), MIN_BATCH_SIZE), DEFAULT_BATCH_SIZE)


def _redirect(uri: str, **params: str | None) -> Response:
    parts = urlsplit(uri)
    extra = urlencode(
        {key: value for key, value in params.items() if value is not None}
    )
    query = f"{parts.query}&{extra}" if parts.query else extra
    location = urlunsplit(parts._replace(query=query))
    response = Response(status=302)
    response.headers["Location"] = location
    return response


def _error_page(error: str, description: str) -> Response:
    page = _ERROR_PAGE.format(
        error=html.escape(error), description=html.escape(description)
    )
    return Response(page, status=400, content_type="text/html;charset=utf-8")


_CONSENT_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Allow Access?</title></head>
<body>
<h1>Allow access?</h1>
<p><strong>{app}</strong> is asking to access your Salesforce data as
<strong>{user}</strong> ({username}).</p>
<form method="post" action="/services/oauth2/authorize">
{hidden}
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</body>
</html>
"""

_ERROR_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>OAuth Error</title></head>
<body>
<h1>OAuth Error</h1>
<p>error={error}</p>
<p>error_description={description}</p>
</body>
</html>
"""


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
