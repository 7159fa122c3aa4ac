"""The events endpoint: a workspace's systems tell Trig what happened."""

import json
import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from jobs import services
from jobs.forms import MAX_PAYLOAD_BYTES

logger = logging.getLogger(__name__)

_SHAPE = 'Send one event as a JSON object, or several as {"events": [...]}.'
_SINGLE_STATUS = {"recorded": 201, "duplicate": 200, "rejected": 400}
# What one event may take in a body: a payload of MAX_PAYLOAD_BYTES of UTF-8,
# which a sender escaping non-ASCII as \uXXXX sends in up to three times as
# many bytes, and its other fields. A full batch must fit: Django's own
# DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) does not hold 500 events.
_BYTES_PER_EVENT = 3 * MAX_PAYLOAD_BYTES + 4_000


def _unauthorized(message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="trig-events"'
    return response


def _result(outcome: services.EventOutcome) -> dict[str, Any]:
    if outcome.event is None:
        return {"status": outcome.status, "error": outcome.reason}
    return {"status": outcome.status, "id": outcome.event.pk}


@csrf_exempt
@require_POST
def events_receive(request: HttpRequest) -> JsonResponse:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        logger.warning("Event request refused reason=no_api_key")
        return _unauthorized("Send your API key as 'Authorization: Bearer KEY'.")
    api_key = services.api_key_authenticate(secret=secret.strip())
    if api_key is None:
        logger.warning("Event request refused reason=unknown_or_revoked_key")
        return _unauthorized("The API key is unknown or has been revoked.")

    workspace = api_key.workspace
    limit = settings.JOBS_EVENTS_PER_REQUEST * _BYTES_PER_EVENT
    # Read here rather than through request.body, which applies Django's
    # smaller limit and answers with an HTML page.
    raw = request.read(limit + 1)
    if len(raw) > limit:
        problem = f"The body is larger than {limit:,} bytes. {_SHAPE}"
        services.event_reject(workspace=workspace, api_key=api_key, reason=problem)
        return JsonResponse({"error": problem}, status=413)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    items = body.get("events") if isinstance(body, dict) else None
    is_batch = isinstance(body, dict) and "events" in body
    problem = ""
    if not isinstance(body, dict):
        problem = f"The body is not a JSON object. {_SHAPE}"
    elif is_batch and (not isinstance(items, list) or not items):
        problem = f"'events' must be a list of at least one event. {_SHAPE}"
    elif is_batch and len(items) > settings.JOBS_EVENTS_PER_REQUEST:
        problem = (
            f"At most {settings.JOBS_EVENTS_PER_REQUEST} events go in one request; "
            f"this one has {len(items)}."
        )
    if problem:
        services.event_reject(workspace=workspace, api_key=api_key, reason=problem)
        return JsonResponse({"error": problem}, status=400)

    outcomes = services.events_record(
        workspace=workspace, items=items if is_batch else [body], api_key=api_key
    )
    if not is_batch:
        (outcome,) = outcomes
        return JsonResponse(_result(outcome), status=_SINGLE_STATUS[outcome.status])

    statuses = [outcome.status for outcome in outcomes]
    return JsonResponse(
        {
            "recorded": statuses.count("recorded"),
            "duplicates": statuses.count("duplicate"),
            "rejected": statuses.count("rejected"),
            "results": [
                {"index": index, **_result(outcome)}
                for index, outcome in enumerate(outcomes)
            ],
        }
    )
