import pytest
from django.urls import reverse

from integrations.models import SyncRun
from jobs.models import JobRun
from tests.factories import SalesforceConnectionFactory

pytestmark = pytest.mark.django_db


def test_it_names_salesforce_accounts_and_records_as_crm_ones(admin_client):
    response = admin_client.get(reverse("admin:app_list", args=["people"]))

    page = response.content.decode()
    assert "CRM accounts" in page
    assert "CRM records" in page
    assert "Crm" not in page


def test_it_spells_api_in_capitals_in_the_admin(staff_client):
    connection = SalesforceConnectionFactory()
    run = SyncRun.objects.create(connection=connection, kind=SyncRun.Kind.FULL)
    job_run = JobRun.objects.create(connection=connection)
    pages = [
        reverse("admin:integrations_salesforceconnection_change", args=[connection.pk]),
        reverse("admin:integrations_syncrun_change", args=[run.pk]),
        reverse("admin:jobs_jobrun_change", args=[job_run.pk]),
        reverse("admin:jobs_event_changelist"),
    ]

    texts = [staff_client.get(page).content.decode() for page in pages]

    assert all("API calls" in text for text in texts[1:3])
    assert "API warning" in texts[0]
    assert not [text for text in texts if "Api " in text]


def test_it_shows_a_runs_notes_as_a_table_and_offers_no_add_for_synced_rows(
    staff_client,
):
    connection = SalesforceConnectionFactory()
    run = SyncRun.objects.create(
        connection=connection,
        kind=SyncRun.Kind.FULL,
        problems=[
            {"object": "Contact", "id": "003A", "field": "Phone", "problem": "<b>x"}
        ],
        problem_count=3,
    )

    page = staff_client.get(
        reverse("admin:integrations_syncrun_change", args=[run.pk])
    ).content.decode()
    cursor_add = staff_client.get(reverse("admin:integrations_synccursor_add"))
    organisation_add = staff_client.get(reverse("admin:people_organisation_add"))

    assert "<td>Contact</td><td>003A</td><td>Phone</td><td>&lt;b&gt;x</td>" in page
    assert "The first 1 of 3 are kept." in page
    assert '"problem"' not in page
    assert cursor_add.status_code == 403
    assert organisation_add.status_code == 403


def test_a_synced_rows_own_page_links_to_its_record_in_salesforce(staff_client):
    from people.models import Person

    connection = SalesforceConnectionFactory()
    person = Person.objects.create(
        workspace=connection.workspace,
        connection=connection,
        salesforce_id="0035g00003fjSVoAAM",
    )

    page = staff_client.get(
        reverse("admin:people_person_change", args=[person.pk])
    ).content.decode()

    assert 'href="https://acme.my.salesforce.com/0035g00003fjSVoAAM"' in page
