"""Automations: campaigns, scenarios, segments, enrichment, integrations, paused actions and alerts.

Every automated action asks billing's gate before it engages a contact (docs/product.md rules 1 to 5);
what the gate refuses is kept as a PausedAction and resumes when headroom appears.
"""

import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import User, Workspace
from billing.models import AutomationKind
from contacts.models import Contact, Folder, Message


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


class Segment(models.Model):
    """Rules over contact fields, evaluated in SQL; members are placed by segmentation runs or steps."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="segments")
    class RunEvery(models.TextChoices):
        NEVER = "never", "Only when run by hand"
        HOUR = "hour", "Every hour"
        DAY = "day", "Every day"
        WEEK = "week", "Every week"

    name = models.CharField(max_length=120)
    rules = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Segmentation runs on a schedule: the beat starts the run once next_run_at has passed.
    run_every = models.CharField(max_length=5, choices=RunEvery.choices, default=RunEvery.NEVER)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_added = models.PositiveIntegerField(default=0)
    last_run_limited = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="automations_segment_name_once"),
        ]
        indexes = [models.Index(fields=["next_run_at"], condition=Q(next_run_at__isnull=False),
                                name="segment_run_due")]

    def __str__(self) -> str:
        return self.name

    @property
    def ref(self) -> str:
        return f"segment:{self.pk}"


class SegmentMembership(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="segment_memberships")
    added_at = models.DateTimeField(default=timezone.now)
    automation_ref = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["segment", "contact"], name="automations_segment_member_once"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} in segment {self.segment_id}"


class Campaign(models.Model):
    """A broadcast message to an audience, sent once per contact."""

    class Audience(models.TextChoices):
        ALL = "all", "All contacts"
        SEGMENT = "segment", "A segment"
        FOLDER = "folder", "A folder"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=120)
    text = models.TextField()
    audience = models.CharField(max_length=8, choices=Audience.choices, default=Audience.ALL)
    segment = models.ForeignKey(Segment, null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns")
    folder = models.ForeignKey(Folder, null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns")
    scheduled_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(default=timezone.now)
    launched_at = models.DateTimeField(null=True, blank=True)
    launched_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    audience_frozen_at = models.DateTimeField(null=True, blank=True)
    # Rule 16: when headroom is short, this campaign's paused messages resume before other paused actions.
    critical = models.BooleanField(default=False)
    finished_at = models.DateTimeField(null=True, blank=True)
    # One fan-out at a time: a worker holds this lease while sending, renewing it per batch; a killed
    # worker's lease simply runs out, and the redelivered task takes over.
    fanout_token = models.CharField(max_length=36, blank=True)
    fanout_lease_until = models.DateTimeField(null=True, blank=True)
    # Counters are recomputed from the recipient rows (never incremented in Python), so they stay exact.
    recipients_count = models.PositiveIntegerField(default=0)
    sent_count = models.PositiveIntegerField(default=0)
    limited_count = models.PositiveIntegerField(default=0)
    skipped_window_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(audience="all") | Q(audience="segment", segment__isnull=False)
                | Q(audience="folder", folder__isnull=False),
                name="automations_campaign_audience_target",
            ),
        ]
        indexes = [models.Index(fields=["status", "scheduled_at"], name="campaign_status_due")]

    def __str__(self) -> str:
        return self.name

    @property
    def ref(self) -> str:
        return f"campaign:{self.pk}"


class CampaignBatch(models.Model):
    """One batch of a launched campaign's frozen audience: contact ids in engaged-first order.

    The launch writes the audience once as these compact lists (a few rows, not one per contact); the
    fan-out then writes each contact's CampaignRecipient row once, with its final status, in the same
    transaction that marks the batch done. The contacts still to be reached are those of the batches
    not done that have no recipient row yet.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="batches", db_index=False)
    number = models.PositiveIntegerField(help_text="Position of the batch in the campaign, from 0.")
    first_rank = models.PositiveIntegerField(help_text="Engaged-first rank of the batch's first contact.")
    contact_ids = models.JSONField(help_text="Contact ids in engaged-first order.")
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign", "number"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "number"], name="automations_campaign_batch_once"),
        ]

    def __str__(self) -> str:
        return f"batch {self.number} of campaign {self.campaign_id}"


