from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from integrations.salesforce.soql import (
    And,
    Comparison,
    Count,
    Field,
    LikePattern,
    Not,
    Or,
    OrderBy,
    RelativeDate,
    SoqlError,
    evaluate,
    parse,
    parse_condition,
    quote,
)


def where(condition: str) -> object:
    return parse(f"SELECT Id FROM Account WHERE {condition}").where


# ---------------------------------------------------------------- Parsing


def test_it_parses_fields_relationships_and_the_object():
    text = "SELECT Id, Name, Account.Owner.Name FROM Contact"

    query = parse(text)

    assert query.fields == (
        Field(("Id",)),
        Field(("Name",)),
        Field(("Account", "Owner", "Name")),
    )
    assert query.sobject == "Contact"
    assert query.where is None


def test_it_parses_count():
    query = parse("select count() from Lead")

    assert query.fields == (Count(),)
    assert query.is_count


def test_it_reads_keywords_in_any_case():
    query = parse("sElEcT Id FrOm Account wHeRe Name = 'x' OrDeR bY Name LiMiT 1")

    assert query.where == Comparison(Field(("Name",)), "=", "x")
    assert query.limit == 1


def test_it_tells_keywords_from_field_names_that_start_like_them():
    text = "SELECT Industry, Description, OrderNumber__c FROM Account"

    query = parse(text)

    assert [item.name for item in query.fields] == [
        "Industry",
        "Description",
        "OrderNumber__c",
    ]


@pytest.mark.parametrize(
    ("operator", "expected"),
    [("=", "="), ("!=", "!="), ("<>", "!="), ("<", "<"), ("<=", "<=")]
    + [(">", ">"), (">=", ">=")],
)
def test_it_parses_each_comparison_operator(operator, expected):
    condition = where(f"NumberOfEmployees {operator} 10")

    assert condition == Comparison(Field(("NumberOfEmployees",)), expected, 10)


def test_it_parses_and_or_not_and_brackets():
    condition = where("(A = 1 OR B = 2) AND NOT C = 3 AND NOT (D = 4)")

    a, b, c, d = (
        Comparison(Field((name,)), "=", i) for i, name in enumerate("ABCD", 1)
    )
    assert condition == And((Or((a, b)), Not(c), Not(d)))


def test_it_refuses_and_mixed_with_or_without_brackets():
    with pytest.raises(SoqlError) as caught:
        where("A = 1 AND B = 2 OR C = 3")

    assert "AND and OR cannot be mixed" in caught.value.reason
    assert (caught.value.line, caught.value.column) == (1, 46)


def test_it_parses_in_not_in_includes_and_excludes_lists():
    condition = where(
        "Id IN ('a', 'b') AND Type NOT IN ('x') "
        "AND Tags__c INCLUDES ('a;b', 'c') AND Tags__c EXCLUDES ('d')"
    )

    assert [part.operator for part in condition.conditions] == [
        "IN",
        "NOT IN",
        "INCLUDES",
        "EXCLUDES",
    ]
    assert condition.conditions[0].value == ("a", "b")
    assert condition.conditions[2].value == ("a;b", "c")


def test_it_parses_like_with_its_wildcards_kept():
    condition = where(r"Name LIKE 'Acme\_%'")

    assert condition == Comparison(Field(("Name",)), "LIKE", LikePattern(r"Acme\_%"))


def test_it_parses_null_booleans_and_numbers():
    condition = where("A = null AND B = TRUE AND C = false AND D = -2.50 AND E = +7")

    values = [part.value for part in condition.conditions]
    assert values == [None, True, False, Decimal("-2.50"), 7]


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        (r"'it\'s'", "it's"),
        (r"'say \"hi\"'", 'say "hi"'),
        (r"'back\\slash'", "back\\slash"),
        (r"'a\nb\rc\td\be\ff'", "a\nb\rc\td\be\ff"),
        (r"'under\_score \%'", "under_score %"),
        ("'Café ☕'", "Café ☕"),
    ],
)
def test_it_decodes_salesforce_string_escapes(literal, expected):
    condition = where(f"Name = {literal}")

    assert condition.value == expected


def test_it_refuses_an_unknown_escape_with_its_position():
    with pytest.raises(SoqlError) as caught:
        where(r"Name = 'a\qb'")

    assert "Illegal character sequence '\\q'" in caught.value.reason
    assert caught.value.column == 37


