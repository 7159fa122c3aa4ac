from datetime import UTC, datetime

import pytest

from integrations.salesforce.emulator.store import UnknownRecord


def test_it_bumps_modification_stamps_with_the_clock_on_update(org, clock):
    contact = org.store.records("Contact")[0]

    updated = org.store.update(contact["Id"], {"title": "Head of Data"})

    assert updated["Title"] == "Head of Data"
    assert updated["LastModifiedDate"] == clock.now
    assert updated["SystemModstamp"] == clock.now
    assert updated["CreatedDate"] == contact["CreatedDate"]


def test_it_moves_only_system_modstamp_on_a_system_change(org, clock):
    contact = org.store.records("Contact")[0]

    org.store.touch(contact["Id"])

    touched = org.store.get(contact["Id"])
    assert touched["LastModifiedDate"] == contact["LastModifiedDate"]
    assert touched["SystemModstamp"] == clock.now


def test_it_keeps_names_built_from_name_parts(org):
    contact = org.store.records("Contact")[0]

    updated = org.store.update(contact["Id"], {"FirstName": "Lee"})

    assert updated["Name"] == f"Lee {contact['LastName']}"


def test_it_refuses_unknown_and_system_fields(org):
    contact_id = org.store.records("Contact")[0]["Id"]

    with pytest.raises(KeyError):
        org.store.update(contact_id, {"Bacon__c": 1})
    with pytest.raises(ValueError):
        org.store.update(contact_id, {"SystemModstamp": datetime.now(UTC)})
    with pytest.raises(UnknownRecord):
        org.store.update("0035g00000AbCdEAAV", {"Title": "x"})


def test_it_keeps_deleted_records_for_query_all_only(org):
    contact_id = org.store.records("Contact")[0]["Id"]

    org.store.delete(contact_id)

    assert org.store.count("Contact") == 358
    assert org.store.count("Contact", include_deleted=True) == 359
    assert org.store.get(contact_id)["IsDeleted"] is True


def test_it_inserts_records_stamped_now_and_owned_by_the_admin(org, clock):
    lead_id = org.store.insert("Lead", {"LastName": "New", "Company": "Acme"})

    lead = org.store.get(lead_id)
    assert lead["Id"].startswith("00Q")
    assert lead["OwnerId"] == org.admin_user_id
    assert lead["CreatedDate"] == lead["SystemModstamp"] == clock.now
    assert lead["Name"] == "New"


def test_it_finds_records_by_15_character_ids(org):
    contact_id = org.store.records("Contact")[0]["Id"]

    assert org.store.get(contact_id[:15])["Id"] == contact_id


def test_it_refuses_to_hide_system_fields_or_unknown_ones(org):
    with pytest.raises(ValueError):
        org.hide_field("Contact", "Id")
    with pytest.raises(KeyError):
        org.hide_field("Contact", "Bacon__c")


def test_it_lets_a_visibility_hook_decide_per_user(clock):
    from integrations.salesforce.emulator import OfflineOrg

    org = OfflineOrg(
        clock=clock,
        field_visibility=lambda user_id, sobject, field: field != "Email",
    )

    assert org.is_field_visible(
        user_id=org.admin_user_id, sobject="Contact", field="Id"
    )
    assert not org.is_field_visible(
        user_id=org.admin_user_id, sobject="Contact", field="Email"
    )


def _contacts_of(org, account_id: str) -> list[str]:
    return [
        c["Id"]
        for c in org.store.records("Contact")
        if c.get("AccountId") == account_id
    ]


def test_a_merge_deletes_the_loser_and_points_it_at_the_survivor(org, clock):
    loser, survivor = org.store.records("Contact")[:2]
    clock.advance(hours=1)

    org.store.merge(loser["Id"][:15], survivor["Id"])

    gone, kept = org.store.get(loser["Id"]), org.store.get(survivor["Id"])
    assert gone["IsDeleted"] is True and gone["MasterRecordId"] == survivor["Id"]
    assert gone["SystemModstamp"] == clock.now
    assert kept["IsDeleted"] is False and kept["LastModifiedDate"] == clock.now
    assert org.store.delete_log[loser["Id"]] == ("Contact", clock.now)


def test_a_merge_moves_related_records_to_the_survivor(org, clock):
    accounts = [a["Id"] for a in org.store.records("Account")]
    loser, survivor = sorted(accounts, key=lambda a: -len(_contacts_of(org, a)))[:2]
    moving = _contacts_of(org, loser)
    staying = _contacts_of(org, survivor)
    clock.advance(hours=1)

    org.store.merge(loser, survivor)

    assert _contacts_of(org, loser) == []
    assert sorted(_contacts_of(org, survivor)) == sorted(moving + staying)
    assert {org.store.get(c)["LastModifiedDate"] for c in moving} == {clock.now}


@pytest.mark.parametrize("sobject", ["Opportunity", "Case"])
def test_only_accounts_contacts_and_leads_merge(org, sobject):
    loser, survivor = org.store.records(sobject)[:2]

    with pytest.raises(ValueError):
        org.store.merge(loser["Id"], survivor["Id"])


def test_a_merge_refuses_other_objects_itself_and_deleted_records(org):
    first, second, third = org.store.records("Contact")[:3]
    account = org.store.records("Account")[0]
    org.store.delete(third["Id"])

    for loser, survivor in [
        (first["Id"], account["Id"]),
        (first["Id"], first["Id"]),
        (first["Id"], third["Id"]),
    ]:
        with pytest.raises(ValueError):
            org.store.merge(loser, survivor)
    assert org.store.get(first["Id"])["IsDeleted"] is False
    assert second["IsDeleted"] is False


def test_it_restores_a_record_from_the_recycle_bin(org, clock):
    loser, survivor = org.store.records("Lead")[:2]
    org.store.merge(loser["Id"], survivor["Id"])
    clock.advance(minutes=5)

    org.store.undelete(loser["Id"])

    restored = org.store.get(loser["Id"])
    assert restored["IsDeleted"] is False and restored["MasterRecordId"] is None
    assert restored["LastModifiedDate"] == clock.now
    assert loser["Id"] not in org.store.delete_log


def test_a_user_may_save_a_record_without_changing_it(org, clock):
    contact = org.store.records("Contact")[0]

    org.store.save_unchanged(contact["Id"])

    saved = org.store.get(contact["Id"])
    assert saved == contact | {
        "LastModifiedDate": clock.now,
        "SystemModstamp": clock.now,
    }


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("10:30", "10:30:00.000Z"),
        ("10:30:15", "10:30:15.000Z"),
        ("10:30:15.5Z", "10:30:15.500Z"),
        ("23:59:59.999Z", "23:59:59.999Z"),
    ],
)
def test_it_keeps_a_time_of_day_as_salesforce_writes_it(org, written, kept):
    experience = org.store.records("Experience__c")[0]

    org.store.update(experience["Id"], {"Default_Start_Time__c": written})

    assert org.store.lookup(experience["Id"])[1]["Default_Start_Time__c"] == kept


@pytest.mark.parametrize("written", ["next tuesday", "24:00", "9:30", "10:30:60"])
def test_it_refuses_what_is_not_a_time_of_day(org, written):
    experience = org.store.records("Experience__c")[0]

    with pytest.raises(ValueError, match="not a time of day"):
        org.store.update(experience["Id"], {"Default_Start_Time__c": written})

    assert (
        org.store.lookup(experience["Id"])[1]["Default_Start_Time__c"]
        == (experience["Default_Start_Time__c"])
    )
