import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from integrations.salesforce.emulator import OfflineOrg, ids
from integrations.salesforce.emulator.loader import DATA_DIR

SAMPLE_DIR = DATA_DIR / "sample-org"

KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Lead": "00Q",
    "Case": "500",
    "Campaign": "701",
    "Task": "00T",
}


def tree_records(folder: Path) -> Iterator[dict]:
    for path in sorted(folder.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, dict):  # plans are lists
            yield from document["records"]


def count_tree_records(folder: Path) -> Counter:
    return Counter(record["attributes"]["type"] for record in tree_records(folder))


def test_it_loads_every_record_in_the_data_files():
    expected = sum((count_tree_records(f) for f in SAMPLE_DIR.iterdir()), Counter())

    org = OfflineOrg()

    assert {name: org.store.count(name) for name in expected} == dict(expected)


def test_it_loads_the_expected_accounts_and_contacts_per_source():
    per_source = {
        folder.name: count_tree_records(folder) for folder in SAMPLE_DIR.iterdir()
    }

    org = OfflineOrg()

    assert org.store.count("Account") == 85
    assert org.store.count("Contact") == 359
    assert per_source["trailheadapps-apex-recipes"]["Account"] == 50
    assert per_source["trailheadapps-coral-cloud"]["Contact"] == 156
    assert per_source["trailheadapps-dreamhouse-lwc"]["Contact"] == 5


def test_it_loads_in_under_a_second():
    started = time.perf_counter()

    OfflineOrg()

    assert time.perf_counter() - started < 1.0


def test_it_gives_18_character_ids_with_valid_checksums_and_prefixes(org):
    for sobject in org.schema:
        for record in org.store.records(sobject.name):
            assert ids.is_valid_id(record["Id"]), record["Id"]
            assert record["Id"].startswith(sobject.key_prefix)

    for name, prefix in KEY_PREFIXES.items():
        assert org.schema.get(name).key_prefix == prefix
    custom = [
        sobject.key_prefix for sobject in org.schema if sobject.name.endswith("__c")
    ]
    assert all(prefix.startswith("a") for prefix in custom)
    assert len(set(custom)) == len(custom)


def test_it_gives_the_same_ids_and_timestamps_on_every_load():
    first, second = OfflineOrg(), OfflineOrg()

    assert first.store.records("Contact") == second.store.records("Contact")
    assert first.store.records("Space__c") == second.store.records("Space__c")


def test_it_computes_the_checksum_salesforce_documents():
    assert ids.to_18("001D000000IqhSL") == "001D000000IqhSLIAZ"
    assert ids.to_18("001d000000iqhsliaz") == "001D000000IqhSLIAZ"
    # The suffix spells the case: another suffix is another record...
    assert ids.to_18("001D000000IqhSLIAA") == "001D000000iqhslIAA"
    # ...unless it makes a digit a capital.
    assert ids.to_18("001D000000IqhSL5AZ") is None


def test_it_resolves_references_within_a_source(org):
    contacts = org.store.records("Contact")
    linked = [contact for contact in contacts if contact.get("AccountId")]

    assert len(linked) == 150 + 12 + 6 + 30
    assert all(org.store.get(c["AccountId"])["Id"].startswith("001") for c in linked)
    reviews = org.store.records("Guest_Review__c")
    assert all(org.store.get(r["Experience__c"]) for r in reviews)
    junctions = org.store.records("Junction__c")
    assert all(j["parent1__c"].startswith("a03") for j in junctions)


def test_it_normalises_field_names_and_types_from_the_files(org):
    opportunity = org.store.records("Opportunity")[0]
    campaign = org.store.records("Campaign")[0]

    assert opportunity["Amount"] == 119373.34
    assert opportunity["CloseDate"].isoformat() == "2020-12-22"
    assert "amount" not in opportunity
    assert campaign["BudgetedCost"] == 2295.94


def test_it_sets_audit_fields_and_owners_on_every_record(org):
    users = [user["Id"] for user in org.store.records("User")]
    accounts = org.store.records("Account")

    assert [account["OwnerId"] for account in accounts[:5]] == users + users[:1]
    for sobject in org.schema:
        for record in org.store.records(sobject.name):
            assert record["CreatedDate"] <= record["LastModifiedDate"]
            assert record["LastModifiedDate"] <= record["SystemModstamp"]
            if sobject.field("IsDeleted") is not None:
                assert record["IsDeleted"] is False


def test_it_invents_users_with_the_admin_first(org):
    admin = org.store.get(org.admin_user_id)

    assert org.store.count("User") == 4
    assert admin["Name"] == "Ada Admin"
    assert admin["Username"].startswith("ada.admin@")
    assert org.connecting_user_id == org.admin_user_id


def test_it_describes_every_field_present_in_the_data(org):
    for folder in SAMPLE_DIR.iterdir():
        for record in tree_records(folder):
            sobject = org.schema.get(record["attributes"]["type"])
            for name in record:
                assert name == "attributes" or sobject.field(name), name


def test_it_loads_nested_children_and_drops_dangling_references(tmp_path, caplog):
    source = tmp_path / "sample-org" / "nested"
    source.mkdir(parents=True)
    (tmp_path / "describe").symlink_to(DATA_DIR / "describe")
    tree = {
        "records": [
            {
                "attributes": {"type": "Account", "referenceId": "AccRef"},
                "Name": "Parent Co",
                "Contacts": {
                    "records": [
                        {
                            "attributes": {"type": "Contact", "referenceId": "C1"},
                            "LastName": "Child",
                        }
                    ]
                },
            },
            {
                "attributes": {"type": "Opportunity", "referenceId": "O1"},
                "Name": "Lost link",
                "AccountId": "@NoSuchRef",
            },
        ]
    }
    (source / "tree.json").write_text(json.dumps(tree))

    with caplog.at_level(logging.WARNING):
        org = OfflineOrg(data_dir=tmp_path)

    account = org.store.records("Account")[0]
    assert org.store.records("Contact")[0]["AccountId"] == account["Id"]
    assert org.store.records("Opportunity")[0]["AccountId"] is None
    assert "NoSuchRef" in caplog.text


def test_it_infers_objects_and_fields_it_has_no_spec_for(tmp_path):
    source = tmp_path / "sample-org" / "extra"
    source.mkdir(parents=True)
    (tmp_path / "describe").symlink_to(DATA_DIR / "describe")
    tree = {
        "records": [
            {
                "attributes": {"type": "Gadget__c", "referenceId": "G1"},
                "Name": "Widget",
                "Weight__c": 1.5,
                "Launched__c": "2024-05-01",
            }
        ]
    }
    (source / "tree.json").write_text(json.dumps(tree))

    org = OfflineOrg(data_dir=tmp_path)

    gadget = org.schema.get("gadget__c")
    assert gadget.key_prefix.startswith("a")
    assert gadget.field("Weight__c")["type"] == "double"
    assert gadget.field("Launched__c")["type"] == "date"
    assert org.store.count("Gadget__c") == 1


@pytest.mark.parametrize("name", ["Account", "Contact", "Space__c", "User", "Task"])
def test_it_gives_every_object_the_system_fields(org, name):
    sobject = org.schema.get(name)

    for field in ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"):
        assert sobject.field(field) is not None
    assert (sobject.field("IsDeleted") is None) == (name == "User")