def test_it_parses_date_and_datetime_literals_in_utc():
    condition = where(
        "D = 2024-03-10 AND T1 = 2024-03-10T02:30:00Z "
        "AND T2 = 2024-03-10T02:30:00+01:00 AND T3 = 2024-03-10T02:30:00.000+0000"
    )

    values = [part.value for part in condition.conditions]
    assert values == [
        date(2024, 3, 10),
        datetime(2024, 3, 10, 2, 30, tzinfo=UTC),
        datetime(2024, 3, 10, 1, 30, tzinfo=UTC),
        datetime(2024, 3, 10, 2, 30, tzinfo=UTC),
    ]


def test_it_refuses_an_impossible_date():
    with pytest.raises(SoqlError, match="invalid date"):
        where("CloseDate = 2024-02-30")


def test_it_parses_relative_date_literals():
    condition = where(
        "A = TODAY AND B = last_n_days:30 AND C > N_MONTHS_AGO:2 AND D < NEXT_90_DAYS"
    )

    values = [part.value for part in condition.conditions]
    assert values == [
        RelativeDate("TODAY"),
        RelativeDate("LAST_N_DAYS", 30),
        RelativeDate("N_MONTHS_AGO", 2),
        RelativeDate("NEXT_90_DAYS"),
    ]


def test_it_parses_order_by_limit_and_offset():
    query = parse(
        "SELECT Id FROM Contact ORDER BY LastName DESC NULLS FIRST, Id "
        "LIMIT 10 OFFSET 20"
    )

    assert query.order_by == (
        OrderBy(Field(("LastName",)), descending=True, nulls_last=False),
        OrderBy(Field(("Id",))),
    )
    assert query.order_by[1].puts_nulls_last is False
    assert (query.limit, query.offset) == (10, 20)


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        ("SELEKT Name FROM Account", 1, 1, "unexpected token: SELEKT"),
        ("SELECT Id FROM Account WHERE", 1, 29, "unexpected token: <EOF>"),
        ("SELECT Id FROM Account LIMIT 5 junk", 1, 32, "unexpected token: junk"),
        ("SELECT Id FROM Account -- note", 1, 24, "unexpected character: '-'"),
        ("SELECT Id\nFROM Account\nWHERE Name = 'x' 'y'", 3, 18, "unexpected"),
    ],
)
def test_it_reports_errors_with_line_and_column(text, line, column, reason):
    with pytest.raises(SoqlError) as caught:
        parse(text)

    assert (caught.value.line, caught.value.column) == (line, column)
    assert caught.value.reason.startswith(reason)
    assert str(caught.value).startswith(f"line {line}, column {column}: ")


def test_it_parses_a_bare_condition_for_staff_filters():
    condition = parse_condition("Industry = 'Energy' OR AnnualRevenue > 1000000")

    assert isinstance(condition, Or)


def test_it_refuses_a_bare_condition_with_trailing_text():
    with pytest.raises(SoqlError):
        parse_condition("Industry = 'Energy' LIMIT 5")


# ---------------------------------------------------------------- Quoting


@pytest.mark.parametrize(
    "hostile",
    [
        "x' OR Name != '",
        "\\' OR Id != null OR Name = '\\",
        'quote " and \\ backslash',
        "new\nline\r\ttab\bback\fform",
        "100% _under_",
        "emoji 😀 and 中文",
        "",
    ],
)
def test_it_quotes_strings_that_parse_back_to_themselves(hostile):
    text = f"SELECT Id FROM Contact WHERE Name = {quote(hostile)}"

    condition = parse(text).where

    assert condition == Comparison(Field(("Name",)), "=", hostile)


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (-1.5, "-1.5"),
        (1e-05, "0.00001"),
        (Decimal("12.340"), "12.340"),
        (date(2024, 3, 10), "2024-03-10"),
        (
            datetime(2024, 3, 10, 3, 30, 15, 999, tzinfo=timezone(timedelta(hours=1))),
            "2024-03-10T02:30:15Z",
        ),
    ],
)
def test_it_quotes_other_values_as_soql_literals(value, literal):
    assert quote(value) == literal


