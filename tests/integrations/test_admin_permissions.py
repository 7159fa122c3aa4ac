"""What a representative who may only look can do in the admin."""

import pytest
from django.urls import reverse

from integrations.models import ObjectMapping, SyncRun

pytestmark = pytest.mark.django_db


def test_staff_who_may_only_view_connections_cannot_sync_one(
    org_http, connection, staff_who_may, django_capture_on_commit_callbacks
):
    client = staff_who_may("view_salesforceconnection")

    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = client.post(
            reverse("admin:integrations_salesforceconnection_changelist"),
            {"action": "sync_now", "_selected_action": [connection.pk]},
        )

    assert response.status_code == 200
    assert queued == []
    assert not SyncRun.objects.exists()
    assert len(org_http.calls) == 0


def test_staff_who_may_only_view_mappings_cannot_sync_an_object(
    org_http, connection, staff_who_may, django_capture_on_commit_callbacks
):
    mapping = ObjectMapping.objects.get(connection=connection, object_name="Contact")
    client = staff_who_may("view_objectmapping")

    with django_capture_on_commit_callbacks(execute=True) as queued:
        client.post(
            reverse("admin:integrations_objectmapping_changelist"),
            {"action": "sync_object_now", "_selected_action": [mapping.pk]},
        )

    assert queued == []
    assert not SyncRun.objects.exists()
    assert len(org_http.calls) == 0


def test_the_preview_of_records_is_for_staff_who_may_view_the_mapping(
    org_http, connection, staff_who_may
):
    mapping = ObjectMapping.objects.get(connection=connection, object_name="Contact")
    client = staff_who_may("view_salesforceconnection")

    response = client.get(
        reverse("admin:integrations_objectmapping_preview", args=[mapping.pk])
    )

    assert response.status_code == 403
    assert len(org_http.calls) == 0
