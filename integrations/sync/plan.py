"""Plan the read of one object: the configuration met with what describe shows."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from django.conf import settings

from integrations.models import FieldMapping, ObjectMapping, SyncCursor
from integrations.salesforce import soql
from integrations.salesforce.schema import ObjectSchema, RunSchema, StoredSchema
from integrations.salesforce.soql_build import Plan, plan_select
from integrations.sync.bulk import BulkCandidate, FullReadPlan
from integrations.sync.defaults import ATTRIBUTES

# Read a little before the cursor: a record committed late can carry a stamp
# older than the newest one already read. Upserts are idempotent, so reading
# a record twice costs nothing but the read.
CURSOR_OVERLAP = timedelta(minutes=5)

# What staff read of a mapped field describe does not list. Describe cannot
# tell a field hidden from the connected user from one deleted in the org;
# hidden is by far the more common.
HIDDEN_WORDS = "hidden by field-level security for the connected user"
HIDDEN = f"skipped: {HIDDEN_WORDS} (or deleted in Salesforce)"

# Where each lookup's Id goes in a row, by target.
LOOKUP_KEYS = {
    ObjectMapping.Target.PERSON: {
        "organisation": "salesforce_account_id",
        "owner": "owner_salesforce_id",
    },
    ObjectMapping.Target.ORGANISATION: {"owner": "owner_salesforce_id"},
    ObjectMapping.Target.OWNER: {},
    ObjectMapping.Target.RECORD: {
        "person": "person_salesforce_id",
        "organisation": "account_salesforce_id",
        "owner": "owner_salesforce_id",
    },
}


# The objects people are commonly imported from, and the field that holds
# each one's e-mail opt-out (a person account's is PersonHasOptedOutOfEmail).
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contact.htm
OPT_OUT_FIELDS = {
    "contact": "HasOptedOutOfEmail",
    "lead": "HasOptedOutOfEmail",
    "account": "PersonHasOptedOutOfEmail",
}
OPT_OUT = "has_opted_out_of_email"


class PlanError(ValueError):
    """The configuration of an object cannot be read as it stands."""


@dataclass
class ObjectPlan:
    mapping: ObjectMapping
    schema: ObjectSchema
    # Readable field mappings with the field's name in describe's casing.
    fields: list[tuple[FieldMapping, str]]
    # Row key -> readable lookup field.
    lookups: dict[str, str]
    skipped: dict[str, str]
    where: soql.Condition | None
    is_full_read: bool
    # The configuration changed, or hidden fields came back: what a full read
    # rewrites is then new to read, not drift the recent-changes syncs missed.
    is_backfill: bool = False
    # The stamp recent changes are read by, in describe's casing; None when
    # the object has none, and is then read whole every time.
    cursor_field: str | None = None
    # Whether people are read from an object that holds Salesforce's own
    # e-mail opt-out, which every row then takes whatever the field
    # mappings say; and that field, None when the user cannot read it.
    applies_opt_out: bool = False
    opt_out_field: str | None = None
    query: Plan = field(init=False)

    def __post_init__(self) -> None:
        self.query = plan_select(
            sobject=self.schema.name,
            fields=self.select,
            where=self.where,
            budget=settings.SALESFORCE_QUERY_URL_BUDGET,
            order_by=self.order_by,
            stamp=self.cursor_field,
        )
        # A full read may go through Bulk when the object turns out large;
        # the count that decides is made when the read starts.
        if self.is_full_read:
            self.query = FullReadPlan(
                statements=self.query.statements,
                keys=self.query.keys,
                bulk=BulkCandidate(
                    schema=self.schema, fields=tuple(self.select), where=self.where
                ),
            )

    @cached_property
    def is_reconciled(self) -> bool:
        """Tell whether what a full read did not return may be marked deleted.

        Worked out once per plan, so the Ids a read keeps and the marking
        after it agree.
        """
        # Users are deactivated, never deleted; an owner stays an owner.
        if self.mapping.target == ObjectMapping.Target.OWNER:
            return False
        # Rows of another object stored as the same model would look missing.
        # Only records keep their object's name; for the others, the Ids'
        # prefix tells them apart, and without it the read marks nothing.
        if not self.schema.key_prefix and mapping_shares_model(self.mapping):
            return False
        return True

    @property
    def is_filtered(self) -> bool:
        """A filtered read leaves out records the org still has: a stored row
        can have left the filter since it was imported."""
        return bool(self.mapping.filter.strip())

    @property
    def include_deleted(self) -> bool:
        """Recent changes include deletions and merges; a full read finds
        them by what it no longer returns."""
        return not self.is_full_read and self.schema.canonical("IsDeleted") is not None

    @property
    def order_by(self) -> tuple[str, ...]:
        # Recent changes come oldest first, so that each page can move the
        # checkpoint: everything before the page's last stamp has been read.
        if self.is_full_read or self.cursor_field is None:
            return ()
        return (self.cursor_field, "Id")

    @property
    def select(self) -> list[str]:
        names = ["Id", *(name for _, name in self.fields), *self.lookups.values()]
        if self.opt_out_field is not None:
            names.append(self.opt_out_field)
        if self.cursor_field is not None:
            names.append(self.cursor_field)
        if self.include_deleted:
            names.append("IsDeleted")
            if self.schema.canonical("MasterRecordId"):
                names.append("MasterRecordId")
        return list(dict.fromkeys(names))


def object_plan(
    *,
    mapping: ObjectMapping,
    schema: RunSchema | StoredSchema,
    cursor: SyncCursor | None,
    is_full_sync: bool,
    fresh: bool = False,
    window: tuple[datetime, datetime | None] | None = None,
) -> ObjectPlan:
    """Return what to read of a mapped object in this run.

    A mapped field the connected user cannot see is left out, never an
    error; so is a lookup. A field that was left out last time and is
    visible again makes this a full read, so every record gets its value.
    """
    # A row key the target has no column for would overwrite the row's Id or
    # its custom values.
    allowed = ATTRIBUTES[mapping.target]
    foreign = [
        f"{field_mapping.salesforce_field} fills {field_mapping.attribute}"
        for field_mapping in mapping.field_mappings.all()
        if field_mapping.attribute and field_mapping.attribute not in allowed
    ]
    if foreign:
        target = mapping.get_target_display().lower()
        raise PlanError(
            f"{' and '.join(foreign)}, which a {target} does not have; it has "
            f"{', '.join(allowed)}."
        )
    described = schema.describe(mapping.object_name, fresh=fresh)
    if described.canonical("Id") is None:
        raise PlanError(f"{mapping.object_name} has no Id the connected user can read.")
    cursor_field = cursor_field_choose(mapping=mapping, described=described)

    fields: list[tuple[FieldMapping, str]] = []
    skipped: dict[str, str] = {}
    for field_mapping in mapping.field_mappings.all():
        name = described.canonical(field_mapping.salesforce_field)
        if name is None:
            skipped[field_mapping.salesforce_field] = HIDDEN
        else:
            fields.append((field_mapping, name))

    lookups: dict[str, str] = {}
    roles = {
        "person": mapping.person_lookup_field,
        "organisation": mapping.organisation_lookup_field,
        "owner": mapping.owner_lookup_field,
    }
    for role, key in LOOKUP_KEYS[mapping.target].items():
        if not roles[role]:
            continue
        name = described.canonical(roles[role])
        if name is None:
            skipped[roles[role]] = HIDDEN
        else:
            lookups[key] = name

    # Opt-outs are always respected: read even when no field mapping names
    # the field, and reported when it cannot be read.
    opt_out_name = OPT_OUT_FIELDS.get(described.name.lower())
    applies_opt_out = (
        mapping.target == ObjectMapping.Target.PERSON and opt_out_name is not None
    )
    opt_out_field = described.canonical(opt_out_name) if applies_opt_out else None
    if applies_opt_out and opt_out_field is None:
        skipped.setdefault(opt_out_name, HIDDEN)

    visible_again = set(mapping.skipped_fields) - set(skipped)
    is_full_read = (
        is_full_sync
        or mapping.needs_backfill
        or cursor is None
        or bool(visible_again)
        or cursor_field is None
        # Stamps of another field do not bound this one's.
        or cursor.field_name != cursor_field
    )

    conditions: list[soql.Condition] = []
    if mapping.filter.strip():
        try:
            conditions.append(soql.parse_condition(mapping.filter))
        except soql.SoqlError as exc:
            raise PlanError(
                f"The filter on {mapping.object_name} is not valid: {exc}"
            ) from exc
        _filter_fits(mapping=mapping, described=described)
    if not is_full_read:
        # A window narrower than "since the checkpoint" is asked for when
        # Salesforce timed out on the wider one.
        since, until = window or (cursor.value - CURSOR_OVERLAP, None)
        stamp = soql.Field((cursor_field,))
        conditions.append(soql.Comparison(field=stamp, operator=">=", value=since))
        if until is not None:
            conditions.append(soql.Comparison(field=stamp, operator="<", value=until))
    where = None
    if len(conditions) == 1:
        where = conditions[0]
    elif conditions:
        where = soql.And(tuple(conditions))

    return ObjectPlan(
        mapping=mapping,
        schema=described,
        fields=fields,
        lookups=lookups,
        skipped=skipped,
        where=where,
        is_full_read=is_full_read,
        is_backfill=mapping.needs_backfill or bool(visible_again),
        cursor_field=cursor_field,
        applies_opt_out=applies_opt_out,
        opt_out_field=opt_out_field,
    )


def _filter_fits(*, mapping: ObjectMapping, described: ObjectSchema) -> None:
    """Refuse a filter that no longer fits the object as described now: a
    field it names was hidden or deleted, or changed type, since it was saved.

    Salesforce would refuse the query each time; that is no passing change
    to be read again within the hour, but one for staff to make.
    """
    # Imported here: the configuration's checks plan previews with this module.
    from django.core.exceptions import ValidationError

    from integrations.configuration import filter_check

    try:
        filter_check(text=mapping.filter, schema=described)
    except ValidationError as exc:
        raise PlanError(
            f"The filter on {described.name} does not fit what the connected user "
            f"can see now: {' '.join(exc.messages)} Change the filter; until then "
            "the object is not read."
        ) from exc


# SystemModstamp moves with every change, Salesforce's own included (a
# renamed picklist value, a recalculated roll-up); LastModifiedDate only
# with users' and integrations' edits.
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/system_fields.htm
CURSOR_FIELDS = ("SystemModstamp", "LastModifiedDate", "CreatedDate")


def cursor_field_choose(*, mapping: ObjectMapping, described) -> str | None:
    """Return the stamp to read an object's recent changes by.

    The configured field when the object has it, else the first of
    CURSOR_FIELDS it has; None for an object with none of them.
    """
    for name in (mapping.cursor_field, *CURSOR_FIELDS):
        found = described.canonical(name) if name else None
        if found is not None:
            return found
    return None


def mapping_shares_model(mapping: ObjectMapping) -> bool:
    """Tell whether another object of the connection is stored as this one's
    model, where only the Ids' prefix can tell their rows apart."""
    target = mapping.target
    if target == ObjectMapping.Target.RECORD:
        return False
    others = ObjectMapping.objects.filter(
        connection_id=mapping.connection_id, target=target
    )
    return others.exclude(pk=mapping.pk).exists()
