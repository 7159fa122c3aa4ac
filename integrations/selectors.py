from django.db.models import QuerySet

from integrations.models import SalesforceConnection, SyncRun
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
