from collections import Counter

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone

from integrations.fields import EncryptedTextField

# A full sync comes every day; recent-changes syncs further apart add nothing.
RECENT_SYNC_MINUTES_MAX = 24 * 60


class SalesforceConnection(models.Model):
    """One Salesforce org connected to a workspace through OAuth."""

    class Environment(models.TextChoices):
        PRODUCTION = "production", "Production"
        SANDBOX = "sandbox", "Sandbox"

    class Status(models.TextChoices):
        CONNECTED = "connected", "Connected"
        RECONNECT_REQUIRED = "reconnect_required", "Reconnect required"
        DISCONNECTED = "disconnected", "Disconnected"

    workspace = models.ForeignKey(
        "trig_crm.Workspace",
        on_delete=models.CASCADE,
        related_name="salesforce_connections",
    )
    environment = models.CharField(max_length=20, choices=Environment.choices)
    # The host that issued the grant; refreshes must go back to it.
    login_host = models.CharField(max_length=255)
    instance_url = models.URLField(max_length=255)
    org_id = models.CharField(max_length=18)
    # The org's name (Setup → Company Information), read when connecting
    # and on each full sync; empty when it could not be read. A sandbox
    # carries its production org's name, so pages show the environment
    # and Id with it.
    org_name = models.CharField(max_length=255, blank=True)
    user_id = models.CharField(max_length=18)
    username = models.CharField(max_length=255, blank=True)
    user_display_name = models.CharField(max_length=255, blank=True)
    access_token = EncryptedTextField(blank=True)
    refresh_token = EncryptedTextField(blank=True)
    token_issued_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(
        max_length=30, choices=Status.choices, default=Status.CONNECTED
    )
    status_reason = models.TextField(blank=True)
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="salesforce_connections",
    )
    connected_at = models.DateTimeField(default=timezone.now)

    # Scheduling and the single-run claim.
    last_full_sync_at = models.DateTimeField(null=True, blank=True)
    next_full_sync_at = models.DateTimeField(null=True, blank=True)
    recent_sync_minutes = models.PositiveSmallIntegerField(
        default=15,
        help_text="Minutes between recent-changes syncs; 0 turns them off.",
        # SQLite would take any number, and one the calendar cannot reach
        # stops the scheduler.
        validators=[
            MaxValueValidator(
                RECENT_SYNC_MINUTES_MAX,
                "Choose at most 1440 minutes (a day): a full sync runs daily.",
            )
        ],
    )
    last_recent_sync_at = models.DateTimeField(null=True, blank=True)
    next_recent_sync_at = models.DateTimeField(null=True, blank=True)
    sync_claimed_at = models.DateTimeField(null=True, blank=True)
    # A full sync someone asked for that has not ended yet: asking again
    # meanwhile queues nothing more.
    sync_requested_at = models.DateTimeField(null=True, blank=True)

    # The org's API usage as the last response reported it.
    api_usage_used = models.PositiveIntegerField(
        "API usage used", null=True, blank=True
    )
    api_usage_max = models.PositiveIntegerField("API allocation", null=True, blank=True)
    api_usage_seen_at = models.DateTimeField("API usage seen at", null=True, blank=True)
    # Salesforce's `Warning` header on the last run's answers, such as the
    # deprecation of the pinned API version; empty when there was none.
    api_warning = models.TextField("API warning", blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "org_id"], name="salesforce_connection_unique_org"
            )
        ]

    def __str__(self) -> str:
        if self.org_name:
            return f"{self.org_name} (Salesforce {self.environment} {self.org_id})"
        return f"Salesforce {self.environment} {self.org_id}"

    @property
    def is_usable(self) -> bool:
        return self.status == self.Status.CONNECTED


class PendingAuthorization(models.Model):
    """An OAuth round trip under way: what the callback must find to accept it."""

    state = models.CharField(max_length=64, unique=True)
    workspace = models.ForeignKey(
        "trig_crm.Workspace",
        on_delete=models.CASCADE,
        related_name="pending_authorizations",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="pending_authorizations",
    )
    environment = models.CharField(
        max_length=20, choices=SalesforceConnection.Environment.choices
    )
    login_host = models.CharField(max_length=255)
    redirect_uri = models.URLField(max_length=500)
    code_verifier = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Authorization for {self.workspace} at {self.login_host}"


