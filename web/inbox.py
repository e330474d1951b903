"""The inbox's reads: one row per conversation, newest activity first, for the web page and the API.

Here, in the interface layer, because a row brings together what three domain apps hold: the contact and
its messages (contacts), whether it was activated this month (billing) and whether an automation for it
is paused at the quota (automations). Read only.

A page is two SQL statements whatever the size of the workspace: one walks the keyset index
(workspace, last_activity_at desc, contact desc) of contacts_conversation, which the message trigger
keeps current (contacts 0012),
joining each row's last message by primary key; the other completes the page's rows with index probes
(the member's read mark and the person's messages after it, a waiting paused action, an activation
this month).
"""

import base64
import datetime
import hashlib
import re
from dataclasses import dataclass

from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from accounts.models import Membership
from automations.models import PausedAction
from billing.models import ActivationRecord
from billing.months import month_of
from contacts import windows
from contacts.models import Contact, Conversation, ConversationRead, Message
from inro.sql import pg_array

# How far behind the newest activity a `since` poll looks again: the person's messages carry Meta's
# time, which may be a little older than a message stored just before them.
SINCE_SLACK = datetime.timedelta(minutes=10)
# Microseconds since 1970 and a message id; 18 digits each keep any well-formed token a valid bigint.
SINCE_PATTERN = r"^[0-9]{1,18}\.[0-9]{1,18}$"
_SINCE = re.compile(r"([0-9]{1,18})\.([0-9]{1,18})")
_SINCE_MAX_MICROS = 253_402_300_799_000_000  # the end of year 9999

PERSON, MEMBER, AUTOMATION = "person", "member", "automation"
_SENDERS = {Message.Origin.CONTACT: PERSON, Message.Origin.MANUAL: MEMBER, Message.Origin.AUTOMATED: AUTOMATION}


@dataclass(frozen=True, slots=True)
class Since:
    """Where a poll left off: the newest conversation it saw (its activity time and last message id)."""

    activity_at: datetime.datetime
    message_id: int

    def token(self) -> str:
        micros = int(self.activity_at.timestamp() * 1_000_000)
        return f"{micros}.{self.message_id}"

    @classmethod
    def parse(cls, token: str) -> "Since | None":
        match = _SINCE.fullmatch(token or "")
        if not match:
            return None
        # Past year 9999 is simply "after everything": nothing is newer (not an error for a well-formed token).
        micros, message_id = min(int(match[1]), _SINCE_MAX_MICROS), int(match[2])
        moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(microseconds=micros)
        return cls(moment, message_id)


def conversation_list(
    *,
    membership: Membership,
    unread: bool | None = None,
    waiting: bool | None = None,
    limited: bool | None = None,
    source: str | None = None,
    since: Since | None = None,
) -> QuerySet[Conversation]:
    """The workspace's conversations as seen by one member, newest activity first (order by
    -last_activity_at, -contact), with their contact and last message (and its sender). `since`: only
    conversations with a message after that point. Complete a page's rows with
    `conversation_rows_complete` (unread count, limited, activated): for a page those are per-row index
    probes, which a planner estimating a million rows would otherwise hash over the whole workspace."""
    rows = (
        Conversation.objects.filter(workspace_id=membership.workspace_id)
        .select_related("contact", "last_message__sent_by")
        .only("contact_id", "workspace_id", "last_activity_at", "last_message_id",
              "contact__id", "contact__workspace_id", "contact__username", "contact__name", "contact__source",
              "contact__igsid", "contact__last_inbound_at",
              "last_message__id", "last_message__direction", "last_message__origin", "last_message__status",
              "last_message__text", "last_message__created_at", "last_message__tag",
              "last_message__sent_by__id", "last_message__sent_by__email", "last_message__sent_by__full_name")
    )
    if source:
        rows = rows.filter(contact__source=source)
    if waiting is not None:
        person_last = Q(last_message__direction=Message.Direction.INBOUND)
        rows = rows.filter(person_last) if waiting else rows.exclude(person_last)
    if unread is not None:
        # Nested in the message subquery: the conversation is the outer query's outer row.
        read_mark = ConversationRead.objects.filter(membership=membership,
                                                    contact_id=OuterRef(OuterRef("contact_id")))
        after_mark = Message.objects.filter(
            contact_id=OuterRef("contact_id"), direction=Message.Direction.INBOUND,
            id__gt=Coalesce(Subquery(read_mark.values("last_read_message_id")[:1]), Value(0)),
        )
        rows = rows.filter(Exists(after_mark)) if unread else rows.exclude(Exists(after_mark))
    if limited is not None:
        paused = Exists(PausedAction.objects.filter(contact_id=OuterRef("contact_id"),
                                                    status=PausedAction.Status.WAITING))
        rows = rows.filter(paused) if limited else rows.exclude(paused)
    if since is not None:
        rows = rows.filter(last_activity_at__gte=since.activity_at - SINCE_SLACK,
                           last_message_id__gt=since.message_id)
    return rows.order_by(F("last_activity_at").desc(), F("contact_id").desc())


