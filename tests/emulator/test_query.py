import json
from datetime import UTC, date, datetime

import pytest
import requests

from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.errors import ApiError
from integrations.salesforce.emulator.loader import DATA_DIR
from integrations.salesforce.emulator.query import QueryEngine
from integrations.salesforce.emulator.testing import mount
from integrations.salesforce.soql import quote
from tests.emulator.support import API, error_code, query


def test_it_answers_in_salesforce_shape_with_canonical_names(api):
    response = query(
        api, "select ID, name, BILLINGCITY from account where name = 'Wheelworks'"
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    body = response.json()
    assert list(body) == ["totalSize", "done", "records"]
    assert body["totalSize"] == 1 and body["done"] is True
    record = body["records"][0]
    assert list(record) == ["attributes", "Id", "Name", "BillingCity"]
    assert record["attributes"] == {
        "type": "Account",
        "url": f"/services/data/v62.0/sobjects/Account/{record['Id']}",
    }
    assert record["BillingCity"] == "Belmont"


def test_it_writes_values_in_the_rest_formats(api):
    soql = (
        "SELECT Amount, CloseDate, CreatedDate, IsDeleted, Description "
        "FROM Opportunity WHERE Name = 'Cape starling'"
    )

    record = query(api, soql).json()["records"][0]

    assert record["Amount"] == 119373.34
    assert record["CloseDate"] == "2020-12-22"
    assert len(record["CreatedDate"]) == len("2024-03-10T02:30:00.000+0000")
    assert record["CreatedDate"].endswith(".000+0000")
    assert record["IsDeleted"] is False
    assert record["Description"] == '"'


def test_it_follows_parent_relationships(api):
    soql = (
        "SELECT Name, Account.Name, Owner.Name FROM Contact WHERE Name = 'Amy Taylor'"
    )

    records = query(api, soql).json()["records"]

    assert {record["Account"]["Name"] for record in records} == {"Alpha Dynamics"}
    assert records[0]["Account"]["attributes"]["type"] == "Account"
    assert records[0]["Owner"]["attributes"]["type"] == "User"


def test_it_reads_a_polymorphic_lookup_through_the_name_object(api):
    soql = (
        "SELECT Id, Owner.Name, Owner.Type FROM Case "
        "WHERE Owner.Name = 'Ada Admin' AND Owner.Type = 'User'"
    )

    records = query(api, soql).json()["records"]

    assert len(records) == 1
    owner = records[0]["Owner"]
    # https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_name.htm
    assert owner["attributes"]["type"] == "Name"
    assert owner["attributes"]["url"].split("/")[-2] == "User"
    assert (owner["Name"], owner["Type"]) == ("Ada Admin", "User")


def test_it_refuses_a_field_of_a_polymorphic_lookup_the_name_object_lacks(api):
    response = query(api, "SELECT Id FROM Case WHERE Owner.Department = 'Sales'")

    assert response.status_code == 400
    assert error_code(response) == "INVALID_FIELD"
    assert (
        "No such column 'Department' on entity 'Name'"
        in (response.json()[0]["message"])
    )


def test_it_gives_null_for_a_missing_parent(api):
    soql = "SELECT Account.Name FROM Contact WHERE AccountId = null LIMIT 1"

    record = query(api, soql).json()["records"][0]

    assert record["Account"] is None


def test_it_builds_compound_fields_from_their_parts(api):
    soql = (
        "SELECT BillingAddress, ShippingAddress FROM Account WHERE Name = 'Wheelworks'"
    )

    record = query(api, soql).json()["records"][0]

    assert record["BillingAddress"]["city"] == "Belmont"
    assert record["BillingAddress"]["postalCode"] == "02478"
    assert record["ShippingAddress"] is None


def test_it_filters_sorts_limits_and_offsets(api):
    soql = (
        "SELECT Name FROM Account WHERE NumberOfEmployees > 1000 "
        "AND (Type = 'Customer' OR Type = 'Partner') "
        "ORDER BY Name DESC LIMIT 3 OFFSET 1"
    )

    names = [record["Name"] for record in query(api, soql).json()["records"]]

    assert len(names) == 3
    assert names == sorted(names, key=str.casefold, reverse=True)


def test_it_puts_nulls_where_order_by_says(api):
    first = "SELECT Title FROM Contact ORDER BY Title NULLS FIRST LIMIT 1"
    last = "SELECT Title FROM Contact ORDER BY Title DESC NULLS LAST LIMIT 1"

    assert query(api, first).json()["records"][0]["Title"] is None
    assert query(api, last).json()["records"][0]["Title"] is not None


def test_it_filters_with_like_in_includes_and_dates(api, org):
    spaces = "SELECT Id FROM Space__c WHERE Type__c INCLUDES ('Quiet;Indoor')"
    cafes = "SELECT Id FROM Space__c WHERE Category__c LIKE 'caf_'"
    owners = f"SELECT Id FROM Account WHERE OwnerId IN ({quote(org.admin_user_id)})"
    recent = "SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS:30"
    year = "SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS:365"
    fixed = "SELECT Id FROM Contact WHERE CreatedDate < 2024-06-01T00:00:00Z"

    assert query(api, spaces).json()["totalSize"] > 0
    assert query(api, cafes).json()["totalSize"] == 22  # two per market
    assert query(api, owners).json()["totalSize"] == 22
    assert query(api, recent).json()["totalSize"] == 0
    assert 0 < query(api, year).json()["totalSize"] < 359
    assert 0 < query(api, fixed).json()["totalSize"] < 359


def test_it_matches_15_and_18_character_ids_in_any_case(api, org):
    record_id = org.store.records("Account")[0]["Id"]

    for literal in (record_id, record_id[:15], record_id.lower()):
        soql = f"SELECT Id FROM Account WHERE Id = {quote(literal)}"
        assert query(api, soql).json()["records"][0]["Id"] == record_id


def test_it_counts_without_records(api):
    response = query(
        api, "SELECT COUNT() FROM Contact WHERE Email LIKE '%@example.com'"
    )

    assert response.json() == {"totalSize": 156, "done": True, "records": []}


def test_it_shows_deleted_records_only_to_query_all(api, org):
    contact_id = org.store.records("Contact")[0]["Id"]
    org.store.delete(contact_id)
    soql = f"SELECT Id, IsDeleted FROM Contact WHERE Id = {quote(contact_id)}"

    live = query(api, soql).json()
    everything = api.get(f"{API}/queryAll/", params={"q": soql}).json()

    assert live["totalSize"] == 0
    assert everything["records"][0]["IsDeleted"] is True


def test_it_pages_through_simple_salesforce_with_a_batch_size(sf, mock):
    options = {"Sforce-Query-Options": "batchSize=200"}

    page = sf.query("SELECT Id FROM Contact ORDER BY Id", headers=options)
    pages = [page]
    while not page["done"]:
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
        pages.append(page)

    assert [len(page["records"]) for page in pages] == [200, 159]
    assert pages[0]["nextRecordsUrl"].startswith("/services/data/v62.0/query/01g")
    assert pages[0]["nextRecordsUrl"].endswith("-200")
    assert "nextRecordsUrl" not in pages[-1]
    assert {page["totalSize"] for page in pages} == {359}
    ids = [record["Id"] for page in pages for record in page["records"]]
    assert len(set(ids)) == 359 and ids == sorted(ids)
    assert len(mock.calls) == 2


def test_it_keeps_the_batch_size_for_later_pages(api, org):
    for number in range(300):
        org.store.insert("Lead", {"LastName": f"Bulk {number}", "Company": "Acme"})
    options = {"Sforce-Query-Options": "batchSize=200"}

    first = query(api, "SELECT Id FROM Lead", **options).json()
    second = api.get(f"https://offline-org.test{first['nextRecordsUrl']}").json()

    assert [len(first["records"]), len(second["records"])] == [200, 111]
    assert second["done"] is True


def test_it_pages_records_as_they_were_when_the_query_ran(api, org):
    options = {"Sforce-Query-Options": "batchSize=200"}
    soql = "SELECT Id, Title FROM Contact ORDER BY Id"
    first = query(api, soql, **options).json()
    later = org.store.records("Contact")
    later = sorted(later, key=lambda record: record["Id"])[250]
    org.store.update(later["Id"], {"Title": "Edited after the query"})

    second = api.get(f"https://offline-org.test{first['nextRecordsUrl']}").json()

    row = next(row for row in second["records"] if row["Id"] == later["Id"])
    assert row["Title"] != "Edited after the query"
    assert (
        query(api, f"SELECT Title FROM Contact WHERE Id = '{later['Id']}'").json()[
            "records"
        ][0]["Title"]
        == "Edited after the query"
    )


def test_it_pages_query_all_through_the_same_locators(api, org):
    for contact in org.store.records("Contact")[:10]:
        org.store.delete(contact["Id"])
    options = {"Sforce-Query-Options": "batchSize=300"}

    first = api.get(
        f"{API}/queryAll/", params={"q": "SELECT Id FROM Contact"}, headers=options
    ).json()
    second = api.get(f"https://offline-org.test{first['nextRecordsUrl']}").json()

    assert first["totalSize"] == 359
    assert len(first["records"]) + len(second["records"]) == 359


def test_it_pages_two_thousand_rows_by_default(api, org):
    for number in range(2100):
        org.store.insert("Lead", {"LastName": f"Bulk {number}", "Company": "Acme"})

    first = query(api, "SELECT Id FROM Lead").json()
    second = api.get(f"https://offline-org.test{first['nextRecordsUrl']}").json()

    assert (first["totalSize"], len(first["records"])) == (2111, 2000)
    assert (second["done"], len(second["records"])) == (True, 111)


def test_it_caps_pages_at_200_rows_with_two_long_text_fields(tmp_path, mock):
    source = tmp_path / "sample-org" / "notes"
    source.mkdir(parents=True)
    (tmp_path / "describe").symlink_to(DATA_DIR / "describe")
    long_text = "x" * 300
    records = [
        {
            "attributes": {"type": "Note__c", "referenceId": f"N{n}"},
            "Body__c": long_text,
            "Summary__c": long_text,
        }
        for n in range(450)
    ]
    (source / "notes.json").write_text(json.dumps({"records": records}))
    org = OfflineOrg(data_dir=tmp_path)
    mount(org, base_url="https://notes.test", mock=mock)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {org.issue_tokens().access_token}"
    url = "https://notes.test/services/data/v62.0/query/"

    both = session.get(url, params={"q": "SELECT Body__c, Summary__c FROM Note__c"})
    one = session.get(url, params={"q": "SELECT Body__c FROM Note__c"})

    assert len(both.json()["records"]) == 200
    assert len(one.json()["records"]) == 450


def test_it_keeps_any_number_of_cursors_open(api):
    options = {"Sforce-Query-Options": "batchSize=200"}
    pages = [query(api, "SELECT Id FROM Contact", **options).json() for _ in range(12)]

    oldest = api.get(f"https://offline-org.test{pages[0]['nextRecordsUrl']}")
    newest = api.get(f"https://offline-org.test{pages[-1]['nextRecordsUrl']}")

    assert oldest.status_code == newest.status_code == 200
    assert oldest.json()["records"] == newest.json()["records"]


def test_it_expires_cursors_after_two_days(api, org, clock):
    options = {"Sforce-Query-Options": "batchSize=200"}
    page = query(api, "SELECT Id FROM Contact", **options).json()
    clock.advance(days=2, seconds=1)
    api.headers["Authorization"] = f"Bearer {org.issue_tokens().access_token}"

    response = api.get(f"https://offline-org.test{page['nextRecordsUrl']}")

    assert error_code(response) == "INVALID_QUERY_LOCATOR"


def test_it_refuses_an_unknown_query_locator(api):
    response = api.get(f"{API}/query/01g5g00000UAh0AAAT-2000")

    assert response.status_code == 400
    assert error_code(response) == "INVALID_QUERY_LOCATOR"


def test_it_reports_malformed_soql_with_row_and_column(api):
    response = query(
        api, "SELECT Id FROM Account WHERE Name = 'a' AND Id != null OR Name = 'b'"
    )

    assert response.status_code == 400
    assert error_code(response) == "MALFORMED_QUERY"
    assert "ERROR at Row:1:Column:56" in response.json()[0]["message"]


def test_it_refuses_an_unknown_object(api):
    response = query(api, "SELECT Id FROM XYZZY")

    assert error_code(response) == "INVALID_TYPE"
    assert response.json()[0]["message"] == (
        "\nSELECT Id FROM XYZZY\n               ^\nERROR at Row:1:Column:16\n"
        "sObject type 'XYZZY' is not supported. If you are attempting to use a "
        "custom object, be sure to append the '__c' after the entity name. "
        "Please reference your WSDL or the describe call for the appropriate names."
    )


def test_it_refuses_an_unknown_field_with_a_caret(api):
    response = query(api, "SELECT Bacon__c FROM Account LIMIT 2")

    assert response.status_code == 400
    assert response.json() == [
        {
            "message": "\nSELECT Bacon__c FROM Account LIMIT 2\n       ^\n"
            "ERROR at Row:1:Column:8\nNo such column 'Bacon__c' on entity "
            "'Account'. If you are attempting to use a custom field, be sure to "
            "append the '__c' after the custom field name. Please reference your "
            "WSDL or the describe call for the appropriate names.",
            "errorCode": "INVALID_FIELD",
        }
    ]


def test_it_refuses_a_field_hidden_from_the_user(api, org):
    org.hide_field("Contact", "email")

    selected = query(api, "SELECT Id, Email FROM Contact")
    filtered = query(api, "SELECT Id FROM Contact WHERE Email = null")
    describe = api.get(f"{API}/sobjects/Contact/describe/").json()

    assert error_code(selected) == "INVALID_FIELD"
    assert error_code(filtered) == "INVALID_FIELD"
    assert "Email" not in {field["name"] for field in describe["fields"]}


def test_it_shows_a_hidden_field_to_other_users(mock, org):
    org.hide_field("Contact", "Email")
    other = org.issue_tokens(user_id=org.user_ids[1]).access_token

    response = requests.get(
        f"{API}/query/",
        params={"q": "SELECT Email FROM Contact LIMIT 1"},
        headers={"Authorization": f"Bearer {other}"},
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("sobject", "condition", "code"),
    [
        ("Contact", "CreatedDate > 2024-01-01", "INVALID_FIELD"),
        ("Opportunity", "CloseDate = 2024-01-01T00:00:00Z", "INVALID_FIELD"),
        ("Opportunity", "Amount > '5'", "INVALID_FIELD"),
        ("Account", "Name = 5", "INVALID_FIELD"),
        ("Account", "IsDeleted = 'false'", "INVALID_FIELD"),
        ("Account", "Id = 'nonsense'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("Account", "Name INCLUDES ('a')", "INVALID_QUERY_FILTER_OPERATOR"),
        ("Experience__c", "Description__c = 'x'", "INVALID_FIELD"),
    ],
)
def test_it_refuses_filters_salesforce_refuses(api, sobject, condition, code):
    response = query(api, f"SELECT Id FROM {sobject} WHERE {condition}")

    assert response.status_code == 400
    assert error_code(response) == code


def test_it_refuses_a_statement_over_100000_characters(org):
    engine = QueryEngine(
        schema=org.schema,
        store=org.store,
        is_visible=lambda sobject, field: True,
        today=date(2025, 3, 12),
        base_path="/services/data/v62.0",
    )
    soql = "SELECT Id FROM Account" + " " * 100_000

    with pytest.raises(ApiError) as caught:
        engine.run(soql, include_deleted=False)

    assert caught.value.error_code == "MALFORMED_QUERY"
    assert caught.value.message == (
        "SOQL statements can not be longer than 100000 characters"
    )


def test_it_refuses_a_string_literal_over_4000_characters(api):
    soql = f"SELECT Id FROM Account WHERE Name = '{'x' * 4001}'"

    response = query(api, soql)

    assert response.status_code == 400
    assert error_code(response) == "MALFORMED_QUERY"


def test_it_refuses_an_offset_over_2000(api):
    response = query(api, "SELECT Id FROM Account OFFSET 2001")

    assert error_code(response) == "NUMBER_OUTSIDE_VALID_RANGE"


def test_it_answers_a_huge_uri_with_an_html_414(api, org):
    ids = ", ".join(quote(f"0035g00000AAAA{n:04d}") for n in range(1200))

    response = query(api, f"SELECT Id, Email FROM Contact WHERE Id IN ({ids})")

    assert response.status_code == 414
    assert response.headers["Content-Type"].startswith("text/html")
    assert "URI Too Long" in response.text


def test_it_evaluates_relative_dates_against_the_clock(api, org, clock):
    contact_id = org.store.records("Contact")[0]["Id"]
    org.store.update(contact_id, {"Title": "Changed"})
    clock.advance(days=1)
    api.headers["Authorization"] = f"Bearer {org.issue_tokens().access_token}"

    yesterday = query(api, "SELECT Id FROM Contact WHERE LastModifiedDate = YESTERDAY")
    today = query(api, "SELECT Id FROM Contact WHERE LastModifiedDate = TODAY")

    assert [r["Id"] for r in yesterday.json()["records"]] == [contact_id]
    assert today.json()["totalSize"] == 0
    assert clock.now.date() == datetime(2025, 3, 13, tzinfo=UTC).date()


def mock_get(url, token, **params):
    import requests

    return requests.get(
        url, params=params, headers={"Authorization": f"Bearer {token}"}
    )
