"""Plans, subscriptions and the activation ledger: what a workspace may activate and did activate."""

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User, Workspace
from contacts.models import Contact


class AutomationKind(models.TextChoices):
    """The automated actions that activate a contact (PRODUCT.md glossary). Manual ones never do."""

    CAMPAIGN = "campaign", "Campaign"
    SCENARIO = "scenario", "Scenario"
    SEGMENTATION = "segmentation", "Segmentation"
    ENRICHMENT = "enrichment", "Data enrichment"
    INTEGRATION = "integration", "Integration"


class Plan(models.Model):
    """A plan is data (rule 7): staff edit quotas, prices, pack sizes and Stripe price ids."""

    FREE = "free"
    PRO = "pro"

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    monthly_activations = models.PositiveIntegerField()
    price_cents = models.PositiveIntegerField(default=0, help_text="Monthly price of the base plan.")
    currency = models.CharField(max_length=3, default="usd")
    addon_pack_size = models.PositiveIntegerField(
        default=0, help_text="Activations one add-on pack adds per month (0: no packs on this plan)."
    )
    addon_pack_price_cents = models.PositiveIntegerField(default=0)
    stripe_price_id = models.CharField(max_length=64, blank=True)
    stripe_addon_price_id = models.CharField(max_length=64, blank=True)
    is_public = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "monthly_activations"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_free(self) -> bool:
        return self.price_cents == 0


class Subscription(models.Model):
    """One per workspace. Absent means Free; billing creates it on the first plan change."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        TRIALING = "trialing", "Trialing"
        PAST_DUE = "past_due", "Past due"
        UNPAID = "unpaid", "Unpaid"
        CANCELED = "canceled", "Canceled"
        INCOMPLETE = "incomplete", "Incomplete"
        INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.ACTIVE)
    addon_packs = models.PositiveIntegerField(default=0)
    stripe_customer_id = models.CharField(max_length=64, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=64, blank=True, db_index=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.workspace} on {self.plan}"


class MonthlyUsage(models.Model):
    """A workspace's quota and activated count for one month; the counter moves only with records."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="monthly_usage")
    month = models.DateField(help_text="First day of the billing month.")
    quota = models.PositiveIntegerField()
    activated = models.PositiveIntegerField(default=0)
    limit_reached_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-month"]
        verbose_name_plural = "monthly usage"
        constraints = [
            models.UniqueConstraint(fields=["workspace", "month"], name="billing_usage_once_per_month"),
            # Rule 2: the database refuses a counter above the quota, whatever the code does.
            models.CheckConstraint(condition=Q(activated__lte=F("quota")), name="billing_usage_within_quota"),
        ]
        indexes = [models.Index(fields=["month", "workspace"], name="usage_month_ws")]

    def __str__(self) -> str:
        return f"{self.workspace} {self.month:%Y-%m}: {self.activated}/{self.quota}"


class ActivationRecord(models.Model):
    """The ledger: one row per contact activated in a month (rule 1). Append-only."""

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="activations")
    # SET_NULL: erasing a contact (privacy) keeps the month's count (issue 10).
    contact = models.ForeignKey(
        Contact, null=True, on_delete=models.SET_NULL, related_name="activations"
    )
    month = models.DateField()
    activated_at = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=AutomationKind.choices)
    automation_ref = models.CharField(
        max_length=64, blank=True, help_text="Which automation activated it, e.g. campaign:12."
    )

    class Meta:
        ordering = ["-activated_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "contact", "month"], name="billing_activation_once_per_month"
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "month", "-activated_at"], name="activation_ws_month_at"),
            models.Index(fields=["workspace", "month", "kind"], name="activation_ws_month_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.month:%Y-%m} by {self.kind}"


class BonusGrant(models.Model):
    """Staff-granted extra activations for one month (rule 12). Append-only; who did it is kept."""

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="bonus_grants")
    month = models.DateField()
    amount = models.PositiveIntegerField()
    reason = models.TextField()
    granted_by = models.ForeignKey(User, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="billing_bonus_positive"),
            models.CheckConstraint(condition=~Q(reason=""), name="billing_bonus_has_reason"),
        ]
        indexes = [models.Index(fields=["workspace", "month"], name="bonus_ws_month")]

    def __str__(self) -> str:
        return f"+{self.amount} for {self.workspace} in {self.month:%Y-%m}"


class MonthRollover(models.Model):
    """One row per month the rollover job has opened: makes the job idempotent and catch-up-able."""

    month = models.DateField(unique=True)
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    workspaces_opened = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-month"]

    def __str__(self) -> str:
        return f"rollover {self.month:%Y-%m}"
