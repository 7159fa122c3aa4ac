import pytest
from django.core.exceptions import ValidationError

from integrations.configuration import filter_check
from integrations.models import ObjectMapping
from integrations.salesforce import soql
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.schema import ObjectSchema
from integrations.salesforce.soql_build import (
    QueryTooLong,
    encoded_size,
    plan_select,
    render_condition,
)


@pytest.fixture(scope="module")
def account():
    described = OfflineOrg(load_sample=False).schema.get("Account").describe
    return ObjectSchema(
        name="Account", fields={f["name"].lower(): f for f in described["fields"]}
    )


@pytest.mark.parametrize(
    "text",
    [
        "Industry = 'Banking' AND CreatedDate = LAST_N_DAYS:365",
        "Id IN ('001000000000001AAA', '001000000000002AAA')",
        "(Industry = 'Banking' OR Industry = 'Retail') AND NOT Name LIKE 'Test%'",
        "AnnualRevenue > 1000000 AND CreatedDate >= 2024-01-01T00:00:00Z",
        "Owner.Name = 'Ada Admin'",
        "Website != null",
    ],
)
def test_it_accepts_conditions_on_fields_the_user_can_see(account, text):
    assert filter_check(text=text, schema=account) is not None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Industry = ", "not a SOQL condition"),
        ("Industry = 'Banking' LIMIT 1", "not a SOQL condition"),
        ("Name = 'x') OR (Name != 'x'", "not a SOQL condition"),
        ("Name = 'x' -- comment", "not a SOQL condition"),
        ("Name = 'a' AND Name = 'b' OR Name = 'c'", "not a SOQL condition"),
        ("Industry = 'Banking'; DELETE", "not a SOQL condition"),
        ("Tier__c = 'Gold'", "has no field Tier__c"),
        ("Nope.Name = 'x'", "has no relationship Nope"),
        ("AnnualRevenue = 'lots'", "is a currency field"),
        ("CreatedDate > 2024-01-01", "is a datetime field"),
        (
            "CreatedDate < 9999-12-31T23:59:59-05:00",
            "invalid datetime: 9999-12-31T23:59:59-05:00",
        ),
        ("Name = 5", "is a string field"),
        ("Name INCLUDES ('a')", "multi-select picklists only"),
        ("AnnualRevenue LIKE '1%'", "LIKE works on text fields"),
    ],
)
def test_it_refuses_what_is_not_a_valid_condition_with_the_reason(
    account, text, reason
):
    with pytest.raises(ValidationError) as refused:
        filter_check(text=text, schema=account)

    assert reason in " ".join(refused.value.messages)


def _schema(described: dict) -> ObjectSchema:
    return ObjectSchema(
        name=described["name"],
        fields={f["name"].lower(): f for f in described["fields"]},
    )


@pytest.fixture(scope="module")
def describe():
    """Describe objects as the offline org does; None for what it lacks."""
    org = OfflineOrg(load_sample=False)

    def describe(object_name: str) -> ObjectSchema | None:
        found = org.schema.get(object_name)
        return _schema(found.describe) if found else None

    return describe


REPORTS_TO_4 = "ReportsTo.ReportsTo.ReportsTo.ReportsTo"
ACCOUNT_ID = "0015g00003HVxF2AAL"


@pytest.mark.parametrize(
    ("sobject", "text"),
    [
        ("Contact", "Account.Owner.Name = 'Ada Admin'"),
        ("Contact", "account.owner.IsActive = true AND Account.Industry = 'Retail'"),
        ("Contact", f"{REPORTS_TO_4}.Account.Name = 'Five levels up'"),
        # Polymorphic: a Case's owner is a User or a queue, read through the
        # Name object whichever it is.
        ("Case", "Owner.Name = 'Support'"),
        ("Case", "Owner.Type = 'Queue'"),
        ("Case", "Owner.Username = 'ada@example.com'"),
        ("Case", "Owner.IsActive = true AND Owner.Email LIKE '%@example.com'"),
        ("Contact", f"AccountId = '{ACCOUNT_ID}'"),
        ("Contact", f"AccountId IN ('{ACCOUNT_ID[:15]}', '{ACCOUNT_ID.lower()}')"),
        ("Contact", "Account.OwnerId != null"),
    ],
)
def test_it_follows_each_step_of_a_parent_path(describe, sobject, text):
    schema = describe(sobject)

    assert filter_check(text=text, schema=schema, describe=describe) is not None


