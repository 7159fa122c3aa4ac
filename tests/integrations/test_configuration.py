from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import unquote_plus

import pytest
from django.urls import reverse

from integrations.configuration import object_mapping_mark_changed
from integrations.models import FieldMapping, ObjectMapping, SyncRun
from integrations.offline_org import offline_org_connect
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.testing import mocked
from integrations.salesforce.soql_build import encoded_size
from integrations.sync.defaults import mapping_create_defaults
from integrations.sync.run import connection_sync
from integrations.sync.schedule import sync_enqueue_due
from people.models import CrmAccount, CrmRecord, Person
from tests.conftest import OFFLINE_HOST
from tests.integrations.support import sent_queries

pytestmark = pytest.mark.django_db

URI_LIMIT = 16_384


def _mapping(connection, object_name) -> ObjectMapping:
    mapping_create_defaults(connection=connection)
    return connection.object_mappings.get(object_name=object_name)


def test_a_custom_field_arrives_on_people_typed_by_describe(org, org_http, connection):
    contact = _mapping(connection, "Contact")
    FieldMapping.objects.create(
        object_mapping=contact, salesforce_field="Guest_Type__c"
    )
    FieldMapping.objects.create(
        object_mapping=contact,
        salesforce_field="Next_Check_in_Date__c",
        custom_name="check_in",
    )
    guest = next(c for c in org.store.records("Contact") if c.get("Guest_Type__c"))
    org.store.update(guest["Id"], {"Next_Check_in_Date__c": "2026-12-24"})

    connection_sync(connection=connection)

    person = Person.objects.get(salesforce_id=guest["Id"])
    assert person.custom_values["Guest_Type__c"] == guest["Guest_Type__c"]
    assert person.custom_values["check_in"] == "2026-12-24"


def test_a_multi_select_picklist_becomes_a_list(org, org_http, connection):
    space = ObjectMapping.objects.create(
        connection=connection,
        object_name="Space__c",
        target=ObjectMapping.Target.RECORD,
    )
    FieldMapping.objects.create(
        object_mapping=space, salesforce_field="Name", attribute="name"
    )
    FieldMapping.objects.create(object_mapping=space, salesforce_field="Type__c")
    FieldMapping.objects.create(
        object_mapping=space, salesforce_field="Daily_Booking_Rate__c"
    )
    sample = org.store.records("Space__c")[0]

    connection_sync(connection=connection)

    record = CrmRecord.objects.get(salesforce_id=sample["Id"])
    assert record.object_name == "Space__c"
    assert record.custom_values["Type__c"] == sample["Type__c"].split(";")
    assert (
        record.custom_values["Daily_Booking_Rate__c"] == sample["Daily_Booking_Rate__c"]
    )
    assert CrmRecord.objects.filter(object_name="Space__c").count() == org.store.count(
        "Space__c"
    )


def test_a_custom_object_is_imported_and_linked_to_its_person(
    org, org_http, connection
):
    reviews = ObjectMapping.objects.create(
        connection=connection,
        object_name="Guest_Review__c",
        target=ObjectMapping.Target.RECORD,
        person_lookup_field="Contact__c",
        owner_lookup_field="OwnerId",
        position=90,
    )
    FieldMapping.objects.create(
        object_mapping=reviews, salesforce_field="Name", attribute="name"
    )
    FieldMapping.objects.create(object_mapping=reviews, salesforce_field="Rating__c")

    connection_sync(connection=connection)

    for review in org.store.records("Guest_Review__c"):
        record = CrmRecord.objects.get(salesforce_id=review["Id"])
        assert record.person.salesforce_id == review["Contact__c"]
        assert record.owner.salesforce_id == review["OwnerId"]
        assert record.name == review["Name"]


