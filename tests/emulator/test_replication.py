from datetime import timedelta

import pytest

from tests.emulator.support import API, error_code


def _window(api, kind: str, start: str, end: str, sobject: str = "Contact"):
    return api.get(
        f"{API}/sobjects/{sobject}/{kind}/", params={"start": start, "end": end}
    )


def test_it_lists_records_changed_in_the_window(api, org, clock):
    first, second, third, gone = org.store.records("Contact")[:4]
    org.store.update(first["Id"], {"Title": "CTO"})
    clock.advance(minutes=10)
    org.store.touch(second["Id"])
    org.store.delete(gone["Id"])
    clock.advance(minutes=10)
    org.store.update(third["Id"], {"Title": "CFO"})
    clock.advance(minutes=10)

    response = _window(api, "updated", "2025-03-12T09:30:00Z", "2025-03-12T09:45:00Z")

    assert response.status_code == 200
    assert response.json() == {
        "ids": [first["Id"], second["Id"]],
        "latestDateCovered": "2025-03-12T09:45:00.000+0000",
    }


def test_it_lists_deleted_and_merged_records_with_when(api, org, clock):
    loser, survivor, deleted = org.store.records("Contact")[:3]
    clock.advance(minutes=5)
    org.store.delete(deleted["Id"])
    clock.advance(minutes=5)
    org.store.merge(loser["Id"], survivor["Id"])
    clock.advance(hours=1)

    response = _window(api, "deleted", "2025-03-12T09:00:00Z", "2025-03-12T10:00:00Z")

    assert response.json() == {
        "deletedRecords": [
            {"id": deleted["Id"], "deletedDate": "2025-03-12T09:35:00.000+0000"},
            {"id": loser["Id"], "deletedDate": "2025-03-12T09:40:00.000+0000"},
        ],
        "earliestDateAvailable": "2025-02-25T00:00:00.000+0000",
        "latestDateCovered": "2025-03-12T10:00:00.000+0000",
    }


def test_it_ignores_seconds_and_refuses_windows_under_a_minute(api):
    short = _window(api, "deleted", "2025-03-12T09:00:00Z", "2025-03-12T09:00:30Z")
    reversed_ = _window(api, "updated", "2025-03-12T09:10:00Z", "2025-03-12T09:00:00Z")
    one_minute = _window(api, "deleted", "2025-03-12T09:00:59Z", "2025-03-12T09:01:00Z")

    assert short.status_code == reversed_.status_code == 400
    assert error_code(short) == error_code(reversed_) == "INVALID_REPLICATION_DATE"
    assert one_minute.status_code == 200


@pytest.mark.parametrize(("kind", "days_back"), [("deleted", 16), ("updated", 31)])
def test_it_refuses_windows_starting_too_far_back(api, clock, kind, days_back):
    start = (clock.now - timedelta(days=days_back)).strftime("%Y-%m-%dT%H:%M:%SZ")

    response = _window(api, kind, start, "2025-03-12T09:00:00Z")

    assert response.status_code == 400
    assert error_code(response) == "INVALID_REPLICATION_DATE"


def test_it_covers_no_later_than_the_clock_less_the_lag(api, org, clock):
    org.replication_lag = timedelta(minutes=5)
    record = org.store.records("Contact")[0]
    clock.advance(minutes=1)
    org.store.delete(record["Id"])

    early = _window(api, "deleted", "2025-03-12T09:00:00Z", "2025-03-12T11:00:00Z")
    clock.advance(minutes=10)
    later = _window(
        api, "deleted", early.json()["latestDateCovered"], "2025-03-12T11:00:00Z"
    )

    assert early.json()["latestDateCovered"] == "2025-03-12T09:26:00.000+0000"
    assert early.json()["deletedRecords"] == []
    assert [item["id"] for item in later.json()["deletedRecords"]] == [record["Id"]]
    assert later.json()["latestDateCovered"] == "2025-03-12T09:36:00.000+0000"


def test_a_purged_delete_log_moves_the_earliest_date_available(api, org, clock):
    first, second = org.store.records("Contact")[:2]
    org.store.delete(first["Id"])
    clock.advance(minutes=30)
    org.store.delete(second["Id"])
    clock.advance(minutes=30)

    org.store.purge_delete_log("Contact", before=clock.now - timedelta(minutes=45))
    response = _window(api, "deleted", "2025-03-12T09:00:00Z", "2025-03-12T10:30:00Z")

    assert response.json()["earliestDateAvailable"] == "2025-03-12T09:45:00.000+0000"
    assert [item["id"] for item in response.json()["deletedRecords"]] == [second["Id"]]


def test_emptying_the_recycle_bin_keeps_the_delete_log(api, org, clock):
    record = org.store.records("Contact")[0]
    org.store.delete(record["Id"])
    clock.advance(minutes=5)

    purged = org.store.empty_recycle_bin(sobject="Contact")
    deleted = _window(api, "deleted", "2025-03-12T09:00:00Z", "2025-03-12T09:35:00Z")
    found = api.get(
        f"{API}/queryAll/",
        params={"q": f"SELECT Id FROM Contact WHERE Id = '{record['Id']}'"},
    )

    assert purged == [record["Id"]]
    assert [item["id"] for item in deleted.json()["deletedRecords"]] == [record["Id"]]
    assert found.json()["totalSize"] == 0
    assert org.store.get(record["Id"]) is None


def test_it_refuses_objects_that_are_not_replicable(api, org):
    org.schema.get("Task").describe["replicateable"] = False

    response = _window(
        api, "deleted", "2025-03-12T09:00:00Z", "2025-03-12T10:00:00Z", "Task"
    )

    assert response.status_code == 400
    assert response.json()[0]["message"] == "sObject type Task is not replicable"


def test_it_needs_a_start_and_an_end(api):
    response = api.get(f"{API}/sobjects/Contact/updated/", params={"start": "x"})

    assert response.status_code == 400
