import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.admin_forms import ObjectMappingForm
from integrations.models import FieldMapping, ObjectMapping, SyncRun
from integrations.sync.defaults import mapping_create_defaults
from integrations.sync.run import connection_sync
from people.models import CrmRecord, Person

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:integrations_objectmapping_add")


def _form(connection, **overrides):
    data = {
        "connection": connection.pk,
        "object_name": "Guest_Review__c",
        "target": "record",
        "is_enabled": "on",
        "position": 90,
        "filter": "",
        "cursor_field": "LastModifiedDate",
        "person_lookup_field": "Contact__c",
        "organisation_lookup_field": "",
        "owner_lookup_field": "OwnerId",
        "field_mappings-TOTAL_FORMS": "2",
        "field_mappings-INITIAL_FORMS": "0",
        "field_mappings-MIN_NUM_FORMS": "0",
        "field_mappings-MAX_NUM_FORMS": "1000",
        "field_mappings-0-salesforce_field": "Name",
        "field_mappings-0-attribute": "name",
        "field_mappings-1-salesforce_field": "Rating__c",
        "field_mappings-1-transform": "",
    }
    data.update(overrides)
    return data


def test_staff_add_a_custom_object_in_the_admin_and_sync_it_now(
    org, org_http, connection, staff_client, django_capture_on_commit_callbacks
):
    response = staff_client.post(ADD_URL, _form(connection))
    assert response.status_code == 302, response.content.decode()[:2000]
    mapping = ObjectMapping.objects.get(object_name="Guest_Review__c")
    assert mapping.needs_backfill
    assert set(mapping.field_mappings.values_list("salesforce_field", flat=True)) == {
        "Name",
        "Rating__c",
    }
    connection_sync(connection=connection, object_names=["Contact"])

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            reverse("admin:integrations_objectmapping_changelist"),
            {"action": "sync_object_now", "_selected_action": [mapping.pk]},
        )

    run = SyncRun.objects.latest("started_at")
    assert run.status == SyncRun.Status.SUCCESS
    assert CrmRecord.objects.filter(object_name="Guest_Review__c").count() == (
        org.store.count("Guest_Review__c")
    )
    assert CrmRecord.objects.filter(person__isnull=False).count() == org.store.count(
        "Guest_Review__c"
    )


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"filter": "Rating__c = "}, "not a SOQL condition"),
        ({"filter": "Name = 'x') OR (Name != 'x'"}, "not a SOQL condition"),
        ({"filter": "Stars__c > 3"}, "has no field Stars__c"),
        (
            {"filter": "Contact__r.Account.Shoe__c = 'x'"},
            "Account has no field Shoe__c that the connected user can see "
            "(in Contact__r.Account.Shoe__c).",
        ),
        (
            {"filter": "Contact__r.AccountId = '001abc'"},
            "Contact__r.AccountId holds Salesforce Ids; &#x27;001abc&#x27; is not one",
        ),
        ({"object_name": "Nope__c"}, "does not exist in this org"),
        ({"filter": "NOT " * 500 + "Rating__c = 5"}, "nested more than 100 deep"),
        (
            {"filter": "(Rating__c = 5 AND " * 400 + "Name = 'x'" + ")" * 400},
            "nested more than 100 deep",
        ),
        ({"object_name": "Guest_Review__c WHERE"}, "is not a Salesforce API name"),
        ({"person_lookup_field": "Guest__c"}, "has no field Guest__c"),
        (
            {"person_lookup_field": "Name"},
            "Guest_Review__c.Name is a string field, not a lookup.",
        ),
        (
            {"person_lookup_field": "Experience__c"},
            "Experience__c on Guest_Review__c points to Experience__c, which is "
            "not imported as people; people come from Contact.",
        ),
        (
            {"owner_lookup_field": "Contact__c"},
            "Contact__c on Guest_Review__c points to Contact, which is not "
            "imported as owners; owners come from User.",
        ),
        ({"field_mappings-1-transform": "truncate"}, "number of characters"),
        (
            {"field_mappings-1-salesforce_field": "Ratng__c"},
            "Guest_Review__c has no field Ratng__c the connected user can see.",
        ),
        (
            {"field_mappings-1-salesforce_field": "Contact__r"},
            "Guest_Review__c has no field Contact__r the connected user can see.",
        ),
        ({"field_mappings-0-salesforce_field": "  "}, "This field is required."),
    ],
)
def test_the_admin_refuses_a_bad_configuration_with_the_reason(
    org, org_http, connection, staff_client, overrides, reason
):
    response = staff_client.post(ADD_URL, _form(connection, **overrides))

    assert response.status_code == 200
    assert reason in response.content.decode()
    assert not ObjectMapping.objects.filter(object_name__startswith="Guest").exists()


