from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from jobs.matching import (
    ValueUnavailable,
    action_value,
    conditions_check,
    conditions_hold,
    template_problems,
    template_render,
)
from jobs.models import Action, Event
from people.models import Organisation, Person

SENT_AT = datetime(2025, 3, 12, 9, 30, tzinfo=UTC)


def _event(**fields) -> Event:
    person = Person(
        first_name="Ada",
        title="CTO",
        country="UK",
        email="ada@x.io",
        has_opted_out_of_email=False,
    )
    person.organisation = Organisation(name="Acme", domain="acme.example")
    return Event(
        kind=Event.Kind.EMAIL_SENT,
        occurred_at=SENT_AT,
        person=person,
        payload={"subject": "Spring offer", "campaign": {"name": "Spring"}},
        **fields,
    )


@pytest.mark.parametrize(
    ("on", "field", "operator", "value", "holds"),
    [
        ("event", "payload.subject", "contains", "spring", True),
        ("event", "payload.campaign.name", "equals", "Spring", True),
        ("event", "payload.missing", "is_not_set", None, True),
        ("event", "payload.missing", "equals", "x", False),
        ("event", "kind", "equals", "email.sent", True),
        ("person", "country", "in", ["UK", "IE"], True),
        ("person", "title", "not_equals", "cto", False),
        ("person", "has_opted_out_of_email", "equals", "false", True),
    ],
)
def test_conditions_read_the_event_and_the_person(on, field, operator, value, holds):
    condition = {"on": on, "field": field, "operator": operator, "value": value}

    assert conditions_hold(conditions=[condition], event=_event()) is holds


def test_a_condition_on_the_person_fails_for_an_event_without_one():
    event = _event()
    event.person = None

    assert not conditions_hold(
        conditions=[{"on": "person", "field": "title", "operator": "is_set"}],
        event=event,
    )


def test_conditions_that_cannot_be_evaluated_are_refused_with_reasons():
    with pytest.raises(ValidationError) as caught:
        conditions_check(
            conditions=[
                {"on": "event", "field": "subject", "operator": "equals"},
                {"on": "person", "field": "salary", "operator": "equals"},
                {"on": "event", "field": "kind", "operator": "resembles"},
                {"on": "event", "field": "kind", "operator": "in", "value": "x"},
            ]
        )

    problems = caught.value.message_dict["conditions"]
    assert [p.split(":")[0] for p in problems] == [
        "Condition 1",
        "Condition 2",
        "Condition 3",
        "Condition 4",
    ]


@pytest.mark.parametrize(
    ("source", "value", "expected"),
    [
        (Action.ValueSource.EVENT_TIME, "", "2025-03-12T09:30:00+00:00"),
        (Action.ValueSource.LITERAL, "Warm", "Warm"),
        (Action.ValueSource.PERSON, "title", "CTO"),
        (Action.ValueSource.EVENT, "subject", "Spring offer"),
        (Action.ValueSource.EVENT, "payload.campaign.name", "Spring"),
        (
            Action.ValueSource.TEMPLATE,
            "{{ event.payload.subject }} to {{ person.first_name }} at "
            "{{ organisation.name }} on {{ event.date }}",
            "Spring offer to Ada at Acme on 2025-03-12",
        ),
    ],
)
def test_an_action_takes_its_value_from_the_event(source, value, expected):
    action = Action(value_source=source, value=value)

    assert action_value(action=action, event=_event()) == expected


def test_a_value_the_event_lacks_is_unavailable_with_a_reason():
    action = Action(value_source=Action.ValueSource.EVENT, value="discount")

    with pytest.raises(ValueUnavailable, match="no value 'discount'"):
        action_value(action=action, event=_event())


def test_templates_name_only_what_an_event_can_fill():
    assert template_problems(template="{{ person.salary }} {{ event.kind }}") == [
        "'{{ person.salary }}' names nothing Trig knows."
    ]
    assert template_render(template="Hi {{ person.nickname }}!", event=_event()) == (
        "Hi !"
    )
