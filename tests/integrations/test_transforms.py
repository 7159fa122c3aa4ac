import pytest

from integrations.transforms import (
    TRANSFORMS,
    TransformError,
    transform_apply,
    transform_check,
)


@pytest.mark.parametrize(
    ("name", "argument", "value", "expected"),
    [
        ("trim", "", "  Ada  ", "Ada"),
        ("lower", "", "ADA@Example.COM", "ada@example.com"),
        ("title", "", "ada LOVELACE", "Ada Lovelace"),
        ("domain", "", "HTTP://WWW.Example.com:443/about?x=1", "example.com"),
        ("domain", "", "", None),
        ("phone_e164", "GB", "020 7946 0018", "+442079460018"),
        ("phone_e164", "", "+1 (415) 555-0132", "+14155550132"),
        ("phone_e164", "", "", None),
        ("country_iso2", "", "United Kingdom", "GB"),
        ("country_iso2", "", "gbr", "GB"),
        ("country_iso2", "", "de", "DE"),
        ("country_iso2", "", "USA", "US"),
        ("country_iso2", "", None, None),
        ("date", "", "10 March 2024", "2024-03-10"),
        ("date", "dayfirst", "03/04/2024", "2024-04-03"),
        ("date", "", "2024-03-10", "2024-03-10"),
        ("datetime", "", "2024-03-10T02:30:00.000+0000", "2024-03-10T02:30:00+00:00"),
        ("boolean", "", "Yes", True),
        ("boolean", "", "0", False),
        ("boolean", "", True, True),
        ("value_map", '{"Hot": "high", "*": "other"}', "Hot", "high"),
        ("value_map", '{"Hot": "high", "*": "other"}', "Tepid", "other"),
        ("split", "", "a;b;;c", ["a", "b", "c"]),
        ("split", ",", "a, b", ["a", "b"]),
        ("truncate", "3", "abcdef", "abc"),
        ("default", "n/a", "", "n/a"),
        ("default", "n/a", None, "n/a"),
        ("default", "n/a", "kept", "kept"),
    ],
)
def test_each_transform_turns_a_good_value_into_what_staff_expect(
    name, argument, value, expected
):
    assert transform_apply(name=name, argument=argument, value=value) == expected


@pytest.mark.parametrize(
    ("name", "argument", "value"),
    [
        ("trim", "", {"a": 1}),
        ("lower", "", ["x"]),
        ("title", "", {"a": 1}),
        ("domain", "", "not a website"),
        ("phone_e164", "GB", "call me maybe"),
        ("phone_e164", "", "020 7946 0018"),
        ("country_iso2", "", "Atlantis"),
        ("date", "", "the day after tomorrow"),
        ("datetime", "", "2024-03-10T02:30:00"),
        ("boolean", "", "perhaps"),
        ("value_map", '{"Hot": "high"}', "Cold"),
        ("truncate", "3", {"a": 1}),
    ],
)
def test_each_transform_refuses_a_value_it_cannot_handle(name, argument, value):
    with pytest.raises(TransformError):
        transform_apply(name=name, argument=argument, value=value)


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("", "020 7946 0018", "no country code; give the region of such numbers"),
        ("GB", "call me maybe", "not a phone number"),
    ],
)
def test_a_phone_number_it_cannot_read_says_why_in_plain_words(
    argument, value, message
):
    with pytest.raises(TransformError) as refused:
        transform_apply(name="phone_e164", argument=argument, value=value)

    assert str(refused.value).startswith(message)
    assert "(0)" not in str(refused.value) and "(1)" not in str(refused.value)


@pytest.mark.parametrize(
    ("name", "argument"),
    [
        ("phone_e164", "Narnia"),
        ("value_map", "Hot=high"),
        ("value_map", "[1, 2]"),
        # Python reads these, but they are no JSON: PostgreSQL refuses to
        # store them, and every record of the object would be lost.
        ("value_map", '{"Hot": NaN}'),
        ("value_map", '{"*": -Infinity}'),
        ("truncate", "ten"),
        ("truncate", "0"),
        ("default", ""),
        ("date", "monthfirst"),
    ],
)
def test_an_unusable_argument_is_refused_when_staff_save_it(name, argument):
    with pytest.raises(TransformError):
        transform_check(name=name, argument=argument)


def test_every_transform_is_documented_for_staff():
    assert all(t.label and t.help for t in TRANSFORMS.values())
    assert len(TRANSFORMS) == 13


def test_a_value_map_saved_with_a_number_json_lacks_leaves_values_empty():
    with pytest.raises(TransformError, match="NaN is not a JSON value"):
        transform_apply(name="value_map", argument='{"Hot": NaN}', value="Hot")
