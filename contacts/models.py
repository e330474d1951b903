"""The contact database: leads captured for free from Instagram, plus folders and tags."""

from django.db import models
from django.utils import timezone

from accounts.models import Membership, User, Workspace


class Contact(models.Model):
    class Source(models.TextChoices):
        DM = "dm", "Direct message"
        ORGANIC_POST = "organic_post", "Comment on a post"
        PAID_AD = "paid_ad", "Paid ad"
        COLLABORATION = "collaboration", "Collaboration or mention"
        STORY = "story", "Story reply or mention"
        IMPORT = "import", "Import"
        API = "api", "API"

    # No index of its own: contact_in_workspace (workspace, id) and the other indexes start with it.
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="contacts", db_index=False)
    igsid = models.CharField("Instagram-scoped id", max_length=64)
    username = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    captured_at = models.DateTimeField(default=timezone.now)
    # The last message from the person (DM, story reply or mention, postback, referral): what opens
    # Meta's 24-hour window for ordinary DMs (contacts/windows.py). A comment or mention does not.
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    # The last comment or @mention by the person: opens only one private reply per comment, for 7 days.
    last_comment_at = models.DateTimeField(null=True, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    custom_fields = models.JSONField(default=dict, blank=True)
    # Filled by data enrichment (an automated action).
    follower_count = models.PositiveIntegerField(null=True, blank=True)
    biography = models.TextField(blank=True)
    enriched_at = models.DateTimeField(null=True, blank=True)
    # Set when the person's personal data was erased at their request (Meta's data deletion callback).
    erased_at = models.DateTimeField(null=True, blank=True)
    tags = models.ManyToManyField("Tag", blank=True, related_name="contacts")
    folders = models.ManyToManyField(
        "Folder", through="FolderMembership", blank=True, related_name="contacts"
    )

    class Meta:
        ordering = ["-captured_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "igsid"], name="contacts_contact_igsid_once"),
            # What the tables that name a (workspace, contact) pair reference: one foreign key then
            # checks both, and that the contact is the workspace's (see contacts 0008).
            models.UniqueConstraint(fields=["workspace", "id"], name="contact_in_workspace"),
        ]
        indexes = [
            models.Index(fields=["workspace", "-captured_at"], name="contact_ws_captured"),
            models.Index(fields=["workspace", "-last_inbound_at"], name="contact_ws_last_inbound"),
            models.Index(fields=["workspace", "source"], name="contact_ws_source"),
            models.Index(fields=["workspace", "username"], name="contact_ws_username"),
        ]

    def __str__(self) -> str:
        return f"@{self.username}" if self.username else self.igsid


class ContactCount(models.Model):
    """How many contacts a workspace has, kept by the database itself (triggers on the contact table,
    migration 0006), so every insert and delete path counts, bulk ones included, and the usage and
    contacts pages read one row instead of counting a million."""

    workspace = models.OneToOneField(
        Workspace, on_delete=models.CASCADE, primary_key=True, related_name="contact_count"
    )
    contacts = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.workspace_id}: {self.contacts} contacts"


class Tag(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=64)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="contacts_tag_name_once"),
        ]

    def __str__(self) -> str:
        return self.name


class Folder(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="folders")
    name = models.CharField(max_length=80)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="contacts_folder_name_once"),
        ]

    def __str__(self) -> str:
        return self.name


class FolderMembership(models.Model):
    """A contact placed in a folder by hand: a manual action, never counted (rule 6)."""

    folder = models.ForeignKey(Folder, on_delete=models.CASCADE, related_name="memberships")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="folder_memberships")
    added_at = models.DateTimeField(default=timezone.now)
    added_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["folder", "contact"], name="contacts_folder_member_once"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.folder_id}"