class SyncRun(models.Model):
    """One sync of one connection, with its figures and what went wrong."""

    class Kind(models.TextChoices):
        FULL = "full", "Full"
        RECENT = "recent", "Recent changes"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Manual"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCESS = "success", "Success"
        COMPLETED_WITH_ERRORS = "completed_with_errors", "Completed with errors"
        # Not every object was read: the run stopped at a checkpoint to spare
        # the org's API allocation, or an object's fields kept changing under
        # it. The next run goes on with what was not read.
        PARTIAL = "partial", "Partial"
        FAILED = "failed", "Failed"

    connection = models.ForeignKey(
        SalesforceConnection, on_delete=models.CASCADE, related_name="sync_runs"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    status = models.CharField(
        max_length=30, choices=Status.choices, default=Status.RUNNING
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    records_fetched = models.PositiveIntegerField(default=0)
    records_created = models.PositiveIntegerField(default=0)
    records_updated = models.PositiveIntegerField(default=0)
    records_unchanged = models.PositiveIntegerField(default=0)
    records_failed = models.PositiveIntegerField(default=0)
    # Rows marked deleted: deleted or merged in Salesforce, or no longer
    # returned by a full read.
    records_deleted = models.PositiveIntegerField(default=0)
    # What a full sync found changed or missing that the recent-changes
    # syncs before it had missed.
    drift_repaired = models.PositiveIntegerField(default=0)
    # Signal rules that fired on the rows the run wrote: one event each.
    signals_raised = models.PositiveIntegerField(default=0)
    api_calls = models.PositiveIntegerField("API calls", default=0)

    # Values that could not be stored as they came, one entry per record
    # and field: {"object", "id", "field", "problem"}. Capped; see
    # `problem_count` for the total.
    problems = models.JSONField(default=list, blank=True)
    problem_count = models.PositiveIntegerField(default=0)
    transform_failures = models.PositiveIntegerField(default=0)
    # Mapped fields left out because the connected user cannot see them:
    # ["Contact.Title", ...].
    skipped_fields = models.JSONField(default=list, blank=True)
    # Objects whose part of the run failed: {object: Salesforce's message}.
    object_errors = models.JSONField(default=dict, blank=True)
    # The objects a run was asked to read, when not all: "Sync this object
    # now" reads one object and the objects it links to.
    objects_asked = models.JSONField(default=list, blank=True)
    # Objects read to the end; a full sync that stopped partway goes on with
    # the others next time.
    objects_done = models.JSONField(default=list, blank=True)
    # After a full sync, per object: {"salesforce": records made before the
    # run began, "stored": live rows Trig holds}.
    record_counts = models.JSONField(default=dict, blank=True)
    error_message = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["connection", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} sync of {self.connection} ({self.status})"

    @property
    def outcome(self) -> str:
        """The status in words; a success that left notes says how many.

        Such a run read everything, yet something is worth a look: a value
        a transform could not apply, a field the user cannot see, a read
        done in full. Its status stays "success".
        """
        notes = self.problem_count
        if self.status != self.Status.SUCCESS or not notes:
            return self.get_status_display()
        word = "note" if notes == 1 else "notes"
        return f"{self.get_status_display()}, {notes:,} {word}"

    @property
    def notes_grouped(self) -> list[tuple[str, int]]:
        """The kept notes as (what, how many records), most frequent first.

        A run may note the same problem on hundreds of records; one line per
        object, field and problem is what a reader can act on.
        """
        counts: Counter[str] = Counter()
        for note in self.problems:
            if not isinstance(note, dict):
                continue
            where = ".".join(
                part for part in (note.get("object"), note.get("field")) if part
            )
            problem = note.get("problem", "")
            counts[f"{where}: {problem}" if where else problem] += 1
        return counts.most_common()

    @property
    def notes_not_kept(self) -> int:
        """Notes counted beyond the ones the run kept."""
        return max(self.problem_count - len(self.problems), 0)


class SyncCursor(models.Model):
    """How far recent-changes syncs of one object have read."""

    connection = models.ForeignKey(
        SalesforceConnection, on_delete=models.CASCADE, related_name="sync_cursors"
    )
    object_name = models.CharField(max_length=100)
    field_name = models.CharField(max_length=100, default="LastModifiedDate")
    value = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "object_name"], name="sync_cursor_unique_object"
            )
        ]

    def __str__(self) -> str:
        return f"{self.object_name}.{self.field_name} >= {self.value:%Y-%m-%d %H:%M:%S}"


