"""Helpers for reading what the product sent to the offline org."""

import json
import re
from urllib.parse import parse_qs, urlsplit

_QUERY = re.compile(r"/query(All)?/?\?")


def sent_queries(mock) -> list[str]:
    """Return every SOQL statement sent, in order: in a query's own URL or
    in a query subrequest of a Composite request."""
    urls = []
    for call in mock.calls:
        if urlsplit(call.request.url).path.rstrip("/").endswith("/composite"):
            body = json.loads(call.request.body)
            urls.extend(request["url"] for request in body["compositeRequest"])
        else:
            urls.append(call.request.url)
    return [parse_qs(urlsplit(url).query)["q"][0] for url in urls if _QUERY.search(url)]


def composite_calls(mock) -> list:
    return [
        call
        for call in mock.calls
        if urlsplit(call.request.url).path.rstrip("/").endswith("/composite")
    ]
