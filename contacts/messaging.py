"""Sending to Instagram: the one outbound adapter (Send API and private replies), chosen by setting.

`send_message` is what automations and the inbox call. It enforces the messaging window for automated
messages (24 hours after the contact's last inbound message; 7 days for a private reply to a
comment), deduplicates on an idempotency key so a retried task never sends twice, and hands the
message to the backend named by INSTAGRAM_SEND_BACKEND: "outbox" (default: stored, not sent
anywhere; visible in the admin and the API) or "graph" (Meta's Graph API).
"""

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import User, Workspace
from contacts.models import Contact, Message

DM_WINDOW = datetime.timedelta(hours=24)
PRIVATE_REPLY_WINDOW = datetime.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class SendResult:
    status: str  # Message.Status value: sent, skipped_window, failed
    message: Message
    duplicate: bool = False  # the idempotency key had already been used: nothing was sent again


def messaging_window_closes_at(contact: Contact, *, private_reply: bool = False) -> datetime.datetime | None:
    """When Meta stops accepting an automated message to this contact (None: never wrote in)."""
    if contact.last_inbound_at is None:
        return None
    return contact.last_inbound_at + (PRIVATE_REPLY_WINDOW if private_reply else DM_WINDOW)


def window_is_open(contact: Contact, *, private_reply: bool = False, now: datetime.datetime | None = None) -> bool:
    closes = messaging_window_closes_at(contact, private_reply=private_reply)
    return closes is not None and (now or timezone.now()) < closes


class OutboxBackend:
    """Default backend: the message is recorded as sent in the outbox table; nothing leaves."""

    def deliver(self, message: Message) -> str:
        return f"outbox.{message.pk}"


def backend():
    path = {
        "outbox": "contacts.messaging.OutboxBackend",
        "graph": "contacts.meta.GraphBackend",
    }.get(settings.INSTAGRAM_SEND_BACKEND, settings.INSTAGRAM_SEND_BACKEND)
    return import_string(path)()


class DeliveryError(Exception):
    """Raised by a backend when Meta refused the message for good (after its own retries)."""


def send_message(
    *,
    workspace: Workspace,
    contact: Contact,
    text: str,
    origin: str,
    idempotency_key: str = "",
    automation_ref: str = "",
    reply_to_comment_id: str = "",
    sent_by: User | None = None,
) -> SendResult:
    """Send one message. Automated messages respect the window; manual ones are a human agent's.

    Activation is not this function's business: automations call the gate before calling this.
    """
    if contact.workspace_id != workspace.pk:
        raise ValueError("The contact belongs to another workspace.")
    if origin not in (Message.Origin.MANUAL, Message.Origin.AUTOMATED):
        raise ValueError(f"Unknown origin {origin!r}.")
    private_reply = bool(reply_to_comment_id)
    if origin == Message.Origin.AUTOMATED and not window_is_open(contact, private_reply=private_reply):
        status = Message.Status.SKIPPED_WINDOW
    else:
        status = Message.Status.QUEUED
    try:
        with transaction.atomic():
            message = Message.objects.create(
                workspace=workspace, contact=contact, direction=Message.Direction.OUTBOUND, origin=origin,
                status=status, text=text, reply_to_comment_id=reply_to_comment_id,
                automation_ref=automation_ref, sent_by=sent_by, idempotency_key=idempotency_key,
            )
    except IntegrityError:
        existing = Message.objects.get(workspace=workspace, idempotency_key=idempotency_key)
        if existing.status != Message.Status.QUEUED:
            return SendResult(existing.status, existing, duplicate=True)
        # Still queued: the attempt that stored it died before handing it over (worker killed, issue 8).
        # Finish it now, so the contact is not activated without its message; the row stays the only one.
        message, status = existing, Message.Status.QUEUED
    if status == Message.Status.SKIPPED_WINDOW:
        return SendResult(status, message)
    # The network call happens outside any transaction; the outcome is written after it.
    try:
        mid = backend().deliver(message)
    except DeliveryError as error:
        Message.objects.filter(pk=message.pk).update(status=Message.Status.FAILED, error=str(error)[:2000])
        message.refresh_from_db()
        return SendResult(Message.Status.FAILED, message)
    Message.objects.filter(pk=message.pk).update(status=Message.Status.SENT, meta_mid=mid, sent_at=timezone.now())
    message.refresh_from_db()
    return SendResult(Message.Status.SENT, message)
