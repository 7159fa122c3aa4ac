"""What a new connection imports until Trig staff change it."""

from django.db import transaction

from integrations.models import FieldMapping, ObjectMapping, SalesforceConnection

Target = ObjectMapping.Target

# The attributes a field can fill, per target. Everything else is kept as a
# named custom value.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    Target.PERSON: (
        "first_name",
        "last_name",
        "email",
        "phone",
        "country",
        "title",
        "has_opted_out_of_email",
    ),
    Target.ORGANISATION: ("name", "website", "industry"),
    Target.OWNER: ("name", "email"),
    Target.RECORD: ("name",),
}

# object, target, position, lookups (person, organisation, owner), and
# fields as (Salesforce field, attribute or "" for a custom value).
_DEFAULTS = [
    (
        "User",
        Target.OWNER,
        10,
        ("", "", ""),
        [("Name", "name"), ("Email", "email")],
    ),
    (
        "Account",
        Target.ORGANISATION,
        20,
        ("", "", "OwnerId"),
        [("Name", "name"), ("Website", "website"), ("Industry", "industry")],
    ),
    (
        "Contact",
        Target.PERSON,
        30,
        ("", "AccountId", "OwnerId"),
        [
            ("FirstName", "first_name"),
            ("LastName", "last_name"),
            ("Email", "email"),
            ("Phone", "phone"),
            ("MailingCountry", "country"),
            ("Title", "title"),
            ("HasOptedOutOfEmail", "has_opted_out_of_email"),
        ],
    ),
    (
        "Opportunity",
        Target.RECORD,
        40,
        ("", "AccountId", "OwnerId"),
        [
            ("Name", "name"),
            ("StageName", ""),
            ("Amount", ""),
            ("CloseDate", ""),
            ("IsClosed", ""),
            ("IsWon", ""),
        ],
    ),
    (
        "Lead",
        Target.RECORD,
        50,
        ("ConvertedContactId", "", "OwnerId"),
        [
            ("Name", "name"),
            ("FirstName", ""),
            ("LastName", ""),
            ("Email", ""),
            ("Company", ""),
            ("Status", ""),
            ("LeadSource", ""),
            ("Industry", ""),
            ("Country", ""),
            ("IsConverted", ""),
        ],
    ),
]


@transaction.atomic
def mapping_create_defaults(*, connection: SalesforceConnection) -> list[ObjectMapping]:
    """Give a connection the default import configuration, once."""
    if connection.object_mappings.exists():
        return list(connection.object_mappings.all())
    created = []
    for object_name, target, position, lookups, fields in _DEFAULTS:
        person, organisation, owner = lookups
        mapping = ObjectMapping.objects.create(
            connection=connection,
            object_name=object_name,
            target=target,
            position=position,
            person_lookup_field=person,
            organisation_lookup_field=organisation,
            owner_lookup_field=owner,
        )
        FieldMapping.objects.bulk_create(
            FieldMapping(
                object_mapping=mapping, salesforce_field=field, attribute=attribute
            )
            for field, attribute in fields
        )
        created.append(mapping)
    return created


def default_objects(*, target: str) -> list[str]:
    """Name the objects a new connection imports as `target`."""
    return [name for name, kind, *_ in _DEFAULTS if kind == target]