def test_the_field_picker_lists_describes_fields_and_flags_hidden_ones(
    org, org_http, connection, staff_client
):
    contact = connection.object_mappings.get(object_name="Contact")
    FieldMapping.objects.create(
        object_mapping=contact, salesforce_field="Guest_Type__c"
    )
    org.hide_field("Contact", "Guest_Type__c")
    connection_sync(connection=connection)

    page = staff_client.get(
        reverse("admin:integrations_objectmapping_change", args=[contact.pk])
    ).content.decode()

    assert "Department (string)" in page
    assert (
        "Guest_Type__c (hidden by field-level security for the connected user)" in page
    )


def test_preview_shows_the_first_ten_mapped_records_and_stores_nothing(
    org, org_http, connection, staff_client
):
    mapping_create_defaults(connection=connection)
    contact = connection.object_mappings.get(object_name="Contact")

    page = staff_client.get(
        reverse("admin:integrations_objectmapping_preview", args=[contact.pk])
    ).content.decode()

    first = sorted(org.store.records("Contact"), key=lambda c: c["Id"])[0]
    assert page.count('<tr class="preview-row">') == 10
    assert first["LastName"] in page
    assert not Person.objects.exists()


def test_a_field_added_in_the_admin_is_backfilled_on_the_next_sync(
    org, org_http, connection, staff_client
):
    connection_sync(connection=connection)
    contact = connection.object_mappings.get(object_name="Contact")
    existing = list(contact.field_mappings.all())
    data = {
        "connection": connection.pk,
        "object_name": "Contact",
        "target": "person",
        "is_enabled": "on",
        "position": contact.position,
        "filter": "",
        "cursor_field": "LastModifiedDate",
        "person_lookup_field": "",
        "organisation_lookup_field": "AccountId",
        "owner_lookup_field": "OwnerId",
        "field_mappings-TOTAL_FORMS": str(len(existing) + 1),
        "field_mappings-INITIAL_FORMS": str(len(existing)),
        "field_mappings-MIN_NUM_FORMS": "0",
        "field_mappings-MAX_NUM_FORMS": "1000",
    }
    for n, field in enumerate(existing):
        data.update(
            {
                f"field_mappings-{n}-id": field.pk,
                f"field_mappings-{n}-object_mapping": contact.pk,
                f"field_mappings-{n}-salesforce_field": field.salesforce_field,
                f"field_mappings-{n}-attribute": field.attribute,
            }
        )
    data[f"field_mappings-{len(existing)}-salesforce_field"] = "Preferred_Name__c"

    response = staff_client.post(
        reverse("admin:integrations_objectmapping_change", args=[contact.pk]), data
    )
    run = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    assert response.status_code == 302, response.content.decode()[:3000]
    with_name = [c for c in org.store.records("Contact") if c.get("Preferred_Name__c")]
    person = Person.objects.get(salesforce_id=with_name[0]["Id"])
    assert (
        person.custom_values["Preferred_Name__c"] == with_name[0]["Preferred_Name__c"]
    )
    assert run.records_fetched >= org.store.count("Contact")


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        (
            {"field_mappings-1-salesforce_field": "name"},
            "name is mapped twice",
        ),
        (
            {
                "field_mappings-0-attribute": "",
                "field_mappings-0-custom_name": "score",
                "field_mappings-1-custom_name": "SCORE",
            },
            "Two fields would fill the custom value",
        ),
        (
            {"field_mappings-1-attribute": "name"},
            "Name and Rating__c would both fill the attribute name; keep one.",
        ),
    ],
)
def test_the_admin_refuses_a_field_or_custom_value_given_twice(
    org, org_http, connection, staff_client, rows, reason
):
    response = staff_client.post(ADD_URL, _form(connection, **rows))

    assert response.status_code == 200
    assert reason in response.content.decode()
    assert not ObjectMapping.objects.filter(object_name="Guest_Review__c").exists()


