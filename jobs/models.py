"""Events, the Jobs they trigger, and the field writes those Jobs' Actions make.

An Event is something that happened to a person or an organisation. A Job
listens for one kind of Event; each of its Actions updates one Salesforce
field. A matching Event makes one FieldWrite per Action and target record,
pending until a JobRun sends it; the write then keeps its outcome.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ApiKey(models.Model):
    """A key a workspace's systems send events with; only its hash is kept."""

    workspace = models.ForeignKey(
        "trig_crm.Workspace", on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    # The key's first characters, shown so that people can tell keys apart.
    prefix = models.CharField(max_length=20)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="created_api_keys",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Event(models.Model):
    """Something that happened to a person or an organisation, recorded once."""

    class Kind(models.TextChoices):
        EMAIL_SENT = "email.sent", "E-mail sent"
        EMAIL_OPENED = "email.opened", "E-mail opened"
        EMAIL_CLICKED = "email.clicked", "E-mail clicked"
        EMAIL_REPLIED = "email.replied", "E-mail replied to"
        CAMPAIGN_JOINED = "campaign.joined", "Campaign joined"
        SIGNAL_RAISED = "signal.raised", "Signal raised"

    workspace = models.ForeignKey(
        "trig_crm.Workspace", on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(max_length=50, choices=Kind.choices)
    # Chosen by the sender; the same key twice is the same event.
    idempotency_key = models.CharField(max_length=200)
    person = models.ForeignKey(
        "people.Person",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
    )
    organisation = models.ForeignKey(
        "people.Organisation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
    )
    # A Salesforce record the event is about, such as an Opportunity.
    record_id = models.CharField("Salesforce record Id", max_length=18, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    payload = models.JSONField(default=dict, blank=True)
    api_key = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
        verbose_name="API key",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "idempotency_key"],
                name="event_unique_idempotency_key",
            )
        ]
        indexes = [models.Index(fields=["workspace", "kind", "-occurred_at"])]

    def __str__(self) -> str:
        return f"{self.kind} at {self.occurred_at:%Y-%m-%d %H:%M}"


class RejectedEvent(models.Model):
    """An event the endpoint refused, and why; its payload is not kept."""

    workspace = models.ForeignKey(
        "trig_crm.Workspace", on_delete=models.CASCADE, related_name="rejected_events"
    )
    api_key = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="rejected_events",
        verbose_name="API key",
    )
    received_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=100, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    reason = models.TextField()

    def __str__(self) -> str:
        return f"Rejected {self.kind or 'event'}: {self.reason[:60]}"


class Job(models.Model):
    """What to do when an event of one kind happens, if its conditions hold.

    `conditions` is a list of `{"on": "event" | "person", "field": ...,
    "operator": ..., "value": ...}`, all of which must hold; see
    `jobs.matching` for the fields and operators.
    """

    workspace = models.ForeignKey(
        "trig_crm.Workspace", on_delete=models.CASCADE, related_name="jobs"
    )
    name = models.CharField(max_length=200)
    trigger_kind = models.CharField(max_length=50, choices=Event.Kind.choices)
    conditions = models.JSONField(
        default=list,
        blank=True,
        help_text='All must hold. For example [{"on": "event", "field": '
        '"payload.campaign", "operator": "equals", "value": "Spring"}, {"on": '
        '"person", "field": "country", "operator": "in", "value": ["UK", "IE"]}]. '
        "Operators: equals, not_equals, contains, in, is_set, is_not_set.",
    )
    is_enabled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # Imported here: jobs.matching imports these models.
        from jobs.matching import conditions_check

        conditions_check(conditions=self.conditions)


