from datetime import UTC, datetime

import factory

from jobs.models import Action, Event, FieldWrite, Job
from people.models import Person


class PersonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Person

    workspace = factory.SelfAttribute("connection.workspace")
    salesforce_id = factory.Sequence(lambda n: f"0035g0000{n:06d}AAA")
    last_name = factory.Sequence(lambda n: f"Person {n}")


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    name = "Stamp the last Trig e-mail"
    trigger_kind = Event.Kind.EMAIL_SENT
    is_enabled = True


class ActionFactory(factory.django.DjangoModelFactory):
    """Stamp the event's date on the person's Contact."""

    class Meta:
        model = Action

    job = factory.SubFactory(
        JobFactory, workspace=factory.SelfAttribute("..connection.workspace")
    )
    target = Action.Target.PERSON_CONTACT
    object_name = "Contact"
    field_name = "Last_Trig_Email__c"
    value_source = Action.ValueSource.EVENT_TIME


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    kind = Event.Kind.EMAIL_SENT
    idempotency_key = factory.Sequence(lambda n: f"message-{n}")
    occurred_at = datetime(2025, 3, 12, 9, 30, tzinfo=UTC)


class FieldWriteFactory(factory.django.DjangoModelFactory):
    """A pending write of an Action for an event, to the event's person."""

    class Meta:
        model = FieldWrite

    connection = factory.SelfAttribute("action.connection")
    event = factory.SubFactory(
        EventFactory, workspace=factory.SelfAttribute("..action.job.workspace")
    )
    object_name = factory.SelfAttribute("action.object_name")
    field_name = factory.SelfAttribute("action.field_name")
    record_id = factory.LazyAttribute(
        lambda o: o.event.person.salesforce_id if o.event.person else ""
    )
    parent_id = factory.LazyAttribute(
        lambda o: o.event.person.salesforce_account_id if o.event.person else ""
    )
    value = factory.LazyAttribute(lambda o: o.event.occurred_at.isoformat())