class CampaignRecipient(models.Model):
    """One row per contact reached by a launched campaign: the send-once ledger and the final status.

    Written once, with the final status (sent, limited, skipped_window, failed); "pending" is only
    found on rows frozen by the release before automations 0007, until the fan-out turns them into
    batches.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        LIMITED = "limited", "Limited (paused by quota)"
        SKIPPED_WINDOW = "skipped_window", "Skipped: messaging window closed"
        FAILED = "failed", "Failed"

    # No index of its own: the unique (campaign, contact) starts with it.
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients", db_index=False)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="campaign_recipients")
    rank = models.PositiveIntegerField(help_text="Position in the engaged-first order at launch.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["rank"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "contact"], name="automations_recipient_once"),
        ]
        indexes = [
            # Pending rows of one campaign by rank: the keyset of the fan-out before automations 0007,
            # kept while a worker of that release may still be sending from them. No row is written
            # pending any more (the fan-out turns those it finds into batches).
            models.Index(fields=["campaign", "rank", "id"], condition=models.Q(status="pending"),
                         name="recipient_pending_rank"),
            # Recipients of one campaign by final status, in rank order (the list filtered by status).
            models.Index(fields=["campaign", "status", "rank"], condition=~models.Q(status="pending"),
                         name="recipient_final_status"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} in campaign {self.campaign_id}: {self.status}"


class Scenario(models.Model):
    """A trigger and a list of steps run for one contact at a time."""

    class Trigger(models.TextChoices):
        DM_KEYWORD = "dm_keyword", "DM keyword"
        COMMENT = "comment", "Comment on a post"
        STORY = "story", "Story reply or mention"
        AD_REFERRAL = "ad_referral", "Ad referral"
        NEW_CONTACT = "new_contact", "New contact"
        WEBHOOK = "webhook", "Inbound webhook"
        NEXT_MESSAGE = "next_message", "Next message from a segment's contact"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="scenarios")
    name = models.CharField(max_length=120)
    enabled = models.BooleanField(default=True)
    trigger_type = models.CharField(max_length=16, choices=Trigger.choices)
    trigger_config = models.JSONField(default=dict, blank=True)
    steps = models.JSONField(default=list, blank=True)
    # Outside systems prove who they are with this secret (header X-Inro-Scenario-Secret).
    webhook_secret = models.CharField(max_length=64, default=_new_secret)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["workspace", "enabled", "trigger_type"], name="scenario_ws_trigger")]

    def __str__(self) -> str:
        return self.name

    @property
    def ref(self) -> str:
        return f"scenario:{self.pk}"


class ScenarioRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting (delay)"
        WAITING_ANSWER = "waiting_answer", "Waiting for an answer"
        LIMITED = "limited", "Limited (paused by quota)"
        COMPLETED = "completed", "Completed"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="runs")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="scenario_runs")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="scenario_runs")
    # What fired it (Meta message/comment id, or the caller's event id): the same event runs once.
    trigger_key = models.CharField(max_length=255)
    trigger_type = models.CharField(max_length=24, blank=True)
    reply_to_comment_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    next_step = models.PositiveSmallIntegerField(default=0)
    engaged = models.BooleanField(default=False, help_text="The contact is activated for this run: no more gate.")
    # The month of the activation reservation this run holds for its next engaging step (rule 13):
    # confirmed or released by that step's outcome. Null: it holds none.
    held_month = models.DateField(null=True, blank=True)
    # A worker executing the run holds this lease, so a redelivered task does not run it alongside.
    executing_until = models.DateTimeField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["scenario", "trigger_key"], name="automations_run_once_per_event"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.scenario_id} for {self.contact_id}: {self.status}"


class ScenarioStepLog(models.Model):
    run = models.ForeignKey(ScenarioRun, on_delete=models.CASCADE, related_name="step_logs")
    step_index = models.PositiveSmallIntegerField()
    step_type = models.CharField(max_length=24)
    outcome = models.CharField(max_length=24)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step_index} {self.step_type}: {self.outcome}"


class PendingQuestion(models.Model):
    """A question a scenario asked; the contact's next message is the answer (survey steps)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="pending_questions")
    run = models.ForeignKey(ScenarioRun, on_delete=models.CASCADE, related_name="questions")
    step_index = models.PositiveSmallIntegerField()
    field = models.CharField(max_length=80)
    answer_type = models.CharField(max_length=8)  # email, phone, text
    asked_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)
    answer = models.TextField(blank=True)

    class Meta:
        constraints = [
            # One open question per contact: an answer can only mean one thing.
            models.UniqueConstraint(
                fields=["contact"], condition=Q(answered_at__isnull=True), name="automations_one_open_question"
            ),
        ]

    def __str__(self) -> str:
        return f"question {self.field} to {self.contact_id}"


