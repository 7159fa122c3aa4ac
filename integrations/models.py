from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.fields import EncryptedTextField


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
    sync_claimed_at = models.DateTimeField(null=True, blank=True)

    # The org's API usage as the last response reported it.
    api_usage_used = models.PositiveIntegerField(null=True, blank=True)
    api_usage_max = models.PositiveIntegerField(null=True, blank=True)
    api_usage_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "org_id"], name="salesforce_connection_unique_org"
            )
        ]

    def __str__(self) -> str:
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
    api_calls = models.PositiveIntegerField(default=0)

    # Values that could not be stored as they came, one entry per record
    # and field: {"object", "id", "field", "problem"}. Capped; see
    # `problem_count` for the total.
    problems = models.JSONField(default=list, blank=True)
    problem_count = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["connection", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} sync of {self.connection} ({self.status})"


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
