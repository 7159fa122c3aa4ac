from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import SalesforceConnection, SyncRun
from integrations.sync.schedule import sync_enqueue_due
from people.models import Person

pytestmark = pytest.mark.django_db


def test_sync_now_in_the_admin_runs_a_full_sync(
    org, org_http, connection, staff_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:integrations_salesforceconnection_changelist"),
            {"action": "sync_now", "_selected_action": [connection.pk]},
            follow=True,
        )

    run = SyncRun.objects.get()
    assert response.status_code == 200
    assert "Full sync requested for 1 connection." in response.content.decode()
    assert run.trigger == SyncRun.Trigger.MANUAL and run.kind == SyncRun.Kind.FULL
    assert run.status == SyncRun.Status.SUCCESS
    assert Person.objects.count() == org.store.count("Contact")


def test_the_admin_never_shows_tokens(connection, staff_client):
    page = staff_client.get(
        reverse("admin:integrations_salesforceconnection_change", args=[connection.pk])
    ).content.decode()

    assert connection.org_id in page
    assert connection.access_token not in page
    assert connection.refresh_token not in page
    assert "access_token" not in page


@pytest.mark.parametrize(
    ("model", "term"),
    [
        ("person", "salesforce_id"),
        ("person", "email"),
        ("organisation", "domain"),
        ("crmaccount", "salesforce_id"),
        ("owner", "name"),
        ("crmrecord", "name"),
        ("crmrecord", "salesforce_id"),
    ],
)
def test_staff_find_synced_rows_by_name_email_domain_and_salesforce_id(
    org, org_http, connection, staff_client, model, term
):
    from integrations.sync.run import connection_sync
    from people.models import CrmAccount, CrmRecord, Organisation, Owner

    connection_sync(connection=connection)
    row = {
        "person": Person.objects.exclude(email=""),
        "organisation": Organisation.objects.exclude(domain=None),
        "crmaccount": CrmAccount.objects.all(),
        "owner": Owner.objects.all(),
        "crmrecord": CrmRecord.objects.filter(object_name="Opportunity"),
    }[model].first()
    needle = getattr(row, term)

    page = staff_client.get(
        reverse(f"admin:people_{model}_changelist"), {"q": needle}
    ).content.decode()

    assert str(row) in page


def test_a_customer_cannot_open_the_admin(client, member):
    client.force_login(member.user)

    response = client.get(reverse("admin:index"))

    assert response.status_code == 302
    assert SalesforceConnection.objects.count() == 0


def test_the_connection_page_shows_the_schedule_runs_and_api_usage(
    org, org_http, connection, staff_client
):
    from integrations.sync.run import connection_sync

    run = connection_sync(connection=connection)

    page = staff_client.get(
        reverse("admin:integrations_salesforceconnection_change", args=[connection.pk])
    ).content.decode()

    connection.refresh_from_db()
    assert "Next full sync" in page and "Last recent sync" in page
    assert (
        f"{connection.api_usage_used:,} / {connection.api_usage_max:,}, seen 0"
        "\xa0minutes ago" in page
    )
    assert "Calls by Trig" in page
    assert "Api usage used" not in page
    assert f"<p>{run.api_calls}</p>" in page or f">{run.api_calls}<" in page


@pytest.mark.parametrize("minutes", ["10000000000", "99999", "1441"])
def test_a_recent_sync_interval_past_a_day_is_refused_and_the_schedule_goes_on(
    connection, staff_client, minutes
):
    url = reverse(
        "admin:integrations_salesforceconnection_change", args=[connection.pk]
    )
    form = {"recent_sync_minutes": minutes}
    for inline in ("object_mappings", "sync_runs"):
        form.update({f"{inline}-TOTAL_FORMS": "0", f"{inline}-INITIAL_FORMS": "0"})

    response = staff_client.post(url, form)

    connection.refresh_from_db()
    assert response.status_code == 200
    assert "at most 1440" in response.content.decode()
    assert connection.recent_sync_minutes == 15
    assert sync_enqueue_due() == [(connection.pk, SyncRun.Kind.FULL)]


def test_a_shorter_recent_sync_interval_counts_from_the_next_tick(
    connection, staff_client
):
    now = timezone.now()
    SalesforceConnection.objects.filter(pk=connection.pk).update(
        recent_sync_minutes=240,
        last_full_sync_at=now,
        next_full_sync_at=now + timedelta(hours=20),
        next_recent_sync_at=now + timedelta(hours=3),
    )
    url = reverse(
        "admin:integrations_salesforceconnection_change", args=[connection.pk]
    )
    form = {"recent_sync_minutes": "15"}
    for inline in ("object_mappings", "sync_runs"):
        form.update({f"{inline}-TOTAL_FORMS": "0", f"{inline}-INITIAL_FORMS": "0"})

    response = staff_client.post(url, form)

    assert response.status_code == 302
    assert sync_enqueue_due() == [(connection.pk, SyncRun.Kind.RECENT)]
    connection.refresh_from_db()
    assert connection.next_recent_sync_at <= timezone.now() + timedelta(minutes=15)
