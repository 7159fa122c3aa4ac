"""Which Salesforce fields become which attributes of ours."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from people import services as people_services


@dataclass(frozen=True)
class ObjectSpec:
    object_name: str
    # Salesforce field -> attribute of the row handed to `upsert`.
    fields: dict[str, str]
    upsert: Callable[..., people_services.BatchResult]

    def row_from(
        self, record: dict[str, Any], *, read_fields: list[str]
    ) -> dict[str, Any]:
        return {self.fields[name]: record.get(name) for name in read_fields}


# Objects are read in this order so that each finds what it links to:
# owners before the Accounts and Contacts they own, Accounts before Contacts.
DEFAULT_SPECS: tuple[ObjectSpec, ...] = (
    ObjectSpec(
        object_name="User",
        fields={"Id": "salesforce_id", "Name": "name", "Email": "email"},
        upsert=people_services.owner_upsert_batch,
    ),
    ObjectSpec(
        object_name="Account",
        fields={
            "Id": "salesforce_id",
            "Name": "name",
            "Website": "website",
            "Industry": "industry",
            "OwnerId": "owner_salesforce_id",
        },
        upsert=people_services.organisation_upsert_batch,
    ),
    ObjectSpec(
        object_name="Contact",
        fields={
            "Id": "salesforce_id",
            "FirstName": "first_name",
            "LastName": "last_name",
            "Email": "email",
            "Phone": "phone",
            "MailingCountry": "country",
            "Title": "title",
            "HasOptedOutOfEmail": "has_opted_out_of_email",
            "OwnerId": "owner_salesforce_id",
            "AccountId": "salesforce_account_id",
        },
        upsert=people_services.person_upsert_batch,
    ),
)
