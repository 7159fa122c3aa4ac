"""Reach an offline org from `requests` in tests, without a server.

`mount()` registers a `responses` callback for every method on a base URL;
each request is handed to the org's WSGI app through werkzeug's test client
and its answer returned as is: status, headers and body. Redirects come back
as they are, for the caller to follow or not.

    org = OfflineOrg()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mount(org, mock=mock)
        sf = Salesforce(instance_url=DEFAULT_BASE_URL, session_id=..., version="62.0")
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import responses
from requests import PreparedRequest
from werkzeug.test import Client

from integrations.salesforce.emulator.app import OfflineOrg

DEFAULT_BASE_URL = "https://offline-org.test"

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Computed again by werkzeug from what it is handed.
_DROPPED_HEADERS = {"content-length", "host"}


def mount(
    org: OfflineOrg,
    *,
    base_url: str = DEFAULT_BASE_URL,
    mock: responses.RequestsMock | None = None,
) -> None:
    """Send every request for `base_url` to `org`.

    `mock` defaults to the `responses` default mock, active under
    `@responses.activate`.
    """
    base = base_url.rstrip("/")
    pattern = re.compile(re.escape(base) + r"(?:[/?].*)?$")
    client = Client(org)

    def forward(request: PreparedRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        return _forward(client, request)

    target: Any = mock if mock is not None else responses
    for method in _METHODS:
        target.add_callback(method, pattern, callback=forward, content_type=None)


@contextmanager
def mocked(
    org: OfflineOrg, *, base_url: str = DEFAULT_BASE_URL
) -> Iterator[responses.RequestsMock]:
    """Serve `org` at `base_url` meanwhile; yield the mock, whose `calls` list
    every request made."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mount(org, base_url=base_url, mock=mock)
        yield mock


def _forward(
    client: Client, request: PreparedRequest
) -> tuple[int, list[tuple[str, str]], bytes]:
    url = urlsplit(request.url or "")
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif body is not None and not isinstance(body, bytes):
        body = b"".join(
            chunk.encode() if isinstance(chunk, str) else chunk for chunk in body
        )
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if name.lower() not in _DROPPED_HEADERS
    ]

    response = client.open(
        path=url.path or "/",
        base_url=f"{url.scheme}://{url.netloc}",
        method=request.method or "GET",
        query_string=url.query,
        headers=headers,
        data=body or b"",
        follow_redirects=False,
    )
    return response.status_code, list(response.headers.items()), response.get_data()
