from django.contrib import admin
from django.utils.html import format_html

from people.models import CrmAccount, CrmRecord, Organisation, Owner, Person


def _salesforce_link(obj) -> str:
    url = f"{obj.connection.instance_url}/{obj.salesforce_id}"
    return format_html('<a href="{}" target="_blank">{}</a>', url, obj.salesforce_id)


class _SyncedAdmin(admin.ModelAdmin):
    """Rows written by the sync: shown, searchable, never edited by hand."""

    # A row's own page links to its record in Salesforce, as the list does.
    readonly_fields = ["salesforce_link"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Salesforce Id")
    def salesforce_link(self, obj) -> str:
        return _salesforce_link(obj)


@admin.register(Person)
class PersonAdmin(_SyncedAdmin):
    list_display = [
        "__str__",
        "email",
        "title",
        "organisation",
        "owner",
        "has_opted_out_of_email",
        "salesforce_link",
    ]
    list_filter = ["has_opted_out_of_email", "connection"]
    list_select_related = ["organisation", "owner", "connection"]
    search_fields = ["first_name", "last_name", "email", "salesforce_id"]


class CrmAccountInline(admin.TabularInline):
    model = CrmAccount
    extra = 0
    can_delete = False
    fields = ["name", "website", "industry", "salesforce_id", "connection"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "domain", "workspace", "created_at"]
    list_select_related = ["workspace"]
    search_fields = [
        "name",
        "domain",
        "crm_accounts__salesforce_id",
        "crm_accounts__name",
    ]
    inlines = [CrmAccountInline]
    readonly_fields = ["workspace", "domain", "created_at"]

    def has_add_permission(self, request) -> bool:
        # Organisations come from the Accounts the sync reads, by website.
        return False


@admin.register(CrmAccount)
class CrmAccountAdmin(_SyncedAdmin):
    list_display = [
        "__str__",
        "website",
        "industry",
        "organisation",
        "owner",
        "salesforce_link",
    ]
    list_select_related = ["organisation", "owner", "connection"]
    list_filter = ["connection"]
    search_fields = ["name", "website", "organisation__domain", "salesforce_id"]


@admin.register(Owner)
class OwnerAdmin(_SyncedAdmin):
    list_display = ["__str__", "email", "connection", "salesforce_link"]
    list_select_related = ["connection"]
    search_fields = ["name", "email", "salesforce_id"]


@admin.register(CrmRecord)
class CrmRecordAdmin(_SyncedAdmin):
    """Opportunities, Leads, Cases and custom objects, as imported."""

    list_display = [
        "__str__",
        "object_name",
        "person",
        "organisation",
        "owner",
        "deleted_at",
        "salesforce_link",
    ]
    list_select_related = ["person", "organisation", "owner", "connection"]
    list_filter = ["object_name", "connection"]
    search_fields = ["name", "salesforce_id", "person__email", "organisation__domain"]
