"""Plans, subscriptions and the activation ledger: what a workspace may activate and did activate."""

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User, Workspace
from contacts.models import Contact


class AutomationKind(models.TextChoices):
    """The automated actions that activate a contact (docs/product.md). Manual ones never do."""

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
    # A downgrade, a cancellation or fewer packs Stripe already has, waiting for the end of the period the
    # customer paid for (`scheduled_for`, docs/product.md "The paid period"); plan and addon_packs above
    # stay what is in effect until then.
    scheduled_plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    scheduled_addon_packs = models.PositiveIntegerField(null=True, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Stripe may deliver webhooks out of order: the `created` second of the last Stripe event applied to this
    # subscription, and how far along its life that event was (created < updated < deleted), so an
    # older or same-second-but-earlier event never moves the subscription back.
    stripe_state_at = models.BigIntegerField(null=True, blank=True)
    stripe_state_rank = models.PositiveSmallIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.workspace} on {self.plan}"

    @property
    def is_past_due(self) -> bool:
        return self.status == self.Status.PAST_DUE


class MonthlyUsage(models.Model):
    """A workspace's quota and activated count for one month; the counters move only with records.

    `activated` counts confirmed activations (what is charged and shown); `reserved` counts the
    reservations in flight (rule 13). The gate guards the quota with both: activated + reserved never
    exceeds it, so a reservation that is confirmed never needs headroom it might not find.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="monthly_usage")
    month = models.DateField(help_text="First day of the billing month.")
    quota = models.PositiveIntegerField()
    activated = models.PositiveIntegerField(default=0, help_text="Confirmed activations.")
    reserved = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Reservations in flight: granted by the gate, not yet confirmed or released."
    )
    limit_reached_at = models.DateTimeField(null=True, blank=True)
    # The floor (rules 8, 12): when the plan and packs in effect fell below what the month had already
    # activated, the quota was kept at `kept_at` (the activations at that moment), of which
    # `kept_at_bonus` were bonus grants. Bonuses granted later add on top: quota = max(plan + packs,
    # kept_at - kept_at_bonus) + bonuses, then the owners' cap (billing.quota.quota_compute). 0: no floor.
    kept_at = models.PositiveIntegerField(default=0)
    kept_at_bonus = models.PositiveIntegerField(default=0)
    # The month's activations by day of the month ("1".."31", in the billing zone) and by automation
    # kind, moved by the gate in the statement that moves `activated`, so the usage page never scans
    # the ledger. None means "not known": rebuilt from the records on first read (selectors).
    activated_by_day = models.JSONField(null=True, blank=True, default=dict)
    activated_by_kind = models.JSONField(null=True, blank=True, default=dict)
    # The same by automation reference ("campaign:4"), for the usage page's per-automation breakdown.
    activated_by_ref = models.JSONField(null=True, blank=True, default=dict)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-month"]
        verbose_name_plural = "monthly usage"
        constraints = [
            models.UniqueConstraint(fields=["workspace", "month"], name="billing_usage_once_per_month"),
            # Rule 2: the database refuses counters above the quota, whatever the code does.
            models.CheckConstraint(
                condition=Q(activated__lte=F("quota") - F("reserved")), name="billing_usage_within_quota"
            ),
        ]
        indexes = [models.Index(fields=["month", "workspace"], name="usage_month_ws")]

    def __str__(self) -> str:
        return f"{self.workspace} {self.month:%Y-%m}: {self.activated}/{self.quota}"


class ConfirmedActivations(models.Manager):
    """Confirmed activations only: what is charged, counted and shown everywhere (rule 13)."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(state=ActivationRecord.State.CONFIRMED)


class ActivationRecord(models.Model):
    """The ledger: one row per contact activated in a month (rule 1).

    A row is first a *reservation* (state reserved) the gate grants before an automated action, or
    is confirmed at once; the action then confirms it when it engaged the contact, or releases it
    (the row is deleted) when it did not (rule 13). `holds` counts the actions in flight holding the
    reservation: a contact reached by two actions at once is reserved once, and released only when
    the last of them lets go without engaging it. A confirmed row never changes again. The unique
    (workspace, contact, month) covers both states, so a contact is charged at most once a month.
    `activated_at` is when the activation was confirmed, or for a reservation when it was last taken.
    Every step of a reservation is kept in ActivationEvent (append-only).

    `objects` yields confirmed rows only; `all_states` includes the reservations in flight.
    """

    class State(models.TextChoices):
        RESERVED = "reserved", "Reserved (in flight)"
        CONFIRMED = "confirmed", "Confirmed"

    # No index of its own: the unique (workspace, contact, month) serves every workspace lookup, and
    # one index fewer is one write fewer on each activation. On PostgreSQL one composite foreign key,
    # activation_contact_in_workspace (billing 0009), checks the pair: the contact exists and is the
    # workspace's, at half the cost of one key per column on the ledger's hottest insert.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.PROTECT, related_name="activations", db_index=False, db_constraint=False
    )
    # SET_NULL: erasing a contact (privacy request) keeps the record, so the month's count stays right.
    contact = models.ForeignKey(
        Contact, null=True, on_delete=models.SET_NULL, related_name="activations", db_constraint=False
    )
    month = models.DateField()
    activated_at = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=AutomationKind.choices)
    automation_ref = models.CharField(
        max_length=64, blank=True, help_text="Which automation activated it, e.g. campaign:12."
    )
    state = models.CharField(
        max_length=9, choices=State.choices, default=State.CONFIRMED, db_default=State.CONFIRMED.value
    )
    holds = models.PositiveSmallIntegerField(
        default=0, db_default=0, help_text="Actions in flight holding the reservation (0 once confirmed)."
    )

    all_states = models.Manager()
    objects = ConfirmedActivations()

    class Meta:
        ordering = ["-activated_at", "-id"]
        default_manager_name = "objects"
        base_manager_name = "all_states"
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "contact", "month"], name="billing_activation_once_per_month"
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "month", "-activated_at"], name="activation_ws_month_at"),
            # The settle job's scan: reservations only, a handful at any time.
            models.Index(fields=["activated_at"], name="activation_reserved_at",
                         condition=Q(state="reserved")),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.month:%Y-%m} by {self.kind} ({self.state})"