def test_a_filter_on_a_field_salesforce_cannot_filter_is_refused_on_save(
    org, org_http, connection, staff_client
):
    response = staff_client.post(
        ADD_URL, _form(connection, filter="Comments__c = 'great'")
    )

    assert response.status_code == 200
    assert "Salesforce cannot filter on Comments__c" in response.content.decode()


def test_a_filter_through_a_lookup_is_accepted_and_applied(
    org, org_http, connection, staff_client
):
    reviewer = org.store.get(org.store.records("Guest_Review__c")[0]["Contact__c"])
    condition = f"Contact__r.LastName = '{reviewer['LastName']}'"

    response = staff_client.post(ADD_URL, _form(connection, filter=condition))
    connection_sync(connection=connection, object_names=["Guest_Review__c"])

    expected = {
        r["Id"]
        for r in org.store.records("Guest_Review__c")
        if org.store.get(r["Contact__c"])["LastName"] == reviewer["LastName"]
    }
    assert response.status_code == 302
    assert (
        set(
            CrmRecord.objects.filter(object_name="Guest_Review__c").values_list(
                "salesforce_id", flat=True
            )
        )
        == expected
    )


@pytest.mark.parametrize("attribute", ["custom_values", "salesforce_id", "title"])
def test_the_admin_refuses_an_attribute_a_new_mappings_target_lacks(
    org, org_http, connection, staff_client, attribute
):
    response = staff_client.post(
        ADD_URL, _form(connection, **{"field_mappings-0-attribute": attribute})
    )

    assert response.status_code == 200
    assert f"A record has no attribute {attribute}; choose one of name." in (
        response.content.decode()
    )
    assert not ObjectMapping.objects.filter(object_name="Guest_Review__c").exists()


def test_preview_joins_a_field_list_read_in_groups(
    org, org_http, connection, staff_client, settings
):
    settings.SALESFORCE_QUERY_URL_BUDGET = 400
    mapping_create_defaults(connection=connection)
    contact = connection.object_mappings.get(object_name="Contact")
    for name in ("Department", "MobilePhone", "Birthdate", "LeadSource"):
        FieldMapping.objects.create(object_mapping=contact, salesforce_field=name)
    first = sorted(org.store.records("Contact"), key=lambda c: c["Id"])[0]
    org.store.update(first["Id"], {"Department": "Read in the last group"})

    page = staff_client.get(
        reverse("admin:integrations_objectmapping_preview", args=[contact.pk])
    ).content.decode()

    assert page.count('<tr class="preview-row">') == 10
    assert first["LastName"] in page
    assert "Read in the last group" in page
    assert "MALFORMED_QUERY" not in page


def test_preview_of_a_filter_too_long_to_send_says_so(
    org, org_http, connection, staff_client
):
    mapping_create_defaults(connection=connection)
    contact = connection.object_mappings.get(object_name="Contact")
    ids = ", ".join(f"'0035g0000{n:06d}AAA'" for n in range(1000))
    ObjectMapping.objects.filter(pk=contact.pk).update(filter=f"Id NOT IN ({ids})")

    response = staff_client.get(
        reverse("admin:integrations_objectmapping_preview", args=[contact.pk])
    )

    assert response.status_code == 200
    assert "too long to send" in response.content.decode()


