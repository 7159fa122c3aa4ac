from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, transaction

from people.models import Organisation, Owner, Person
from people.rows import rows_insert, rows_update
from tests.factories import SalesforceConnectionFactory

pytestmark = pytest.mark.django_db


def _person(connection, salesforce_id, **values):
    return {
        "workspace_id": connection.workspace_id,
        "connection_id": connection.pk,
        "salesforce_id": salesforce_id,
        **values,
    }


def test_insert_stores_every_kind_of_value_and_defaults_the_rest():
    connection = SalesforceConnectionFactory()
    owner = Owner.objects.create(
        workspace=connection.workspace, connection=connection, salesforce_id="005A"
    )
    moment = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    rows_insert(
        Person,
        [
            _person(
                connection,
                "003A",
                first_name="Zoë",
                has_opted_out_of_email=True,
                owner_id=owner.pk,
                custom_values={"Tier": ["Gold", "Silver"], "Score": 4.5},
                deleted_at=moment,
            ),
            _person(connection, "003B", last_name="Only"),
        ],
    )

    first = Person.objects.get(salesforce_id="003A")
    assert first.first_name == "Zoë"
    assert first.has_opted_out_of_email is True
    assert first.owner == owner
    assert first.custom_values == {"Tier": ["Gold", "Silver"], "Score": 4.5}
    assert first.deleted_at == moment
    second = Person.objects.get(salesforce_id="003B")
    # Left out: each field's default, a fresh dict for JSON.
    assert second.first_name == ""
    assert second.has_opted_out_of_email is None
    assert second.custom_values == {}
    assert second.owner is None


def test_insert_makes_a_callable_default_again_for_each_row(monkeypatch):
    connection = SalesforceConnectionFactory()
    field = Person._meta.get_field("custom_values")
    # Django keeps how to make the default once asked; it is put back after.
    field.get_default()
    made: list[int] = []

    def numbered():
        made.append(len(made) + 1)
        return {"n": made[-1]}

    monkeypatch.setattr(field, "default", numbered)
    monkeypatch.delitem(field.__dict__, "_get_default")

    rows_insert(Person, [_person(connection, "003A"), _person(connection, "003B")])

    stored = dict(Person.objects.values_list("salesforce_id", "custom_values"))
    assert stored == {"003A": {"n": 1}, "003B": {"n": 2}}


def test_insert_accepts_a_model_instance_for_a_foreign_key_and_stamps_auto_now_add():
    connection = SalesforceConnectionFactory()
    rows_insert(Organisation, [{"workspace": connection.workspace, "name": "Acme"}])

    organisation = Organisation.objects.get(name="Acme")
    assert organisation.workspace == connection.workspace
    assert organisation.created_at is not None


def test_insert_is_refused_whole_when_one_row_breaks_a_constraint():
    connection = SalesforceConnectionFactory()
    rows = [_person(connection, "003A"), _person(connection, "003A")]

    with pytest.raises(IntegrityError), transaction.atomic():
        rows_insert(Person, rows)

    assert not Person.objects.exists()


def test_insert_refuses_a_key_that_names_no_field_and_writes_nothing():
    connection = SalesforceConnectionFactory()
    rows = [_person(connection, "003A"), _person(connection, "003B", titel="Typo")]

    with pytest.raises(ValueError, match="titel"):
        rows_insert(Person, rows)

    assert not Person.objects.exists()


# What COPY's text format gives a meaning to (tab, line ends, backslash, the
# NULL marker) and what only some encodings hold.
AWKWARD_TEXTS = [
    "tab\there",
    "line\nbreak\r\nand back",
    "back\\slash \\N \\t \\\\",
    "\\N",
    "Zoë 🎉 👩‍👩‍👧 中文 \u2028",
    "quotes ' \" and ; | ,",
    "\x01 control \x7f",
    "",
]


def test_awkward_text_and_json_come_back_exactly_as_written():
    connection = SalesforceConnectionFactory()
    long_text = "Lorem ipsum\t" * 20_000
    rows = [
        _person(
            connection,
            f"003{number:03d}",
            title=text,
            custom_values={"Note": text, text or "Empty": [text, 1, 2.5, None, True]},
        )
        for number, text in enumerate(AWKWARD_TEXTS)
    ]
    rows.append(_person(connection, "003LONG", custom_values={"Note": long_text}))

    rows_insert(Person, rows)

    for number, text in enumerate(AWKWARD_TEXTS):
        person = Person.objects.get(salesforce_id=f"003{number:03d}")
        assert person.title == text
        assert person.custom_values == {
            "Note": text,
            text or "Empty": [text, 1, 2.5, None, True],
        }
    stored = Person.objects.get(salesforce_id="003LONG").custom_values
    assert stored == {"Note": long_text}


def test_update_writes_only_the_named_fields():
    connection = SalesforceConnectionFactory()
    rows_insert(
        Person,
        [
            _person(connection, "003A", first_name="Ada", title="Engineer"),
            _person(connection, "003B", first_name="Grace", title="Admiral"),
        ],
    )
    people = list(Person.objects.order_by("salesforce_id"))
    for person in people:
        person.first_name = person.first_name.upper()
        person.title = "changed, but not named"
        person.custom_values = {"Seen": True}

    rows_update(Person, people, ["first_name", "custom_values"])

    stored = list(
        Person.objects.order_by("salesforce_id").values_list(
            "first_name", "title", "custom_values"
        )
    )
    assert stored == [
        ("ADA", "Engineer", {"Seen": True}),
        ("GRACE", "Admiral", {"Seen": True}),
    ]
