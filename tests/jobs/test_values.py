from datetime import UTC, date, datetime, time

import pytest

from jobs.values import (
    ValueDoesNotFit,
    record_id_18,
    same_value,
    updateable_fields,
    value_for_field,
    value_shown,
)


def _field(kind: str, **extra) -> dict:
    return {"name": "F__c", "type": kind, "nillable": True, "length": 0, **extra}


@pytest.mark.parametrize(
    ("field", "value", "sent"),
    [
        (_field("date"), "2025-03-12T23:30:00-02:00", "2025-03-13"),
        (_field("date"), datetime(2025, 3, 12, 9, 30, tzinfo=UTC), "2025-03-12"),
        (_field("date"), date(2025, 3, 12), "2025-03-12"),
        (_field("date"), "1700-01-01", "1700-01-01"),
        (_field("datetime"), "4000-12-31T00:00:00Z", "4000-12-31T00:00:00.000Z"),
        (_field("datetime"), "2025-03-12T09:30:00+01:00", "2025-03-12T08:30:00.000Z"),
        (_field("datetime"), "2025-03-12", "2025-03-12T00:00:00.000Z"),
        (_field("boolean"), "TRUE", True),
        (_field("int", precision=0), "42", 42),
        (_field("double", precision=5, scale=2), 123.45, 123.45),
        (_field("picklist", picklistValues=[{"value": "Hot"}]), "Hot", "Hot"),
        (
            _field("multipicklist", picklistValues=[{"value": "A"}, {"value": "B"}]),
            ["A", "B"],
            "A;B",
        ),
        (_field("string", length=10), "0123456789", "0123456789"),
        (_field("string", length=10), "日本語のテキストです", "日本語のテキストです"),
        (_field("string", length=10), "\U0001f600" * 5, "\U0001f600" * 5),
        (_field("string", nillable=True), "", None),
        (_field("reference"), "0015g00000XyZ12", "0015g00000XyZ12"),
        (_field("time"), "09:30", "09:30:00.000Z"),
        (_field("time"), "18:45:10", "18:45:10.000Z"),
        (_field("time"), "23:59:59.5", "23:59:59.500Z"),
        (_field("time"), " 07:05:00.123456Z ", "07:05:00.123Z"),
        (_field("time"), "00:00:00.000Z", "00:00:00.000Z"),
        (_field("time"), time(6, 15, 30, 250_000), "06:15:30.250Z"),
    ],
)
def test_it_writes_values_the_way_salesforce_takes_them(field, value, sent):
    assert value_for_field(field=field, value=value) == sent


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        (_field("date"), "next tuesday", "takes a date"),
        (_field("date"), "2025-02-30T10:00:00", "takes a date"),
        (_field("datetime"), "0001-01-01T00:00:00+05:00", "takes a date and time"),
        (_field("datetime"), "2025-03-12T09:30:00", "needs a time zone"),
        # Salesforce takes dates from 1700-01-01 to 4000-12-31 only.
        (_field("date"), "1699-12-31", "between 1700-01-01 and 4000-12-31"),
        (_field("date"), "0001-01-01T00:00:00Z", "between 1700-01-01 and 4000-12-31"),
        (_field("datetime"), "4001-01-01T00:00:00Z", "between 1700-01-01 and 4000"),
        (_field("boolean"), "yes", "true or false"),
        (_field("int", precision=0), "4.5", "whole number"),
        (_field("double", precision=5, scale=2), 1234.5, "at most 3 digits"),
        (_field("string", length=5), "123456", "at most 5 characters"),
        # Salesforce counts a character outside the Basic Multilingual Plane,
        # such as an emoji, as two.
        (_field("string", length=5), "ab\U0001f600\U0001f600", "the value has 6"),
        (_field("email", length=80), "ada at example", "e-mail address"),
        (_field("picklist", picklistValues=[{"value": "Hot"}]), "Warm", "picklist"),
        (_field("string", nillable=False), None, "cannot be empty"),
        (_field("address"), "1 Main St", "cannot write address fields"),
        (_field("reference"), "not an id", "Salesforce Id"),
        (_field("time"), "9:30", "takes a time of day"),
        (_field("time"), "24:00", "takes a time of day"),
        (_field("time"), "12:60", "takes a time of day"),
        (_field("time"), "13:30:00+01:00", "takes a time of day"),
        (_field("time"), "2025-03-12T09:30:00Z", "takes a time of day"),
        (_field("time"), "half past nine", "takes a time of day"),
        (_field("time"), 930, "takes a time of day"),
        (_field("time"), time(9, 30, tzinfo=UTC), "without a time zone"),
    ],
)
def test_it_says_why_a_value_does_not_fit(field, value, reason):
    with pytest.raises(ValueDoesNotFit, match=reason):
        value_for_field(field=field, value=value)


def test_it_compares_values_as_the_field_reads_them():
    stamp = _field("datetime")

    assert same_value(
        field=stamp,
        first="2025-03-12T09:30:00.000+0000",
        second="2025-03-12T10:30:00+01:00",
    )
    assert not same_value(field=_field("date"), first="2025-03-12", second=None)
    assert same_value(field=_field("time"), first="09:30:00.000Z", second="09:30")


def test_only_updateable_non_formula_fields_can_be_written():
    describe = {
        "fields": [
            {"name": "Email", "updateable": True, "calculated": False},
            {"name": "Donor_Tier__c", "updateable": False, "calculated": False},
            {"name": "Lifetime_Value__c", "updateable": False, "calculated": True},
            {"name": "SystemModstamp", "updateable": False, "calculated": False},
        ]
    }

    assert list(updateable_fields(describe)) == ["email"]


def test_it_gives_15_character_ids_their_checksum():
    assert record_id_18("0015g00000XyZ12") == "0015g00000XyZ12AAF"
    assert record_id_18("0015g00000XyZ12AAF") == "0015g00000XyZ12AAF"
    assert record_id_18("0015g-0000XyZ12") is None


@pytest.mark.parametrize(
    ("field_type", "value", "shown"),
    [
        ("date", "2025-03-12T23:30:00-02:00", "2025-03-13"),
        ("date", "2025-03-12", "2025-03-12"),
        # Not a date: shown as it is, for staff to see why it failed.
        ("date", "soon", "soon"),
        ("date", None, None),
        ("datetime", "2025-03-12T23:30:00-02:00", "2025-03-12T23:30:00-02:00"),
        ("", "2025-03-12T23:30:00-02:00", "2025-03-12T23:30:00-02:00"),
        ("string", "Warm", "Warm"),
    ],
)
def test_it_shows_a_value_as_it_goes_to_a_field_of_its_type(field_type, value, shown):
    assert value_shown(field_type=field_type, value=value) == shown