def test_it_refuses_to_quote_what_soql_cannot_say():
    with pytest.raises(ValueError):
        quote(datetime(2024, 3, 10))  # noqa: DTZ001 - naive on purpose

    with pytest.raises(ValueError):
        quote(float("nan"))

    with pytest.raises(TypeError):
        quote(["a"])


# ---------------------------------------------------------------- Evaluating


TODAY = date(2024, 3, 13)  # a Wednesday


def matches(condition: str, **record: object) -> bool:
    return evaluate(
        parse_condition(condition),
        value_of=lambda field: record.get(field.name),
        today=TODAY,
    )


def test_it_compares_text_without_regard_to_case():
    assert matches("Name = 'acme'", Name="ACME")
    assert matches("Name > 'a'", Name="B")
    assert not matches("Name = 'acme'", Name="Acme Ltd")


def test_it_keeps_nulls_for_not_equal_and_not_in():
    assert matches("Name != 'x'", Name=None)
    assert matches("Name NOT IN ('x')", Name=None)
    assert not matches("Name < 'x'", Name=None)
    assert matches("Name = null", Name=None)
    assert not matches("Name != null", Name=None)


def test_it_evaluates_and_or_not():
    assert matches("A = 1 AND (B = 2 OR B = 3)", A=1, B=3)
    assert not matches("NOT (A = 1 AND B = 2)", A=1, B=2)


def test_it_compares_numbers_of_any_kind():
    assert matches("Amount >= 10.5", Amount=10.5)
    assert matches("Amount IN (1, 2.0)", Amount=2.0)
    assert not matches("Amount < 3", Amount=3)


def test_it_matches_like_patterns_with_escapes():
    assert matches("Name LIKE 'ac%'", Name="ACME")
    assert matches("Name LIKE 'a_c'", Name="abc")
    assert not matches(r"Name LIKE 'a\_c'", Name="abc")
    assert matches(r"Name LIKE 'a\_c'", Name="a_c")
    assert matches(r"Name LIKE '100\%'", Name="100%")
    assert not matches("Name LIKE '%x%'", Name=None)


def test_it_treats_multi_select_picklists_as_sets():
    tags = frozenset({"Indoor", "Quiet", "Café"})

    assert matches("Type__c INCLUDES ('quiet;indoor')", Type__c=tags)
    assert matches("Type__c INCLUDES ('Loud', 'Café')", Type__c=tags)
    assert not matches("Type__c INCLUDES ('Loud;Quiet')", Type__c=tags)
    assert matches("Type__c EXCLUDES ('Loud')", Type__c=tags)
    assert matches("Type__c = 'Quiet;Café;Indoor'", Type__c=tags)


def test_it_evaluates_relative_dates_against_dates_and_datetimes():
    monday = datetime(2024, 3, 11, 9, 0, tzinfo=UTC)

    assert matches("D = TODAY", D=TODAY)
    assert matches("D = YESTERDAY", D=date(2024, 3, 12))
    assert matches("T = THIS_WEEK", T=monday)
    assert matches("T = LAST_N_DAYS:2", T=monday)
    assert not matches("T = LAST_N_DAYS:1", T=monday)
    assert matches("T < THIS_MONTH", T=datetime(2024, 2, 29, 23, 59, tzinfo=UTC))
    assert matches("D > NEXT_N_DAYS:3", D=date(2024, 3, 17))
    assert matches("D = N_DAYS_AGO:13", D=date(2024, 2, 29))
    assert matches("D = LAST_QUARTER", D=date(2023, 12, 31))
    assert matches("D = LAST_N_MONTHS:2", D=date(2024, 1, 1))
    assert not matches("D = LAST_N_MONTHS:2", D=date(2024, 3, 1))


def test_it_gives_relative_ranges_as_half_open_days():
    week = RelativeDate("LAST_WEEK").bounds(today=TODAY)
    year = RelativeDate("NEXT_N_YEARS", 2).bounds(today=TODAY)

    assert week == (date(2024, 3, 3), date(2024, 3, 10))
    assert year == (date(2025, 1, 1), date(2027, 1, 1))


def test_it_compares_datetimes_with_datetime_literals():
    stamp = datetime(2024, 3, 10, 2, 30, tzinfo=UTC)

    assert matches("T = 2024-03-10T03:30:00+01:00", T=stamp)
    assert matches("T > 2024-03-10T02:29:59Z", T=stamp)