class SeenRecord(models.Model):
    """The Id of a stored row a full read found and left as it was, kept in
    the database until the read ends.

    What Trig holds beyond these and the rows the read wrote, the org no
    longer has. Kept here rather than in the worker's memory, which would
    grow with the org.
    """

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="+")
    object_name = models.CharField(max_length=100)
    salesforce_id = models.CharField(max_length=18)

    class Meta:
        indexes = [
            models.Index(
                fields=["run", "object_name", "salesforce_id"],
                name="seen_record_lookup",
            )
        ]

    def __str__(self) -> str:
        return f"{self.object_name} {self.salesforce_id} seen by run {self.run_id}"


API_NAME_HELP = "Salesforce API name, e.g. Contact, Case or Space__c."


class ObjectMapping(models.Model):
    """Which records of one Salesforce object are imported, and as what."""

    class Target(models.TextChoices):
        PERSON = "person", "Person"
        ORGANISATION = "organisation", "Organisation"
        OWNER = "owner", "Owner"
        RECORD = "record", "Record"

    class CursorField(models.TextChoices):
        LAST_MODIFIED_DATE = "LastModifiedDate", "LastModifiedDate (user changes)"
        SYSTEM_MODSTAMP = "SystemModstamp", "SystemModstamp (user and system changes)"

    connection = models.ForeignKey(
        SalesforceConnection, on_delete=models.CASCADE, related_name="object_mappings"
    )
    object_name = models.CharField(max_length=100, help_text=API_NAME_HELP)
    target = models.CharField(max_length=20, choices=Target.choices)
    is_enabled = models.BooleanField(default=True)
    # Objects are read in this order, so that links resolve: owners before
    # what they own, Accounts before Contacts, Contacts before their Cases.
    position = models.PositiveSmallIntegerField(default=100)
    filter = models.TextField(
        blank=True,
        help_text="A SOQL condition, e.g. Industry = 'Banking' AND CreatedDate = "
        "LAST_N_DAYS:365. Checked against the object's fields when saved.",
    )
    cursor_field = models.CharField(
        max_length=30,
        choices=CursorField.choices,
        default=CursorField.SYSTEM_MODSTAMP,
        help_text="The stamp recent changes are read by. An object without it "
        "is read by the first of SystemModstamp, LastModifiedDate and "
        "CreatedDate it has, and one with none of them in full every time.",
    )
    person_lookup_field = models.CharField(
        max_length=100,
        blank=True,
        help_text="Field holding the Contact Id that links a row to a person, "
        "e.g. ContactId or Contact__c.",
    )
    organisation_lookup_field = models.CharField(
        max_length=100,
        blank=True,
        help_text="Field holding the Account Id that links a row to an "
        "organisation, e.g. AccountId.",
    )
    owner_lookup_field = models.CharField(
        max_length=100, blank=True, help_text="Usually OwnerId."
    )
    # Set when the mapping changes: the next sync reads the whole object,
    # not only what changed since the last one.
    needs_backfill = models.BooleanField(default=True)
    # Counts the saved changes, so that a run which read the object as it was
    # configured before leaves the backfill a later change asked for.
    revision = models.PositiveIntegerField(default=0)
    # Mapped fields left out of the last run: hidden from the connected user
    # or deleted in Salesforce. {field: reason}
    skipped_fields = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "object_name"],
                name="object_mapping_unique_object",
            )
        ]

    def __str__(self) -> str:
        return f"{self.object_name} → {self.get_target_display()}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from integrations.salesforce.names import is_api_name

        if not is_api_name(self.object_name):
            raise ValidationError(
                {"object_name": f"{self.object_name!r} is not a Salesforce API name."}
            )
        for name in (
            "person_lookup_field",
            "organisation_lookup_field",
            "owner_lookup_field",
        ):
            value = getattr(self, name)
            if value and not is_api_name(value):
                raise ValidationError(
                    {name: f"{value!r} is not a Salesforce API name."}
                )

    @property
    def lookup_fields(self) -> list[str]:
        return [
            name
            for name in (
                self.person_lookup_field,
                self.organisation_lookup_field,
                self.owner_lookup_field,
            )
            if name
        ]


