import re
from collections import Counter

import pytest
import requests
from django.core.management import call_command

from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.generate import parse_spec
from integrations.salesforce.emulator.testing import mocked
from tests.emulator.support import API

FIELDS = ("Id", "Name", "Email", "Phone", "AccountId", "OwnerId", "Title")


@pytest.fixture(scope="module")
def generated() -> OfflineOrg:
    return OfflineOrg(generate={"contacts": 1000}, seed=7, load_sample=False)


def _snapshot(org: OfflineOrg, sobject: str) -> list[tuple]:
    return [
        tuple(record.get(name) for name in FIELDS)
        for record in org.store.records(sobject)
    ]


def test_it_generates_about_one_account_per_ten_contacts(generated):
    counts = {
        name: generated.store.count(name)
        for name in ("Account", "Contact", "Opportunity")
    }

    assert counts == {"Account": 100, "Contact": 1000, "Opportunity": 50}


def test_it_takes_the_counts_it_is_given(clock):
    org = OfflineOrg(
        generate={"contacts": 30, "accounts": 2, "opportunities": 0},
        seed=7,
        load_sample=False,
    )

    assert org.store.count("Account") == 2
    assert org.store.count("Opportunity") == 0
    assert org.store.count("Contact") == 30


def test_the_same_seed_generates_the_same_org(generated):
    again = OfflineOrg(generate={"contacts": 1000}, seed=7, load_sample=False)
    other = OfflineOrg(generate={"contacts": 1000}, seed=8, load_sample=False)

    for sobject in ("Account", "Contact", "Opportunity"):
        assert _snapshot(again, sobject) == _snapshot(generated, sobject)
    assert _snapshot(other, "Contact") != _snapshot(generated, "Contact")


def test_contacts_look_like_people_at_their_accounts(generated):
    contacts = generated.store.records("Contact")
    accounts = {a["Id"]: a for a in generated.store.records("Account")}
    at_work = [c for c in contacts if c.get("AccountId") and c.get("Email")]
    same_domain = [
        c
        for c in at_work
        if (accounts[c["AccountId"]].get("Website") or "").removeprefix("www.")
        == c["Email"].rpartition("@")[2].lower()
    ]

    assert all(c["LastName"] and c["FirstName"] for c in contacts)
    assert all(c["Name"] == f"{c['FirstName']} {c['LastName']}" for c in contacts)
    assert all(c["AccountId"] in accounts for c in contacts if c.get("AccountId"))
    assert all(c["OwnerId"] in generated.user_ids for c in contacts)
    assert len(same_domain) > len(at_work) / 2
    assert all(re.fullmatch(r"\S+@\S+\.\S+", c["Email"]) for c in at_work)
    assert 0 < sum(c["HasOptedOutOfEmail"] for c in contacts) < len(contacts) / 4
    assert len({c["MailingCountry"] for c in contacts}) > 3
    assert sum(1 for c in contacts if c.get("Title")) > len(contacts) / 2


def test_accounts_share_some_domains_and_lack_some(generated):
    accounts = generated.store.records("Account")
    websites = Counter(a.get("Website") for a in accounts)
    industries = {
        value["value"]
        for value in generated.schema.get("Account").field("Industry")["picklistValues"]
    }

    assert websites[None] > 0
    assert any(count > 1 for site, count in websites.items() if site)
    assert {a["Industry"] for a in accounts if a.get("Industry")} <= industries


def test_opportunities_belong_to_accounts(generated):
    opportunities = generated.store.records("Opportunity")
    accounts = {a["Id"] for a in generated.store.records("Account")}

    assert all(o["AccountId"] in accounts for o in opportunities)
    assert all(o["IsWon"] == (o["StageName"] == "Closed Won") for o in opportunities)


def test_generated_records_answer_queries(generated):
    token = generated.issue_tokens().access_token
    soql = (
        "SELECT Id, Email, Account.Name FROM Contact "
        "WHERE HasOptedOutOfEmail = false ORDER BY LastModifiedDate LIMIT 5"
    )

    with mocked(generated):
        response = requests.get(
            f"{API}/query/",
            params={"q": soql},
            headers={"Authorization": f"Bearer {token}"},
        )

    assert response.status_code == 200
    assert response.json()["totalSize"] == 5


def test_it_changes_a_share_of_records_the_same_way_for_the_same_seed(clock):
    org = OfflineOrg(clock=clock, generate={"contacts": 200}, seed=7, load_sample=False)

    touched = org.touch_random("Contact", 0.05, seed=3)

    again = OfflineOrg(generate={"contacts": 200}, seed=7, load_sample=False)
    assert len(touched) == 10
    assert touched == again.touch_random("Contact", 0.05, seed=3)
    changed = [c for c in org.store.records("Contact") if c["Id"] in touched]
    assert {c["LastModifiedDate"] for c in changed} == {clock.now}
    assert {c["SystemModstamp"] for c in changed} == {clock.now}


@pytest.mark.parametrize(
    "text", ["contacts", "contacts=ten", "leads=5", "contacts=5,,accounts=x"]
)
def test_it_refuses_a_spec_it_cannot_read(text):
    with pytest.raises(ValueError):
        parse_spec(text)


def test_it_reads_a_spec_from_the_command_line():
    assert parse_spec("contacts=100_000, accounts=500") == {
        "contacts": 100000,
        "accounts": 500,
    }


def test_serve_generates_the_org_it_is_asked_for(monkeypatch, tmp_path, capsys):
    served = []
    monkeypatch.setattr(
        "integrations.management.commands.offline_org.serve",
        lambda org, **options: served.append(org),
    )

    call_command(
        "offline_org",
        "serve",
        "--generate",
        "contacts=50",
        "--seed",
        "7",
        "--no-sample",
        "--cert-dir",
        str(tmp_path),
    )

    org = served[0]
    assert org.store.count("Contact") == 50
    assert org.store.count("Account") == 5
    assert "Generated 5 Account, 50 Contact, 2 Opportunity" in capsys.readouterr().out