class ActivationEvent(models.Model):
    """Append-only history of reservations (rule 13): who reserved, confirmed or released, when, why.

    An activation confirmed at once (the action engaged the contact as the gate decided) has no
    event: its ledger row says who and when.
    """

    class Action(models.TextChoices):
        RESERVED = "reserved", "Reserved"
        JOINED = "joined", "Joined a reservation in flight"
        CONFIRMED = "confirmed", "Confirmed"
        RELEASED = "released", "Released"
        LET_GO = "let_go", "Let go (another action still holds it)"

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="+", db_constraint=False,
                                  db_index=False)
    # A bare id once the contact is erased (DO_NOTHING: no personal data here, and no scan of the
    # history on each erasure).
    contact = models.ForeignKey(Contact, null=True, on_delete=models.DO_NOTHING, related_name="+",
                                db_constraint=False, db_index=False)
    month = models.DateField()
    action = models.CharField(max_length=9, choices=Action.choices)
    kind = models.CharField(max_length=16, blank=True)
    by = models.CharField(max_length=64, blank=True, help_text="The automation (e.g. campaign:12) or job that did it.")
    reason = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["workspace", "month", "contact"], name="activation_event_ws_month")]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.action} by {self.by} at {self.at:%Y-%m-%d %H:%M}"


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


class CheckoutSession(models.Model):
    """A local record of one attempt to change a plan through Stripe, written BEFORE calling Stripe.

    Its id makes the idempotency key of the Stripe call (`checkout:<id>`), so a retry never creates
    a second session or charge; a failed call leaves the row `failed`, never half-created.
    """

    class Kind(models.TextChoices):
        CHECKOUT = "checkout", "Checkout (Free to Pro)"
        QUANTITY = "quantity", "Add-on quantity change"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (calling Stripe)"
        OPEN = "open", "Open (customer at Stripe)"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="checkout_sessions")
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CHECKOUT)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    addon_packs = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    stripe_session_id = models.CharField(max_length=255, blank=True)
    url = models.URLField(max_length=2000, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_session_id"], condition=~Q(stripe_session_id=""),
                name="billing_checkout_unique_stripe_session",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.pk} for {self.workspace_id}: {self.status}"

    @property
    def idempotency_key(self) -> str:
        return f"{self.kind}:{self.pk}"


class StripeEvent(models.Model):
    """Every Stripe webhook event, stored first under its unique id, then handled once."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=255)
    created = models.BigIntegerField(help_text="Stripe's `created` (Unix seconds) of the event.")
    livemode = models.BooleanField(default=False)
    payload = models.JSONField(help_text="The event as received, card details removed.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True, help_text="Why handling failed, or why the event was ignored.")
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["status", "received_at"], name="stripe_event_status")]
        permissions = [("replay_stripeevent", "Can replay Stripe events")]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.status})"


class PlanChange(models.Model):
    """Append-only history of plan and pack changes: who or which event, from what, to what, when."""

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="plan_changes")
    from_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    from_addon_packs = models.PositiveIntegerField()
    to_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    to_addon_packs = models.PositiveIntegerField()
    source_event_id = models.CharField(max_length=255, blank=True, help_text="Stripe event that caused it.")
    changed_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="plan_change_ws_at")]

    def __str__(self) -> str:
        return (f"{self.workspace_id}: {self.from_plan_id}+{self.from_addon_packs} -> "
                f"{self.to_plan_id}+{self.to_addon_packs}")


class PaymentFailure(models.Model):
    """One row per unpaid invoice (rule 9): owners are emailed once per invoice; cleared when paid."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="payment_failures")
    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True)
    amount_due_cents = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    attempt_count = models.PositiveIntegerField(default=0)
    hosted_invoice_url = models.URLField(max_length=2000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    emailed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.stripe_invoice_id} unpaid for {self.workspace_id}"
