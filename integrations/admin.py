from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet, Sum
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from django.utils.translation import ngettext

from integrations.admin_forms import (
    FieldMappingForm,
    ObjectMappingForm,
    SignalRuleForm,
)
from integrations.configuration import (
    describe_cached,
    object_mapping_mark_changed,
    object_mapping_preview,
)
from integrations.models import (
    FieldMapping,
    ObjectMapping,
    SalesforceConnection,
    SignalRule,
    SyncCursor,
    SyncRun,
)
from integrations.salesforce.client import SalesforceClientError
from integrations.salesforce.soql_build import QueryTooLong
from integrations.services import connection_disconnect, connection_sync_request
from integrations.sync.defaults import ATTRIBUTES
from integrations.sync.plan import HIDDEN_WORDS, PlanError
from integrations.sync.schedule import sync_enqueue
from jobs.models import Event


class SyncRunInline(admin.TabularInline):
    model = SyncRun
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-started_at"]
    fields = [
        "started_at",
        "kind",
        "outcome",
        "records_fetched",
        "records_created",
        "records_updated",
        "records_unchanged",
        "records_failed",
        "api_calls",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-started_at")

    @admin.display(description="Outcome")
    def outcome(self, obj: SyncRun) -> str:
        return obj.outcome


class ObjectMappingInline(admin.TabularInline):
    model = ObjectMapping
    extra = 0
    show_change_link = True
    fields = ["object_name", "target", "is_enabled", "filter", "hidden_fields"]
    readonly_fields = ["object_name", "target", "is_enabled", "filter", "hidden_fields"]
    verbose_name_plural = "Import configuration (open a row to edit it)"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Hidden by field-level security")
    def hidden_fields(self, obj: ObjectMapping) -> str:
        return ", ".join(obj.skipped_fields) or "-"


@admin.register(SalesforceConnection)
class SalesforceConnectionAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "workspace",
        "environment",
        "status",
        "username",
        "last_full_sync_at",
        "last_recent_sync_at",
        "next_full_sync_at",
        "api_usage",
    ]
    list_filter = ["status", "environment"]
    list_select_related = ["workspace"]
    search_fields = [
        "org_id",
        "org_name",
        "user_id",
        "username",
        "workspace__name",
        "workspace__slug",
    ]
    # Tokens are never shown, not even encrypted; usage is shown formatted.
    exclude = ["access_token", "refresh_token", "api_usage_used", "api_usage_max"]
    readonly_fields = [
        "workspace",
        "environment",
        "login_host",
        "instance_url",
        "org_id",
        "org_name",
        "user_id",
        "username",
        "user_display_name",
        "token_issued_at",
        "status",
        "status_reason",
        "connected_by",
        "connected_at",
        "last_full_sync_at",
        "next_full_sync_at",
        "last_recent_sync_at",
        "next_recent_sync_at",
        "sync_claimed_at",
        "sync_requested_at",
        "api_usage_seen_at",
        "api_usage",
        "api_warning",
        "sync_calls_today",
        "open_in_salesforce",
    ]
    inlines = [ObjectMappingInline, SyncRunInline]
    actions = ["sync_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Connections are made by customers through OAuth, not typed in.
        return False

    # Deleting a connection erases what it imported (the delete page lists
    # it), as a customer's request to erase their data asks. Trig's grant is
    # revoked first, so that no refresh token outlives the connection in the
    # customer's org.
    def delete_model(self, request: HttpRequest, obj: SalesforceConnection) -> None:
        self._revoke(request, [obj])
        super().delete_model(request, obj)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[SalesforceConnection]
    ) -> None:
        self._revoke(request, list(queryset))
        super().delete_queryset(request, queryset)

    def _revoke(
        self, request: HttpRequest, connections: list[SalesforceConnection]
    ) -> None:
        for connection in connections:
            if not connection_disconnect(connection=connection):
                self.message_user(
                    request,
                    f"Salesforce could not be reached to revoke Trig's access to "
                    f"{connection}: revoke it in the org's Setup, Connected Apps "
                    "OAuth Usage.",
                    level=messages.WARNING,
                )

    def save_model(self, request, obj, form, change) -> None:
        if "recent_sync_minutes" in form.changed_data:
            # A new interval counts from the next tick, not from the slot the
            # old one had set.
            obj.next_recent_sync_at = None
        super().save_model(request, obj, form, change)

    @admin.display(description="API usage today (org / allocation)")
    def api_usage(self, obj: SalesforceConnection) -> str:
        if obj.api_usage_used is None:
            return "-"
        figures = f"{obj.api_usage_used:,} / {obj.api_usage_max:,}"
        if obj.api_usage_seen_at is None:
            return figures
        # Salesforce tells the usage with each answer; between syncs it ages.
        return f"{figures}, seen {timesince(obj.api_usage_seen_at)} ago"

    @admin.display(description="Calls by Trig's syncs in the last 24 hours")
    def sync_calls_today(self, obj: SalesforceConnection) -> int:
        since = timezone.now() - timedelta(hours=24)
        return (
            obj.sync_runs.filter(started_at__gte=since).aggregate(
                total=Sum("api_calls")
            )["total"]
            or 0
        )

    @admin.display(description="Salesforce")
    def open_in_salesforce(self, obj: SalesforceConnection) -> str:
        return format_html(
            '<a href="{}" target="_blank">{}</a>', obj.instance_url, obj.instance_url
        )

    # Actions are offered to whoever may view the list; a sync spends the
    # customer's API allocation, so it takes the right to change connections.
    @admin.action(description="Sync now (full)", permissions=["change"])
    def sync_now(
        self, request: HttpRequest, queryset: QuerySet[SalesforceConnection]
    ) -> None:
        queued = 0
        for connection in queryset:
            if not connection.is_usable:
                self.message_user(
                    request,
                    f"{connection} needs reconnecting: {connection.status_reason}",
                    level=messages.WARNING,
                )
                continue
            if connection_sync_request(connection=connection):
                queued += 1
            else:
                self.message_user(
                    request,
                    f"{connection}: a sync asked for earlier has not finished yet; "
                    "no other was queued.",
                    level=messages.WARNING,
                )
        if queued:
            self.message_user(
                request,
                ngettext(
                    "Full sync requested for %(count)d connection.",
                    "Full sync requested for %(count)d connections.",
                    queued,
                )
                % {"count": queued},
            )


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "connection",
        "kind",
        "trigger",
        "outcome",
        "records_fetched",
        "records_created",
        "records_updated",
        "records_unchanged",
        "records_failed",
        "records_deleted",
        "drift_repaired",
        "signals_raised",
        "problem_count",
        "api_calls",
    ]
    list_filter = ["status", "kind", "trigger"]
    list_select_related = ["connection"]
    search_fields = [
        "connection__org_id",
        "connection__org_name",
        "connection__workspace__name",
        "error_message",
    ]
    date_hierarchy = "started_at"
    # A run's page: its notes as a table, not as the JSON they are kept in.
    exclude = ["problems"]
    readonly_fields = ["notes"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="Outcome", ordering="status")
    def outcome(self, obj: SyncRun) -> str:
        return obj.outcome

    @admin.display(description="Notes")
    def notes(self, obj: SyncRun) -> str:
        if not obj.problems:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    note.get("object", ""),
                    note.get("id", ""),
                    note.get("field", ""),
                    note.get("problem", ""),
                )
                for note in obj.problems
                if isinstance(note, dict)
            ),
        )
        kept = len(obj.problems)
        more = (
            f"The first {kept:,} of {obj.problem_count:,} are kept."
            if obj.problem_count > kept
            else ""
        )
        return format_html(
            "<table><tr><th>Object</th><th>Record</th><th>Field</th>"
            "<th>Note</th></tr>{}</table>{}",
            rows,
            more,
        )


