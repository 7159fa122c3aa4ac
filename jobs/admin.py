from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_field
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import ngettext

from integrations.models import SalesforceConnection
from integrations.salesforce.client import SalesforceClientError
from integrations.services import connection_client
from jobs import selectors, services
from jobs.models import (
    Action,
    ApiKey,
    Event,
    FieldWrite,
    Job,
    JobRun,
    RejectedEvent,
)
from jobs.values import updateable_fields, value_shown


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Rows Trig writes itself: shown and searched, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def _value_shown(write: FieldWrite) -> str:
    """A write's value as it goes to its field: a date field's as the date."""
    field_type = write.action.field_type
    shown = value_shown(field_type=field_type, value=write.value)
    if field_type == "date" and isinstance(shown, str):
        return shown
    return display_for_field(shown, FieldWrite._meta.get_field("value"), "-")


def _salesforce_link(connection: SalesforceConnection, record_id: str) -> str:
    if not record_id:
        return "-"
    url = f"{connection.instance_url}/{record_id}"
    return format_html('<a href="{}" target="_blank">{}</a>', url, record_id)


# ---------------------------------------------------------------- Jobs


class ActionForm(forms.ModelForm):
    """An Action checked against the org's describe when it is saved.

    When the connection and object are known, the field is a choice of the
    fields the connected user may update.
    """

    class Meta:
        model = Action
        fields = [
            "is_enabled",
            "connection",
            "target",
            "object_name",
            "field_name",
            "value_source",
            "value",
            "is_conflict_check_enabled",
            "follows_merges",
        ]
        widgets = {"value": forms.TextInput(attrs={"size": 60})}

    def __init__(self, *args: Any, job: Job | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.job = job
        if job is not None and job.workspace_id:
            self.fields["connection"].queryset = SalesforceConnection.objects.filter(
                workspace_id=job.workspace_id
            )
        choices = self._field_choices()
        if choices:
            self.fields["field_name"].widget = forms.Select(choices=choices)

    def _field_choices(self) -> list[tuple[str, str]]:
        instance = self.instance
        if not (instance.pk and instance.connection_id and instance.object_name):
            return []
        try:
            client = connection_client(connection=instance.connection)
            describe = client.describe(object_name=instance.object_name)
        except SalesforceClientError:
            return []
        fields = sorted(updateable_fields(describe).values(), key=lambda f: f["label"])
        choices = [
            (f["name"], f"{f['label']} ({f['name']}, {f['type']})") for f in fields
        ]
        if not any(name == instance.field_name for name, _ in choices):
            choices.insert(
                0, (instance.field_name, f"{instance.field_name} (read-only)")
            )
        return choices

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors or self.job is None or not cleaned.get("connection"):
            return cleaned
        # A Job posted without a workspace is refused by its own form; its
        # Actions have no workspace to be checked against.
        if not self.job.workspace_id:
            return cleaned
        action = self.instance
        for name in self.Meta.fields:
            setattr(action, name, cleaned.get(name))
        try:
            services.action_validate(action=action, workspace=self.job.workspace)
        except ValidationError as exc:
            for name, problems in exc.message_dict.items():
                self.add_error(name if name in self.fields else None, problems)
            return cleaned
        cleaned["object_name"] = action.object_name
        cleaned["field_name"] = action.field_name
        return cleaned


class ActionFormSet(BaseInlineFormSet):
    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        return {**super().get_form_kwargs(index), "job": self.instance}


class ActionInline(admin.StackedInline):
    model = Action
    form = ActionForm
    formset = ActionFormSet
    extra = 0
    min_num = 1


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "workspace",
        "trigger_kind",
        "is_enabled",
        "action_count",
        "written_count",
        "failed_count",
    ]
    list_filter = ["is_enabled", "trigger_kind"]
    list_select_related = ["workspace"]
    search_fields = [
        "name",
        "workspace__name",
        "workspace__slug",
        "actions__field_name",
    ]
    fields = [
        "workspace",
        "name",
        "trigger_kind",
        "conditions",
        "is_enabled",
        "recent_runs",
    ]
    readonly_fields = ["recent_runs"]
    inlines = [ActionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _actions=Count("actions", distinct=True),
                _written=Count(
                    "actions__writes",
                    filter=Q(actions__writes__status=FieldWrite.Status.WRITTEN),
                ),
                _failed=Count(
                    "actions__writes",
                    filter=Q(actions__writes__status=FieldWrite.Status.FAILED),
                ),
            )
        )

    @admin.display(description="Actions", ordering="_actions")
    def action_count(self, obj: Job) -> int:
        return obj._actions

    @admin.display(description="Written", ordering="_written")
    def written_count(self, obj: Job) -> int:
        return obj._written

    @admin.display(description="Failed", ordering="_failed")
    def failed_count(self, obj: Job) -> str:
        if not obj._failed:
            return "0"
        url = reverse("admin:jobs_fieldwrite_changelist")
        return format_html(
            '<a href="{}?action__job__id__exact={}&status__exact=failed">{}</a>',
            url,
            obj.pk,
            obj._failed,
        )

    @admin.display(description="Recent runs")
    def recent_runs(self, obj: Job) -> str:
        runs = selectors.job_run_list_for_job(job=obj) if obj.pk else []
        if not runs:
            return "No run has sent a write of this Job yet."
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td>'
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:jobs_jobrun_change", args=[run.pk]),
                    f"{run.started_at:%Y-%m-%d %H:%M:%S}",
                    run.get_status_display(),
                    run.writes_written,
                    run.writes_skipped,
                    run.writes_failed,
                    run.writes_waiting,
                    run.update_calls,
                )
                for run in runs
            ),
        )
        return format_html(
            "<table><tr><th>Started</th><th>Status</th><th>Written</th>"
            "<th>Skipped</th><th>Failed</th><th>Waiting</th><th>Update calls</th>"
            "</tr>{}</table>",
            rows,
        )


