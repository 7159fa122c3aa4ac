"""Generate a large, realistic org for benchmarks, the same for the same seed.

    org = OfflineOrg(generate={"contacts": 100_000}, seed=1, load_sample=False)

Without other counts there is about one Account per 10 Contacts and one
Opportunity per 20; `accounts` and `opportunities` set them. Accounts have
names, websites (some shared by sister companies, some empty), industries
and addresses; Contacts have names, e-mails (mostly at their Account's
domain), phones, countries, titles, opt-outs, an Account and an owner.

Speed: Faker makes pools of names once per seed, and each record draws from
them with one `random.Random`; calling Faker for each record would take
minutes at 100,000 Contacts.
"""

from __future__ import annotations

import functools
import random
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from integrations.salesforce.emulator.store import SAMPLE_EPOCH, Store

CONTACTS_PER_ACCOUNT = 10
CONTACTS_PER_OPPORTUNITY = 20
GENERATED_OBJECTS = ("contacts", "accounts", "opportunities")

# (country, share of records, calling code, web domain ending, cities)
_COUNTRIES = (
    ("United States", 40, "1", ".com", ("New York", "Chicago", "Austin", "Denver")),
    ("United Kingdom", 14, "44", ".co.uk", ("London", "Manchester", "Leeds")),
    ("Germany", 10, "49", ".de", ("Berlin", "Munich", "Hamburg", "Cologne")),
    ("France", 8, "33", ".fr", ("Paris", "Lyon", "Toulouse")),
    ("Canada", 7, "1", ".ca", ("Toronto", "Vancouver", "Montreal")),
    ("Australia", 6, "61", ".com.au", ("Sydney", "Melbourne", "Brisbane")),
    ("Netherlands", 5, "31", ".nl", ("Amsterdam", "Rotterdam", "Utrecht")),
    ("Spain", 4, "34", ".es", ("Madrid", "Barcelona", "Valencia")),
    ("Ireland", 3, "353", ".ie", ("Dublin", "Cork", "Galway")),
    ("India", 3, "91", ".in", ("Bengaluru", "Mumbai", "Pune")),
)
_TITLES = (
    "CEO",
    "CFO",
    "CTO",
    "COO",
    "Founder",
    "VP Sales",
    "VP Marketing",
    "VP Engineering",
    "Head of Operations",
    "Head of Growth",
    "Head of Customer Success",
    "Director of Marketing",
    "Director of IT",
    "Director of Finance",
    "Sales Manager",
    "Marketing Manager",
    "Product Manager",
    "Project Manager",
    "Office Manager",
    "Account Executive",
    "Account Manager",
    "Sales Development Representative",
    "Customer Success Manager",
    "Marketing Coordinator",
    "Software Engineer",
    "Data Analyst",
    "Financial Analyst",
    "Procurement Specialist",
    "HR Business Partner",
    "Executive Assistant",
)
_DEPARTMENTS = (
    "Sales",
    "Marketing",
    "Finance",
    "Engineering",
    "Operations",
    "IT",
    "Human Resources",
    "Procurement",
)
_SUFFIXES = ("Inc", "LLC", "Ltd", "Group", "GmbH", "Partners", "Corp", "& Co")
_SECTOR_WORDS = (
    "Analytics",
    "Logistics",
    "Labs",
    "Systems",
    "Health",
    "Foods",
    "Energy",
    "Capital",
    "Media",
    "Robotics",
    "Software",
    "Consulting",
    "Outdoor",
    "Design",
    "Security",
    "Travel",
)
_WEBMAIL = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "hotmail.com")
_STREETS = ("Street", "Road", "Avenue", "Lane", "Way", "Boulevard")
_PRODUCTS = (
    "Platform Licence",
    "Annual Renewal",
    "Expansion",
    "Onboarding Services",
    "Support Upgrade",
    "Pilot",
)
# Stage, probability (%), forecast category.
_STAGES = (
    ("Prospecting", 10, "Pipeline"),
    ("Qualification", 10, "Pipeline"),
    ("Needs Analysis", 20, "Pipeline"),
    ("Value Proposition", 50, "Pipeline"),
    ("Id. Decision Makers", 60, "Pipeline"),
    ("Perception Analysis", 70, "Pipeline"),
    ("Proposal/Price Quote", 75, "Best Case"),
    ("Negotiation/Review", 90, "Commit"),
    ("Closed Won", 100, "Closed"),
    ("Closed Lost", 0, "Omitted"),
)