def test_cases_are_attached_to_their_people(org, org_http, connection):
    cases = ObjectMapping.objects.create(
        connection=connection,
        object_name="Case",
        target=ObjectMapping.Target.RECORD,
        person_lookup_field="ContactId",
        organisation_lookup_field="AccountId",
        position=60,
    )
    FieldMapping.objects.create(
        object_mapping=cases, salesforce_field="Subject", attribute="name"
    )
    FieldMapping.objects.create(object_mapping=cases, salesforce_field="Status")

    connection_sync(connection=connection)

    for case in org.store.records("Case"):
        person = Person.objects.get(salesforce_id=case["ContactId"])
        record = person.crm_records.get(salesforce_id=case["Id"])
        assert record.object_name == "Case"
        assert record.custom_values["Status"] == case["Status"]
        assert record.name == case["Subject"]


def test_opportunities_and_leads_link_to_what_their_ids_resolve_to(
    org, org_http, connection
):
    connection_sync(connection=connection)

    opportunity = next(
        o for o in org.store.records("Opportunity") if o.get("AccountId")
    )
    record = CrmRecord.objects.get(salesforce_id=opportunity["Id"])
    account = CrmAccount.objects.get(salesforce_id=opportunity["AccountId"])
    assert record.organisation == account.organisation
    assert record.custom_values["StageName"] == opportunity["StageName"]
    assert record.owner.salesforce_id == opportunity["OwnerId"]
    assert CrmRecord.objects.filter(object_name="Lead").count() == org.store.count(
        "Lead"
    )


def test_a_filter_limits_what_is_imported(org, org_http, connection):
    accounts = _mapping(connection, "Account")
    accounts.filter = "Industry = 'Major Banks' OR Industry = 'Commercial Banks'"
    accounts.save()

    connection_sync(connection=connection)

    expected = {
        a["Id"]
        for a in org.store.records("Account")
        if a.get("Industry") in ("Major Banks", "Commercial Banks")
    }
    assert expected
    assert set(CrmAccount.objects.values_list("salesforce_id", flat=True)) == expected


def test_a_3000_id_filter_is_split_under_the_limits_with_the_same_result(
    org, org_http, connection, settings
):
    real = [c["Id"] for c in org.store.records("Contact")][::2]
    made_up = [f"0035g0000{n:06d}AAA" for n in range(3000 - len(real))]
    contact = _mapping(connection, "Contact")
    contact.filter = "Id IN (" + ", ".join(f"'{i}'" for i in real + made_up) + ")"
    contact.save()

    run = connection_sync(connection=connection)

    contact_queries = [q for q in sent_queries(org_http) if "FROM Contact" in q]
    contact_urls = [
        c.request.url for c in org_http.calls if "FROM+Contact" in c.request.url
    ]
    assert run.status == SyncRun.Status.SUCCESS
    assert len(contact_queries) > 1
    assert all(
        len(url.encode()) <= settings.SALESFORCE_QUERY_URL_BUDGET + 200
        for url in contact_urls
    )
    assert all(len(url.encode()) < URI_LIMIT for url in contact_urls)
    assert all(len(q) < 100_000 for q in contact_queries)
    assert set(Person.objects.values_list("salesforce_id", flat=True)) == set(real)
    assert Person.objects.count() == len(real)


def test_a_query_salesforce_refuses_as_too_long_fails_its_object_once_by_status(
    org, org_http, connection, settings
):
    # A budget above Salesforce's own limit lets a 3,000-Id filter go out whole.
    settings.SALESFORCE_QUERY_URL_BUDGET = 100_000
    ids = [f"0035g0000{n:06d}AAA" for n in range(3000)]
    contact = _mapping(connection, "Contact")
    contact.filter = "Id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"
    contact.save()

    run = connection_sync(connection=connection)

    sent = [c for c in org_http.calls if "FROM+Contact" in c.request.url]
    assert [c.response.status_code for c in sent] == [414]
    assert len(sent[0].request.url.encode()) > URI_LIMIT
    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert run.object_errors == {"Contact": "HTTP 414 from Salesforce, non-JSON body"}
    assert not Person.objects.exists()
    assert CrmAccount.objects.count() == org.store.count("Account")


