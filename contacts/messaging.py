"""Sending to Instagram: the one outbound adapter (Send API and private replies), chosen by setting.

`send_message` is what automations and the inbox call. It enforces the messaging window for automated
messages (24 hours after the contact's last inbound message; 7 days for a private reply to a
comment) and Meta's rules for a member's reply (`windows.reply_window`: standard within 24 hours, tagged
HUMAN_AGENT up to 7 days, refused after), deduplicates on an idempotency key so a retried task never
sends twice, and hands the message to the backend named by INSTAGRAM_SEND_BACKEND: "outbox" (default: stored, not sent
anywhere; visible in the admin and the API) or "graph" (Meta's Graph API).
"""

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import User, Workspace
from contacts import pacing, windows
from contacts.instagram_connection import DISCONNECTED_REASON, connection_mark_broken
from contacts.models import Contact, Message
from inro.errors import ApplicationError
from inro.sql import pg_array

# The windows are computed in contacts/windows.py; these names stay for the callers that import them here.
DM_WINDOW = windows.DM_WINDOW
PRIVATE_REPLY_WINDOW = windows.PRIVATE_REPLY_WINDOW


@dataclass(frozen=True, slots=True)
class SendResult:
    status: str  # Message.Status value: sent, skipped_window, failed; or DISCONNECTED
    message: Message
    duplicate: bool = False  # the idempotency key had already been used: nothing was sent again


messaging_window_closes_at = windows.window_closes_at
window_is_open = windows.window_is_open


class OutboxBackend:
    """Default backend: the message is recorded as sent in the outbox table; nothing leaves."""

    # Delivering is storing: a batch can be stored as sent in one statement (`send_messages_bulk`).
    bulk = True

    def deliver(self, message: Message) -> str:
        return f"outbox.{message.pk}"


def private_reply_wait(*, workspace: Workspace) -> float:
    """Take one of the hour's private replies of the workspace's Instagram account (META_PRIVATE_REPLY_RATE):
    0.0 when taken, else the seconds until one frees (the reply waits its turn, and its 7-day window is
    checked when it is sent). A backend that does not reach Meta (the outbox) is never paced."""
    if not getattr(backend(), "paced", False) or not workspace.instagram_account_id:
        return 0.0
    return pacing.private_reply_slot(workspace.instagram_account_id)


def backend():
    path = {
        "outbox": "contacts.messaging.OutboxBackend",
        "graph": "contacts.meta.GraphBackend",
    }.get(settings.INSTAGRAM_SEND_BACKEND, settings.INSTAGRAM_SEND_BACKEND)
    return import_string(path)()


class DeliveryError(Exception):
    """Raised by a backend when Meta refused the message for good (after its own retries)."""

    # True when Meta rejected the workspace's token (error 190): the connection is broken, the
    # message waits for a reconnect instead of failing.
    token_rejected = False


# SendResult.status of an automated message Meta refused because the workspace's token was rejected:
# the message stays queued under its key, and the automation keeps it as a paused action.
DISCONNECTED = "instagram_disconnected"


