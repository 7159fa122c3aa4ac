import requests

from tests.emulator.support import API, BASE_URL, error_code, query


def test_it_lists_api_versions_31_to_62_without_a_token(mock):
    response = requests.get(f"{BASE_URL}/services/data/")

    versions = response.json()
    assert [item["version"] for item in versions] == [
        f"{number}.0" for number in range(31, 63)
    ]
    assert versions[-1] == {
        "label": "Winter '25",
        "url": "/services/data/v62.0",
        "version": "62.0",
    }
    assert versions[0]["label"] == "Summer '14"


def test_it_answers_gone_for_retired_versions(api):
    response = api.get(f"{BASE_URL}/services/data/v30.0/limits/")

    assert response.status_code == 410
    assert error_code(response) == "GONE"


def test_it_warns_on_deprecated_versions(api):
    old = api.get(f"{BASE_URL}/services/data/v40.0/limits/")
    current = api.get(f"{API}/limits/")

    assert old.status_code == 200
    assert "deprecated" in old.headers["Warning"]
    assert "Warning" not in current.headers


def test_it_answers_not_found_for_unknown_versions_and_resources(api):
    unknown_version = api.get(f"{BASE_URL}/services/data/v99.0/limits/")
    unknown_resource = api.get(f"{API}/nothing-here")
    unknown_object = api.get(f"{API}/sobjects/PlayingCard__c/describe/")

    for response in (unknown_version, unknown_resource, unknown_object):
        assert response.status_code == 404
        assert response.json() == [
            {
                "message": "The requested resource does not exist",
                "errorCode": "NOT_FOUND",
            }
        ]


def test_it_counts_each_api_call_in_the_limit_header(api):
    first = api.get(f"{API}/limits/")
    second = query(api, "SELECT Id FROM Account LIMIT 1")

    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    assert second.headers["Sforce-Limit-Info"] == "api-usage=2/15000"


def test_it_does_not_count_oauth_calls(api, org):
    requests.post(f"{BASE_URL}/services/oauth2/token", data={"grant_type": "nope"})

    response = api.get(f"{API}/limits/")

    assert response.headers["Sforce-Limit-Info"] == "api-usage=1/15000"


def test_it_reports_daily_api_requests_in_limits(api, org):
    org.set_api_usage(100)

    limits = api.get(f"{API}/limits/").json()

    assert limits["DailyApiRequests"] == {"Max": 15000, "Remaining": 14899}
    assert limits["DailyBulkV2QueryJobs"]["Max"] == 10000


def test_it_refuses_calls_once_the_allocation_is_spent(api, org):
    org.set_api_usage(15000)

    response = api.get(f"{API}/limits/")

    assert response.status_code == 403
    assert error_code(response) == "REQUEST_LIMIT_EXCEEDED"


def test_it_starts_counting_again_the_next_day(api, org, clock):
    org.set_api_usage(15000)
    clock.advance(days=1)
    api.headers["Authorization"] = f"Bearer {org.issue_tokens().access_token}"

    response = api.get(f"{API}/limits/")

    assert response.headers["Sforce-Limit-Info"] == "api-usage=1/15000"


def test_it_lists_every_object_in_the_global_describe(api):
    body = api.get(f"{API}/sobjects/").json()

    names = {item["name"] for item in body["sobjects"]}
    assert {"Account", "Contact", "User", "Campaign", "Task", "Space__c"} <= names
    account = next(item for item in body["sobjects"] if item["name"] == "Account")
    assert account["keyPrefix"] == "001"
    assert (
        account["urls"]["describe"] == "/services/data/v62.0/sobjects/Account/describe"
    )


def test_it_rewrites_recorded_describes_to_its_own_host_and_version(api):
    describe = api.get(
        f"{BASE_URL}/services/data/v58.0/sobjects/account/describe"
    ).json()

    assert describe["name"] == "Account"
    assert describe["urls"]["sobject"] == "/services/data/v58.0/sobjects/Account"
    assert describe["urls"]["uiDetailTemplate"] == f"{BASE_URL}/{{ID}}"
    assert "salesforce.com" not in str(describe)


def test_it_generates_describes_for_custom_objects(api):
    describe = api.get(f"{API}/sobjects/Space__c/describe/").json()

    fields = {field["name"]: field for field in describe["fields"]}
    assert describe["custom"] is True
    assert describe["keyPrefix"] == "a0B"
    assert fields["Market__c"]["referenceTo"] == ["Market__c"]
    assert fields["Market__c"]["relationshipName"] == "Market__r"
    assert fields["Type__c"]["type"] == "multipicklist"
    assert "Café" in {
        value["value"] for value in fields["Category__c"]["picklistValues"]
    }
    assert fields["OwnerId"]["nillable"] is False
    assert {"Id", "IsDeleted", "CreatedDate", "SystemModstamp"} <= set(fields)
    recorded = api.get(f"{API}/sobjects/Account/describe/").json()["fields"][0]
    assert set(fields["Market__c"]) == set(recorded)


def test_it_reads_a_record_by_id(api, org):
    contact = org.store.records("Contact")[0]

    body = api.get(
        f"{API}/sobjects/Contact/{contact['Id']}", params={"fields": "Id,name"}
    )

    assert body.json() == {
        "attributes": {
            "type": "Contact",
            "url": f"/services/data/v62.0/sobjects/Contact/{contact['Id']}",
        },
        "Id": contact["Id"],
        "Name": contact["Name"],
    }


def test_it_refuses_a_deleted_or_malformed_record_id(api, org):
    contact_id = org.store.records("Contact")[0]["Id"]
    org.store.delete(contact_id)

    deleted = api.get(f"{API}/sobjects/Contact/{contact_id}")
    malformed = api.get(f"{API}/sobjects/Contact/001notanid")

    assert error_code(deleted) == "ENTITY_IS_DELETED"
    assert error_code(malformed) == "MALFORMED_ID"


def test_it_refuses_methods_a_resource_does_not_take(api):
    response = api.delete(f"{API}/limits/")

    assert response.status_code == 405
    assert error_code(response) == "METHOD_NOT_ALLOWED"


def test_a_records_address_shows_its_fields_as_trigs_links_expect(mock, org):
    contact = org.store.records("Contact")[0]
    org.store.lookup(contact["Id"])[1]["LastName"] = "<script>x</script>"

    page = requests.get(f"{BASE_URL}/{contact['Id']}")
    short = requests.get(f"{BASE_URL}/{contact['Id'][:15]}")
    unknown = requests.get(f"{BASE_URL}/003000000000000AAA")

    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert f"Contact {contact['Id']}" in page.text
    assert "&lt;script&gt;x&lt;/script&gt;" in page.text
    assert "<script>" not in page.text
    assert short.status_code == 200 and f"Contact {contact['Id']}" in short.text
    assert unknown.status_code == 404


def test_the_orgs_address_says_what_it_is_and_what_it_holds(mock, org):
    page = requests.get(f"{BASE_URL}/")

    assert page.status_code == 200
    assert org.org_id in page.text
    assert f"<th>Contact</th><td>{org.store.count('Contact'):,}</td>" in page.text