def test_a_field_list_too_wide_for_one_query_is_read_in_groups_joined_by_id(
    org, org_http, connection, settings
):
    settings.SALESFORCE_QUERY_URL_BUDGET = 400
    contact = _mapping(connection, "Contact")
    for name in ("Department", "MobilePhone", "Birthdate", "LeadSource", "Description"):
        FieldMapping.objects.create(object_mapping=contact, salesforce_field=name)
    sample = next(c for c in org.store.records("Contact") if c.get("MobilePhone"))

    run = connection_sync(connection=connection, object_names=["Account", "Contact"])

    contact_queries = [q for q in sent_queries(org_http) if "FROM Contact" in q]
    person = Person.objects.get(salesforce_id=sample["Id"])
    assert run.status == SyncRun.Status.SUCCESS
    assert len(contact_queries) > 1
    assert all(q.startswith("SELECT Id,") for q in contact_queries)
    assert person.custom_values["MobilePhone"] == sample["MobilePhone"]
    assert person.last_name == sample["LastName"]
    assert Person.objects.count() == org.store.count("Contact")


def test_a_hidden_field_is_skipped_reported_and_shown_and_values_stay(
    org, org_http, connection
):
    contact = _mapping(connection, "Contact")
    FieldMapping.objects.create(
        object_mapping=contact, salesforce_field="Guest_Type__c"
    )
    connection_sync(connection=connection)
    guest = next(
        p for p in Person.objects.all() if p.custom_values.get("Guest_Type__c")
    )
    org.hide_field("Contact", "Guest_Type__c")

    run = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    contact.refresh_from_db()
    reloaded = Person.objects.get(pk=guest.pk)
    assert run.status == SyncRun.Status.SUCCESS
    assert "Contact.Guest_Type__c" in run.skipped_fields
    assert "Guest_Type__c" in contact.skipped_fields
    assert (
        reloaded.custom_values["Guest_Type__c"] == guest.custom_values["Guest_Type__c"]
    )
    read_with = [q for q in sent_queries(org_http) if "FROM Contact" in q][-1]
    assert "Guest_Type__c" not in read_with


def test_staff_are_told_a_hidden_field_was_skipped_and_why(
    org, org_http, connection, member, client
):
    contact = _mapping(connection, "Contact")
    FieldMapping.objects.create(
        object_mapping=contact, salesforce_field="Guest_Type__c"
    )
    org.hide_field("Contact", "Guest_Type__c")
    client.force_login(member.user)

    run = connection_sync(connection=connection)
    page = client.get(
        reverse("integrations:connection-detail", args=[connection.pk])
    ).content.decode()

    [warning] = [p for p in run.problems if p["field"] == "Guest_Type__c"]
    told = "skipped: hidden by field-level security for the connected user"
    assert warning["object"] == "Contact" and warning["problem"].startswith(told)
    assert run.status == SyncRun.Status.SUCCESS
    # On the run, and next to the object's mapping on the CRM settings page.
    assert f"Contact.Guest_Type__c {told}" in page
    assert "Guest_Type__c: hidden by field-level security" in page


def test_a_field_visible_again_is_read_for_every_record(org, org_http, connection):
    contact = _mapping(connection, "Contact")
    FieldMapping.objects.create(
        object_mapping=contact, salesforce_field="Guest_Type__c"
    )
    org.hide_field("Contact", "Guest_Type__c")
    connection_sync(connection=connection)
    assert not any("Guest_Type__c" in p.custom_values for p in Person.objects.all())
    org.show_field("Contact", "Guest_Type__c")

    connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    with_value = sum(1 for c in org.store.records("Contact") if c.get("Guest_Type__c"))
    assert with_value > 0
    assert with_value == sum(
        1 for p in Person.objects.all() if p.custom_values.get("Guest_Type__c")
    )


class _OrgDeletingAField(OfflineOrg):
    """Describe still lists Contact.Title once; then the field is gone."""

    def __init__(self):
        super().__init__()
        self.describes = 0

    def _api_describe(self, context, sobject):
        if sobject == "Contact":
            self.describes += 1
            if self.describes > 1:
                self.hide_field("Contact", "Title")
        return super()._api_describe(context, sobject)

    def _run_query(self, context, *, include_deleted):
        if self.describes:
            self.hide_field("Contact", "Title")
        return super()._run_query(context, include_deleted=include_deleted)


