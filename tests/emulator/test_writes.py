import pytest

from tests.emulator.support import API, error_code, query

COLLECTIONS = f"{API}/composite/sobjects"


def _contact(org, n: int = 0) -> dict:
    return [c for c in org.store.records("Contact") if c.get("AccountId")][n]


def _update(api, *records: dict, all_or_none: bool = False):
    body = {
        "allOrNone": all_or_none,
        "records": [{"attributes": {"type": "Contact"}, **r} for r in records],
    }
    return api.patch(COLLECTIONS, json=body)


def test_it_describes_trigs_date_field_on_contact_as_updateable(api):
    fields = {
        f["name"]: f
        for f in api.get(f"{API}/sobjects/Contact/describe/").json()["fields"]
    }

    assert fields["Last_Trig_Email__c"]["type"] == "date"
    assert fields["Last_Trig_Email__c"]["updateable"] is True
    assert fields["Trig_Engagement__c"]["restrictedPicklist"] is True
    assert [v["value"] for v in fields["Trig_Engagement__c"]["picklistValues"]] == [
        "Cold",
        "Warm",
        "Hot",
    ]


def test_it_updates_one_record_and_moves_its_modified_date(api, org, clock):
    contact = _contact(org)
    clock.advance(hours=1)

    response = api.patch(
        f"{API}/sobjects/Contact/{contact['Id']}",
        json={"Last_Trig_Email__c": "2025-03-12", "Title": "CTO"},
    )

    stored = org.store.get(contact["Id"])
    assert response.status_code == 204
    assert str(stored["Last_Trig_Email__c"]) == "2025-03-12"
    assert stored["Title"] == "CTO"
    assert stored["LastModifiedDate"] > contact["LastModifiedDate"]
    read = api.get(f"{API}/sobjects/Contact/{contact['Id']}").json()
    assert read["Last_Trig_Email__c"] == "2025-03-12"


def test_a_record_update_answers_its_first_error_as_a_rest_error(api, org):
    contact = _contact(org)

    response = api.patch(
        f"{API}/sobjects/Contact/{contact['Id']}", json={"Name": "Read Only"}
    )

    assert response.status_code == 400
    assert response.json() == [
        {
            "message": "Unable to create/update fields: Name. Please check the "
            "security settings of this field and verify that it is read/write for "
            "your profile or permission set.",
            "errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
            "fields": ["Name"],
        }
    ]


def test_collections_answer_one_result_per_record_in_request_order(api, org):
    first, second, third = (_contact(org, n) for n in range(3))
    org.writes.fail(
        second["Id"],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        message="Gold tier requires a mailing country",
    )

    response = _update(
        api,
        {"id": first["Id"], "Title": "One"},
        {"id": second["Id"], "Title": "Two"},
        {"id": third["Id"], "Title": "Three"},
    )

    assert response.status_code == 200
    assert response.json() == [
        {"id": first["Id"], "success": True, "errors": []},
        {
            "id": second["Id"],
            "success": False,
            "errors": [
                {
                    "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    "message": "Gold tier requires a mailing country",
                    "fields": [],
                }
            ],
        },
        {"id": third["Id"], "success": True, "errors": []},
    ]
    assert org.store.get(first["Id"])["Title"] == "One"
    assert org.store.get(second["Id"])["Title"] == second.get("Title")
    assert org.writes.updates_of(third["Id"]) == [{"Title": "Three"}]


def test_all_or_none_rolls_back_the_healthy_records_too(api, org):
    healthy, invalid = _contact(org, 0), _contact(org, 1)
    org.writes.fail(invalid["Id"], "FIELD_CUSTOM_VALIDATION_EXCEPTION")

    results = _update(
        api,
        {"id": healthy["Id"], "Title": "One"},
        {"id": invalid["Id"], "Title": "Two"},
        all_or_none=True,
    ).json()

    assert [r["errors"][0]["statusCode"] for r in results] == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    ]
    assert org.writes.applied == []


def test_a_locked_row_fails_without_an_id_and_names_its_account(api, org):
    contact = _contact(org)
    org.writes.fail(contact["Id"], "UNABLE_TO_LOCK_ROW", times=1)

    locked = _update(api, {"id": contact["Id"], "Title": "T"}).json()
    retried = _update(api, {"id": contact["Id"], "Title": "T"}).json()

    assert locked == [
        {
            "success": False,
            "errors": [
                {
                    "statusCode": "UNABLE_TO_LOCK_ROW",
                    "message": "unable to obtain exclusive access to this record "
                    f"or 1 records: {contact['AccountId']}",
                    "fields": [],
                }
            ],
        }
    ]
    assert retried == [{"id": contact["Id"], "success": True, "errors": []}]