@pytest.mark.parametrize(
    ("sobject", "text", "reason"),
    [
        (
            "Contact",
            "Account.Nope.Name = 'x'",
            "Account has no relationship Nope (in Account.Nope.Name).",
        ),
        (
            "Contact",
            "Account.Owner.Shoe = 'x'",
            "User has no field Shoe that the connected user can see "
            "(in Account.Owner.Shoe).",
        ),
        (
            "Contact",
            "Account.AnnualRevenue = 'lots'",
            "Account.AnnualRevenue is a currency field; the value compared with "
            "it is of another type.",
        ),
        (
            "Contact",
            "Account.Description = 'x'",
            "Salesforce cannot filter on Account.Description.",
        ),
        (
            "Contact",
            "Account.Name.Length = 3",
            "Account has no relationship Name (in Account.Name.Length).",
        ),
        (
            "Contact",
            f"{REPORTS_TO_4}.ReportsTo.Account.Name = 'x'",
            "follows 6 relationships; Salesforce follows at most 5",
        ),
        (
            "Case",
            "Owner.Department = 'Sales'",
            "Owner in Owner.Department may lead to Group or User: Salesforce reads "
            "it through its Name object, which has no field Department.",
        ),
        ("Case", "Owner.IsActive = 'yes'", "Owner.IsActive is a boolean field"),
        (
            "Contact",
            "Individual.Name = 'x'",
            "Individual in Individual.Name leads to Individual, which the "
            "connected user cannot see.",
        ),
        (
            "Contact",
            "AccountId = '001abc'",
            "AccountId holds Salesforce Ids; '001abc' is not one: an Id has 15 "
            "or 18 letters and digits.",
        ),
        (
            "Contact",
            f"Id IN ('{ACCOUNT_ID[:15]}AAA')",
            f"Id holds Salesforce Ids; '{ACCOUNT_ID[:15]}AAA' is not one: its last "
            "three characters do not match the first fifteen.",
        ),
        (
            "Contact",
            f"Account.OwnerId = '{ACCOUNT_ID[:15]}A9A'",
            "its last three characters cannot end an Id",
        ),
        ("Contact", "Id LIKE '003%'", "LIKE does not work on Id and lookup fields"),
        ("Contact", "AccountId = 5", "AccountId is a reference field"),
    ],
)
def test_it_refuses_a_path_or_an_id_that_cannot_work_saying_what_is_wrong(
    describe, sobject, text, reason
):
    with pytest.raises(ValidationError) as refused:
        filter_check(text=text, schema=describe(sobject), describe=describe)

    assert reason in " ".join(refused.value.messages)


@pytest.mark.parametrize(
    "text",
    [
        "Name = 'O\\'Brien' AND Industry != null",
        "NOT (A = 1 OR B = 2.5) AND C = true",
        "D >= 2024-03-10T02:30:00Z AND E = 2024-01-01 AND F = LAST_N_DAYS:30",
        "G INCLUDES ('a;b', 'c') AND H LIKE 'x\\_%'",
        "I > 0001-01-01T00:00:00Z AND J < 0999-12-31T23:00:00-02:00",
    ],
)
def test_a_parsed_condition_is_written_back_to_the_same_condition(text):
    condition = soql.parse_condition(text)

    assert soql.parse_condition(render_condition(condition)) == condition


def test_a_hostile_string_stays_one_literal():
    condition = soql.Comparison(
        field=soql.Field(("Name",)), operator="=", value="x' OR Name != '"
    )

    text = render_condition(condition)

    assert soql.parse_condition(text) == condition