@contextmanager
def _title_stored_before(org, member):
    """Connect `org` and store a titled Contact's person with another title."""
    titled = next(c for c in org.store.records("Contact") if c.get("Title"))
    with mocked(org, base_url=f"https://{OFFLINE_HOST}") as mock:
        connection = offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )
        Person.objects.create(
            workspace=member.workspace,
            connection=connection,
            salesforce_id=titled["Id"],
            last_name=titled["LastName"],
            title="Stored before",
        )
        yield connection, titled, mock


def test_a_mapped_field_deleted_in_the_org_costs_that_field_only(member):
    org = _OrgDeletingAField()
    with _title_stored_before(org, member) as (connection, titled, mock):
        first = connection_sync(connection=connection)
        calls_before = len(mock.calls)
        second = connection_sync(connection=connection)
        refused = [
            c for c in mock.calls[calls_before:] if c.response.status_code == 400
        ]

    assert first.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert any("INVALID_FIELD" in p["problem"] for p in first.problems)
    assert Person.objects.count() == org.store.count("Contact")
    assert Person.objects.get(salesforce_id=titled["Id"]).title == "Stored before"
    assert second.status == SyncRun.Status.SUCCESS
    assert "Contact.Title" in second.skipped_fields
    assert refused == []


class _OrgRefusingAFieldItDescribes(OfflineOrg):
    """Describe lists Contact.Title however often it is asked, and every
    query naming it is refused: the field keeps changing under the run."""

    def _run_query(self, context, *, include_deleted):
        self.hide_field("Contact", "Title")
        try:
            return super()._run_query(context, include_deleted=include_deleted)
        finally:
            self.show_field("Contact", "Title")


def test_a_field_refused_again_after_a_fresh_describe_leaves_the_object_partial(
    member,
):
    org = _OrgRefusingAFieldItDescribes()
    with _title_stored_before(org, member) as (connection, titled, mock):
        run = connection_sync(connection=connection)
        contact_queries = [q for q in sent_queries(mock) if "FROM Contact" in q]

    assert run.status == SyncRun.Status.PARTIAL
    assert run.object_errors["Contact"].startswith("INVALID_FIELD: ")
    assert "No such column 'Title' on entity 'Contact'" in run.object_errors["Contact"]
    assert list(run.object_errors) == ["Contact"]
    assert len(contact_queries) == 2
    assert all("Title" in query for query in contact_queries)
    assert "Contact" not in run.objects_done
    assert CrmAccount.objects.count() == org.store.count("Account")
    assert Person.objects.get(salesforce_id=titled["Id"]).title == "Stored before"


def test_a_field_still_refused_by_the_next_run_ends_the_full_sync_with_errors(
    member,
):
    org = _OrgRefusingAFieldItDescribes()
    with _title_stored_before(org, member) as (connection, titled, _):
        first = connection_sync(connection=connection)
        connection.refresh_from_db()
        retry_at = connection.next_full_sync_at

        again = connection_sync(connection=connection)
        queued = sync_enqueue_due(now=again.finished_at + timedelta(hours=2))

    connection.refresh_from_db()
    assert first.status == SyncRun.Status.PARTIAL
    assert retry_at == first.finished_at + timedelta(hours=1)
    # Read again within the hour, the object refuses the field once more: it
    # fails like any object would, and the full sync ends rather than being
    # tried every hour for as long as the field stays refused.
    assert again.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert again.object_errors["Contact"].startswith("INVALID_FIELD: ")
    assert connection.last_full_sync_at == again.started_at
    assert connection.next_full_sync_at == again.started_at + timedelta(hours=24)
    assert Person.objects.get(salesforce_id=titled["Id"]).title == "Stored before"
    # Recent-changes syncs, which wait for a full sync to have run, begin.
    assert queued == [(connection.pk, SyncRun.Kind.RECENT)]


def test_a_newly_added_field_is_backfilled_on_the_next_sync(org, org_http, connection):
    connection_sync(connection=connection)
    contact = _mapping(connection, "Contact")
    FieldMapping.objects.create(
        object_mapping=contact, salesforce_field="Preferred_Name__c"
    )
    object_mapping_mark_changed(mapping=contact)

    run = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    expected = sum(
        1 for c in org.store.records("Contact") if c.get("Preferred_Name__c")
    )
    contact.refresh_from_db()
    assert expected > 0
    assert expected == sum(
        1 for p in Person.objects.all() if p.custom_values.get("Preferred_Name__c")
    )
    assert run.records_updated == Person.objects.count()
    assert contact.needs_backfill is False