def _token_rejected(workspace: Workspace, message: Message, origin: str) -> SendResult:
    connection_mark_broken(workspace_id=workspace.pk, reason="Instagram rejected the access token (error 190).")
    if origin == Message.Origin.AUTOMATED:
        # Left queued: sending it again under the same key (after a reconnect) finishes this row.
        Message.objects.filter(pk=message.pk).update(error=DISCONNECTED_REASON)
        message.refresh_from_db()
        return SendResult(DISCONNECTED, message)
    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.FAILED, error=f"{DISCONNECTED_REASON}: reconnect the account to send."
    )
    message.refresh_from_db()
    return SendResult(Message.Status.FAILED, message)


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
    """Send one message. Automated messages respect the window; manual ones are a human agent's reply
    (`windows.reply_window`: standard, tagged HUMAN_AGENT, or refused with ApplicationError and nothing
    stored).

    Activation is not this function's business: automations call the gate before calling this.
    """
    if contact.workspace_id != workspace.pk:
        raise ValueError("The contact belongs to another workspace.")
    if origin not in (Message.Origin.MANUAL, Message.Origin.AUTOMATED):
        raise ValueError(f"Unknown origin {origin!r}.")
    tag = ""
    if origin == Message.Origin.MANUAL and not reply_to_comment_id:
        # A member's reply: standard within 24 hours, with the HUMAN_AGENT tag up to 7 days, else refused
        # before anything is stored (Meta would refuse it; the outbox must not record it as sent).
        reply = windows.member_reply_window(contact)
        if not reply.can_reply:
            raise ApplicationError(reply.reason, code="reply_window_closed", status=409)
        tag = reply.tag
    if origin == Message.Origin.AUTOMATED and not windows.messaging_window(
        contact, reply_to_comment_id=reply_to_comment_id
    ).is_open:
        status = Message.Status.SKIPPED_WINDOW
    else:
        status = Message.Status.QUEUED
    try:
        with transaction.atomic():
            message = Message.objects.create(
                workspace=workspace, contact=contact, direction=Message.Direction.OUTBOUND, origin=origin,
                status=status, text=text, reply_to_comment_id=reply_to_comment_id,
                automation_ref=automation_ref, sent_by=sent_by, idempotency_key=idempotency_key, tag=tag,
            )
    except IntegrityError:
        existing = Message.objects.get(workspace=workspace, idempotency_key=idempotency_key)
        if existing.status != Message.Status.QUEUED:
            return SendResult(existing.status, existing, duplicate=True)
        # Still queued: the attempt that stored it died before handing it over (its worker was killed).
        # Finish it now, so the contact is not activated without its message; the row stays the only one.
        message, status = existing, Message.Status.QUEUED
    if status == Message.Status.SKIPPED_WINDOW:
        return SendResult(status, message)
    # The network call happens outside any transaction; the outcome is written after it.
    try:
        mid = backend().deliver(message)
    except DeliveryError as error:
        if getattr(error, "token_rejected", False):
            return _token_rejected(workspace, message, origin)
        Message.objects.filter(pk=message.pk).update(status=Message.Status.FAILED, error=str(error)[:2000])
        message.refresh_from_db()
        return SendResult(Message.Status.FAILED, message)
    Message.objects.filter(pk=message.pk).update(status=Message.Status.SENT, meta_mid=mid, sent_at=timezone.now())
    message.refresh_from_db()
    return SendResult(Message.Status.SENT, message)


@dataclass(frozen=True, slots=True)
class BulkSendResult:
    contact_id: int
    idempotency_key: str
    status: str  # Message.Status value: sent, skipped_window (or, for a duplicate, whatever it ended as)
    message_id: int
    duplicate: bool = False


def backend_sends_in_bulk() -> bool:
    """True when the configured backend delivers by storing (the outbox): `send_messages_bulk` applies."""
    return bool(getattr(backend(), "bulk", False))


_MESSAGES = Message._meta.db_table
_CONTACTS = Contact._meta.db_table
_INSERT_COLUMNS = (
    "workspace_id, contact_id, direction, origin, status, text, reply_to_comment_id, automation_ref,"
    " sent_by_id, meta_mid, idempotency_key, error, created_at, sent_at"
)
_message_id_sequence: dict[str, str] = {}


def send_messages_bulk(
    *,
    workspace: Workspace,
    items: Sequence[tuple[int, str]],
    text: str,
    origin: str = Message.Origin.AUTOMATED,
    automation_ref: str = "",
    now: datetime.datetime | None = None,
) -> list[BulkSendResult]:
    """`send_message` for a batch of (contact id, idempotency key) with the same text, in a fixed number
    of statements: for a backend that delivers by storing (the outbox, `backend_sends_in_bulk()`).

    Same rules as `send_message`: the contacts must be the workspace's (else ValueError, nothing
    written), automated messages respect the window (read from the contact rows in the same
    statement), and a key already used sends nothing again: its message is reported as a duplicate
    (one still queued, left by a per-message send that died before delivering, is finished now, as
    `send_message` does). New messages are stored as sent at once. Results follow the order of `items`.
    The caller's transaction, if any, holds the messages: roll it back and nothing was sent.
    """
    if not backend_sends_in_bulk():
        raise ValueError("This send backend delivers one message at a time: use send_message.")
    if origin == Message.Origin.MANUAL:
        # A member's reply has its own window and tag (`windows.reply_window`): one at a time, send_message.
        raise ValueError("Members' replies are sent one at a time with send_message.")
    if origin != Message.Origin.AUTOMATED:
        raise ValueError(f"Unknown origin {origin!r}.")
    if not items:
        return []
    keys = [key for _, key in items]
    if not all(keys) or len(set(keys)) != len(keys):
        raise ValueError("Each message of a bulk send needs its own idempotency key.")
    now = now or timezone.now()
    # Open while now < last_inbound_at + 24 h (window_is_open), i.e. last_inbound_at > now - 24 h.
    cutoff = windows.dm_window_cutoff(now)
    with transaction.atomic():  # a savepoint in the caller's transaction: a refusal leaves it usable
        inserted = _insert(workspace.pk, items, text, origin, automation_ref, now, cutoff)
        missing = [key for key in keys if key not in inserted]
        existing = _existing(workspace.pk, missing, now) if missing else {}
        results = []
        for contact_id, key in items:
            if key in inserted:
                message_id, status = inserted[key]
                results.append(BulkSendResult(contact_id, key, status, message_id))
            elif key in existing:
                message_id, status = existing[key]
                results.append(BulkSendResult(contact_id, key, status, message_id, duplicate=True))
            else:
                # Not inserted and no message under its key: the contact is not the workspace's.
                raise ValueError("The contact belongs to another workspace.")
    return results