@admin.register(SyncCursor)
class SyncCursorAdmin(admin.ModelAdmin):
    list_display = ["connection", "object_name", "field_name", "value", "updated_at"]
    list_select_related = ["connection"]
    search_fields = ["connection__org_id", "connection__org_name", "object_name"]
    readonly_fields = ["connection", "object_name", "field_name", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A cursor is set by the sync; staff may move one back to read again.
        return False


class FieldMappingFormSet(BaseInlineFormSet):
    """Refuse a field mapped twice, two fields feeding one attribute or custom
    value, or an attribute the mapping's target does not have."""

    def clean(self) -> None:
        super().clean()
        fields: set[str] = set()
        values: set[str] = set()
        attributes: dict[str, str] = {}
        # The target as posted: a new mapping's fields are typed before its
        # target is known to their forms.
        target = self.instance.target
        allowed = ATTRIBUTES.get(target, ())
        # As the mapping's form described the object a moment ago.
        schema = (
            describe_cached(
                connection=self.instance.connection,
                object_name=self.instance.object_name,
            )
            if self.instance.connection_id and self.instance.object_name
            else None
        )
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            # A row refused on its own (no field named, say) shows why; it is
            # not compared with the others.
            if not data or data.get("DELETE") or form.errors:
                continue
            field_name = data.get("salesforce_field") or ""
            if (
                schema is not None
                and "salesforce_field" in form.changed_data
                and schema.canonical(field_name) is None
            ):
                # A field mapped earlier may have been hidden since, and stays;
                # one added now would only ever be skipped.
                form.add_error(
                    "salesforce_field",
                    f"{schema.name} has no field {field_name} the connected user "
                    "can see.",
                )
                continue
            attribute = data.get("attribute")
            if attribute and target and attribute not in allowed:
                label = ObjectMapping.Target(target).label.lower()
                raise ValidationError(
                    f"A {label} has no attribute {attribute}; choose one of "
                    f"{', '.join(allowed)}."
                )
            field = (data.get("salesforce_field") or "").lower()
            if field in fields:
                raise ValidationError(f"{data['salesforce_field']} is mapped twice.")
            fields.add(field)
            if attribute:
                # Only one value can be stored; the other would be read for
                # nothing and overwritten without a word.
                if attribute in attributes:
                    raise ValidationError(
                        f"{attributes[attribute]} and {data['salesforce_field']} "
                        f"would both fill the attribute {attribute}; keep one."
                    )
                attributes[attribute] = data["salesforce_field"]
                continue
            value = (
                data.get("custom_name") or data.get("salesforce_field") or ""
            ).lower()
            if value in values:
                raise ValidationError(
                    f"Two fields would fill the custom value {value!r}; "
                    "name them apart."
                )
            values.add(value)


class FieldMappingInline(admin.TabularInline):
    model = FieldMapping
    form = FieldMappingForm
    formset = FieldMappingFormSet
    extra = 1
    fields = [
        "salesforce_field",
        "visibility",
        "attribute",
        "custom_name",
        "transform",
        "transform_argument",
    ]
    readonly_fields = ["visibility"]

    @admin.display(description="Seen by the connected user")
    def visibility(self, obj: FieldMapping) -> str:
        if obj.pk and obj.salesforce_field in obj.object_mapping.skipped_fields:
            return HIDDEN_WORDS
        return "yes" if obj.pk else "-"


@admin.register(ObjectMapping)
class ObjectMappingAdmin(admin.ModelAdmin):
    form = ObjectMappingForm
    list_display = [
        "object_name",
        "target",
        "connection",
        "is_enabled",
        "filter",
        "needs_backfill",
        "hidden_fields",
    ]
    list_filter = ["target", "is_enabled", "needs_backfill"]
    list_select_related = ["connection"]
    search_fields = [
        "object_name",
        "connection__org_id",
        "connection__org_name",
        "connection__workspace__name",
    ]
    readonly_fields = [
        "needs_backfill",
        "hidden_fields",
        "preview_link",
        "signal_rules",
    ]
    inlines = [FieldMappingInline]
    actions = ["sync_object_now"]

    @admin.display(description="Hidden by field-level security")
    def hidden_fields(self, obj: ObjectMapping) -> str:
        return ", ".join(obj.skipped_fields) or "-"

    @admin.display(description="Signal rules")
    def signal_rules(self, obj: ObjectMapping) -> str:
        if not obj.pk:
            return "-"
        rules = [
            format_html(
                '<a href="{}">{}</a>: {}{}',
                reverse("admin:integrations_signalrule_change", args=[rule.pk]),
                rule.name,
                rule.description,
                "" if rule.is_enabled else " (off)",
            )
            for rule in obj.signal_rules.all()
        ]
        add = format_html(
            '<a href="{}?object_mapping={}">Add a signal rule</a>',
            reverse("admin:integrations_signalrule_add"),
            obj.pk,
        )
        return format_html_join("", "{}<br>", ((r,) for r in [*rules, add]))

    @admin.display(description="Preview")
    def preview_link(self, obj: ObjectMapping) -> str:
        if not obj.pk:
            return "-"
        url = reverse("admin:integrations_objectmapping_preview", args=[obj.pk])
        return format_html('<a href="{}">Preview the first 10 records</a>', url)

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, FieldMappingInline):
            # Each field's picker lists the fields of this mapping's object.
            kwargs["form_kwargs"] = {"object_mapping": obj if obj and obj.pk else None}
        return kwargs

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        field_changes = any(
            f.has_changed() and not f.cleaned_data.get("DELETE", False)
            for formset in formsets
            for f in formset.forms
        )
        if not change or field_changes or form.has_changed():
            # Adding a field, a filter or a lookup applies to every record,
            # not only to those changed since the last sync.
            object_mapping_mark_changed(mapping=form.instance)

    def get_urls(self):
        return [
            path(
                "<int:pk>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="integrations_objectmapping_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        mapping = get_object_or_404(ObjectMapping, pk=pk)
        # admin_view() lets in any staff member; the preview shows the
        # customer's records, so it asks what the mapping's own page asks.
        if not self.has_view_permission(request, mapping):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview of {mapping}",
            "mapping": mapping,
            "opts": self.model._meta,
        }
        try:
            context["preview"] = object_mapping_preview(mapping=mapping)
        except (SalesforceClientError, PlanError, QueryTooLong, ValidationError) as exc:
            context["error"] = str(exc)
        return TemplateResponse(request, "admin/integrations/preview.html", context)

    @admin.action(description="Sync this object now", permissions=["change"])
    def sync_object_now(
        self, request: HttpRequest, queryset: QuerySet[ObjectMapping]
    ) -> None:
        by_connection: dict[SalesforceConnection, list[str]] = {}
        for mapping in queryset.select_related("connection"):
            by_connection.setdefault(mapping.connection, []).append(mapping.object_name)
        for connection, names in by_connection.items():
            if not connection.is_usable:
                self.message_user(
                    request, f"{connection} needs reconnecting.", level=messages.WARNING
                )
                continue
            sync_enqueue(
                connection=connection,
                kind=SyncRun.Kind.FULL,
                trigger=SyncRun.Trigger.MANUAL,
                object_names=names,
            )
            self.message_user(request, f"Sync of {', '.join(names)} requested.")


@admin.register(SignalRule)
class SignalRuleAdmin(admin.ModelAdmin):
    form = SignalRuleForm
    list_display = [
        "name",
        "kind",
        "object_name",
        "connection",
        "description",
        "is_enabled",
    ]
    list_filter = ["kind", "is_enabled", "object_mapping__object_name"]
    list_select_related = ["object_mapping", "object_mapping__connection"]
    search_fields = [
        "name",
        "field_name",
        "condition",
        "object_mapping__object_name",
        "object_mapping__connection__org_id",
        "object_mapping__connection__workspace__name",
    ]
    readonly_fields = ["signals_link", "created_at", "updated_at"]

    @admin.display(description="Object", ordering="object_mapping__object_name")
    def object_name(self, obj: SignalRule) -> str:
        return obj.object_mapping.object_name

    @admin.display(description="Connection")
    def connection(self, obj: SignalRule) -> SalesforceConnection:
        return obj.object_mapping.connection

    @admin.display(description="Signals raised")
    def signals_link(self, obj: SignalRule) -> str:
        if not obj.pk:
            return "-"
        # Each signal's key starts with its rule's id.
        query = urlencode({"kind": Event.Kind.SIGNAL_RAISED, "q": f"signal:{obj.pk}:"})
        url = f"{reverse('admin:jobs_event_changelist')}?{query}"
        return format_html('<a href="{}">The events this rule raised</a>', url)