def test_the_admin_takes_lookups_to_what_is_imported_polymorphic_ones_included(
    org, org_http, connection, staff_client
):
    mapping_create_defaults(connection=connection)

    response = staff_client.post(
        ADD_URL,
        _form(
            connection,
            object_name="Case",
            person_lookup_field="ContactId",
            organisation_lookup_field="AccountId",
            owner_lookup_field="OwnerId",
            **{
                "field_mappings-0-salesforce_field": "Subject",
                "field_mappings-1-salesforce_field": "Status",
            },
        ),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert ObjectMapping.objects.filter(object_name="Case").exists()


def _case_form(connection, **overrides):
    return _form(
        connection,
        object_name="Case",
        person_lookup_field="ContactId",
        organisation_lookup_field="AccountId",
        owner_lookup_field="OwnerId",
        **{
            "field_mappings-0-salesforce_field": "Subject",
            "field_mappings-1-salesforce_field": "Status",
        },
        **overrides,
    )


def test_a_filter_through_a_polymorphic_lookup_is_checked_and_applied(
    org, org_http, connection, staff_client
):
    mapping_create_defaults(connection=connection)
    refused = staff_client.post(
        ADD_URL, _case_form(connection, filter="Owner.Department = 'Sales'")
    )

    accepted = staff_client.post(
        ADD_URL, _case_form(connection, filter="Owner.Name = 'Ada Admin'")
    )
    run = connection_sync(connection=connection, object_names=["Case"])

    assert "which has no field Department" in refused.content.decode()
    assert accepted.status_code == 302, accepted.content.decode()[:2000]
    assert run.status == SyncRun.Status.SUCCESS
    expected = {
        c["Id"] for c in org.store.records("Case") if c["OwnerId"] == org.admin_user_id
    }
    assert expected
    assert (
        set(
            CrmRecord.objects.filter(object_name="Case").values_list(
                "salesforce_id", flat=True
            )
        )
        == expected
    )


def _not_in(count: int) -> str:
    ids = ", ".join(f"'0035G00000{n:05d}AAA'" for n in range(count))
    return f"Contact__c NOT IN ({ids})"


def test_the_admin_refuses_a_filter_too_long_for_the_sync_to_send(
    org, org_http, connection, staff_client, settings
):
    settings.SALESFORCE_QUERY_URL_BUDGET = 2000
    fits = staff_client.post(ADD_URL, _form(connection, filter=_not_in(55)))
    ObjectMapping.objects.filter(object_name="Guest_Review__c").delete()

    refused = staff_client.post(ADD_URL, _form(connection, filter=_not_in(66)))

    assert fits.status_code == 302, fits.content.decode()[:2000]
    assert refused.status_code == 200
    assert "too long to send" in refused.content.decode()
    assert not ObjectMapping.objects.filter(object_name="Guest_Review__c").exists()


@pytest.mark.parametrize(
    "name", ["../limits", "Contact/describe?x=", "Account#", "Guest_Review__c WHERE"]
)
def test_an_object_name_that_is_no_api_name_never_reaches_salesforce(
    org, org_http, connection, staff_client, name
):
    before = len(org_http.calls)

    response = staff_client.post(ADD_URL, _form(connection, object_name=name))

    assert response.status_code == 200
    assert "is not a Salesforce API name" in response.content.decode()
    assert org_http.calls[before:] == []


def test_a_stored_object_name_that_is_no_api_name_fails_that_object_unsent(
    org, org_http, connection
):
    mapping_create_defaults(connection=connection)
    ObjectMapping.objects.create(
        connection=connection, object_name="../limits", target="record"
    )

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert run.object_errors == {
        "../limits": "'../limits' is not a Salesforce API name; nothing was sent."
    }
    assert not [c for c in org_http.calls if "limits/describe" in c.request.url]
    assert Person.objects.count() == org.store.count("Contact")


def test_it_reads_what_is_imported_once_however_many_lookups_are_checked(
    org, org_http, connection
):
    mapping_create_defaults(connection=connection)
    three_lookups = _case_form(connection)
    one_lookup = {
        **three_lookups,
        "organisation_lookup_field": "",
        "owner_lookup_field": "",
    }
    # Once first, for the describe it stores.
    ObjectMappingForm(data=three_lookups).is_valid()

    counts = []
    for data in (one_lookup, three_lookups):
        form = ObjectMappingForm(data=data)
        with CaptureQueriesContext(db_connection) as queries:
            is_valid = form.is_valid()
        assert is_valid, form.errors
        counts.append(len(queries))

    assert counts[0] == counts[1]