def _status_sql(cutoff: datetime.datetime | None) -> tuple[str, list]:
    sent, skipped = Message.Status.SENT.value, Message.Status.SKIPPED_WINDOW.value
    if cutoff is None:
        return "%s", [sent]
    return "CASE WHEN c.last_inbound_at > %s THEN %s ELSE %s END", [cutoff, sent, skipped]


def _insert(workspace_id, items, text, origin, automation_ref, now, cutoff) -> dict[str, tuple[int, str]]:
    status_sql, status_params = _status_sql(cutoff)
    with connection.cursor() as cursor:
        sequence = _message_id_sequence.get(connection.alias)
        if sequence is None:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [_MESSAGES])
            sequence = _message_id_sequence[connection.alias] = cursor.fetchone()[0]
        # The id is drawn first so that the outbox's message id ("outbox.<id>", what OutboxBackend.deliver
        # returns) is written by the same INSERT; keys already used are left alone (ON CONFLICT).
        cursor.execute(
            f"INSERT INTO {_MESSAGES} (id, {_INSERT_COLUMNS})"  # noqa: S608
            " SELECT m.id, %s, m.contact_id, %s, %s, m.status, %s, '', %s, NULL,"
            " CASE WHEN m.status = %s THEN 'outbox.' || m.id ELSE '' END, m.key, '', %s,"
            " CASE WHEN m.status = %s THEN %s::timestamptz END"
            f" FROM (SELECT nextval(%s) AS id, c.id AS contact_id, t.key, {status_sql} AS status"
            " FROM unnest(%s::bigint[], %s::text[]) WITH ORDINALITY AS t(contact_id, key, position)"
            # One primary-key probe per item (OFFSET 0: not flattened into a hash of the workspace;
            # `+ 0`: never a workspace index the statistics may wrongly favour for a new workspace).
            f" CROSS JOIN LATERAL (SELECT c.id, c.last_inbound_at FROM {_CONTACTS} c"
            " WHERE c.id = t.contact_id AND c.workspace_id + 0 = %s OFFSET 0) AS c ORDER BY t.position) AS m"
            " ON CONFLICT DO NOTHING RETURNING idempotency_key, id, status",
            [workspace_id, Message.Direction.OUTBOUND.value, origin, text, automation_ref,
             Message.Status.SENT.value, now, Message.Status.SENT.value, now,
             sequence, *status_params, pg_array(c for c, _ in items), pg_array(k for _, k in items), workspace_id],
        )
        return {key: (message_id, status) for key, message_id, status in cursor.fetchall()}


def _existing(workspace_id: int, keys: list[str], now: datetime.datetime) -> dict[str, tuple[int, str]]:
    """Messages already stored under these keys; one still queued is finished (delivered) now."""
    found = {
        key: (message_id, status)
        for key, message_id, status in Message.objects.filter(workspace_id=workspace_id, idempotency_key__in=keys)
        .exclude(idempotency_key="")  # the condition of the unique index, so that it is used
        .values_list("idempotency_key", "id", "status")
    }
    queued = [message_id for message_id, status in found.values() if status == Message.Status.QUEUED]
    for message_id in queued:
        # Rare (a per-message send died between storing and delivering): the outbox delivers by storing.
        Message.objects.filter(pk=message_id, status=Message.Status.QUEUED).update(
            status=Message.Status.SENT, meta_mid=f"outbox.{message_id}", sent_at=now
        )
    if queued:
        found = {key: (message_id, Message.Status.SENT.value if status == Message.Status.QUEUED else status)
                 for key, (message_id, status) in found.items()}
    return found


# --- concurrent sends: the database work batched around calls to Meta made by a pool of threads --------


@dataclass(frozen=True, slots=True)
class Prepared:
    """A message stored under its key before its send: `status` queued (deliver it now) unless the key
    was used before (`duplicate`: that earlier attempt's status; still queued, its outcome is unknown)."""

    contact_id: int
    idempotency_key: str
    message_id: int
    status: str
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """What Meta answered for one prepared message: sent (with its id), failed, or DISCONNECTED."""

    message_id: int
    status: str
    meta_mid: str = ""
    error: str = ""


