"""Helpers for reading what the product sent to the offline org."""

import json
import re
from urllib.parse import parse_qs, urlsplit

_QUERY = re.compile(r"/query(All)?/?\?")


def sent_queries(mock, *, counts: bool = False) -> list[str]:
    """Return every SOQL statement sent, in order: in a query's own URL or
    in a query subrequest of a Composite request. The counts a full sync
    ends with are left out unless asked for."""
    urls = []
    for call in mock.calls:
        if urlsplit(call.request.url).path.rstrip("/").endswith("/composite"):
            body = json.loads(call.request.body)
            urls.extend(request["url"] for request in body["compositeRequest"])
        else:
            urls.append(call.request.url)
    queries = [
        parse_qs(urlsplit(url).query)["q"][0] for url in urls if _QUERY.search(url)
    ]
    return [q for q in queries if counts or not q.startswith("SELECT COUNT()")]


def composite_calls(mock, *, counts: bool = False) -> list:
    """Return the Composite requests sent; those holding the counts a full
    sync ends with are left out unless asked for."""
    return [
        call
        for call in mock.calls
        if urlsplit(call.request.url).path.rstrip("/").endswith("/composite")
        and (counts or "SELECT+COUNT%28%29" not in (call.request.body or b"").decode())
    ]
