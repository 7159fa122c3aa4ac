import json
from datetime import UTC
from typing import Any

from django import forms
from django.utils import timezone

from jobs.models import Event
from jobs.values import is_unicode_text, record_id_18
from people.models import Organisation, Person
from trig_crm.models import Workspace

MAX_PAYLOAD_BYTES = 8_000


_NOT_UNICODE = (
    "holds text that is not valid Unicode (a lone surrogate such as \\ud800), "
    "which Trig cannot store."
)


def _strings(value: Any):
    """Yield every key and text value within a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def payload_problem(payload: Any) -> str | None:
    """Say why an event's payload cannot be stored, or None if it can."""
    if not isinstance(payload, dict):
        return "The payload must be a JSON object."
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
    except ValueError:
        # Python's JSON reader takes NaN, Infinity and 1e999 (as infinity);
        # JSON itself and both databases refuse them.
        return "The payload holds NaN or Infinity, which JSON cannot carry."
    if any("\x00" in item for item in _strings(payload)):
        return "The payload holds a NUL character (\\u0000), which Trig cannot store."
    if not all(is_unicode_text(item) for item in _strings(payload)):
        return f"The payload {_NOT_UNICODE}"
    # Bytes of UTF-8, as the limit says: escaping every non-ASCII character
    # would count "日" as six.
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        return f"The payload is larger than {MAX_PAYLOAD_BYTES:,} bytes."
    return None


class _IsoDateTimeField(forms.DateTimeField):
    """A time sent as ISO 8601 text; a JSON number, list or object is refused.

    Django's own field expects text (or a datetime) and fails on anything else.
    """

    def to_python(self, value: Any):
        if value is not None and not isinstance(value, str):
            raise forms.ValidationError(
                "Send the time as ISO 8601 text, such as 2025-03-12T09:30:00Z.",
                code="invalid",
            )
        return super().to_python(value)


class EventForm(forms.Form):
    """One event as the endpoint receives it, checked against the workspace."""

    kind = forms.CharField(max_length=100)
    idempotency_key = forms.CharField(max_length=200)
    occurred_at = _IsoDateTimeField(required=False)
    person_id = forms.IntegerField(required=False)
    organisation_id = forms.IntegerField(required=False)
    record_id = forms.CharField(required=False, max_length=18)
    payload = forms.JSONField(required=False)

    def __init__(self, data: dict[str, Any], *, workspace: Workspace) -> None:
        super().__init__(data)
        self.workspace = workspace

    def clean_kind(self) -> str:
        kind = self.cleaned_data["kind"]
        if kind not in Event.Kind.values:
            known = ", ".join(Event.Kind.values)
            raise forms.ValidationError(
                f"Unknown event kind '{kind}'. Known kinds: {known}."
            )
        return kind

    def clean_occurred_at(self):
        # A time without a zone is taken as UTC (the current time zone).
        occurred_at = self.cleaned_data["occurred_at"] or timezone.now()
        try:
            occurred_at.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("This time is out of range.") from None
        return occurred_at

    def clean_person_id(self) -> Person | None:
        pk = self.cleaned_data["person_id"]
        if pk is None:
            return None
        person = Person.objects.filter(workspace=self.workspace, pk=pk).first()
        if person is None:
            raise forms.ValidationError(f"No person {pk} in this workspace.")
        return person

    def clean_organisation_id(self) -> Organisation | None:
        pk = self.cleaned_data["organisation_id"]
        if pk is None:
            return None
        organisation = Organisation.objects.filter(
            workspace=self.workspace, pk=pk
        ).first()
        if organisation is None:
            raise forms.ValidationError(f"No organisation {pk} in this workspace.")
        return organisation

    def clean_record_id(self) -> str:
        value = self.cleaned_data["record_id"]
        if not value:
            return ""
        canonical = record_id_18(value)
        if canonical is None:
            raise forms.ValidationError(f"'{value}' is not a Salesforce record Id.")
        return canonical

    def clean_idempotency_key(self) -> str:
        key = self.cleaned_data["idempotency_key"]
        if not is_unicode_text(key):
            raise forms.ValidationError(f"The key {_NOT_UNICODE}")
        return key

    def clean_payload(self) -> dict[str, Any]:
        payload = self.cleaned_data["payload"]
        if payload is None:
            return {}
        problem = payload_problem(payload)
        if problem:
            raise forms.ValidationError(problem)
        return payload

    def reason(self) -> str:
        """All the form's errors as one line, for the sender and the record."""
        return " ".join(
            f"{name}: {' '.join(messages)}" for name, messages in self.errors.items()
        )
