"""The org's own record: Organization, one per org, whose Id is the org's."""

from integrations.salesforce.emulator import OfflineOrg
from tests.emulator.support import API, error_code, query


def test_it_names_the_sample_org_and_answers_a_query_for_its_name(api, org):
    response = query(api, "SELECT Id, Name FROM Organization LIMIT 1")

    (record,) = response.json()["records"]
    assert response.status_code == 200
    assert record["Id"] == org.org_id
    assert record["Name"] == org.org_name == "Offline Sample Org"


def test_its_record_is_read_by_the_org_id_the_identity_names(api, org):
    response = api.get(f"{API}/sobjects/Organization/{org.org_id}?fields=Name")

    assert response.status_code == 200
    assert response.json()["Name"] == "Offline Sample Org"
    assert org.org_id.startswith("00D") and len(org.org_id) == 18


def test_generated_and_chosen_orgs_have_names_of_their_own():
    generated = OfflineOrg(generate={"contacts": 20}, seed=7, load_sample=False)
    chosen = OfflineOrg(load_sample=False, org_name="Acme (UAT)")
    empty = OfflineOrg(load_sample=False)

    assert generated.org_name == "Generated Org (seed 7)"
    assert chosen.org_name == "Acme (UAT)"
    assert empty.org_name == "Offline Org"
    assert generated.store.count("Organization") == 1


def test_a_rename_in_setup_is_what_the_next_query_says(api, org, clock):
    before = org.store.get(org.org_id)["SystemModstamp"]
    clock.advance(minutes=5)

    org.rename_org("Acme Holdings")

    (record,) = query(api, "SELECT Name FROM Organization").json()["records"]
    assert record["Name"] == "Acme Holdings"
    assert org.store.get(org.org_id)["SystemModstamp"] > before


def test_it_is_neither_created_nor_deleted_by_the_api(api):
    described = api.get(f"{API}/sobjects/Organization/describe/").json()

    assert described["createable"] is False
    assert described["deletable"] is False
    assert "IsDeleted" not in {field["name"] for field in described["fields"]}


def test_a_name_hidden_from_the_user_is_refused(api, org):
    org.hide_field("Organization", "Name")

    response = query(api, "SELECT Name FROM Organization LIMIT 1")

    assert response.status_code == 400
    assert error_code(response) == "INVALID_FIELD"
