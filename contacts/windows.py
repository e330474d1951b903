"""Meta's messaging windows, computed in one place: sending, pausing, resuming and pages all ask here.

- A message from the person (a DM, a story reply or mention, a quick reply, a postback, a referral
  from an ad or an ig.me link) opens the 24-hour window for ordinary DMs (`Contact.last_inbound_at`).
- A comment or an @mention opens no DM window: it allows one private reply to that comment, within 7
  days (`Contact.last_comment_at`, and the captured comment itself when its id is known).
"""

import datetime
from dataclasses import dataclass

from django.utils import timezone

from contacts.models import CapturedEvent, Contact, Message

DM_WINDOW = datetime.timedelta(hours=24)
PRIVATE_REPLY_WINDOW = datetime.timedelta(days=7)

# Event types (contacts.hooks.InboundEvent.type) that open the DM window, and those that open a
# private reply only.
DM_OPENING_TYPES = frozenset({"message", "quick_reply", "story_reply", "story_mention", "postback", "referral"})
COMMENT_TYPES = frozenset({"comment", "live_comment", "mention"})

DM = "dm"
PRIVATE_REPLY = "private_reply"


@dataclass(frozen=True, slots=True)
class Window:
    kind: str  # "dm" or "private_reply"
    closes_at: datetime.datetime | None  # None: the person never opened one
    is_open: bool
    used: bool = False  # private reply: the one reply to this comment was already sent


def messaging_window(
    contact: Contact,
    *,
    private_reply: bool = False,
    reply_to_comment_id: str = "",
    now: datetime.datetime | None = None,
) -> Window:
    """The window an automated message to `contact` falls in, now.

    A private reply is asked for with `reply_to_comment_id` (exact: that comment's time, and whether
    it was already answered) or with `private_reply=True` alone (the contact's latest comment; what
    paused actions store, without a database query).
    """
    now = now or timezone.now()
    if not (private_reply or reply_to_comment_id):
        closes = contact.last_inbound_at + DM_WINDOW if contact.last_inbound_at else None
        return Window(DM, closes, closes is not None and now < closes)
    commented_at = contact.last_comment_at
    used = False
    if reply_to_comment_id and contact.pk:
        captured = (
            CapturedEvent.objects.filter(workspace_id=contact.workspace_id, contact_id=contact.pk,
                                         meta_id=reply_to_comment_id, type__in=COMMENT_TYPES)
            .values_list("occurred_at", flat=True).first()
        )
        if captured is not None:
            commented_at = captured
        used = Message.objects.filter(
            workspace_id=contact.workspace_id, contact_id=contact.pk, direction=Message.Direction.OUTBOUND,
            reply_to_comment_id=reply_to_comment_id, status__in=(Message.Status.SENT, Message.Status.QUEUED),
        ).exists()
    closes = commented_at + PRIVATE_REPLY_WINDOW if commented_at else None
    return Window(PRIVATE_REPLY, closes, closes is not None and now < closes and not used, used)


def window_closes_at(contact: Contact, *, private_reply: bool = False) -> datetime.datetime | None:
    """When Meta stops accepting an automated message to this contact (None: no window was opened)."""
    return messaging_window(contact, private_reply=private_reply).closes_at


def window_is_open(contact: Contact, *, private_reply: bool = False, now: datetime.datetime | None = None) -> bool:
    return messaging_window(contact, private_reply=private_reply, now=now).is_open


def dm_window_cutoff(now: datetime.datetime) -> datetime.datetime:
    """The DM window is open while last_inbound_at > this (for queries over many contacts)."""
    return now - DM_WINDOW