class Action(models.Model):
    """One Salesforce field a Job updates, on which record, with what value."""

    class Kind(models.TextChoices):
        UPDATE_FIELD = "update_salesforce_field", "Update a Salesforce field"

    class Target(models.TextChoices):
        PERSON_CONTACT = "person_contact", "The person's Contact"
        ORGANISATION_ACCOUNT = "organisation_account", "The organisation's Account"
        EVENT_RECORD = "event_record", "The record named by the event"

    class ValueSource(models.TextChoices):
        EVENT_TIME = "event_time", "The event's time"
        LITERAL = "literal", "A fixed value"
        PERSON = "person", "A value of the person"
        EVENT = "event", "A value of the event"
        TEMPLATE = "template", "A template"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(
        max_length=50, choices=Kind.choices, default=Kind.UPDATE_FIELD
    )
    connection = models.ForeignKey(
        "integrations.SalesforceConnection",
        on_delete=models.CASCADE,
        related_name="actions",
    )
    target = models.CharField(
        max_length=30, choices=Target.choices, default=Target.PERSON_CONTACT
    )
    # Contact and Account for the person and organisation targets.
    object_name = models.CharField(
        max_length=100,
        blank=True,
        help_text="Set for you for Contacts and Accounts; name the object of "
        "the records events name, such as Opportunity.",
    )
    field_name = models.CharField(
        max_length=100,
        help_text="The field's API name, such as Last_Trig_Email__c. Only "
        "fields the connected user may update are accepted.",
    )
    # The field's type as describe last gave it (date, datetime, string...),
    # so that its writes show their values as Salesforce takes them: an
    # event's time written to a date field is the date. Set when the Action
    # is saved and by each writeback run; empty until one has described it.
    field_type = models.CharField(max_length=40, blank=True, editable=False)
    value_source = models.CharField(
        max_length=20, choices=ValueSource.choices, default=ValueSource.EVENT_TIME
    )
    value = models.TextField(
        blank=True,
        help_text="The fixed value; the person's attribute (first_name, title, "
        "...); the event's value (subject or payload.subject); or a template "
        "such as 'Sent {{ event.payload.subject }}'. Empty for the event's time.",
    )
    # Skip the write when someone changed the field in Salesforce since Trig
    # last read it.
    is_conflict_check_enabled = models.BooleanField(default=False)
    # Write to the surviving record when the target was merged away.
    follows_merges = models.BooleanField(default=True)
    is_enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"Set {self.object_name}.{self.field_name}"