def test_a_removed_field_stops_being_imported_and_its_values_stay(
    org, org_http, connection
):
    contact = _mapping(connection, "Contact")
    field = FieldMapping.objects.create(
        object_mapping=contact, salesforce_field="Guest_Type__c"
    )
    connection_sync(connection=connection)
    before = dict(Person.objects.values_list("pk", "custom_values"))
    field.delete()
    guest = next(c for c in org.store.records("Contact") if c.get("Guest_Type__c"))
    org.store.update(guest["Id"], {"Guest_Type__c": None, "Title": "Changed"})

    connection_sync(connection=connection)

    person = Person.objects.get(salesforce_id=guest["Id"])
    assert person.title == "Changed"
    assert person.custom_values == before[person.pk]
    assert not any("Guest_Type__c" in q for q in sent_queries(org_http)[-5:])


def test_a_transform_failure_leaves_the_value_empty_and_is_counted(
    org, org_http, connection
):
    contact = _mapping(connection, "Contact")
    contact.field_mappings.filter(salesforce_field="MailingCountry").update(
        transform="country_iso2"
    )
    bad, good = org.store.records("Contact")[:2]
    org.store.update(bad["Id"], {"MailingCountry": "Atlantis"})
    org.store.update(good["Id"], {"MailingCountry": "United Kingdom"})

    run = connection_sync(connection=connection)

    assert run.transform_failures >= 1
    assert Person.objects.get(salesforce_id=bad["Id"]).country == ""
    assert Person.objects.get(salesforce_id=good["Id"]).country == "GB"
    assert {
        "object": "Contact",
        "id": bad["Id"],
        "field": "MailingCountry",
        "problem": "Country to ISO 3166 alpha-2: 'Atlantis' is not a country",
    } in run.problems
    assert run.status == SyncRun.Status.SUCCESS


def test_a_stored_attribute_its_target_lacks_fails_that_object_only(
    org, org_http, connection
):
    reviews = ObjectMapping.objects.create(
        connection=connection,
        object_name="Guest_Review__c",
        target=ObjectMapping.Target.RECORD,
        position=90,
    )
    FieldMapping.objects.create(
        object_mapping=reviews, salesforce_field="Name", attribute="custom_values"
    )
    FieldMapping.objects.create(
        object_mapping=reviews, salesforce_field="Rating__c", attribute="salesforce_id"
    )

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert run.object_errors == {
        "Guest_Review__c": "Name fills custom_values and Rating__c fills "
        "salesforce_id, which a record does not have; it has name."
    }
    assert not CrmRecord.objects.filter(object_name="Guest_Review__c").exists()
    assert Person.objects.count() == org.store.count("Contact")


def test_a_website_transformed_into_a_list_is_left_empty_not_fatal(
    org, org_http, connection
):
    accounts = _mapping(connection, "Account")
    accounts.field_mappings.filter(salesforce_field="Website").update(transform="split")
    account = next(a for a in org.store.records("Account") if a.get("Website"))

    run = connection_sync(connection=connection)

    stored = CrmAccount.objects.get(salesforce_id=account["Id"])
    assert run.status == SyncRun.Status.SUCCESS
    assert stored.website == ""
    assert stored.organisation.domain is None
    assert {
        "object": "Account",
        "id": account["Id"],
        "field": "Website",
        "problem": "a structure where text was due; left empty",
    } in run.problems
    assert CrmAccount.objects.count() == org.store.count("Account")
    assert Person.objects.count() == org.store.count("Contact")


