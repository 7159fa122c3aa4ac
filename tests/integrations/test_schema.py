import pytest

from integrations.salesforce.schema import typed_value


@pytest.mark.parametrize(
    ("field_type", "value", "expected"),
    [
        ("string", "Gold", "Gold"),
        ("picklist", "Warm", "Warm"),
        ("textarea", "line\nline", "line\nline"),
        ("int", 3, 3),
        ("int", "42", 42),
        ("double", 2.5, 2.5),
        ("currency", 1250.0, 1250),
        ("currency", "99.95", 99.95),
        ("percent", 12.5, 12.5),
        ("boolean", True, True),
        ("date", "2024-03-10", "2024-03-10"),
        ("datetime", "2024-03-10T02:30:00.000+0000", "2024-03-10T02:30:00+00:00"),
        ("datetime", "2024-03-10T03:30:00.000+0100", "2024-03-10T02:30:00+00:00"),
        ("multipicklist", "Outdoor;Large Groups", ["Outdoor", "Large Groups"]),
        ("string", None, None),
    ],
)
def test_it_types_a_value_by_its_describe_type(field_type, value, expected):
    assert typed_value(field_type, value) == expected


@pytest.mark.parametrize(
    ("field_type", "value"),
    [
        ("boolean", "false"),
        ("int", 2.5),
        ("int", True),
        ("double", "lots"),
        ("currency", "NaN"),
        ("date", "10/03/2024"),
        ("datetime", "2024-03-10T02:30:00"),
        ("datetime", "yesterday"),
    ],
)
def test_it_refuses_a_value_that_does_not_fit_its_type(field_type, value):
    with pytest.raises(ValueError):
        typed_value(field_type, value)