class Message(models.Model):
    """A direct message in or out of the workspace's Instagram inbox. Outgoing ones are the outbox."""

    class Direction(models.TextChoices):
        INBOUND = "in", "Inbound"
        OUTBOUND = "out", "Outbound"

    class Origin(models.TextChoices):
        CONTACT = "contact", "Sent by the contact"
        MANUAL = "manual", "Sent by a member from the inbox"
        AUTOMATED = "automated", "Sent by an automation"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        SKIPPED_WINDOW = "skipped_window", "Skipped: messaging window closed"
        FAILED = "failed", "Failed"

    # On PostgreSQL both columns are checked by one composite foreign key to the contact's
    # (workspace, id), message_contact_in_workspace (contacts 0008), not by one key each.
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="messages", db_constraint=False)
    # No index of its own: message_contact_created (contact, created_at) starts with it.
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="messages", db_index=False, db_constraint=False
    )
    direction = models.CharField(max_length=3, choices=Direction.choices)
    origin = models.CharField(max_length=10, choices=Origin.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    text = models.TextField(blank=True)
    # Private reply to a comment (7-day window) rather than a DM (24-hour window).
    reply_to_comment_id = models.CharField(max_length=64, blank=True)
    automation_ref = models.CharField(max_length=64, blank=True)
    # Meta's message tag it was sent with ("HUMAN_AGENT": a member's reply 24 hours to 7 days after the
    # person's last message, contacts/windows.py). A database default too: bulk sends insert by SQL.
    tag = models.CharField(max_length=16, blank=True, default="", db_default="")
    sent_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Meta's message id: inbound deliveries are deduplicated on it, outbound ones get it on send.
    meta_mid = models.CharField(max_length=255, blank=True)
    # Outbound: a key derived from what caused the send, so a retried task never sends twice.
    idempotency_key = models.CharField(max_length=128, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "meta_mid"], condition=~models.Q(meta_mid=""), name="contacts_message_mid_once"
            ),
            models.UniqueConstraint(
                fields=["workspace", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="contacts_message_send_once",
            ),
        ]
        indexes = [
            models.Index(fields=["contact", "-created_at"], name="message_contact_created"),
            # A conversation's unread count: the person's messages after a member's read mark (an id).
            models.Index(fields=["contact", "id"], name="message_contact_inbound",
                         condition=models.Q(direction="in")),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.contact_id}: {self.text[:40]}"


class WebhookDelivery(models.Model):
    """One POST from Meta's Instagram webhooks, stored raw before anything is done with it.

    The view stores the body and answers 200 at once; a Celery task (and a sweeper, for a broker that
    was down after the 200) turns it into contacts and events. The body hash is unique, so Meta
    redelivering the same notification is stored once.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"

    received_at = models.DateTimeField(default=timezone.now)
    body = models.TextField()
    body_sha256 = models.CharField(max_length=64)
    signature_valid = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    events_captured = models.PositiveIntegerField(default=0)
    note = models.TextField(blank=True)
    error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["body_sha256"], name="contacts_webhook_delivery_once"),
        ]
        indexes = [models.Index(fields=["status", "received_at"], name="webhook_delivery_status")]

    def __str__(self) -> str:
        return f"Instagram delivery {self.pk} ({self.status})"


class CapturedEvent(models.Model):
    """An Instagram event already captured: Meta's id (message mid, comment id) once per workspace.

    This row is what makes a redelivered event capture nothing twice and fire nothing twice.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="captured_events")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="captured_events")
    delivery = models.ForeignKey(
        WebhookDelivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="captured_events"
    )
    meta_id = models.CharField(max_length=255)
    type = models.CharField(max_length=20)
    occurred_at = models.DateTimeField()
    captured_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "meta_id"], name="contacts_captured_event_once"),
        ]
        indexes = [models.Index(fields=["contact", "-occurred_at"], name="captured_event_contact")]

    def __str__(self) -> str:
        return f"{self.type} {self.meta_id}"


class DataDeletionRequest(models.Model):
    """A person asked Meta to delete their data from this app; the status page shows what was done.

    The person's id is kept only as a SHA-256 hash: the request must not itself keep what it erased.
    """

    class Status(models.TextChoices):
        COMPLETED = "completed", "Completed"

    confirmation_code = models.CharField(max_length=32)
    user_id_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.COMPLETED)
    contacts_erased = models.PositiveIntegerField(default=0)
    requested_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["confirmation_code"], name="contacts_data_deletion_code_once"),
        ]

    def __str__(self) -> str:
        return f"Data deletion {self.confirmation_code} ({self.status})"