class Integration(models.Model):
    """An outgoing webhook: contact data pushed to a URL, signed with a per-integration secret."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="integrations")
    name = models.CharField(max_length=120)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=64, default=_new_secret)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def ref(self) -> str:
        return f"integration:{self.pk}"


class IntegrationDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="deliveries")
    contact = models.ForeignKey(Contact, null=True, on_delete=models.SET_NULL, related_name="+")
    event = models.CharField(max_length=40)
    idempotency_key = models.CharField(max_length=128)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # The month of the activation reservation this push holds (rule 13): confirmed when the receiver
    # answers 2xx, released when the delivery gives up. Null: it holds none.
    held_month = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "integration deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "idempotency_key"], name="automations_delivery_once"
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} to {self.integration_id}: {self.status}"


class EnrichmentJob(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="enrichment_jobs")
    # The segment whose contacts it enriches, when started on one (the contacts are fixed at the start).
    segment = models.ForeignKey(Segment, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="enrichment_jobs")
    contact_ids = models.JSONField(default=list)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    enriched_count = models.PositiveIntegerField(default=0)
    limited_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"enrichment {self.pk}"

    @property
    def ref(self) -> str:
        return f"enrichment:{self.pk}"


class PausedAction(models.Model):
    """An automated action the gate refused at the quota (rule 4), kept to run later (rule 5)."""

    class ActionType(models.TextChoices):
        CAMPAIGN_MESSAGE = "campaign_message", "Campaign message"
        SCENARIO_RUN = "scenario_run", "Scenario run"
        SEGMENT_ADD = "segment_add", "Add to segment"
        ENRICHMENT = "enrichment", "Data enrichment"
        INTEGRATION_PUSH = "integration_push", "Integration push"

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting (limited)"
        RESUMED = "resumed", "Resumed"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="paused_actions")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="paused_actions")
    kind = models.CharField(max_length=16, choices=AutomationKind.choices)
    automation_ref = models.CharField(max_length=64)
    action_type = models.CharField(max_length=20, choices=ActionType.choices)
    payload = models.JSONField(default=dict)
    # Same action for the same contact is paused once (e.g. "campaign:12:contact:5").
    dedupe_key = models.CharField(max_length=128)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="When the messaging window closes.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    resolved_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "dedupe_key"], name="automations_paused_once"),
        ]
        indexes = [
            models.Index(fields=["workspace", "status", "created_at", "id"], name="paused_ws_status_created"),
            models.Index(fields=["status", "workspace"], name="paused_status_ws"),
        ]

    def __str__(self) -> str:
        return f"{self.action_type} for {self.contact_id} ({self.status})"


class UsageAlert(models.Model):
    """A usage alert at 80% or 100% of the month's quota (rule 10): once per threshold and month."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="usage_alerts")
    month = models.DateField()
    threshold = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    # Set only when the email went out: a failed send is retried later, a sent one never again.
    sent_at = models.DateTimeField(null=True, blank=True)
    sending_since = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-month", "threshold"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "month", "threshold"], name="automations_usage_alert_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workspace} {self.month:%Y-%m} {self.threshold}%"
