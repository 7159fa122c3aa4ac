"""Writes of the jobs app: API keys, events in, pending field writes out.

Recording an event plans the writes of every enabled Job it matches; the
writes are sent later, per connection, by `jobs.writeback`.
"""

import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from integrations.salesforce.client import (
    ReconnectRequired,
    SalesforceClientError,
)
from integrations.services import connection_client
from jobs import selectors
from jobs.forms import EventForm, payload_problem
from jobs.matching import (
    PERSON_ATTRIBUTES,
    ValueUnavailable,
    action_value,
    conditions_hold,
    template_problems,
)
from jobs.models import (
    Action,
    ApiKey,
    Event,
    FieldWrite,
    JobRun,
    RejectedEvent,
)
from jobs.values import (
    TEXT_TYPES,
    ValueDoesNotFit,
    is_unicode_text,
    record_id_18,
    storable,
    updateable_fields,
    value_for_field,
)
from people.models import CrmAccount, Organisation, Person
from trig_crm.models import Workspace

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "trig_"


# ---------------------------------------------------------------- API keys


def api_key_hash(secret: str) -> str:
    # The key is 32 random bytes: a plain SHA-256 is as hard to reverse as
    # the key is to guess, and lets a request find its key by the hash.
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(
    *, workspace: Workspace, name: str, created_by: AbstractBaseUser | None = None
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never stored."""
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        workspace=workspace,
        name=name,
        prefix=secret[:12],
        key_hash=api_key_hash(secret),
        created_by=created_by,
    )
    logger.info(
        "API key created api_key_id=%s workspace_id=%s", api_key.pk, workspace.pk
    )
    return api_key, secret


def api_key_revoke(*, api_key: ApiKey) -> bool:
    """Revoke a key at once; return False if it was already revoked."""
    revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        logger.info("API key revoked api_key_id=%s", api_key.pk)
    return bool(revoked)


def api_key_authenticate(*, secret: str) -> ApiKey | None:
    """Return the active key with this secret, noting that it was used."""
    if not secret.startswith(API_KEY_PREFIX):
        return None
    api_key = selectors.api_key_get_active(key_hash=api_key_hash(secret))
    if api_key is not None:
        now = timezone.now()
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


# ---------------------------------------------------------------- Events


class EventRejected(Exception):
    """The event cannot be recorded; the message says why."""


@dataclass(frozen=True)
class EventOutcome:
    """What became of one event sent to the endpoint."""

    status: str  # "recorded", "duplicate" or "rejected"
    event: Event | None = None
    reason: str = ""


def event_record(
    *,
    workspace: Workspace,
    kind: str,
    idempotency_key: str,
    occurred_at: datetime,
    person: Person | None = None,
    organisation: Organisation | None = None,
    record_id: str = "",
    payload: dict[str, Any] | None = None,
    api_key: ApiKey | None = None,
) -> tuple[Event, bool]:
    """Record an event once per idempotency key and plan its Jobs' writes.

    Returns the event and whether it is new. The same key again returns
    the first event, unchanged, and plans nothing: a sender may retry
    freely. The writes are queued once the transaction commits.
    """
    if kind not in Event.Kind.values:
        raise EventRejected(f"Unknown event kind '{kind}'.")
    if not idempotency_key:
        raise EventRejected("An event needs an idempotency key.")
    if not is_unicode_text(idempotency_key):
        raise EventRejected("The idempotency key is not valid Unicode text.")
    problem = payload_problem(payload or {})
    if problem:
        raise EventRejected(problem)
    if record_id:
        canonical = record_id_18(record_id)
        if canonical is None:
            raise EventRejected(f"'{record_id}' is not a Salesforce record Id.")
        record_id = canonical
    # One instant, one form: templates and conditions then read the UTC date
    # a date field gets, whatever zone the sender wrote. A time without a
    # zone is UTC, as the endpoint documents.
    if timezone.is_naive(occurred_at):
        occurred_at = occurred_at.replace(tzinfo=UTC)
    try:
        occurred_at = occurred_at.astimezone(UTC)
    except OverflowError:
        raise EventRejected("The event's time is out of range.") from None
    for linked in (person, organisation):
        if linked is not None and linked.workspace_id != workspace.pk:
            raise EventRejected("The event names a row of another workspace.")

    with transaction.atomic():
        try:
            with transaction.atomic():
                event = Event.objects.create(
                    workspace=workspace,
                    kind=kind,
                    idempotency_key=idempotency_key,
                    occurred_at=occurred_at,
                    person=person,
                    organisation=organisation,
                    record_id=record_id,
                    payload=payload or {},
                    api_key=api_key,
                )
        except IntegrityError:
            existing = Event.objects.get(
                workspace=workspace, idempotency_key=idempotency_key
            )
            return existing, False
        connection_ids = writes_plan(event=event)
        writes_enqueue(connection_ids=connection_ids, trigger=JobRun.Trigger.EVENT)
    return event, True


def events_record(
    *, workspace: Workspace, items: list[Any], api_key: ApiKey | None = None
) -> list[EventOutcome]:
    """Record events sent together; each stands or falls on its own.

    A rejected event is kept as a RejectedEvent with its reason, and the
    others are recorded all the same.
    """
    outcomes = []
    for item in items:
        if not isinstance(item, dict):
            outcomes.append(
                _reject(workspace, api_key, {}, "An event must be a JSON object.")
            )
            continue
        form = EventForm(item, workspace=workspace)
        if not form.is_valid():
            outcomes.append(_reject(workspace, api_key, item, form.reason()))
            continue
        data = form.cleaned_data
        try:
            event, created = event_record(
                workspace=workspace,
                kind=data["kind"],
                idempotency_key=data["idempotency_key"],
                occurred_at=data["occurred_at"],
                person=data["person_id"],
                organisation=data["organisation_id"],
                record_id=data["record_id"],
                payload=data["payload"],
                api_key=api_key,
            )
        except EventRejected as exc:
            outcomes.append(_reject(workspace, api_key, item, str(exc)))
            continue
        outcomes.append(EventOutcome("recorded" if created else "duplicate", event))
    return outcomes


def event_reject(
    *,
    workspace: Workspace,
    api_key: ApiKey | None,
    reason: str,
    kind: str = "",
    idempotency_key: str = "",
) -> RejectedEvent:
    """Keep the reason an event or a request was refused, for staff to see."""
    rejected = RejectedEvent.objects.create(
        workspace=workspace,
        api_key=api_key,
        kind=storable(kind)[:100],
        idempotency_key=storable(idempotency_key)[:200],
        reason=storable(reason),
    )
    logger.warning(
        "Event rejected workspace_id=%s rejected_event_id=%s",
        workspace.pk,
        rejected.pk,
    )
    return rejected


def _reject(
    workspace: Workspace, api_key: ApiKey | None, item: dict[str, Any], reason: str
) -> EventOutcome:
    event_reject(
        workspace=workspace,
        api_key=api_key,
        reason=reason,
        kind=str(item.get("kind") or ""),
        idempotency_key=str(item.get("idempotency_key") or ""),
    )
    return EventOutcome("rejected", reason=reason)


# ---------------------------------------------------------------- Planning


class _NoTarget(Exception):
    pass


def writes_plan(*, event: Event) -> set[int]:
    """Make the writes of every enabled Job the event matches.

    Each enabled Action makes one write per target record, pending, or
    already skipped or failed with the reason when there is nothing to
    write to or nothing to write. Returns the connections with new
    pending writes.
    """
    writes: list[FieldWrite] = []
    for job in selectors.job_list_for_event(workspace=event.workspace, kind=event.kind):
        try:
            matches = conditions_hold(conditions=job.conditions, event=event)
        except (KeyError, TypeError, AttributeError):
            logger.warning("Job conditions cannot be evaluated job_id=%s", job.pk)
            continue
        if not matches:
            continue
        for action in job.actions.all():
            if action.is_enabled:
                writes.extend(_writes_for(action=action, event=event))

    FieldWrite.objects.bulk_create(writes, ignore_conflicts=True)
    logger.debug("Writes planned event_id=%s count=%s", event.pk, len(writes))
    return {
        write.connection_id
        for write in writes
        if write.status == FieldWrite.Status.PENDING
    }


def _writes_for(*, action: Action, event: Event) -> list[FieldWrite]:
    def write(**fields: Any) -> FieldWrite:
        return FieldWrite(
            connection_id=action.connection_id,
            action=action,
            event=event,
            object_name=action.object_name,
            field_name=action.field_name,
            **fields,
        )

    try:
        targets = _targets(action=action, event=event)
    except _NoTarget as exc:
        return [write(status=FieldWrite.Status.SKIPPED, message=str(exc))]
    try:
        value = action_value(action=action, event=event)
    except ValueUnavailable as exc:
        return [
            write(
                record_id=record_id, status=FieldWrite.Status.FAILED, message=str(exc)
            )
            for record_id, _, _ in targets
        ]

    deleted = selectors.deleted_record_map(
        connection=action.connection, record_ids=[target[0] for target in targets]
    )
    writes = []
    for record_id, parent_id, survivor in targets:
        gone = deleted.get(record_id)
        survivor = survivor or (gone.master_record_id if gone else "")
        if survivor and action.follows_merges:
            # The record lost a merge earlier: write to the survivor at once.
            writes.append(
                write(
                    record_id=record_id,
                    parent_id=parent_id,
                    value=value,
                    merged_into_id=survivor,
                )
            )
        elif survivor or gone:
            message = (
                f"Skipped: the record was merged into {survivor}, and the Action "
                "does not follow merges."
                if survivor
                else "Skipped: the record was deleted in Salesforce."
            )
            writes.append(
                write(
                    record_id=record_id,
                    status=FieldWrite.Status.SKIPPED,
                    message=message,
                )
            )
        else:
            writes.append(write(record_id=record_id, parent_id=parent_id, value=value))
    return writes


def _targets(*, action: Action, event: Event) -> list[tuple[str, str, str]]:
    """Return the records an Action writes to for an event.

    Each is (record Id, parent Account Id, surviving Id if the record is
    known to have lost a merge).
    """
    if action.target == Action.Target.PERSON_CONTACT:
        person = event.person
        if person is None:
            raise _NoTarget("Skipped: the event names no person.")
        if person.connection_id != action.connection_id or not person.salesforce_id:
            raise _NoTarget(
                "Skipped: the person has no Contact in this Salesforce org."
            )
        survivor = person.merged_into.salesforce_id if person.merged_into_id else ""
        if person.deleted_at and not survivor:
            raise _NoTarget("Skipped: the record was deleted in Salesforce.")
        return [(person.salesforce_id, person.salesforce_account_id, survivor)]

    if action.target == Action.Target.ORGANISATION_ACCOUNT:
        organisation = event.organisation or (
            event.person.organisation if event.person else None
        )
        if organisation is None:
            raise _NoTarget("Skipped: the event names no organisation.")
        # Accounts that share a website are one organisation: write to each.
        account_ids = list(
            CrmAccount.objects.filter(
                organisation=organisation,
                connection_id=action.connection_id,
                deleted_at__isnull=True,
            )
            .order_by("salesforce_id")
            .values_list("salesforce_id", flat=True)
        )
        if not account_ids:
            raise _NoTarget(
                "Skipped: the organisation has no Account in this Salesforce org."
            )
        return [(account_id, "", "") for account_id in account_ids]

    if not event.record_id:
        raise _NoTarget("Skipped: the event names no Salesforce record.")
    return [(event.record_id, "", "")]


def writes_enqueue(*, connection_ids: Iterable[int], trigger: str) -> None:
    """Queue a run for each connection once the transaction commits.

    Events that arrive within JOBS_WRITE_DELAY_SECONDS share one run, and
    so share its batches: only the first of them queues the run.
    """
    from jobs.tasks import write_pending

    delay = settings.JOBS_WRITE_DELAY_SECONDS
    for connection_id in set(connection_ids):
        if delay and not cache.add(f"jobs:write-queued:{connection_id}", 1, delay):
            continue
        transaction.on_commit(
            lambda pk=connection_id: write_pending.apply_async(
                args=[pk], kwargs={"trigger": trigger}, countdown=delay
            )
        )


# ---------------------------------------------------------------- Actions


def action_validate(*, action: Action, workspace: Workspace) -> None:
    """Check an Action against the org's describe, as the connected user sees it.

    Only a field that describe reports updateable may be chosen, and the
    value must fit its type (and its picklist). Sets the object name for
    the person and organisation targets and the field's exact name.
    Raises ValidationError with a message per form field.
    """
    if action.target == Action.Target.PERSON_CONTACT:
        action.object_name = "Contact"
    elif action.target == Action.Target.ORGANISATION_ACCOUNT:
        action.object_name = "Account"
    if not action.object_name:
        raise ValidationError(
            {"object_name": "Name the object of the records the events name."}
        )
    connection = action.connection
    if connection.workspace_id != workspace.pk:
        raise ValidationError(
            {"connection": "The connection belongs to another workspace."}
        )

    try:
        client = connection_client(connection=connection)
        describe = client.describe(object_name=action.object_name)
    except ReconnectRequired as exc:
        raise ValidationError(
            {"connection": f"Reconnect the org first: {exc}"}
        ) from exc
    except SalesforceClientError as exc:
        message = f"Salesforce could not describe {action.object_name}: {exc}"
        raise ValidationError({"object_name": message}) from exc

    fields = updateable_fields(describe)
    field = fields.get(action.field_name.strip().lower())
    if field is None:
        names = sorted(f["name"] for f in fields.values())
        shown = ", ".join(names[:40]) + (", …" if len(names) > 40 else "")
        raise ValidationError(
            {
                "field_name": f"{action.object_name}.{action.field_name} is not a "
                "field the connected user may update. Fields Trig may update: "
                f"{shown}."
            }
        )
    action.field_name = field["name"]
    action.field_type = field["type"]

    problem = _value_problem(action=action, field=field)
    if problem:
        raise ValidationError({"value": problem})


def _value_problem(*, action: Action, field: dict[str, Any]) -> str | None:
    kind, name = field["type"], field["name"]
    source = action.value_source
    if source == Action.ValueSource.LITERAL:
        try:
            value_for_field(field=field, value=action.value)
        except ValueDoesNotFit as exc:
            return str(exc)
    elif source == Action.ValueSource.EVENT_TIME:
        if kind not in {"date", "datetime", "string", "textarea"}:
            return f"{name} is a {kind} field; the event's time needs a date field."
    elif source == Action.ValueSource.PERSON:
        attribute = PERSON_ATTRIBUTES.get(action.value)
        if attribute is None:
            known = ", ".join(PERSON_ATTRIBUTES)
            return f"Name one of the person's values: {known}."
        if attribute is bool and kind != "boolean":
            return f"{action.value} is true or false; {name} is a {kind} field."
        if attribute is str and kind not in TEXT_TYPES:
            return f"{action.value} is text; {name} is a {kind} field."
    elif source == Action.ValueSource.EVENT:
        if not action.value.strip():
            return "Name the event's value, such as subject or payload.subject."
    elif source == Action.ValueSource.TEMPLATE:
        if kind not in TEXT_TYPES - {"picklist", "multipicklist"}:
            return f"A template makes text; {name} is a {kind} field."
        problems = template_problems(template=action.value)
        if problems:
            return " ".join(problems)
    return None


# ---------------------------------------------------------------- Retries


def writes_retry(*, writes: QuerySet[FieldWrite]) -> int:
    """Queue failed writes again; written, skipped and pending ones stay as they are.

    A write that was written is never sent again, so a retry cannot write
    twice. Returns how many writes were queued.
    """
    failed = writes.filter(status=FieldWrite.Status.FAILED)
    # A write that failed when it was planned, because the event lacked the
    # value its Action names, was never sent and holds no value: sending it
    # would empty the field. Its value is worked out again, as the Action may
    # have been fixed since, and it stays failed while there is still none.
    unplanned = failed.filter(run__isnull=True, attempts=0).select_related(
        "action", "event__person__organisation", "event__organisation"
    )
    still_unavailable = []
    for write in unplanned:
        try:
            value = action_value(action=write.action, event=write.event)
        except ValueUnavailable as exc:
            still_unavailable.append(write.pk)
            FieldWrite.objects.filter(pk=write.pk).update(message=str(exc))
            continue
        FieldWrite.objects.filter(pk=write.pk).update(value=storable(value))
    failed = failed.exclude(pk__in=still_unavailable)

    connection_ids = set(failed.values_list("connection_id", flat=True))
    queued = failed.update(
        status=FieldWrite.Status.PENDING,
        is_retryable=False,
        next_attempt_at=None,
        attempts=0,
        updated_at=timezone.now(),
    )
    writes_enqueue(connection_ids=connection_ids, trigger=JobRun.Trigger.MANUAL)
    logger.info("Failed writes queued again count=%s", queued)
    return queued
