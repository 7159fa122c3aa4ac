from datetime import timedelta

import pytest

from integrations.models import SalesforceConnection, SyncRun
from integrations.tasks import sync_connection, sync_due_connections
from people.models import Person

pytestmark = pytest.mark.django_db


def test_the_scheduled_tick_imports_a_new_connection(
    org, org_http, connection, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        queued = sync_due_connections()

    run = SyncRun.objects.get()
    assert queued == 1
    assert run.trigger == SyncRun.Trigger.SCHEDULE and run.kind == SyncRun.Kind.FULL
    assert Person.objects.count() == org.store.count("Contact")
    connection.refresh_from_db()
    assert connection.next_full_sync_at == run.started_at + timedelta(hours=24)


def test_the_sync_task_does_nothing_for_a_connection_that_is_gone():
    assert sync_connection(424242) is None
    assert not SyncRun.objects.exists()


def test_the_sync_task_does_nothing_for_a_connection_to_reconnect(connection):
    SalesforceConnection.objects.update(
        status=SalesforceConnection.Status.RECONNECT_REQUIRED
    )

    assert sync_connection(connection.pk) is None
    assert not SyncRun.objects.exists()
