"""The "Sync now" button: one full sync per request, however often pressed."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import SalesforceConnection, SyncRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, member):
    client.force_login(member.user)
    return client


def _sync_now(client, connection):
    return client.post(
        reverse("integrations:connection-sync", args=[connection.pk]), follow=True
    )


def test_pressing_sync_now_again_before_the_sync_ends_queues_nothing_more(
    connection, signed_in, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        first = _sync_now(signed_in, connection)
        again = [_sync_now(signed_in, connection) for _ in range(3)]

    assert len(queued) == 1
    assert "A full sync has been requested." in first.content.decode()
    # Until it starts, the page says it is coming rather than that none ran.
    assert "A full sync was asked for (" in first.content.decode()
    assert "No sync has run yet" not in first.content.decode()
    for page in again:
        assert "has not finished yet, so no other was queued" in page.content.decode()


def test_once_the_requested_sync_has_ended_another_can_be_asked_for(
    connection, signed_in, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _sync_now(signed_in, connection)
    with django_capture_on_commit_callbacks(execute=True):
        _sync_now(signed_in, connection)

    page = signed_in.get(
        reverse("integrations:connection-detail", args=[connection.pk])
    ).content.decode()

    connection.refresh_from_db()
    assert SyncRun.objects.filter(trigger=SyncRun.Trigger.MANUAL).count() == 2
    assert connection.sync_requested_at is None
    assert "A full sync was asked for (" not in page


def test_a_request_whose_sync_was_lost_does_not_block_the_next(
    connection, signed_in, django_capture_on_commit_callbacks
):
    SalesforceConnection.objects.filter(pk=connection.pk).update(
        sync_requested_at=timezone.now() - timedelta(hours=13)
    )

    with django_capture_on_commit_callbacks() as queued:
        _sync_now(signed_in, connection)

    assert len(queued) == 1


def test_the_admin_queues_one_sync_for_a_connection_asked_for_twice(
    connection, staff_client, django_capture_on_commit_callbacks
):
    changelist = reverse("admin:integrations_salesforceconnection_changelist")

    with django_capture_on_commit_callbacks() as queued:
        for _ in range(2):
            staff_client.post(
                changelist, {"action": "sync_now", "_selected_action": [connection.pk]}
            )

    assert len(queued) == 1