class InstagramConnection(models.Model):
    """A workspace's own Instagram professional account, connected through Business Login.

    The long-lived token is stored encrypted (contacts/tokens.py) and refreshed before it expires.
    The account id is the one Meta's webhooks name in `entry.id`; it is also kept on the workspace
    (`Workspace.instagram_account_id`, unique), which is what routes deliveries.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Connected"
        BROKEN = "broken", "Disconnected by Instagram (reconnect needed)"

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="instagram_connection")
    account_id = models.CharField(max_length=64, unique=True, help_text="Instagram professional account id.")
    username = models.CharField(max_length=64, blank=True)
    token_encrypted = models.TextField()
    token_expires_at = models.DateTimeField()
    token_refreshed_at = models.DateTimeField(help_text="When the current token was issued or last refreshed.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    broken_at = models.DateTimeField(null=True, blank=True)
    broken_reason = models.CharField(max_length=255, blank=True)
    connected_at = models.DateTimeField(default=timezone.now)
    connected_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["status", "token_expires_at"], name="ig_connection_due")]

    def __str__(self) -> str:
        return f"@{self.username or self.account_id} ({self.status})"

    @property
    def is_broken(self) -> bool:
        return self.status == self.Status.BROKEN


class InstagramConnectState(models.Model):
    """A connect link handed out: its `state` names this row, which is used once (replay refused)."""

    nonce = models.CharField(max_length=43, unique=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="ig_connect_state_created")]

    def __str__(self) -> str:
        return f"connect state for workspace {self.workspace_id}"


class PendingMention(models.Model):
    """An @mention whose author Meta's notification does not name: looked up with the workspace's
    token by a task, retried with backoff, never blocking intake. Captured as `collaboration`."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CAPTURED = "captured", "Captured"
        FAILED = "failed", "Gave up"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    delivery = models.ForeignKey(WebhookDelivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    meta_id = models.CharField(max_length=255)
    media_id = models.CharField(max_length=64, blank=True)
    comment_id = models.CharField(max_length=64, blank=True)
    occurred_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "meta_id"], name="contacts_pending_mention_once"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="pending_mention_due")]

    def __str__(self) -> str:
        return f"mention {self.meta_id} ({self.status})"


class Conversation(models.Model):
    """A contact's conversation: its newest message, in or out, whatever path wrote it (intake, a send,
    a bulk send in SQL), kept by a trigger on the message table (contacts 0012). What the inbox sorts
    and pages on. A narrow row of its own rather than columns on the contact: moving it rewrites two
    index entries, where the contact row has eight. A message skipped because the window was closed was
    never sent, so it is no activity."""

    contact = models.OneToOneField(Contact, primary_key=True, on_delete=models.CASCADE, related_name="conversation")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, db_index=False, db_constraint=False,
                                  related_name="+")
    last_activity_at = models.DateTimeField()
    last_message = models.ForeignKey(Message, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
                                     related_name="+")

    class Meta:
        indexes = [
            # The inbox's keyset: newest activity first.
            models.Index(fields=["workspace", "-last_activity_at", "-contact"], name="conversation_ws_activity"),
        ]

    def __str__(self) -> str:
        return f"conversation with {self.contact_id}"


class ConversationRead(models.Model):
    """How far a member has read a conversation: per member, so one reading clears nobody else's count.

    Unread = the person's messages after (last_read_at, last_read_message_id), in the order the
    conversation shows them (created_at, id).
    """

    # No index of its own: contacts_conversation_read_once (membership, contact) starts with it.
    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="+", db_index=False)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    last_read_at = models.DateTimeField()
    last_read_message_id = models.BigIntegerField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["membership", "contact"], name="contacts_conversation_read_once"),
        ]

    def __str__(self) -> str:
        return f"{self.membership_id} read {self.contact_id} to {self.last_read_message_id}"