# ---------------------------------------------------------------- Runs and writes


class FailedWriteInline(admin.TabularInline):
    """A run's failed records, the temporary ones included."""

    model = FieldWrite
    verbose_name = "failed record"
    verbose_name_plural = "failed records"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = [
        "object_name",
        "record_id",
        "field_name",
        "outcome",
        "status_code",
        "message",
        "attempts",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[FieldWrite]:
        return (
            super()
            .get_queryset(request)
            .filter(status=FieldWrite.Status.FAILED)
            # Each row's outcome reads its connection.
            .select_related("connection")
            .order_by("record_id")
        )

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(JobRun)
class JobRunAdmin(_ReadOnlyAdmin):
    list_display = [
        "started_at",
        "connection",
        "trigger",
        "status",
        "writes_written",
        "writes_skipped",
        "writes_failed",
        "writes_waiting",
        "update_calls",
        "api_calls",
    ]
    list_filter = ["status", "trigger"]
    list_select_related = ["connection"]
    search_fields = [
        "connection__org_id",
        "connection__org_name",
        "connection__workspace__name",
    ]
    date_hierarchy = "started_at"
    readonly_fields = ["all_records"]
    inlines = [FailedWriteInline]

    @admin.display(description="Every record of this run")
    def all_records(self, obj: JobRun) -> str:
        url = reverse("admin:jobs_fieldwrite_changelist")
        return format_html('<a href="{}?run__id__exact={}">Show all</a>', url, obj.pk)


@admin.register(FieldWrite)
class FieldWriteAdmin(_ReadOnlyAdmin):
    list_display = [
        "pk",
        "created_at",
        "job",
        "object_name",
        "salesforce_link",
        "field_name",
        "value_shown",
        "outcome",
        "status_code",
        "message",
        "attempts",
        "run",
    ]
    list_filter = ["status", "is_retryable", "object_name", "status_code"]
    list_select_related = ["action__job", "connection", "run"]
    search_fields = [
        "record_id",
        "merged_into_id",
        "field_name",
        "status_code",
        "message",
        "event__idempotency_key",
        "action__job__name",
    ]
    actions = ["retry_selected"]
    # A write's page: its value as it goes to the field (a date as a date).
    exclude = ["value"]
    readonly_fields = ["value_shown"]

    @admin.display(description="Job", ordering="action__job__name")
    def job(self, obj: FieldWrite) -> str:
        return obj.action.job.name

    @admin.display(description="Salesforce record", ordering="record_id")
    def salesforce_link(self, obj: FieldWrite) -> str:
        return _salesforce_link(obj.connection, obj.merged_into_id or obj.record_id)

    @admin.display(description="Outcome", ordering="status")
    def outcome(self, obj: FieldWrite) -> str:
        return obj.outcome

    @admin.display(description="Value")
    def value_shown(self, obj: FieldWrite) -> str:
        return _value_shown(obj)

    # No one edits a write by hand (see `_ReadOnlyAdmin`), yet sending one
    # again is a change in the customer's org: it takes the permission to
    # change writes, which only a role given it holds.
    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.change_fieldwrite")

    @admin.action(description="Retry the selected failures", permissions=["retry"])
    def retry_selected(
        self, request: HttpRequest, queryset: QuerySet[FieldWrite]
    ) -> None:
        queued = services.writes_retry(writes=queryset)
        left_alone = queryset.count() - queued
        self.message_user(
            request,
            ngettext(
                "%(count)d failed write queued again.",
                "%(count)d failed writes queued again.",
                queued,
            )
            % {"count": queued},
        )
        if left_alone:
            self.message_user(
                request,
                ngettext(
                    "%(count)d selected write was left as it is",
                    "%(count)d selected writes were left as they are",
                    left_alone,
                )
                % {"count": left_alone}
                + ": only failures are retried, a written value is never sent "
                "twice, and a value the event does not give has nothing to send.",
                level=messages.WARNING,
            )


class WriteInline(admin.TabularInline):
    model = FieldWrite
    extra = 0
    can_delete = False
    show_change_link = True
    fields = [
        "object_name",
        "record_id",
        "field_name",
        "value_shown",
        "outcome",
        "message",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[FieldWrite]:
        # Each row's value reads its Action, and its outcome its connection.
        return super().get_queryset(request).select_related("action", "connection")

    @admin.display(description="Value")
    def value_shown(self, obj: FieldWrite) -> str:
        return _value_shown(obj)


@admin.register(Event)
class EventAdmin(_ReadOnlyAdmin):
    list_display = [
        "kind",
        "occurred_at",
        "workspace",
        "person",
        "organisation",
        "record_id",
        "idempotency_key",
    ]
    list_filter = ["kind"]
    list_select_related = ["workspace", "person", "organisation"]
    search_fields = ["idempotency_key", "record_id", "person__salesforce_id"]
    date_hierarchy = "occurred_at"
    inlines = [WriteInline]


@admin.register(RejectedEvent)
class RejectedEventAdmin(_ReadOnlyAdmin):
    list_display = ["received_at", "workspace", "kind", "idempotency_key", "reason"]
    list_select_related = ["workspace"]
    search_fields = ["kind", "idempotency_key", "reason"]
    date_hierarchy = "received_at"


# ---------------------------------------------------------------- API keys


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["workspace", "name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "workspace",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["workspace"]
    search_fields = ["name", "prefix", "workspace__name", "workspace__slug"]
    actions = ["revoke"]

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj=None) -> list[str]:
        if obj is None:
            return ["workspace", "name"]
        # The hash is never shown; the key itself is never stored.
        return [
            "workspace",
            "name",
            "prefix",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(
        self, request: HttpRequest, obj: ApiKey, form: forms.Form, change: bool
    ) -> None:
        if change:
            return
        api_key, secret = services.api_key_create(
            workspace=obj.workspace, name=obj.name, created_by=request.user
        )
        obj.pk, obj.prefix, obj.key_hash = api_key.pk, api_key.prefix, api_key.key_hash
        obj.created_at, obj.created_by = api_key.created_at, api_key.created_by
        self.message_user(
            request,
            f"Copy this key now; Trig keeps only a hash of it and cannot show it "
            f"again: {secret}",
            level=messages.WARNING,
        )

    # Actions are offered to whoever may view the list.
    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = sum(services.api_key_revoke(api_key=key) for key in queryset)
        self.message_user(
            request,
            ngettext("%(count)d key revoked.", "%(count)d keys revoked.", revoked)
            % {"count": revoked},
        )