def test_a_merged_record_is_deleted_and_points_at_its_survivor(api, org):
    loser, survivor = _contact(org, 0), _contact(org, 1)
    org.writes.fail(loser["Id"], "ENTITY_IS_DELETED", merged_into=survivor["Id"])

    results = _update(api, {"id": loser["Id"], "Title": "T"}).json()
    found = api.get(
        f"{API}/queryAll/",
        params={
            "q": "SELECT Id, IsDeleted, MasterRecordId FROM Contact "
            f"WHERE Id = '{loser['Id']}'"
        },
    ).json()

    assert results == [
        {
            "success": False,
            "errors": [
                {
                    "statusCode": "ENTITY_IS_DELETED",
                    "message": "entity is deleted",
                    "fields": [],
                }
            ],
        }
    ]
    assert found["records"][0]["IsDeleted"] is True
    assert found["records"][0]["MasterRecordId"] == survivor["Id"]
    assert (
        query(api, f"SELECT Id FROM Contact WHERE Id = '{loser['Id']}'").json()[
            "totalSize"
        ]
        == 0
    )


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("Name", "x", "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ("SystemModstamp", "2025-01-01T00:00:00Z", "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ("No_Such__c", "x", "INVALID_FIELD"),
        ("Last_Trig_Email__c", "next tuesday", "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Title", "T" * 129, "STRING_TOO_LONG"),
        ("Title", "\U0001f600" * 65, "STRING_TOO_LONG"),
        ("Email", "ada at example", "INVALID_EMAIL_ADDRESS"),
        ("Trig_Engagement__c", "Lukewarm", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ("LastName", None, "REQUIRED_FIELD_MISSING"),
    ],
)
def test_it_checks_each_field_against_describe(api, org, field, value, code):
    contact = _contact(org)

    result = _update(api, {"id": contact["Id"], field: value}).json()[0]

    assert result["success"] is False
    assert result["id"] == contact["Id"]
    assert result["errors"][0]["statusCode"] == code
    assert result["errors"][0]["fields"] == [field]
    assert org.writes.applied == []


def test_a_field_hidden_from_the_user_does_not_exist_for_updates(api, org):
    contact = _contact(org)
    org.hide_field("Contact", "Title")

    result = _update(api, {"id": contact["Id"], "Title": "T"}).json()[0]

    assert result["errors"][0]["statusCode"] == "INVALID_FIELD"


def test_a_field_made_read_only_is_refused(api, org):
    contact = _contact(org)
    org.writes.make_read_only("Contact", "Title")

    result = _update(api, {"id": contact["Id"], "Title": "T"}).json()[0]
    describe = api.get(f"{API}/sobjects/Contact/describe/").json()

    assert result["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    title = next(f for f in describe["fields"] if f["name"] == "Title")
    assert title["updateable"] is False


def test_records_without_an_id_or_with_another_objects_id_fail(api, org):
    account = org.store.records("Account")[0]

    results = _update(api, {"Title": "T"}, {"id": account["Id"], "Title": "T"}).json()

    assert [r["errors"][0]["statusCode"] for r in results] == [
        "MISSING_ARGUMENT",
        "MALFORMED_ID",
    ]


def test_it_refuses_more_than_200_records_in_one_call(api, org):
    contact = _contact(org)

    response = _update(api, *[{"id": contact["Id"], "Title": "T"}] * 201)

    assert response.status_code == 400
    assert error_code(response) == "EXCEEDED_ID_LIMIT"
    assert org.writes.applied == []


def test_an_outage_answers_503_and_then_passes(api, org):
    contact = _contact(org)
    org.writes.fail_requests(status=503, times=1)

    down = _update(api, {"id": contact["Id"], "Title": "T"})
    up = _update(api, {"id": contact["Id"], "Title": "T"})

    assert down.status_code == 503
    assert error_code(down) == "SERVER_UNAVAILABLE"
    assert up.json()[0]["success"] is True


def test_it_has_no_way_to_create_or_delete_records(api, org):
    contact = _contact(org)
    before = org.store.count("Contact")

    create = api.post(
        COLLECTIONS,
        json={"records": [{"attributes": {"type": "Contact"}, "LastName": "New"}]},
    )
    insert = api.post(f"{API}/sobjects/Contact/", json={"LastName": "New"})
    delete = api.delete(f"{API}/sobjects/Contact/{contact['Id']}")

    assert [r.status_code for r in (create, insert, delete)] == [405, 405, 405]
    assert org.store.count("Contact") == before
