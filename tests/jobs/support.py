"""Helpers for the jobs tests: people from the offline org, requests sent."""

import json
import re

from people.models import Person

_UPDATE = re.compile(r"/services/data/v[\d.]+/composite/sobjects$")


def people_for(
    *, org, connection, count: int, with_account: bool = True
) -> list[Person]:
    """Make people for the offline org's first Contacts (with an Account)."""
    contacts = [
        c
        for c in org.store.records("Contact")
        if c.get("AccountId") or not with_account
    ]
    return Person.objects.bulk_create(
        Person(
            workspace=connection.workspace,
            connection=connection,
            salesforce_id=contact["Id"],
            first_name=contact.get("FirstName") or "",
            last_name=contact["LastName"],
            email=contact.get("Email") or "",
            title=contact.get("Title") or "",
            salesforce_account_id=contact.get("AccountId") or "",
        )
        for contact in contacts[:count]
    )


def update_requests(mock) -> list[list[dict]]:
    """Return the records of each sObject Collections update sent, in order."""
    return [
        json.loads(call.request.body)["records"]
        for call in mock.calls
        if call.request.method == "PATCH" and _UPDATE.search(call.request.url)
    ]


def sent_ids(mock) -> list[str]:
    """Return every record Id sent in an update, once per time it was sent."""
    return [record["id"] for batch in update_requests(mock) for record in batch]


def api_requests(mock) -> list:
    return [c.request for c in mock.calls if "/services/data/v" in c.request.url]