@dataclass(frozen=True)
class GeneratedCounts:
    contacts: int
    accounts: int
    opportunities: int

    @classmethod
    def from_spec(cls, spec: Mapping[str, int]) -> GeneratedCounts:
        """Read {"contacts": N} and optional "accounts" and "opportunities"."""
        unknown = set(spec) - set(GENERATED_OBJECTS)
        if unknown:
            raise ValueError(
                f"Cannot generate {', '.join(sorted(unknown))}; "
                f"known: {', '.join(GENERATED_OBJECTS)}"
            )
        if any(int(count) < 0 for count in spec.values()):
            raise ValueError("Counts cannot be negative")
        contacts = int(spec.get("contacts", 0))
        accounts = spec.get("accounts")
        opportunities = spec.get("opportunities")
        if accounts is None:
            accounts = -(-contacts // CONTACTS_PER_ACCOUNT)
        if opportunities is None:
            opportunities = contacts // CONTACTS_PER_OPPORTUNITY
        return cls(int(contacts), int(accounts), int(opportunities))


def parse_spec(text: str) -> dict[str, int]:
    """Read `contacts=100000,accounts=5000` as given on the command line."""
    spec = {}
    for part in filter(None, (item.strip() for item in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not value.strip().replace("_", "").isdigit():
            raise ValueError(f"Expected NAME=COUNT, got {part!r}")
        spec[name.strip().lower()] = int(value.strip().replace("_", ""))
    GeneratedCounts.from_spec(spec)
    return spec


def generate_org(
    store: Store,
    *,
    spec: Mapping[str, int],
    seed: int,
    owners: Sequence[str],
) -> dict[str, list[str]]:
    """Add generated Accounts, Contacts and Opportunities; return their Ids."""
    counts = GeneratedCounts.from_spec(spec)
    pools = _Pools.build(seed)
    rng = _Draw(seed)

    accounts = [_account(rng, pools, owners) for _ in range(counts.accounts)]
    _share_some_domains(rng, accounts)
    account_ids = store.load_many("Account", (row for row, _ in accounts))
    contact_ids = store.load_many(
        "Contact",
        (
            _contact(rng, pools, owners, accounts, account_ids)
            for _ in range(counts.contacts)
        ),
    )
    opportunity_ids = store.load_many(
        "Opportunity",
        (_opportunity(rng, accounts, account_ids) for _ in range(counts.opportunities)),
    )
    return {
        "Account": account_ids,
        "Contact": contact_ids,
        "Opportunity": opportunity_ids,
    }


# ---------------------------------------------------------------- Pools


class _Draw(random.Random):
    """Random draws, the same for the same seed, faster than the stock ones."""

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.random() * len(seq))]

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))


@dataclass(frozen=True)
class _Pools:
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    countries: tuple[_Country, ...]

    @classmethod
    @functools.cache
    def build(cls, seed: int) -> _Pools:
        # Imported here: only generated orgs need Faker.
        from faker import Faker

        fake = Faker("en_US")
        fake.seed_instance(seed)
        countries = []
        for name, share, code, ending, cities in _COUNTRIES:
            countries += [(name, code, ending, cities)] * share
        # Draws repeat common names, as real lists of people do. Tuples: the
        # pools are cached per seed and shared.
        return cls(
            first_names=tuple(fake.first_name() for _ in range(1_500)),
            last_names=tuple(fake.last_name() for _ in range(2_500)),
            countries=tuple(countries),
        )


# ---------------------------------------------------------------- Records

# An Account row, and what its Contacts borrow from it: (domain, country).
_Country = tuple[str, str, str, tuple[str, ...]]
_Account = tuple[dict[str, Any], tuple[str | None, _Country]]


def _account(rng: _Draw, pools: _Pools, owners: Sequence[str]) -> _Account:
    country = rng.choice(pools.countries)
    name, city = _company_name(rng, pools), rng.choice(country[3])
    domain = _slug(name) + country[2]
    revenue = round(10 ** rng.uniform(5, 9), -3)
    row = {
        "Name": name,
        "Website": f"www.{domain}",
        "Industry": rng.choice(_INDUSTRIES),
        "Type": rng.choice(_ACCOUNT_TYPES),
        "Rating": rng.choice(("Hot", "Warm", "Cold", None)),
        "AccountSource": rng.choice(_SOURCES),
        "Phone": _phone(rng, country[1]),
        "BillingStreet": f"{rng.randint(1, 400)} {rng.choice(pools.last_names)} "
        f"{rng.choice(_STREETS)}",
        "BillingCity": city,
        "BillingPostalCode": f"{rng.randint(10_000, 99_999)}",
        "BillingCountry": country[0],
        "NumberOfEmployees": int(10 ** rng.uniform(0.5, 4.5)),
        "AnnualRevenue": revenue,
        "OwnerId": rng.choice(owners),
    }
    return row, (domain, country)


def _share_some_domains(rng: _Draw, accounts: list[_Account]) -> None:
    """Give some Accounts a sister company's domain, and some none at all."""
    for index, (row, (_, country)) in enumerate(accounts):
        draw = rng.random()
        if draw < 0.08:
            row["Website"] = None
            accounts[index] = (row, (None, country))
        elif draw < 0.13 and index > 0:
            sister_row, (domain, _) = accounts[rng.randint(0, index - 1)]
            row["Website"] = sister_row["Website"]
            accounts[index] = (row, (domain, country))