def test_a_field_added_while_its_object_is_read_is_backfilled_next_sync(
    org, org_http, connection
):
    connection_sync(connection=connection)
    contact = _mapping(connection, "Contact")
    object_mapping_mark_changed(mapping=contact)

    def staff_add_a_field(object_name, count):
        # Saved in the admin while the run reads Contacts with the old fields.
        if object_name == "Contact":
            FieldMapping.objects.get_or_create(
                object_mapping=contact, salesforce_field="Preferred_Name__c"
            )
            object_mapping_mark_changed(mapping=contact)

    connection_sync(connection=connection, on_page=staff_add_a_field)
    contact.refresh_from_db()
    connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    expected = sum(
        1 for c in org.store.records("Contact") if c.get("Preferred_Name__c")
    )
    assert contact.needs_backfill is True
    assert expected > 0
    assert expected == sum(
        1 for p in Person.objects.all() if p.custom_values.get("Preferred_Name__c")
    )


def _opted_out_in_salesforce(org, index: int) -> dict:
    contact = org.store.records("Contact")[index]
    org.store.update(contact["Id"], {"HasOptedOutOfEmail": True})
    return contact


def test_opt_outs_are_read_when_their_field_is_removed_from_the_mapping(
    org, org_http, connection
):
    contact = _mapping(connection, "Contact")
    connection_sync(connection=connection)
    contact.field_mappings.filter(salesforce_field="HasOptedOutOfEmail").delete()
    opted_out = _opted_out_in_salesforce(org, 3)

    connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    person = Person.objects.get(salesforce_id=opted_out["Id"])
    assert person.has_opted_out_of_email is True
    assert not person.may_email
    assert Person.objects.filter(has_opted_out_of_email=False).count() == (
        Person.objects.count() - 1
    )


def test_a_transform_on_the_opt_out_cannot_opt_anyone_in(org, org_http, connection):
    contact = _mapping(connection, "Contact")
    contact.field_mappings.filter(salesforce_field="HasOptedOutOfEmail").update(
        transform="value_map", transform_argument='{"*": false}'
    )
    opted_out = _opted_out_in_salesforce(org, 3)

    connection_sync(connection=connection)

    assert Person.objects.get(salesforce_id=opted_out["Id"]).has_opted_out_of_email
    assert Person.objects.filter(has_opted_out_of_email=True).count() == 1


def test_another_field_filling_the_opt_out_only_adds_opt_outs(
    org, org_http, connection
):
    contact = _mapping(connection, "Contact")
    contact.field_mappings.filter(salesforce_field="HasOptedOutOfEmail").update(
        salesforce_field="DoNotCall"
    )
    opted_out = _opted_out_in_salesforce(org, 3)
    not_to_call = org.store.records("Contact")[4]
    org.store.update(not_to_call["Id"], {"DoNotCall": True})

    connection_sync(connection=connection)

    opted_out_ids = set(
        Person.objects.filter(has_opted_out_of_email=True).values_list(
            "salesforce_id", flat=True
        )
    )
    assert opted_out_ids == {opted_out["Id"], not_to_call["Id"]}
    assert Person.objects.filter(has_opted_out_of_email=False).count() == (
        Person.objects.count() - 2
    )


def test_an_opt_out_hidden_after_import_makes_people_unknown_not_opted_in(
    org, org_http, connection
):
    contact = _mapping(connection, "Contact")
    contact.field_mappings.filter(salesforce_field="HasOptedOutOfEmail").delete()
    connection_sync(connection=connection)
    assert Person.objects.filter(has_opted_out_of_email=False).exists()
    org.hide_field("Contact", "HasOptedOutOfEmail")

    run = connection_sync(connection=connection)

    assert not any(p.may_email for p in Person.objects.all())
    assert "Contact.HasOptedOutOfEmail" in run.skipped_fields


def _people_filtered_on_opt_in(org, connection) -> ObjectMapping:
    contact = _mapping(connection, "Contact")
    contact.filter = "HasOptedOutOfEmail = false"
    contact.save()
    never_imported = org.store.records("Contact")[7]
    org.store.update(never_imported["Id"], {"HasOptedOutOfEmail": True})
    connection_sync(connection=connection)
    assert not Person.objects.filter(salesforce_id=never_imported["Id"]).exists()
    return contact