class JobRun(models.Model):
    """One pass of the writer over a connection's due writes, with its figures.

    The writes may come from several Jobs: they share the connection's
    batches and API budget. At most one run per connection is running.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        COMPLETED_WITH_ERRORS = "completed_with_errors", "Completed with errors"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        EVENT = "event", "Event"
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Manual"

    connection = models.ForeignKey(
        "integrations.SalesforceConnection",
        on_delete=models.CASCADE,
        related_name="job_runs",
    )
    trigger = models.CharField(
        max_length=20, choices=Trigger.choices, default=Trigger.EVENT
    )
    status = models.CharField(
        max_length=30, choices=Status.choices, default=Status.RUNNING
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    writes_written = models.PositiveIntegerField(default=0)
    writes_skipped = models.PositiveIntegerField(default=0)
    writes_failed = models.PositiveIntegerField(default=0)
    # Failed for a passing reason; queued again for a later run.
    writes_waiting = models.PositiveIntegerField(default=0)
    # sObject Collections requests sent, and every API call made.
    update_calls = models.PositiveIntegerField(default=0)
    api_calls = models.PositiveIntegerField("API calls", default=0)
    error_message = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection"],
                condition=Q(status="running"),
                name="job_run_one_running_per_connection",
            )
        ]
        indexes = [models.Index(fields=["connection", "-started_at"])]

    def __str__(self) -> str:
        return f"Writeback run {self.pk} of {self.connection} ({self.status})"


# A record rolled back only because another one of its batch failed was
# never judged on its own: it is sent again, and not shown as refused.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
ROLLED_BACK_CODES = frozenset(
    {"ALL_OR_NONE_OPERATION_ROLLED_BACK", "PROCESSING_HALTED"}
)


class FieldWrite(models.Model):
    """One Action's write of one field of one record, and its outcome.

    Pending until a run sends it; then written, skipped (with the reason)
    or failed (with Salesforce's status code and message). A failure for a
    passing reason (`is_retryable`) is pending again from `next_attempt_at`.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        WRITTEN = "written", "Written"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    connection = models.ForeignKey(
        "integrations.SalesforceConnection",
        on_delete=models.CASCADE,
        related_name="field_writes",
    )
    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="writes")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="writes")
    run = models.ForeignKey(
        JobRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="writes",
    )
    object_name = models.CharField(max_length=100)
    # Blank when no target record could be found; the write is then skipped.
    record_id = models.CharField(max_length=18, blank=True)
    # A Contact's Account: batches keep an Account's children together, so
    # that they do not lock the Account against each other.
    parent_id = models.CharField(max_length=18, blank=True)
    field_name = models.CharField(max_length=100)
    value = models.JSONField(null=True, blank=True)

    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING
    )
    is_retryable = models.BooleanField(default=False)
    # Salesforce's status code, blank when the outcome was Trig's decision.
    status_code = models.CharField(max_length=100, blank=True)
    message = models.TextField(blank=True)
    error_fields = models.JSONField(default=list, blank=True)
    warning = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Set while a request carrying the write is out, and kept when its answer
    # was lost: the next run reads the record before sending it again.
    is_in_flight = models.BooleanField(default=False)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The survivor the write went to when its record had been merged away.
    merged_into_id = models.CharField(max_length=18, blank=True)
    superseded_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="superseded",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    written_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["action", "event", "record_id"],
                name="field_write_unique_target",
            )
        ]
        indexes = [
            models.Index(fields=["connection", "status", "next_attempt_at"]),
            models.Index(fields=["connection", "record_id", "field_name"]),
            # Few writes go to a merge survivor; latest-wins looks them up.
            models.Index(
                fields=["connection", "merged_into_id"],
                condition=~Q(merged_into_id=""),
                name="field_write_merged_into",
            ),
        ]

    def __str__(self) -> str:
        target = self.record_id or "no record"
        return f"{self.object_name}.{self.field_name} of {target} ({self.status})"

    @property
    def outcome(self) -> str:
        """The outcome in words, as staff read it."""
        is_due = self.status == self.Status.PENDING or (
            self.status == self.Status.FAILED and self.is_retryable
        )
        if is_due and self.connection_id and not self.connection.is_usable:
            # Nothing is sent for an org Trig may not call: the write waits
            # until the customer connects it again.
            waiting = self.connection.get_status_display().lower()
            return f"waiting: the connection is {waiting}"
        if self.status == self.Status.FAILED and self.is_retryable:
            if self.status_code in ROLLED_BACK_CODES:
                return "not applied, another record in the batch failed"
            return "failed, temporary"
        if self.status == self.Status.WRITTEN and self.merged_into_id:
            return f"written on merged record {self.merged_into_id}"
        return self.get_status_display().lower()


class KnownValue(models.Model):
    """A field's value as Trig last read or wrote it: the conflict check's base."""

    connection = models.ForeignKey(
        "integrations.SalesforceConnection",
        on_delete=models.CASCADE,
        related_name="known_values",
    )
    object_name = models.CharField(max_length=100)
    record_id = models.CharField(max_length=18)
    field_name = models.CharField(max_length=100)
    value = models.JSONField(null=True, blank=True)
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "record_id", "field_name"],
                name="known_value_unique_field",
            )
        ]

    def __str__(self) -> str:
        return f"{self.object_name}.{self.field_name} of {self.record_id}"


class DeletedRecord(models.Model):
    """A target Salesforce reported deleted: never written to again.

    When the record lost a merge, writes may go to `master_record_id`.
    """

    connection = models.ForeignKey(
        "integrations.SalesforceConnection",
        on_delete=models.CASCADE,
        related_name="deleted_records",
    )
    object_name = models.CharField(max_length=100)
    salesforce_id = models.CharField(max_length=18)
    master_record_id = models.CharField(max_length=18, blank=True)
    found_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "salesforce_id"],
                name="deleted_record_unique_sf_id",
            )
        ]

    def __str__(self) -> str:
        if self.master_record_id:
            return f"{self.salesforce_id} merged into {self.master_record_id}"
        return f"{self.salesforce_id} deleted"
