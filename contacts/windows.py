"""Meta's messaging windows, computed in one place: sending, pausing, resuming and pages all ask here.

- A message from the person (a DM, a story reply or mention, a quick reply, a postback, a referral
  from an ad or an ig.me link) opens the 24-hour window for ordinary DMs (`Contact.last_inbound_at`).
- A comment or an @mention opens no DM window: it allows one private reply to that comment, within 7
  days (`Contact.last_comment_at`, and the captured comment itself when its id is known).
- A member's reply (`reply_window`): a standard reply within 24 hours of the person's last message;
  from 24 hours to 7 days only with Meta's HUMAN_AGENT message tag (META_HUMAN_AGENT_TAG, on by default:
  Meta grants the Human Agent feature per app); after that, or with the tag off after 24 hours, closed.
  The inbox shows this window and the manual send path enforces it: one function for both.
"""

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from contacts.models import CapturedEvent, Contact, Message

DM_WINDOW = datetime.timedelta(hours=24)
PRIVATE_REPLY_WINDOW = datetime.timedelta(days=7)
HUMAN_AGENT_WINDOW = datetime.timedelta(days=7)
HUMAN_AGENT_TAG = "HUMAN_AGENT"

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


# Reply window states (ReplyWindow.state), as the inbox and the API name them.
REPLY_STANDARD = "open"
REPLY_HUMAN_AGENT = "human_agent"
REPLY_CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ReplyWindow:
    state: str  # "open" (standard reply), "human_agent" (reply with the HUMAN_AGENT tag) or "closed"
    closes_at: datetime.datetime | None  # when the current state ends (None: closed)
    standard_until: datetime.datetime | None  # 24 hours after the person's last message
    human_agent_until: datetime.datetime | None  # 7 days after it; None when the tag is off
    closed_since: datetime.datetime | None  # when replies stopped being accepted (None: not closed)
    tag: str  # the message tag a reply needs now ("" or "HUMAN_AGENT")
    reason: str  # why replies are refused (closed only), for people

    @property
    def can_reply(self) -> bool:
        return self.state != REPLY_CLOSED


def human_agent_tag_enabled() -> bool:
    return bool(getattr(settings, "META_HUMAN_AGENT_TAG", True))


def _when(moment: datetime.datetime) -> str:
    return timezone.localtime(moment, datetime.UTC).strftime("%-d %b %Y, %H:%M UTC")


def reply_window(
    last_inbound_at: datetime.datetime | None,
    *,
    now: datetime.datetime | None = None,
    human_agent: bool | None = None,
) -> ReplyWindow:
    """The window a member's reply falls in, from the time of the person's last message.

    Takes the time, not the contact, so that a list of conversations computes it per row without a query.
    """
    now = now or timezone.now()
    human_agent = human_agent_tag_enabled() if human_agent is None else human_agent
    if last_inbound_at is None:
        return ReplyWindow(REPLY_CLOSED, None, None, None, None, "",
                           "This person has never messaged the account: Instagram lets a business send a DM "
                           "only in reply to the person's own message.")
    standard_until = last_inbound_at + DM_WINDOW
    agent_until = last_inbound_at + HUMAN_AGENT_WINDOW if human_agent else None
    if now < standard_until:
        return ReplyWindow(REPLY_STANDARD, standard_until, standard_until, agent_until, None, "", "")
    if agent_until is not None and now < agent_until:
        return ReplyWindow(REPLY_HUMAN_AGENT, agent_until, standard_until, agent_until, None, HUMAN_AGENT_TAG, "")
    if human_agent:
        reason = (f"Instagram accepts a reply only within 7 days of the person's last message (after 24 hours, "
                  f"as a human agent's reply). Their last message was on {_when(last_inbound_at)}, so replies "
                  f"have been closed since {_when(agent_until)}. They can write again to reopen it.")
    else:
        reason = (f"Instagram accepts a reply only within 24 hours of the person's last message (replies as a "
                  f"human agent, up to 7 days, are not enabled for this app). Their last message was on "
                  f"{_when(last_inbound_at)}, so replies have been closed since {_when(standard_until)}. "
                  f"They can write again to reopen it.")
    return ReplyWindow(REPLY_CLOSED, None, standard_until, agent_until, agent_until or standard_until, "", reason)


def member_reply_window(contact: Contact, *, now: datetime.datetime | None = None) -> ReplyWindow:
    """`reply_window` for one contact: what the manual send path enforces and the inbox shows."""
    return reply_window(contact.last_inbound_at, now=now)