def _contact(
    rng: _Draw,
    pools: _Pools,
    owners: Sequence[str],
    accounts: list[_Account],
    account_ids: list[str],
) -> dict[str, Any]:
    first, last = rng.choice(pools.first_names), rng.choice(pools.last_names)
    account_index = None
    domain, country = None, rng.choice(pools.countries)
    # Most people work at an Account; a few Accounts hold many of them.
    if accounts and rng.random() < 0.95:
        account_index = int(len(accounts) * rng.random() ** 1.5)
        _, (domain, account_country) = accounts[account_index]
        if rng.random() < 0.85:
            country = account_country
    owner = (
        accounts[account_index][0]["OwnerId"]
        if account_index is not None and rng.random() < 0.8
        else rng.choice(owners)
    )
    return {
        "FirstName": first,
        "LastName": last,
        "Salutation": rng.choice(("Mr.", "Ms.", "Mrs.", "Dr.", None, None)),
        "Email": _email(rng, first, last, domain),
        "Phone": _phone(rng, country[1]) if rng.random() < 0.85 else None,
        "MobilePhone": _phone(rng, country[1]) if rng.random() < 0.4 else None,
        "Title": rng.choice(_TITLES) if rng.random() < 0.9 else None,
        "Department": rng.choice(_DEPARTMENTS) if rng.random() < 0.5 else None,
        "MailingCity": rng.choice(country[3]),
        "MailingCountry": country[0],
        "LeadSource": rng.choice(_SOURCES),
        "HasOptedOutOfEmail": rng.random() < 0.08,
        "HasOptedOutOfFax": rng.random() < 0.02,
        "DoNotCall": rng.random() < 0.05,
        "AccountId": None if account_index is None else account_ids[account_index],
        "OwnerId": owner,
    }


def _opportunity(
    rng: _Draw, accounts: list[_Account], account_ids: list[str]
) -> dict[str, Any]:
    account_index = rng.randint(0, len(accounts) - 1) if accounts else None
    account_name = accounts[account_index][0]["Name"] if accounts else "Direct"
    stage, probability, forecast = rng.choice(_STAGES)
    close = SAMPLE_EPOCH.date() + timedelta(days=rng.randint(-365, 180))
    return {
        "Name": f"{account_name} - {rng.choice(_PRODUCTS)}",
        "AccountId": None if account_index is None else account_ids[account_index],
        "StageName": stage,
        "Probability": float(probability),
        "ForecastCategoryName": forecast,
        "IsClosed": stage.startswith("Closed"),
        "IsWon": stage == "Closed Won",
        "CloseDate": date(close.year, close.month, close.day),
        "Amount": float(500 * rng.randint(2, 500)),
        "Type": rng.choice(_OPPORTUNITY_TYPES),
        "LeadSource": rng.choice(_SOURCES),
        "OwnerId": (accounts[account_index][0]["OwnerId"] if accounts else None),
    }


# ---------------------------------------------------------------- Values

_INDUSTRIES = (
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Construction",
    "Consulting",
    "Education",
    "Energy",
    "Finance",
    "Food & Beverage",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Retail",
    "Technology",
    "Telecommunications",
    "Transportation",
    None,
)
_ACCOUNT_TYPES = ("Prospect", "Customer - Direct", "Customer - Channel", "Other")
_OPPORTUNITY_TYPES = (
    "New Customer",
    "Existing Customer - Upgrade",
    "Existing Customer - Replacement",
)
_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", None)


def _company_name(rng: _Draw, pools: _Pools) -> str:
    last = rng.choice(pools.last_names)
    shape = rng.random()
    if shape < 0.35:
        return f"{last} {rng.choice(_SUFFIXES)}"
    if shape < 0.55:
        return f"{last} {rng.choice(_SECTOR_WORDS)}"
    if shape < 0.75:
        return f"{last}-{rng.choice(pools.last_names)}"
    if shape < 0.9:
        second, third = rng.choice(pools.last_names), rng.choice(pools.last_names)
        return f"{last}, {second} and {third}"
    words = rng.choice(_SECTOR_WORDS), rng.choice(_SECTOR_WORDS)
    return f"{words[0]} {words[1]} {rng.choice(_SUFFIXES)}"


def _email(rng: _Draw, first: str, last: str, domain: str | None) -> str | None:
    draw = rng.random()
    if draw < 0.05:
        return None
    local_first, local_last = _slug(first), _slug(last)
    if domain is not None and draw < 0.8:
        local = (
            f"{local_first}.{local_last}"
            if draw < 0.6
            else f"{local_first[:1]}{local_last}"
        )
        email = f"{local}@{domain}"
    else:
        email = f"{local_first}{local_last}{rng.randint(1, 999)}@{rng.choice(_WEBMAIL)}"
    # Some people type their address with capitals; Salesforce keeps them.
    if rng.random() < 0.03:
        email = f"{first}.{last}@{email.partition('@')[2]}"
    return email


def _phone(rng: _Draw, calling_code: str) -> str:
    return (
        f"+{calling_code} {rng.randint(200, 999)} {rng.randint(200, 999)} "
        f"{rng.randint(0, 9999):04d}"
    )


@functools.cache
def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "", ascii_text.lower()) or "example"