def test_a_long_in_list_is_split_into_statements_under_the_budget():
    ids = tuple(f"003{n:012d}AAA" for n in range(3000))
    where = soql.And(
        (
            soql.Comparison(soql.Field(("Id",)), "IN", ids),
            soql.Comparison(soql.Field(("Email",)), "!=", None),
        )
    )

    plan = plan_select(
        sobject="Contact", fields=["Id", "Email"], where=where, budget=8000
    )

    statements = [group[0] for group in plan.statements]
    assert len(statements) > 10
    assert all(encoded_size(s) <= 8000 for s in statements)
    sent = [
        value
        for s in statements
        for c in soql.comparisons(soql.parse(s).where)
        if c.operator == "IN"
        for value in c.value
    ]
    assert sorted(sent) == sorted(ids)


def test_a_long_not_in_list_is_refused_rather_than_split_wrongly():
    ids = tuple(f"003{n:012d}AAA" for n in range(3000))
    where = soql.Comparison(soql.Field(("Id",)), "NOT IN", ids)

    with pytest.raises(QueryTooLong, match="no IN list that could be split"):
        plan_select(sobject="Contact", fields=["Id"], where=where, budget=8000)


def test_a_string_longer_than_salesforce_allows_is_refused():
    where = soql.Comparison(soql.Field(("Name",)), "=", "x" * 4001)

    with pytest.raises(QueryTooLong, match="4,000 characters"):
        plan_select(sobject="Contact", fields=["Id"], where=where, budget=8000)


@pytest.mark.parametrize(
    "name", ["Space__c", "ns__Tier__c", "Contact", "Location__Latitude__s"]
)
def test_an_api_name_is_accepted(name):
    mapping = ObjectMapping(object_name=name, target=ObjectMapping.Target.RECORD)

    mapping.clean()


@pytest.mark.parametrize(
    "name", ["Space__c WHERE", "Space__c;", "1Space__c", "Space__", "__c", "Spa ce__c"]
)
def test_an_object_name_that_is_not_an_api_name_is_refused(name):
    mapping = ObjectMapping(object_name=name, target=ObjectMapping.Target.RECORD)

    with pytest.raises(ValidationError, match="is not a Salesforce API name"):
        mapping.clean()


def test_two_long_in_lists_are_both_split_and_every_pair_is_covered():
    ids = tuple(f"003{n:012d}AAA" for n in range(3000))
    accounts = tuple(f"001{n:012d}AAA" for n in range(3000))
    where = soql.Or(
        (
            soql.Comparison(soql.Field(("Id",)), "IN", ids),
            soql.Comparison(soql.Field(("AccountId",)), "IN", accounts),
        )
    )

    plan = plan_select(sobject="Contact", fields=["Id"], where=where, budget=8000)

    statements = [group[0] for group in plan.statements]
    assert all(encoded_size(s) <= 8000 for s in statements)
    sent: dict[str, set] = {"Id": set(), "AccountId": set()}
    for statement in statements:
        for comparison in soql.comparisons(soql.parse(statement).where):
            sent[comparison.field.name].update(comparison.value)
    assert sent == {"Id": set(ids), "AccountId": set(accounts)}


def test_every_field_group_of_a_wide_select_carries_id_and_the_stamp():
    fields = ["Id", "SystemModstamp", *(f"Field_{n:03d}__c" for n in range(300))]

    plan = plan_select(
        sobject="Contact",
        fields=fields,
        where=None,
        budget=2000,
        stamp="SystemModstamp",
    )

    groups = plan.statements[0]
    selected = [soql.parse(group).fields for group in groups]
    assert len(groups) > 1
    assert plan.keys == ("Id", "SystemModstamp")
    assert all(encoded_size(group) <= 2000 for group in groups)
    assert all(
        [f.name for f in names[:2]] == ["Id", "SystemModstamp"] for names in selected
    )
    assert sorted({f.name for names in selected for f in names}) == sorted(fields)


def test_a_condition_nested_deeper_than_checked_is_refused_where_it_is():
    text = "Name = 'x' AND " + "NOT (" * 101 + "Name = 'y'" + ")" * 101

    with pytest.raises(soql.SoqlError) as refused:
        soql.parse_condition(text)

    assert refused.value.reason == "conditions nested more than 100 deep"
    assert (refused.value.line, refused.value.column) == (
        1,
        text.index("Name = 'y'") + 1,
    )
