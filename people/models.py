from django.db import models


class SalesforceRow(models.Model):
    """A row Trig holds for one record of one connected org.

    Identity is (connection, Salesforce Id), the 18-character form.
    """

    workspace = models.ForeignKey(
        "trig_crm.Workspace", on_delete=models.CASCADE, related_name="%(class)s_rows"
    )
    # No index of its own: the unique (connection, salesforce_id) serves
    # lookups by connection, and one index fewer is cheaper to write.
    connection = models.ForeignKey(
        "integrations.SalesforceConnection",
        on_delete=models.CASCADE,
        related_name="%(class)s_rows",
        db_index=False,
    )
    salesforce_id = models.CharField(max_length=18)
    # Named values from mapped fields: {name: value typed by describe}.
    custom_values = models.JSONField(default=dict, blank=True)
    # Set when Salesforce deleted the record (or a full sync no longer finds
    # it): the row is kept, with its history, and marked.
    deleted_at = models.DateTimeField(null=True, blank=True)
    # When the sync last wrote the row; unchanged records are not rewritten.
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "salesforce_id"], name="%(class)s_unique_sf_id"
            )
        ]


class Owner(SalesforceRow):
    """A Salesforce User who owns records: the account or contact owner."""

    name = models.CharField(max_length=255, blank=True)
    email = models.EmailField(max_length=254, blank=True)

    def __str__(self) -> str:
        return self.name or self.salesforce_id


class Organisation(models.Model):
    """A company, matched across every source by its website's domain."""

    workspace = models.ForeignKey(
        "trig_crm.Workspace", on_delete=models.CASCADE, related_name="organisations"
    )
    name = models.CharField(max_length=255, blank=True)
    # Null when no source gave a website: such an organisation matches nothing.
    domain = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "domain"], name="organisation_unique_domain"
            )
        ]

    def __str__(self) -> str:
        return self.name or self.domain or f"Organisation {self.pk}"


class CrmAccount(SalesforceRow):
    """A Salesforce Account as one connection holds it, linked to its Organisation."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="crm_accounts"
    )
    name = models.CharField(max_length=255, blank=True)
    website = models.CharField(max_length=255, blank=True)
    industry = models.CharField(max_length=255, blank=True)
    owner = models.ForeignKey(
        Owner,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="crm_accounts",
    )
    # The record a merge kept in this one's place.
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="merged_from",
    )

    class Meta(SalesforceRow.Meta):
        verbose_name = "CRM account"

    def __str__(self) -> str:
        return self.name or self.salesforce_id


class Person(SalesforceRow):
    """Someone Trig can reach: a Salesforce Contact."""

    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    country = models.CharField(max_length=100, blank=True)
    title = models.CharField(max_length=200, blank=True)
    # Opt-outs are always respected: nothing may e-mail a person who has one.
    # None means unknown (the field could not be read), and counts as opted out.
    has_opted_out_of_email = models.BooleanField(null=True, default=None)
    owner = models.ForeignKey(
        Owner, null=True, blank=True, on_delete=models.SET_NULL, related_name="people"
    )
    # The Account Id as Salesforce gave it, kept so the link to the
    # organisation can be made when that Account arrives later.
    salesforce_account_id = models.CharField(max_length=18, blank=True)
    organisation = models.ForeignKey(
        Organisation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="people",
    )
    # The record a merge kept in this one's place.
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="merged_from",
    )

    class Meta(SalesforceRow.Meta):
        verbose_name_plural = "people"
        indexes = [models.Index(fields=["workspace", "email"])]

    def __str__(self) -> str:
        full_name = f"{self.first_name} {self.last_name}".strip()
        return full_name or self.email or self.salesforce_id

    @property
    def may_email(self) -> bool:
        """Tell whether Trig may e-mail this person: only on a known opt-in."""
        return self.has_opted_out_of_email is False and bool(self.email)


class CrmRecord(SalesforceRow):
    """Any other imported row: an Opportunity, a Lead, a Case, a custom object."""

    object_name = models.CharField(max_length=100)
    name = models.CharField(max_length=255, blank=True)
    person = models.ForeignKey(
        Person,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="crm_records",
    )
    organisation = models.ForeignKey(
        Organisation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="crm_records",
    )
    owner = models.ForeignKey(
        Owner,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="crm_records",
    )
    # The Ids the links were made from, kept so a link can be made when the
    # linked row arrives after this one.
    person_salesforce_id = models.CharField(max_length=18, blank=True)
    account_salesforce_id = models.CharField(max_length=18, blank=True)
    # The record a merge kept in this one's place.
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="merged_from",
    )

    class Meta(SalesforceRow.Meta):
        verbose_name = "CRM record"
        indexes = [models.Index(fields=["connection", "object_name"])]

    def __str__(self) -> str:
        return f"{self.object_name} {self.name or self.salesforce_id}"
