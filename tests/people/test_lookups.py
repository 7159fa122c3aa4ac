from enum import Enum

import pytest
from django.db import connection as db
from django.db.models import CharField, F, Q, Transform
from django.test.utils import CaptureQueriesContext, register_lookup

from people.models import Organisation, Person
from people.rows import rows_insert
from tests.factories import SalesforceConnectionFactory

pytestmark = pytest.mark.django_db


def _people(connection, count):
    rows_insert(
        Person,
        [
            {
                "workspace_id": connection.workspace_id,
                "connection_id": connection.pk,
                "salesforce_id": f"003{n:015d}",
            }
            for n in range(count)
        ],
    )


def test_among_finds_what_in_finds():
    connection = SalesforceConnectionFactory()
    _people(connection, 5)
    wanted = ["003000000000000001", "003000000000000003", "003000000000000009"]

    among = Person.objects.filter(connection=connection, salesforce_id__among=wanted)
    plain = Person.objects.filter(connection=connection, salesforce_id__in=wanted)

    assert sorted(p.salesforce_id for p in among) == sorted(
        p.salesforce_id for p in plain
    )
    assert among.count() == 2


def test_among_sends_all_values_as_one_parameter_past_sqlites_limit():
    connection = SalesforceConnectionFactory()
    _people(connection, 40_000)
    wanted = {f"003{n:015d}" for n in range(0, 40_000, 2)}

    query = Person.objects.filter(connection=connection, salesforce_id__among=wanted)

    _sql, params = query.values("pk").query.sql_with_params()
    found = set(query.values_list("salesforce_id", flat=True))

    # The connection, and the Ids as one value.
    assert len(params) == 2
    assert found == wanted


def test_among_drops_none_and_repeats_and_an_empty_list_asks_nothing():
    connection = SalesforceConnectionFactory()
    _people(connection, 2)
    first = Person.objects.get(salesforce_id="003000000000000000")

    with CaptureQueriesContext(db) as queries:
        assert list(Person.objects.filter(pk__among=[])) == []
    repeated = Person.objects.filter(pk__among=[first.pk, None, first.pk])

    assert len(queries) == 0
    assert list(repeated) == [first]


def test_among_takes_text_with_quotes_braces_and_more():
    connection = SalesforceConnectionFactory()
    names = [
        "bücher.example",
        'o"brien.example',
        "it's.example",
        "back\\slash.example",
        "{braces},comma.example",
        "NULL",
        " spaced ",
    ]
    for name in names:
        Organisation.objects.create(workspace=connection.workspace, domain=name)

    found = Organisation.objects.filter(domain__among=[*names, "other.example"])

    assert sorted(o.domain for o in found) == sorted(names)


def test_among_in_an_or_with_nothing_to_match_keeps_the_other_side():
    connection = SalesforceConnectionFactory()
    _people(connection, 2)
    first = Person.objects.get(salesforce_id="003000000000000000")

    found = Person.objects.filter(Q(salesforce_id__among=[]) | Q(pk__among=[first.pk]))

    assert list(found) == [first]


def test_among_takes_a_queryset_as_in_does():
    connection = SalesforceConnectionFactory()
    _people(connection, 3)

    found = Person.objects.filter(
        pk__among=Person.objects.filter(salesforce_id__endswith="1").values("pk")
    )

    assert [p.salesforce_id for p in found] == ["003000000000000001"]


def test_among_does_not_cut_a_longer_value_to_the_columns_length():
    connection = SalesforceConnectionFactory()
    _people(connection, 1)

    found = Person.objects.filter(salesforce_id__among=["003000000000000000AAA"])

    assert list(found) == []


def test_among_compares_with_an_expression_among_the_values_as_in_does():
    connection = SalesforceConnectionFactory()
    same = Organisation.objects.create(
        workspace=connection.workspace, name="a.example", domain="a.example"
    )
    Organisation.objects.create(
        workspace=connection.workspace, name="Other", domain="b.example"
    )

    found = Organisation.objects.filter(domain__among=[F("name"), "c.example"])

    assert list(found) == [same]


def test_among_on_a_json_key_compares_as_in_does():
    connection = SalesforceConnectionFactory()
    _people(connection, 2)
    first = Person.objects.get(salesforce_id="003000000000000000")
    first.custom_values = {"Industry": "Tech"}
    first.save()

    found = Person.objects.filter(custom_values__Industry__among=["Tech", "Retail"])

    assert list(found) == [first]


# Not a StrEnum: the str() of this member is its name, "_Domain.EXAMPLE".
class _Domain(str, Enum):  # noqa: UP042
    EXAMPLE = "a.example"


def test_among_compares_a_str_enum_member_by_its_value_as_in_does():
    connection = SalesforceConnectionFactory()
    organisation = Organisation.objects.create(
        workspace=connection.workspace, domain="a.example"
    )

    found = Organisation.objects.filter(domain__among=[_Domain.EXAMPLE])

    assert list(found) == [organisation]


def test_among_passes_over_a_number_the_column_cannot_hold():
    connection = SalesforceConnectionFactory()
    _people(connection, 1)
    first = Person.objects.get()

    found = Person.objects.filter(pk__among=[first.pk, 2**63])
    beyond = Person.objects.filter(pk__among=[2**63])

    assert list(found) == [first]
    assert list(beyond) == []


@pytest.mark.skipif(db.vendor != "sqlite", reason="PostgreSQL text holds no NUL")
def test_among_does_not_cut_a_value_at_a_nul_character():
    connection = SalesforceConnectionFactory()
    with_nul = Organisation.objects.create(
        workspace=connection.workspace, domain="a\x00b.example"
    )
    Organisation.objects.create(workspace=connection.workspace, domain="a")

    found = Organisation.objects.filter(domain__among=["a\x00b.example"])

    assert list(found) == [with_nul]


def test_among_with_an_expression_among_the_values_works_in_a_subquery():
    connection = SalesforceConnectionFactory()
    _people(connection, 2)
    first = Person.objects.get(salesforce_id="003000000000000000")
    first.organisation = Organisation.objects.create(
        workspace=connection.workspace, name="a.example", domain="a.example"
    )
    first.save()
    same = Organisation.objects.filter(domain__among=[F("name")])

    found = Person.objects.filter(organisation__in=same)

    assert list(found) == [first]


class _UpperBoth(Transform):
    lookup_name = "upper_both"
    function = "UPPER"
    bilateral = True


def test_among_applies_a_bilateral_transform_to_the_values_as_in_does():
    connection = SalesforceConnectionFactory()
    organisation = Organisation.objects.create(
        workspace=connection.workspace, domain="a.example"
    )

    with register_lookup(CharField, _UpperBoth):
        found = list(
            Organisation.objects.filter(domain__upper_both__among=["A.Example"])
        )

    assert found == [organisation]