def messages_prepare(
    *, workspace: Workspace, items: Sequence[tuple[int, str]], text: str, automation_ref: str = "",
    now: datetime.datetime | None = None,
) -> list[Prepared]:
    """Store automated messages as queued under their keys, in one statement, before they are sent
    (`MessageSender.deliver`, then `deliveries_record`). Results follow the order of `items`. The caller
    has checked the window. A contact not the workspace's: ValueError, nothing stored."""
    if not items:
        return []
    keys = [key for _, key in items]
    if not all(keys) or len(set(keys)) != len(keys):
        raise ValueError("Each prepared message needs its own idempotency key.")
    now = now or timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_MESSAGES} ({_INSERT_COLUMNS})"  # noqa: S608
                " SELECT %s, c.id, %s, %s, %s, %s, '', %s, NULL, '', t.key, '', %s, NULL"
                " FROM unnest(%s::bigint[], %s::text[]) WITH ORDINALITY AS t(contact_id, key, position)"
                f" JOIN {_CONTACTS} c ON c.id = t.contact_id AND c.workspace_id = %s"
                " ORDER BY t.position ON CONFLICT DO NOTHING RETURNING idempotency_key, id",
                [workspace.pk, Message.Direction.OUTBOUND.value, Message.Origin.AUTOMATED.value,
                 Message.Status.QUEUED.value, text, automation_ref, now,
                 pg_array(c for c, _ in items), pg_array(keys), workspace.pk],
            )
            inserted = dict(cursor.fetchall())
        missing = [key for key in keys if key not in inserted]
        earlier = Message.objects.filter(workspace_id=workspace.pk, idempotency_key__in=missing).exclude(
            idempotency_key="").values_list("idempotency_key", "id", "status") if missing else []
        existing = {key: (message_id, status) for key, message_id, status in earlier}
        results = []
        for contact_id, key in items:
            if key in inserted:
                results.append(Prepared(contact_id, key, inserted[key], Message.Status.QUEUED.value))
            elif key in existing:
                results.append(Prepared(contact_id, key, existing[key][0], existing[key][1], duplicate=True))
            else:
                raise ValueError("The contact belongs to another workspace.")
    return results


class MessageSender:
    """Delivers prepared messages of one workspace from any thread: touches no database (the backend's
    per-workspace context, e.g. the Instagram credentials, is read once, here, by the caller's thread)."""

    def __init__(self, *, workspace: Workspace) -> None:
        self.workspace_id = workspace.pk
        self._backend = backend()
        prepare = getattr(self._backend, "workspace_context", None)
        self._context = prepare(workspace_id=workspace.pk) if prepare is not None else None

    def deliver(self, *, message_id: int, contact: Contact, text: str, automation_ref: str = "") -> Delivery:
        message = Message(pk=message_id, workspace_id=self.workspace_id, contact=contact, text=text,
                          direction=Message.Direction.OUTBOUND, origin=Message.Origin.AUTOMATED,
                          status=Message.Status.QUEUED, automation_ref=automation_ref)
        try:
            if self._context is not None:
                mid = self._backend.deliver(message, context=self._context)
            else:
                mid = self._backend.deliver(message)
        except DeliveryError as error:
            if getattr(error, "token_rejected", False):
                return Delivery(message_id, DISCONNECTED, error=DISCONNECTED_REASON)
            return Delivery(message_id, Message.Status.FAILED.value, error=str(error)[:2000])
        return Delivery(message_id, Message.Status.SENT.value, meta_mid=mid)


def deliveries_record(*, workspace: Workspace, deliveries: Sequence[Delivery],
                      now: datetime.datetime | None = None) -> None:
    """Write what Meta answered for prepared messages, in one statement (only rows still queued). A
    DISCONNECTED one stays queued (sent under its key after a reconnect) and breaks the connection."""
    if not deliveries:
        return
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_MESSAGES} m SET status = CASE WHEN v.status = %s THEN m.status ELSE v.status END,"  # noqa: S608
            " meta_mid = v.mid, error = v.error, sent_at = CASE WHEN v.status = %s THEN %s::timestamptz END"
            " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) AS v(id, status, mid, error)"
            " WHERE m.id = v.id AND m.status = %s",
            [DISCONNECTED, Message.Status.SENT.value, now, pg_array(d.message_id for d in deliveries),
             pg_array(d.status for d in deliveries), pg_array(d.meta_mid for d in deliveries),
             pg_array(d.error for d in deliveries), Message.Status.QUEUED.value],
        )
    if any(d.status == DISCONNECTED for d in deliveries):
        connection_mark_broken(workspace_id=workspace.pk, reason="Instagram rejected the access token (error 190).")