class FieldMapping(models.Model):
    """One Salesforce field of a mapped object and where its value goes."""

    object_mapping = models.ForeignKey(
        ObjectMapping, on_delete=models.CASCADE, related_name="field_mappings"
    )
    salesforce_field = models.CharField(max_length=100, help_text=API_NAME_HELP)
    attribute = models.CharField(
        max_length=50,
        blank=True,
        help_text="The attribute it fills. Leave empty to keep the value as a "
        "named custom value.",
    )
    custom_name = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of the custom value; the Salesforce field's name if empty.",
    )
    transform = models.CharField(max_length=40, blank=True)
    transform_argument = models.CharField(
        max_length=2000,
        blank=True,
        help_text="What the transform needs: a length, a default, a value map "
        "or a region.",
    )

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["object_mapping", "salesforce_field"],
                name="field_mapping_unique_field",
            )
        ]

    def __str__(self) -> str:
        return f"{self.object_mapping.object_name}.{self.salesforce_field}"

    @property
    def value_name(self) -> str:
        """Return the key of the custom value this field fills."""
        return self.custom_name or self.salesforce_field

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from integrations.salesforce.names import is_api_name
        from integrations.transforms import TRANSFORMS, TransformError, transform_check

        if not is_api_name(self.salesforce_field):
            raise ValidationError(
                {
                    "salesforce_field": (
                        f"{self.salesforce_field!r} is not a field API name."
                    )
                }
            )
        if self.transform:
            if self.transform not in TRANSFORMS:
                raise ValidationError(
                    {"transform": f"Unknown transform {self.transform!r}."}
                )
            try:
                transform_check(name=self.transform, argument=self.transform_argument)
            except TransformError as exc:
                raise ValidationError({"transform_argument": str(exc)}) from exc


class ObjectDescribe(models.Model):
    """What describe last said about an object, as the connected user sees it."""

    connection = models.ForeignKey(
        SalesforceConnection, on_delete=models.CASCADE, related_name="object_describes"
    )
    object_name = models.CharField(max_length=100)
    # [{name, label, type, length, updateable, ...}] as describe returns them.
    fields = models.JSONField(default=list)
    described_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "object_name"],
                name="object_describe_unique_object",
            )
        ]

    def __str__(self) -> str:
        return f"{self.object_name} described {self.described_at:%Y-%m-%d %H:%M}"


class SignalRule(models.Model):
    """A change in a mapped object's records that Trig raises as a signal.

    Evaluated as the sync writes rows, never on an object's first import or
    on a full read that rewrites rows for a changed configuration.
    """

    class Kind(models.TextChoices):
        MOVED_TO = "moved_to", "A field moved to a value"
        NEW_MATCHING = "new_matching", "A record new to Trig matches a condition"

    object_mapping = models.ForeignKey(
        ObjectMapping, on_delete=models.CASCADE, related_name="signal_rules"
    )
    name = models.CharField(
        max_length=200, help_text="Shown on each signal, e.g. Opportunity won."
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    field_name = models.CharField(
        max_length=100,
        blank=True,
        help_text="For a move: the field's API name, e.g. StageName. It must be "
        "one of the object's mapped fields.",
    )
    value = models.CharField(
        max_length=255,
        blank=True,
        help_text="For a move: the value it moved to, e.g. Closed Won (true or "
        "false for a checkbox).",
    )
    condition = models.TextField(
        blank=True,
        help_text="For a new record: a SOQL condition on mapped fields, e.g. "
        "LeadSource = 'Web' AND Industry IN ('Banking', 'Insurance').",
    )
    is_enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def description(self) -> str:
        if self.kind == self.Kind.MOVED_TO:
            return f"{self.field_name} moved to {self.value}"
        return f"new record where {self.condition}"
