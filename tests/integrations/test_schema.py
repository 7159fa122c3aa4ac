import pytest

from integrations.models import ObjectDescribe
from integrations.salesforce.client import describe_path
from integrations.salesforce.schema import RunSchema, StoredSchema, typed_value
from integrations.services import connection_client


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
        ("int", "lots"),
        ("int", "Infinity"),
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


@pytest.mark.django_db
def test_a_describe_primed_from_elsewhere_serves_the_run_and_is_stored(
    org, org_http, connection
):
    client = connection_client(connection=connection)
    org.hide_field("Contact", "Title")
    (described,) = client.composite_reads(paths=[describe_path("contact")])
    schema = RunSchema(client=client, connection=connection)

    schema.prime("contact", body=described.body)
    contact = schema.describe("Contact")

    stored = ObjectDescribe.objects.get(connection=connection, object_name="Contact")
    assert client.calls == 1
    assert contact.canonical("email") == "Email"
    assert contact.canonical("Title") is None
    assert {field["name"] for field in stored.fields} == {
        field["name"] for field in contact.fields.values()
    }
    assert set(stored.fields[0]) <= {
        "name", "label", "type", "length", "updateable", "custom", "referenceTo",
        "relationshipName", "polymorphicForeignKey", "compoundFieldName",
        "picklistValues", "nillable", "filterable",
    }  # fmt: skip


@pytest.mark.django_db
def test_stored_describes_are_read_without_calling_salesforce(
    org, org_http, connection
):
    ObjectDescribe.objects.create(
        connection=connection,
        object_name="Contact",
        fields=[{"name": "Id", "type": "id"}, {"name": "Email", "type": "email"}],
    )
    calls = len(org_http.calls)

    stored = StoredSchema(connection=connection)

    assert stored.has("contact") and not stored.has("Account")
    assert stored.describe("CONTACT").canonical("email") == "Email"
    assert len(org_http.calls) == calls
