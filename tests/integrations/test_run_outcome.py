"""How a sync run's outcome reads: a success that left notes says so."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from integrations.models import ObjectMapping, SyncRun
from integrations.sync.run import connection_sync

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("status", "notes", "outcome"),
    [
        (SyncRun.Status.SUCCESS, 0, "Success"),
        (SyncRun.Status.SUCCESS, 1, "Success, 1 note"),
        (SyncRun.Status.SUCCESS, 1234, "Success, 1,234 notes"),
        (SyncRun.Status.COMPLETED_WITH_ERRORS, 3, "Completed with errors"),
        (SyncRun.Status.PARTIAL, 2, "Partial"),
        (SyncRun.Status.FAILED, 0, "Failed"),
    ],
)
def test_it_names_a_runs_outcome(status, notes, outcome):
    run = SyncRun(status=status, problem_count=notes)

    assert run.outcome == outcome


@pytest.fixture
def noted_run(org, org_http, connection):
    """A full sync that read everything and noted a field it could not see."""
    org.hide_field("Contact", "Title")
    return connection_sync(connection=connection)


def test_a_success_with_notes_is_shown_so_on_the_connection_page(
    noted_run, connection, client, member
):
    client.force_login(member.user)

    page = client.get(
        reverse("integrations:connection-detail", args=[connection.pk])
    ).content.decode()

    assert noted_run.status == SyncRun.Status.SUCCESS
    assert noted_run.problem_count == 1
    assert "<td>Success, 1 note</td>" in page


def test_it_words_the_summary_of_a_single_note_in_the_singular(
    noted_run, connection, client, member
):
    client.force_login(member.user)

    page = client.get(
        reverse("integrations:connection-detail", args=[connection.pk])
    ).content.decode()

    assert noted_run.problem_count == 1
    assert "What the 1 note says" in page


def test_a_success_with_notes_is_shown_so_in_the_admin(noted_run, connection, client):
    staff = get_user_model().objects.create_superuser(
        username="rep", email="rep@trig.example", password="a-long-password"
    )
    client.force_login(staff)

    runs = client.get(reverse("admin:integrations_syncrun_changelist"))
    chosen = client.get(
        reverse("admin:integrations_syncrun_changelist"), {"status__exact": "success"}
    )
    inline = client.get(
        reverse("admin:integrations_salesforceconnection_change", args=[connection.pk])
    )

    assert '<td class="field-outcome">Success, 1 note</td>' in runs.content.decode()
    assert "Success, 1 note" in chosen.content.decode()
    assert "Success, 1 note" in inline.content.decode()


def test_it_lists_what_the_notes_say_on_the_connection_page(
    org, org_http, connection, client, member
):
    ObjectMapping.objects.get(
        connection=connection, object_name="Contact"
    ).field_mappings.filter(salesforce_field="MailingCountry").update(
        transform="country_iso2"
    )
    first, second, third = org.store.records("Contact")[:3]
    org.store.update(first["Id"], {"MailingCountry": "Atlantis"})
    org.store.update(second["Id"], {"MailingCountry": "Atlantis"})
    org.store.update(third["Id"], {"MailingCountry": "Mordor"})
    run = connection_sync(connection=connection)
    client.force_login(member.user)

    page = client.get(
        reverse("integrations:connection-detail", args=[connection.pk])
    ).content.decode()

    assert run.problem_count == 3
    assert "<th>Notes</th>" in page
    assert "What the 3 notes say" in page
    assert (
        "<li>Contact.MailingCountry: Country to ISO 3166 alpha-2: &#x27;Atlantis&#x27; "
        "is not a country (2 records)</li>"
    ) in page
    assert (
        "<li>Contact.MailingCountry: Country to ISO 3166 alpha-2: &#x27;Mordor&#x27; "
        "is not a country</li>"
    ) in page


def test_it_groups_notes_and_counts_those_not_kept():
    note = {"object": "Contact", "id": "003A", "field": "Phone", "problem": "bad"}
    run = SyncRun(
        problem_count=5,
        problems=[
            note,
            {**note, "id": "003B"},
            {"object": "", "id": "", "field": "", "problem": "Read in full."},
        ],
    )

    grouped = run.notes_grouped

    assert grouped == [("Contact.Phone: bad", 2), ("Read in full.", 1)]
    assert run.notes_not_kept == 2


def test_the_connection_page_lists_imported_objects_in_the_order_they_are_read(
    org, org_http, connection, client, member
):
    connection_sync(connection=connection)
    client.force_login(member.user)

    page = client.get(
        reverse("integrations:connection-detail", args=[connection.pk])
    ).content.decode()

    imported = page.split("What is imported", 1)[1].split("Recent syncs", 1)[0]
    names = [
        name
        for name in re.findall(r"<tr><td>(\w+)</td>", imported)
        if name in {"User", "Account", "Contact", "Opportunity", "Lead"}
    ]
    read_order = list(
        ObjectMapping.objects.filter(connection=connection).values_list(
            "object_name", flat=True
        )
    )
    assert names == read_order == ["User", "Account", "Contact", "Opportunity", "Lead"]