_EXTRAS = f"""
SELECT c.id,
    (SELECT count(*) FROM {Message._meta.db_table} m WHERE m.contact_id = c.id AND m.direction = %s
        AND m.id > coalesce((SELECT r.last_read_message_id FROM {ConversationRead._meta.db_table} r
                             WHERE r.membership_id = %s AND r.contact_id = c.id), 0)),
    EXISTS (SELECT 1 FROM {PausedAction._meta.db_table} p WHERE p.contact_id = c.id AND p.status = %s),
    EXISTS (SELECT 1 FROM {ActivationRecord._meta.db_table} a
            WHERE a.workspace_id = %s AND a.month = %s AND a.contact_id = c.id)
FROM unnest(%s::bigint[]) AS c(id)
"""  # noqa: S608 - table names only


def conversation_rows_complete(*, membership: Membership, rows: list[Conversation]) -> list[Conversation]:
    """Set each row's `unread` (the person's messages after this member's read mark), `limited` (an
    automation for them is paused) and `activated` (this month): one statement for the page."""
    if not rows:
        return rows
    with connection.cursor() as cursor:
        cursor.execute(_EXTRAS, [Message.Direction.INBOUND.value, membership.pk, PausedAction.Status.WAITING.value,
                                 membership.workspace_id, month_of(), pg_array(row.contact_id for row in rows)])
        extras = {contact_id: (unread, limited, activated) for contact_id, unread, limited, activated in cursor}
    for row in rows:
        row.unread, row.limited, row.activated = extras.get(row.contact_id, (0, False, False))
    return rows


def conversation_get(*, membership: Membership, contact_id: int) -> Conversation | None:
    """One conversation row (as in `conversation_list`, completed), or None when it is not one."""
    row = conversation_list(membership=membership).filter(contact_id=contact_id).first()
    return conversation_rows_complete(membership=membership, rows=[row])[0] if row else None


def since_of(rows: list[Conversation], since: Since | None = None) -> Since | None:
    """The `since` a client sends next: the newest point among the rows it was given (or the one it sent)."""
    points = [Since(row.last_activity_at, row.last_message_id) for row in rows]
    if since is not None:
        points.append(since)
    return max(points, key=lambda p: (p.message_id, p.activity_at), default=None)


def sender_of(message: Message | None) -> str | None:
    return _SENDERS.get(message.origin) if message is not None else None


def reply_window_of(contact: Contact, *, now: datetime.datetime | None = None) -> windows.ReplyWindow:
    """The window a member's reply to this conversation falls in: the very function sending enforces."""
    return windows.member_reply_window(contact, now=now)


def etag_for(content: bytes) -> str:
    """A strong ETag for a rendered list: the same rows, read state and windows give the same tag."""
    return '"' + base64.urlsafe_b64encode(hashlib.sha256(content).digest()[:18]).decode() + '"'


def if_none_match(header: str | None, etag: str) -> bool:
    """True when the client's If-None-Match names `etag` (or is "*")."""
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags
