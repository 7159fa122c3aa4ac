from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from integrations.models import SalesforceConnection, SyncCursor, SyncRun
from integrations.sync.schedule import sync_enqueue


class SyncRunInline(admin.TabularInline):
    model = SyncRun
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-started_at"]
    fields = [
        "started_at",
        "kind",
        "status",
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


@admin.register(SalesforceConnection)
class SalesforceConnectionAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "workspace",
        "environment",
        "status",
        "username",
        "last_full_sync_at",
        "next_full_sync_at",
        "api_usage",
    ]
    list_filter = ["status", "environment"]
    list_select_related = ["workspace"]
    search_fields = [
        "org_id",
        "user_id",
        "username",
        "workspace__name",
        "workspace__slug",
    ]
    # Tokens are never shown, not even encrypted.
    exclude = ["access_token", "refresh_token"]
    readonly_fields = [
        "workspace",
        "environment",
        "login_host",
        "instance_url",
        "org_id",
        "user_id",
        "username",
        "user_display_name",
        "token_issued_at",
        "status",
        "status_reason",
        "connected_by",
        "connected_at",
        "last_full_sync_at",
        "sync_claimed_at",
        "api_usage_used",
        "api_usage_max",
        "api_usage_seen_at",
        "open_in_salesforce",
    ]
    inlines = [SyncRunInline]
    actions = ["sync_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Connections are made by customers through OAuth, not typed in.
        return False

    @admin.display(description="API usage today")
    def api_usage(self, obj: SalesforceConnection) -> str:
        if obj.api_usage_used is None:
            return "-"
        return f"{obj.api_usage_used:,} / {obj.api_usage_max:,}"

    @admin.display(description="Salesforce")
    def open_in_salesforce(self, obj: SalesforceConnection) -> str:
        return format_html(
            '<a href="{}" target="_blank">{}</a>', obj.instance_url, obj.instance_url
        )

    @admin.action(description="Sync now (full)")
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
            sync_enqueue(
                connection=connection,
                kind=SyncRun.Kind.FULL,
                trigger=SyncRun.Trigger.MANUAL,
            )
            queued += 1
        if queued:
            self.message_user(request, f"Sync requested for {queued} connection(s).")


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "connection",
        "kind",
        "trigger",
        "status",
        "records_fetched",
        "records_created",
        "records_updated",
        "records_unchanged",
        "records_failed",
        "problem_count",
        "api_calls",
    ]
    list_filter = ["status", "kind", "trigger"]
    list_select_related = ["connection"]
    search_fields = [
        "connection__org_id",
        "connection__workspace__name",
        "error_message",
    ]
    date_hierarchy = "started_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(SyncCursor)
class SyncCursorAdmin(admin.ModelAdmin):
    list_display = ["connection", "object_name", "field_name", "value", "updated_at"]
    list_select_related = ["connection"]
    search_fields = ["connection__org_id", "object_name"]
    readonly_fields = ["connection", "object_name", "field_name", "updated_at"]