def test_a_person_who_opts_out_and_so_leaves_the_filter_is_opted_out_next_sync(
    org, org_http, connection
):
    _people_filtered_on_opt_in(org, connection)
    stored = Person.objects.count()
    opted_out = _opted_out_in_salesforce(org, 3)

    run = connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    person = Person.objects.get(salesforce_id=opted_out["Id"])
    assert run.status == SyncRun.Status.SUCCESS
    assert person.has_opted_out_of_email is True
    assert Person.objects.count() == stored
    assert Person.objects.filter(has_opted_out_of_email=True).count() == 1


def test_a_full_sync_reads_the_opt_out_of_people_the_filter_now_leaves_out(
    org, org_http, connection
):
    _people_filtered_on_opt_in(org, connection)
    stored = Person.objects.count()
    opted_out = _opted_out_in_salesforce(org, 3)

    run = connection_sync(connection=connection)

    person = Person.objects.get(salesforce_id=opted_out["Id"])
    assert run.status == SyncRun.Status.SUCCESS
    assert person.has_opted_out_of_email is True
    assert person.deleted_at is None
    assert Person.objects.count() == stored


def test_a_full_sync_asks_each_person_the_filter_leaves_out_for_the_opt_out(
    org, org_http, connection
):
    _people_filtered_on_opt_in(org, connection)
    contact = org.store.records("Contact")[3]
    # Changed without a new stamp, as an import back-dating it would.
    org.store.lookup(contact["Id"])[1]["HasOptedOutOfEmail"] = True

    connection_sync(connection=connection)

    person = Person.objects.get(salesforce_id=contact["Id"])
    assert person.has_opted_out_of_email is True
    assert person.deleted_at is None


def test_a_filter_on_a_field_hidden_later_fails_its_object_with_the_reason(
    org, org_http, connection
):
    accounts = _mapping(connection, "Account")
    accounts.filter = "Industry != null"
    accounts.save()
    accounts.field_mappings.filter(salesforce_field="Industry").delete()
    connection_sync(connection=connection)
    stored = CrmAccount.objects.filter(deleted_at__isnull=True).count()
    org.hide_field("Account", "Industry")
    calls_before = len(org_http.calls)

    run = connection_sync(connection=connection)

    # A first page guessed from the stored describe may ride in a Composite
    # request; no query of its own is sent, nor refused and sent again.
    account_reads = [
        c for c in org_http.calls[calls_before:] if "FROM+Account" in c.request.url
    ]
    assert run.status == SyncRun.Status.COMPLETED_WITH_ERRORS
    assert run.object_errors == {
        "Account": "The filter on Account does not fit what the connected user "
        "can see now: Account has no field Industry that the connected user can "
        "see. Change the filter; until then the object is not read."
    }
    assert account_reads == []
    assert CrmAccount.objects.filter(deleted_at__isnull=True).count() == stored
    assert "Contact" in run.objects_done


def test_a_filter_that_cannot_be_split_leaves_the_fields_narrower_groups(
    org, org_http, connection, settings
):
    settings.SALESFORCE_QUERY_URL_BUDGET = 2000
    contact = _mapping(connection, "Contact")
    for name in ("Department", "MobilePhone", "Birthdate", "LeadSource"):
        FieldMapping.objects.create(object_mapping=contact, salesforce_field=name)
    left_out = [c["Id"] for c in org.store.records("Contact")][:64]
    contact.filter = "Id NOT IN (" + ", ".join(f"'{i}'" for i in left_out) + ")"
    contact.save()
    sample = next(
        c
        for c in org.store.records("Contact")
        if c["Id"] not in left_out and c.get("MobilePhone")
    )

    run = connection_sync(connection=connection, object_names=["Account", "Contact"])

    contact_urls = [
        c.request.url for c in org_http.calls if "FROM+Contact" in c.request.url
    ]
    assert run.status == SyncRun.Status.SUCCESS, run.object_errors
    person = Person.objects.get(salesforce_id=sample["Id"])
    assert len(contact_urls) > 1
    assert all(
        encoded_size(unquote_plus(url.split("q=")[1])) <= 2000 for url in contact_urls
    )
    assert person.custom_values["MobilePhone"] == sample["MobilePhone"]
    assert person.last_name == sample["LastName"]
    assert Person.objects.count() == org.store.count("Contact") - len(left_out)
