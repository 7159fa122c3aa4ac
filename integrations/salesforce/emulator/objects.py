"""Field specs for the objects that have no recorded describe.

The sample apps define these objects in their metadata; the specs here give
each field the type its data calls for. Key prefixes of custom objects are
fixed here so that Ids stay the same whatever is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Audit fields Salesforce sets itself on every object.
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/system_fields.htm
SYSTEM_FIELD_NAMES = frozenset(
    {
        "Id",
        "IsDeleted",
        "CreatedDate",
        "CreatedById",
        "LastModifiedDate",
        "LastModifiedById",
        "SystemModstamp",
    }
)


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    length: int = 255
    label: str | None = None
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    master_detail: bool = False
    precision: int = 18
    scale: int = 0
    nillable: bool = True
    writable: bool = True
    calculated: bool = False
    auto_number: str | None = None
    compound: str | None = None
    external_id: bool = False
    unique: bool = False
    picklist: tuple[str, ...] = ()
    # A restricted picklist refuses any value it does not list.
    restricted: bool = False


@dataclass(frozen=True)
class ObjectSpec:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: tuple[FieldSpec, ...] = ()
    name_field: FieldSpec | None = field(
        default_factory=lambda: FieldSpec("Name", "string", length=80, nillable=False)
    )
    has_owner: bool = True
    has_is_deleted: bool = True
    createable: bool = True
    deletable: bool = True

    def all_fields(self) -> list[FieldSpec]:
        """Return the fields in describe order: Id, system fields, then ours."""
        fields = [FieldSpec("Id", "id", nillable=False, writable=False)]
        if self.has_owner:
            fields.append(
                FieldSpec(
                    "OwnerId",
                    "reference",
                    reference_to=("User",),
                    relationship_name="Owner",
                    nillable=False,
                )
            )
        if self.has_is_deleted:
            fields.append(FieldSpec("IsDeleted", "boolean", writable=False))
        if self.name_field is not None:
            fields.append(self.name_field)
        fields += [
            FieldSpec("CreatedDate", "datetime", writable=False),
            _audit_user("CreatedById", "CreatedBy"),
            FieldSpec("LastModifiedDate", "datetime", writable=False),
            _audit_user("LastModifiedById", "LastModifiedBy"),
            FieldSpec("SystemModstamp", "datetime", writable=False),
        ]
        return fields + list(self.fields)


def _audit_user(name: str, relationship: str) -> FieldSpec:
    return FieldSpec(
        name,
        "reference",
        reference_to=("User",),
        relationship_name=relationship,
        writable=False,
    )


def _auto_name(display_format: str) -> FieldSpec:
    return FieldSpec(
        "Name", "string", length=80, nillable=False, auto_number=display_format
    )


def _lookup(name: str, target: str, *, master_detail: bool = False) -> FieldSpec:
    return FieldSpec(
        name,
        "reference",
        reference_to=(target,),
        relationship_name=name.removesuffix("__c") + "__r",
        master_detail=master_detail,
        nillable=not master_detail,
    )


def _text(name: str, length: int = 255) -> FieldSpec:
    return FieldSpec(name, "string", length=length)


def _long_text(name: str) -> FieldSpec:
    return FieldSpec(name, "textarea", length=32768)


def _number(name: str, precision: int = 18, scale: int = 0) -> FieldSpec:
    return FieldSpec(name, "double", precision=precision, scale=scale)


def _money(name: str) -> FieldSpec:
    return FieldSpec(name, "currency", precision=16, scale=2)


def _picklist(name: str, *values: str) -> FieldSpec:
    return FieldSpec(name, "picklist", picklist=values)


# ---------------------------------------------------------------- Standard

USER = ObjectSpec(
    "User",
    "User",
    "Users",
    "005",
    name_field=FieldSpec("Name", "string", length=121, writable=False),
    has_owner=False,
    # Users are deactivated, never deleted: User has no IsDeleted field.
    has_is_deleted=False,
    deletable=False,
    fields=(
        FieldSpec("Username", "string", length=80, nillable=False, unique=True),
        FieldSpec("LastName", "string", length=80, nillable=False, compound="Name"),
        FieldSpec("FirstName", "string", length=40, compound="Name"),
        FieldSpec("Alias", "string", length=8, nillable=False),
        FieldSpec("Email", "email", length=128, nillable=False),
        FieldSpec("IsActive", "boolean"),
        _text("Title", 80),
        _text("CompanyName", 80),
        _text("Department", 80),
        _picklist("TimeZoneSidKey", "America/Los_Angeles", "Europe/London"),
        FieldSpec(
            "UserType",
            "picklist",
            writable=False,
            picklist=("Standard", "AutomatedProcess"),
        ),
    ),
)

# The org itself: one record, whose Id is the org's Id. Only Salesforce
# creates it; users may read it but not delete it.
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_organization.htm
ORGANIZATION = ObjectSpec(
    "Organization",
    "Organization",
    "Organizations",
    "00D",
    name_field=FieldSpec("Name", "string", length=80, nillable=False, writable=False),
    has_owner=False,
    has_is_deleted=False,
    createable=False,
    deletable=False,
    fields=(
        FieldSpec(
            "OrganizationType",
            "picklist",
            writable=False,
            picklist=("Developer Edition", "Enterprise Edition", "Unlimited Edition"),
        ),
        FieldSpec("IsSandbox", "boolean", writable=False),
        FieldSpec("InstanceName", "string", length=5, writable=False),
        FieldSpec("Country", "string", length=80, writable=False),
        FieldSpec(
            "TimeZoneSidKey",
            "picklist",
            writable=False,
            picklist=("America/Los_Angeles", "Europe/London"),
        ),
    ),
)

CAMPAIGN = ObjectSpec(
    "Campaign",
    "Campaign",
    "Campaigns",
    "701",
    fields=(
        _picklist("Type", "Conference", "Webinar", "Email", "Advertisement"),
        _picklist("Status", "Planned", "In Progress", "Completed", "Aborted"),
        FieldSpec("StartDate", "date"),
        FieldSpec("EndDate", "date"),
        FieldSpec("IsActive", "boolean"),
        _money("BudgetedCost"),
        _money("ActualCost"),
        _money("ExpectedRevenue"),
        FieldSpec("Description", "textarea", length=32000),
        FieldSpec(
            "ParentId",
            "reference",
            reference_to=("Campaign",),
            relationship_name="Parent",
        ),
        FieldSpec("NumberOfLeads", "int", writable=False),
    ),
)

TASK = ObjectSpec(
    "Task",
    "Task",
    "Tasks",
    "00T",
    name_field=None,
    fields=(
        FieldSpec("Subject", "combobox", length=255),
        FieldSpec("ActivityDate", "date"),
        _picklist("Status", "Not Started", "In Progress", "Completed"),
        _picklist("Priority", "High", "Normal", "Low"),
        FieldSpec("IsClosed", "boolean", writable=False),
        FieldSpec(
            "WhoId",
            "reference",
            reference_to=("Contact", "Lead"),
            relationship_name="Who",
        ),
        FieldSpec(
            "WhatId",
            "reference",
            reference_to=("Account", "Opportunity", "Case", "Campaign"),
            relationship_name="What",
        ),
        FieldSpec("Description", "textarea", length=32000),
    ),
)

# Custom fields the sample apps add to objects with a recorded describe.
EXTRA_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "Contact": (
        # Standard opt-outs every org has; the recorded describe was captured
        # without them.
        FieldSpec("HasOptedOutOfEmail", "boolean", label="Email Opt Out"),
        FieldSpec("HasOptedOutOfFax", "boolean", label="Fax Opt Out"),
        FieldSpec("DoNotCall", "boolean", label="Do Not Call"),
        FieldSpec("External_Id__c", "string", length=20, external_id=True, unique=True),
        _picklist("Guest_Type__c"),
        _picklist("Interest1__c"),
        _picklist("Interest2__c"),
        _picklist("Interest3__c"),
        _text("Preferred_Name__c", 40),
        FieldSpec("Photo_URL__c", "url"),
        FieldSpec("Next_Check_in_Date__c", "date"),
        _picklist("Reservation_Status__c"),
        FieldSpec("Picture__c", "url"),
        # Trig's own fields, which Jobs stamp: the date of the last e-mail
        # Trig sent, and an engagement level from a fixed list.
        FieldSpec("Last_Trig_Email__c", "date", label="Last Trig Email"),
        FieldSpec(
            "Trig_Engagement__c",
            "picklist",
            label="Trig Engagement",
            picklist=("Cold", "Warm", "Hot"),
            restricted=True,
        ),
    ),
}

# ---------------------------------------------------------------- Custom

CUSTOM_OBJECTS = (
    ObjectSpec(
        "Broker__c",
        "Broker",
        "Brokers",
        "a00",
        fields=(
            _text("Title__c", 30),
            FieldSpec("Phone__c", "phone", length=40),
            FieldSpec("Mobile_Phone__c", "phone", length=40),
            FieldSpec("Email__c", "email", length=80),
            FieldSpec("Picture__c", "url"),
        ),
    ),
    ObjectSpec(
        "Experience__c",
        "Experience",
        "Experiences",
        "a01",
        fields=(
            _picklist("Activity_Level__c"),
            _number("Capacity__c"),
            FieldSpec("Default_Start_Time__c", "time"),
            _long_text("Description__c"),
            _number("Duration_Hours__c", precision=4, scale=1),
            _text("Location__c"),
            FieldSpec("Picture_URL__c", "url"),
            _money("Price__c"),
            _picklist("Type__c"),
        ),
    ),
    ObjectSpec(
        "Guest_Review__c",
        "Guest Review",
        "Guest Reviews",
        "a02",
        name_field=_auto_name("GR-{0000}"),
        fields=(
            _lookup("Experience__c", "Experience__c"),
            _lookup("Contact__c", "Contact"),
            _picklist("Rating__c", *(str(rating) for rating in range(1, 11))),
            _long_text("Comments__c"),
        ),
    ),
    ObjectSpec(
        "Junction_Demo_1__c",
        "Junction Demo 1",
        "Junction Demo 1s",
        "a03",
        name_field=_auto_name("JD1-{00000}"),
    ),
    ObjectSpec(
        "Junction_Demo_2__c",
        "Junction Demo 2",
        "Junction Demo 2s",
        "a04",
        name_field=_auto_name("JD2-{00000}"),
    ),
    ObjectSpec(
        "Junction__c",
        "Junction",
        "Junctions",
        "a05",
        name_field=_auto_name("J-{00000}"),
        # Detail records take their owner from their master record.
        has_owner=False,
        fields=(
            _lookup("parent1__c", "Junction_Demo_1__c", master_detail=True),
            _lookup("Parent2__c", "Junction_Demo_2__c", master_detail=True),
        ),
    ),
    ObjectSpec(
        "Market__c",
        "Market",
        "Markets",
        "a06",
        fields=(_text("City__c"), _text("State__c"), _text("Country__c")),
    ),
    ObjectSpec(
        "Product_Family__c",
        "Product Family",
        "Product Families",
        "a07",
        fields=(
            FieldSpec("Description__c", "textarea", length=255),
            _picklist("Category__c"),
        ),
    ),
    ObjectSpec(
        "Product__c",
        "Product",
        "Products",
        "a08",
        fields=(
            _lookup("Product_Family__c", "Product_Family__c"),
            _long_text("Description__c"),
            _money("MSRP__c"),
            _picklist("Level__c"),
            _picklist("Category__c"),
            _picklist("Material__c"),
            FieldSpec("Picture_URL__c", "url"),
            _text("Battery__c"),
            _text("Charger__c"),
            _text("Motor__c"),
            _text("Fork__c"),
            _text("Front_Brakes__c"),
            _text("Rear_Brakes__c"),
        ),
    ),
    ObjectSpec(
        "Property__c",
        "Property",
        "Properties",
        "a09",
        fields=(
            _text("Address__c"),
            _text("City__c", 50),
            _text("State__c", 20),
            _text("Zip__c", 10),
            _money("Price__c"),
            _number("Beds__c"),
            _number("Baths__c"),
            FieldSpec("Location__c", "location"),
            FieldSpec(
                "Location__Latitude__s",
                "double",
                precision=9,
                scale=6,
                compound="Location__c",
            ),
            FieldSpec(
                "Location__Longitude__s",
                "double",
                precision=9,
                scale=6,
                compound="Location__c",
            ),
            FieldSpec("Picture__c", "url"),
            FieldSpec("Thumbnail__c", "url"),
            _text("Tags__c"),
            _long_text("Description__c"),
            _lookup("Broker__c", "Broker__c"),
            _picklist("Status__c"),
        ),
    ),
    ObjectSpec(
        "Reservation__c",
        "Reservation",
        "Reservations",
        "a0A",
        name_field=_auto_name("R-{00000}"),
        fields=(
            _lookup("Contact__c", "Contact"),
            _lookup("Market__c", "Market__c"),
            FieldSpec("Start_Date__c", "date"),
            FieldSpec("End_Date__c", "date"),
            _picklist("Status__c"),
            _number("Total_Number_of_Guests__c"),
        ),
    ),
    ObjectSpec(
        "Space__c",
        "Space",
        "Spaces",
        "a0B",
        fields=(
            _lookup("Market__c", "Market__c"),
            _money("Daily_Booking_Rate__c"),
            _number("Maximum_Capacity__c"),
            _number("Minimum_Capacity__c"),
            _picklist("Category__c"),
            FieldSpec("Type__c", "multipicklist", length=4099),
            FieldSpec("Picture_URL__c", "url"),
        ),
    ),
)

GENERATED_OBJECTS = (USER, ORGANIZATION, CAMPAIGN, TASK, *CUSTOM_OBJECTS)

# Objects whose describe was recorded from a real org (data/describe/).
RECORDED_OBJECTS = ("Account", "Case", "Contact", "Lead", "Opportunity")

# Objects whose Name Salesforce builds from FirstName and LastName.
PERSON_NAMED_OBJECTS = frozenset({"Contact", "Lead", "User"})

# What a polymorphic lookup (a Case's Owner, a User or a queue) reads its
# parent through, whatever object the parent is: only these fields.
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_name.htm
NAME_OBJECT_FIELDS = (
    FieldSpec("Id", "id", nillable=False, writable=False),
    FieldSpec("Alias", "string", length=8),
    FieldSpec("Email", "email", length=80),
    FieldSpec("FirstName", "string", length=40),
    FieldSpec("IsActive", "boolean"),
    FieldSpec("LastName", "string", length=80),
    FieldSpec("LastReferencedDate", "datetime"),
    FieldSpec("LastViewedDate", "datetime"),
    FieldSpec("Name", "string", length=255),
    FieldSpec("NameOrAlias", "string", length=80),
    FieldSpec("Phone", "phone", length=40),
    FieldSpec(
        "ProfileId", "reference", reference_to=("Profile",), relationship_name="Profile"
    ),
    FieldSpec(
        "RecordTypeId",
        "reference",
        reference_to=("RecordType",),
        relationship_name="RecordType",
    ),
    FieldSpec("Title", "string", length=80),
    FieldSpec("Type", "picklist", length=40),
    FieldSpec(
        "UserRoleId",
        "reference",
        reference_to=("UserRole",),
        relationship_name="UserRole",
    ),
    FieldSpec("Username", "string", length=80),
)
