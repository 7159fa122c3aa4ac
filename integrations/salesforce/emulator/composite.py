"""The Composite resource: up to 25 subrequests answered in one API call.

The offline org runs GET subrequests against the resources Composite
supports (sObject resources, query, queryAll and their next pages) and
refuses everything else with 400 before running any of them.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from integrations.salesforce.emulator.errors import ApiError

# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm
MAX_SUBREQUESTS = 25
MAX_QUERY_SUBREQUESTS = 5

# Resources a subrequest may reach, by the org's endpoint names.
QUERY_ENDPOINTS = frozenset({"query", "query_all", "query_more", "query_all_more"})
SUPPORTED_ENDPOINTS = QUERY_ENDPOINTS | {
    "global_describe",
    "sobject",
    "describe",
    "record",
    "updated",
    "deleted",
}

_REFERENCE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
HALTED_MESSAGE = (
    "The transaction was rolled back since another operation in the same "
    "transaction failed."
)


@dataclass(frozen=True)
class Subrequest:
    method: str
    url: str
    reference_id: str
    headers: dict[str, str]


def parse(body: bytes) -> tuple[bool, list[Subrequest]]:
    """Read a composite request's body: `allOrNone` and its subrequests.

    Raises ApiError for a body that is not a composite request, or one that
    passes the limits on subrequests.
    """
    try:
        payload = json.loads(body or b"null")
    except ValueError as exc:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Malformed JSON: {exc}") from exc
    items = payload.get("compositeRequest") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise ApiError(
            400, "INVALID_INPUT", "compositeRequest must hold at least one subrequest"
        )
    if len(items) > MAX_SUBREQUESTS:
        # The wording Salesforce answers with.
        raise ApiError(
            400,
            "LIMIT_EXCEEDED",
            f"The request can’t contain more than {MAX_SUBREQUESTS} operations.",
        )

    subrequests: list[Subrequest] = []
    for item in items:
        if not isinstance(item, dict):
            raise ApiError(400, "INVALID_INPUT", "Each subrequest must be an object")
        method, url = item.get("method"), item.get("url")
        reference_id = item.get("referenceId")
        headers = item.get("httpHeaders") or {}
        if not isinstance(method, str) or not isinstance(url, str):
            raise ApiError(
                400, "INVALID_INPUT", "Each subrequest needs a method and a url"
            )
        if not isinstance(reference_id, str) or not _REFERENCE_ID.fullmatch(
            reference_id
        ):
            raise ApiError(
                400,
                "INVALID_INPUT",
                "Each subrequest needs a referenceId of letters, digits and "
                "underscores, starting with a letter",
            )
        if not isinstance(headers, dict):
            raise ApiError(400, "INVALID_INPUT", "httpHeaders must be an object")
        subrequests.append(
            Subrequest(
                method=method.upper(),
                url=url,
                reference_id=reference_id,
                headers={str(k): str(v) for k, v in headers.items()},
            )
        )
    references = [subrequest.reference_id for subrequest in subrequests]
    if len(set(references)) != len(references):
        raise ApiError(400, "INVALID_INPUT", "Each referenceId must be unique")
    return payload.get("allOrNone") is True, subrequests


def check_queries(endpoints: list[str]) -> None:
    """Refuse more query operations than a composite may hold.

    query, queryAll and their next pages count alike.
    """
    queries = sum(1 for endpoint in endpoints if endpoint in QUERY_ENDPOINTS)
    if queries > MAX_QUERY_SUBREQUESTS:
        raise ApiError(
            400,
            "LIMIT_EXCEEDED",
            f"A composite request can’t contain more than {MAX_QUERY_SUBREQUESTS} "
            "query operations.",
        )


def unsupported(subrequest: Subrequest) -> ApiError:
    return ApiError(
        400,
        "INVALID_INPUT",
        f"The offline org does not run {subrequest.method} {subrequest.url} inside "
        "a composite request; it runs GET subrequests to sObject and query "
        "resources.",
    )


def halted() -> list[dict[str, str]]:
    """The body of a subrequest not kept because another one failed."""
    return ApiError(400, "PROCESSING_HALTED", HALTED_MESSAGE).body()


def reply(
    *, reference_id: str, status: int, body: Any, headers: dict[str, str]
) -> dict[str, Any]:
    return {
        "body": body,
        "httpHeaders": headers,
        "httpStatusCode": status,
        "referenceId": reference_id,
    }
