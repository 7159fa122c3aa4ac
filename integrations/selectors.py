from django.db.models import QuerySet

from integrations.models import (
    ObjectMapping,
    SalesforceConnection,
    SignalRule,
    SyncCursor,
    SyncRun,
)
from trig_crm.models import Workspace


def connection_list(*, workspace: Workspace) -> QuerySet[SalesforceConnection]:
    return SalesforceConnection.objects.filter(workspace=workspace).order_by(
        "-connected_at"
    )


def connection_get(*, workspace: Workspace, pk: int) -> SalesforceConnection | None:
    return SalesforceConnection.objects.filter(workspace=workspace, pk=pk).first()


def sync_run_recent(
    *, connection: SalesforceConnection, limit: int = 10
) -> QuerySet[SyncRun]:
    return connection.sync_runs.order_by("-started_at")[:limit]


def object_mapping_stamps(*, connection: SalesforceConnection) -> list[dict]:
    """Each imported object in the order a sync reads them, what it becomes,
    the stamp its recent changes are read by (the one in use once read, else
    the configured one) and its mapped fields the last read left out."""
    in_use = dict(
        SyncCursor.objects.filter(connection=connection).values_list(
            "object_name", "field_name"
        )
    )
    return [
        {
            "object_name": mapping.object_name,
            "target": mapping.get_target_display(),
            "stamp": in_use.get(mapping.object_name) or mapping.cursor_field,
            # Left out of the last read: the connected user cannot see them.
            "hidden": sorted(mapping.skipped_fields),
        }
        for mapping in ObjectMapping.objects.filter(
            connection=connection, is_enabled=True
        ).order_by("position", "pk")
    ]


def signal_rules_enabled(*, mapping: ObjectMapping) -> list[SignalRule]:
    return list(mapping.signal_rules.filter(is_enabled=True))
