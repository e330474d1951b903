"""Instagram intake: turn a stored Meta webhook delivery into contacts, inbound messages and events.

Capture is free and unlimited (docs/product.md, "Contact"): nothing here calls the activation
gate. Automations learn about captured events through `contacts.hooks` (after commit).

Payload shapes (Meta's Instagram webhooks, `object: "instagram"`):
- `entry[].messaging[]`: `sender.id` (the contact's IGSID), `recipient.id`, `timestamp` (ms) and one
  of `message` (mid, text, quick_reply.payload, reply_to.story, attachments[type=story_mention],
  referral for ads, is_echo for our own messages), `postback` (mid, title, payload) or `referral`
  (source "ADS", type "OPEN_THREAD", ad_id, ref);
- `entry[].changes[]`: `field` "comments" / "live_comments" (value: id, text, from{id, username},
  media{id, media_product_type, ad_id}) and "mentions" (value: media_id, comment_id). Messaging
  fields delivered as changes (`field: "messages"`, value in the messaging shape) are read too.
Anything else (reads, reactions, unknown fields) is ignored without failing the delivery.
"""

import datetime
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Workspace
from contacts import enqueue, instagram, windows
from contacts.hooks import InboundEvent, inbound_event_captured
from contacts.models import CapturedEvent, Contact, Message, PendingMention, WebhookDelivery
from inro.celery import app as celery_app
from inro.sql import LibpqStatement
from inro.untrusted import json_clean

logger = logging.getLogger(__name__)

# Events that are direct messages in the inbox: stored as inbound Messages.
DM_TYPES = frozenset({"message", "quick_reply", "story_reply", "story_mention", "postback"})
UNSEND = "unsend"
# A mention whose author Meta's notification does not name: stored as a PendingMention, looked up later.
MENTION_LOOKUP = "mention_lookup"
MESSAGING_CHANGE_FIELDS = frozenset({"messages", "messaging_postbacks", "messaging_referral"})
# Errors worth retrying: the database went away or timed out, not a bug in the payload or the code.
RETRYABLE_ERRORS = (OperationalError, InterfaceError)
_MAX_ID = 64
_MAX_META_ID = 255


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    account_id: str  # entry.id: the workspace's Instagram professional account
    type: str
    sender_id: str  # the contact's IGSID
    meta_id: str  # dedupe key, unique per workspace
    occurred_at: datetime.datetime
    source: str  # Contact.Source on first capture
    username: str = ""
    text: str = ""
    media_id: str = ""
    comment_id: str = ""
    referral_source: str = ""
    ad_id: str = ""
    payload: str = ""
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Receiving


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


_DELIVERIES = WebhookDelivery._meta.db_table
# One statement, one round trip, committed on its own (autocommit): the delivery is durable before
# the view answers 200. A redelivered body (same digest) inserts nothing and returns no row.
_STORE_SQL = (
    f"INSERT INTO {_DELIVERIES} (received_at, body, body_sha256, signature_valid, status, attempts,"  # noqa: S608
    " events_captured, note, error) VALUES ({}, {}, {}, {}, {}, 0, 0, '', '')"
    " ON CONFLICT (body_sha256) DO NOTHING RETURNING id"
)
# The store runs as a statement prepared once per connection, straight through libpq
# (bench/NOTES.md, "Webhook intake"): the body goes as a bound parameter, the server skips parse and
# plan, and the client skips psycopg's per-execute work. Off with META_WEBHOOK_PREPARED_STATEMENTS=false,
# behind a transaction pooler (DATABASE_PGBOUNCER_TRANSACTION_POOLING), while queries are logged or
# wrapped (DEBUG, tests that count queries, instrumentation) and inside a transaction: then Django's
# cursor runs the same statement.
_STORE_STATEMENT = LibpqStatement("inro_intake_store", _STORE_SQL.format("$1", "$2", "$3", "$4", "$5"),
                                  setting="META_WEBHOOK_PREPARED_STATEMENTS")
_STORE_SQL_DJANGO = _STORE_SQL.format("%s", "%s", "%s", "%s", "%s")


def _store_row(db, *, received_at: datetime.datetime, body: bytes, text: str, digest: str,
               signature_valid: bool) -> int | None:
    """Insert the delivery; its id, or None when a delivery with this digest is already stored."""
    if b"\x00" not in body and _STORE_STATEMENT.usable(db):  # NUL: Django's cursor gives the clear error
        rows = _STORE_STATEMENT.rows(db, [received_at.isoformat().encode(), body, digest.encode(),
                                          b"t" if signature_valid else b"f",
                                          WebhookDelivery.Status.PENDING.value.encode()])
        return int(rows[0][0]) if rows else None
    with db.cursor() as cursor:
        cursor.execute(_STORE_SQL_DJANGO, [db.ops.adapt_datetimefield_value(received_at), text, digest,
                                           signature_valid, WebhookDelivery.Status.PENDING.value])
        row = cursor.fetchone()
    return row[0] if row else None


def delivery_store(*, body: bytes, signature_valid: bool) -> tuple[WebhookDelivery, bool]:
    """Store a verified delivery raw, then nudge the drain (after commit); returns (delivery, created).

    An identical body (Meta redelivering the same notification) is stored once; if it is still
    pending the drain is nudged again, which is harmless because processing is idempotent.
    """
    digest = body_digest(body)
    text = body.decode("utf-8")
    db = connections[WebhookDelivery.objects.db]
    for _ in range(3):
        received_at = timezone.now()
        delivery_id = _store_row(db, received_at=received_at, body=body, text=text, digest=digest,
                                 signature_valid=signature_valid)
        if delivery_id is not None:
            delivery = WebhookDelivery(id=delivery_id, received_at=received_at, body=text, body_sha256=digest,
                                       signature_valid=signature_valid)
            created = True
            break
        # The rare case: the same body was stored before. Read what is there (a concurrent insert of
        # the same body has committed by now: ON CONFLICT waited for it).
        delivery = WebhookDelivery.objects.filter(body_sha256=digest).first()
        created = False
        if delivery is not None:
            break
        # Deleted in between (pruned after its retention period): store it again.
    else:  # pragma: no cover - three prunes in a row
        raise RuntimeError(f"Could not store the delivery with digest {digest}.")
    if delivery.status == WebhookDelivery.Status.PENDING:
        transaction.on_commit(_nudge_drain)
    return delivery, created


def _queue(delivery_id: int) -> None:
    """Queue the processing of one delivery (staff replay); a broker outage is left to the sweeper."""
    try:
        enqueue.process_instagram_delivery(delivery_id)
    except Exception:
        # The delivery is stored and Meta has its 200: the sweeper processes it once the broker is back.
        logger.exception("Could not queue Instagram delivery %s; the sweeper will pick it up.", delivery_id)


class DrainNudge:
    """Publish the drain task at most twice per `window` seconds in this process: once at once, and
    once more at the end of the window if deliveries arrived in between (throttle with a trailing edge).

    One Celery message per delivery cost the web request a broker round trip; a drain picks up every
    pending delivery, so one nudge covers all that arrived before it runs. The trailing publish makes
    sure the last deliveries of a burst do not wait for the sweeper; the sweeper still covers a nudge
    lost to a broker outage. With tasks run inline (CELERY_TASK_ALWAYS_EAGER) there is no broker to
    spare and every call drains at once.
    """

    def __init__(self, *, window: float, publish: Callable[[float | None], None],
                 clock: Callable[[], float] = time.monotonic, eager: Callable[[], bool] = lambda: False):
        self.window = window
        self._publish = publish
        self._clock = clock
        self._eager = eager
        self._lock = threading.Lock()
        self._window_started = -math.inf
        self._trailing_sent = False

    def __call__(self) -> None:
        if self._eager():
            self._publish(None)
            return
        now = self._clock()
        with self._lock:
            if now - self._window_started >= self.window:
                self._window_started, self._trailing_sent = now, False
                countdown = None
            elif not self._trailing_sent:
                self._trailing_sent = True
                countdown = max(self._window_started + self.window - now, 0.0)
            else:
                return  # the trailing drain of this window will see this delivery
        self._publish(countdown)


def _publish_drain(countdown: float | None) -> None:
    try:
        enqueue.drain_instagram_deliveries(countdown=countdown)
    except Exception:
        # The deliveries are stored and Meta has its 200: the sweeper processes them once the broker is back.
        logger.exception("Could not queue the drain of Instagram deliveries; the sweeper will pick them up.")


def _tasks_run_inline() -> bool:
    # Read on every delivery: seed_demo and some tests switch it at run time.
    return bool(celery_app.conf.task_always_eager)


_nudge_drain = DrainNudge(window=settings.META_WEBHOOK_DRAIN_NUDGE_SECONDS, publish=_publish_drain,
                          eager=_tasks_run_inline)


# ---------------------------------------------------------------------------------------------
# Parsing (pure: no database)


def _id(value) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    text = str(value).strip()
    return text if 0 < len(text) <= _MAX_ID else ""


def _str(value, limit: int | None = None) -> str:
    if not isinstance(value, str):
        return ""
    return value[:limit] if limit else value


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _time(value, *, fallback: datetime.datetime, now: datetime.datetime) -> datetime.datetime:
    """Meta's timestamps are epoch milliseconds (messaging) or seconds (some entry.time values).

    Never in the future: a clock ahead of ours must not keep a messaging window open longer.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return fallback
    seconds = value / 1000 if value > 100_000_000_000 else value
    try:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return fallback
    return min(moment, now)


def parse_delivery(payload: dict, *, now: datetime.datetime) -> tuple[list[ParsedEvent], list[str]]:
    """The events of one delivery, in order, and notes on what was skipped and why."""
    events: list[ParsedEvent] = []
    notes: list[str] = []
    if payload.get("object") != "instagram":
        notes.append(f"Ignored: object is {payload.get('object')!r}, not 'instagram'.")
        return events, notes
    for entry in _list(payload.get("entry")):
        entry = _dict(entry)
        account_id = _id(entry.get("id"))
        if not account_id:
            notes.append("Skipped an entry without an account id.")
            continue
        entry_time = _time(entry.get("time"), fallback=now, now=now)
        for item in _list(entry.get("messaging")):
            _parse_messaging(account_id, _dict(item), entry_time, now, events, notes)
        for change in _list(entry.get("changes")):
            change = _dict(change)
            name = change.get("field")
            value = _dict(change.get("value"))
            if name in ("comments", "live_comments"):
                _parse_comment(account_id, name, value, entry_time, events, notes)
            elif name == "mentions":
                _parse_mention(account_id, value, entry_time, events, notes)
            elif name in MESSAGING_CHANGE_FIELDS:
                _parse_messaging(account_id, value, entry_time, now, events, notes)
            else:
                notes.append(f"Ignored field {name!r}.")
    return events, notes


def _referral_fields(referral: dict) -> dict:
    source = _str(referral.get("source"), 32)
    return {
        "referral_source": source,
        "ad_id": _id(referral.get("ad_id")),
        "ref": _str(referral.get("ref"), 255),
        "referral_type": _str(referral.get("type"), 32),
    }


def _parse_messaging(account_id, item, entry_time, now, events, notes) -> None:
    sender_id = _id(_dict(item.get("sender")).get("id"))
    occurred_at = _time(item.get("timestamp"), fallback=entry_time, now=now)
    message, postback, referral = _dict(item.get("message")), _dict(item.get("postback")), _dict(item.get("referral"))
    if message and message.get("is_echo"):
        return  # our own message coming back: not the contact writing in
    if not (message or postback or referral):
        return  # read receipts, reactions, seen: nothing to capture
    if not sender_id:
        notes.append("Skipped a messaging event without a sender id.")
        return
    if sender_id == account_id:
        return  # the professional account itself
    base = {"account_id": account_id, "sender_id": sender_id, "occurred_at": occurred_at}
    if message:
        mid = _str(message.get("mid"))
        if message.get("is_deleted"):
            # The person unsent the message: its text is blanked where we stored it; nothing fires.
            if mid and len(mid) <= _MAX_META_ID:
                events.append(ParsedEvent(**base, type=UNSEND, meta_id=mid, source=Contact.Source.DM))
            return
        if not mid or len(mid) > _MAX_META_ID:
            notes.append(f"Skipped a message from {sender_id} without a usable mid.")
            return
        attachments = [_dict(a) for a in _list(message.get("attachments"))]
        mention = next((a for a in attachments if a.get("type") == "story_mention"), None)
        story = _dict(_dict(message.get("reply_to")).get("story"))
        quick_reply = _dict(message.get("quick_reply"))
        ref = _referral_fields(_dict(message.get("referral")))
        extra = {"attachment_types": [_str(a.get("type"), 32) for a in attachments]}
        if ref["ref"]:
            extra["ref"] = ref["ref"]
        if mention is not None:
            kind, source = "story_mention", Contact.Source.STORY
            extra["story_url"] = _str(_dict(mention.get("payload")).get("url"), 2000)
        elif story:
            kind, source = "story_reply", Contact.Source.STORY
            extra["story_url"] = _str(story.get("url"), 2000)
            extra["story_id"] = _id(story.get("id"))
        elif quick_reply:
            kind, source = "quick_reply", Contact.Source.DM
        else:
            kind, source = "message", Contact.Source.DM
        if ref["referral_source"] == "ADS":
            # A message that started from a click-to-DM ad: the lead comes from a paid ad.
            source = Contact.Source.PAID_AD
        events.append(ParsedEvent(
            **base, type=kind, meta_id=mid, source=source, text=_str(message.get("text")),
            media_id=extra.get("story_id", ""), referral_source=ref["referral_source"], ad_id=ref["ad_id"],
            payload=_str(quick_reply.get("payload"), 1000), extra=extra,
        ))
    elif postback:
        mid = _str(postback.get("mid"))
        if not mid or len(mid) > _MAX_META_ID:
            notes.append(f"Skipped a postback from {sender_id} without a usable mid.")
            return
        ref = _referral_fields(_dict(postback.get("referral")))
        source = Contact.Source.PAID_AD if ref["referral_source"] == "ADS" else Contact.Source.DM
        events.append(ParsedEvent(
            **base, type="postback", meta_id=mid, source=source, text=_str(postback.get("title"), 1000),
            payload=_str(postback.get("payload"), 1000), referral_source=ref["referral_source"], ad_id=ref["ad_id"],
            extra={"ref": ref["ref"]} if ref["ref"] else {},
        ))
    else:
        ref = _referral_fields(referral)
        source = Contact.Source.PAID_AD if ref["referral_source"] == "ADS" else Contact.Source.DM
        # A referral has no mid of its own: the sender and Meta's timestamp identify it.
        meta_id = f"referral:{sender_id}:{item.get('timestamp')}"[:_MAX_META_ID]
        events.append(ParsedEvent(
            **base, type="referral", meta_id=meta_id, source=source, referral_source=ref["referral_source"],
            ad_id=ref["ad_id"], payload=ref["ref"],
            extra={k: v for k, v in (("ref", ref["ref"]), ("referral_type", ref["referral_type"])) if v},
        ))


def _parse_comment(account_id, name, value, entry_time, events, notes) -> None:
    comment_id = _id(value.get("id"))
    author = _dict(value.get("from"))
    sender_id = _id(author.get("id"))
    if not comment_id or not sender_id:
        notes.append(f"Skipped a {name} change without a comment id or author.")
        return
    if sender_id == account_id:
        return  # the brand answering in its own comments
    media = _dict(value.get("media"))
    ad_id = _id(media.get("ad_id")) or _id(value.get("ad_id"))
    extra = {"media_product_type": _str(media.get("media_product_type"), 32)}
    parent_id = _id(value.get("parent_id"))
    if parent_id:
        extra["parent_id"] = parent_id
    events.append(ParsedEvent(
        account_id=account_id, type="live_comment" if name == "live_comments" else "comment",
        sender_id=sender_id, meta_id=comment_id, occurred_at=entry_time,
        # A comment on an ad is a paid-ad lead (docs/product.md, sources), any other an organic post's.
        source=Contact.Source.PAID_AD if ad_id else Contact.Source.ORGANIC_POST,
        username=_str(author.get("username"), 64), text=_str(value.get("text")),
        media_id=_id(media.get("id")), comment_id=comment_id, ad_id=ad_id,
        referral_source="ADS" if ad_id else "", extra=extra,
    ))


def _parse_mention(account_id, value, entry_time, events, notes) -> None:
    media_id = _id(value.get("media_id"))
    comment_id = _id(value.get("comment_id"))
    author = _dict(value.get("from"))
    sender_id = _id(author.get("id"))
    if not (media_id or comment_id):
        notes.append("Skipped a mention without a media or comment id.")
        return
    if not sender_id:
        # Meta's mention notification names the media and comment, not who wrote it: the author is looked
        # up later with the workspace's token (contacts.mentions.mention_resolve), never blocking intake.
        events.append(ParsedEvent(
            account_id=account_id, type=MENTION_LOOKUP, sender_id="",
            meta_id=comment_id or f"mention:{media_id}", occurred_at=entry_time,
            source=Contact.Source.COLLABORATION, media_id=media_id, comment_id=comment_id,
        ))
        return
    if sender_id == account_id:
        return
    events.append(ParsedEvent(
        account_id=account_id, type="mention", sender_id=sender_id,
        meta_id=comment_id or f"mention:{media_id}", occurred_at=entry_time, source=Contact.Source.COLLABORATION,
        username=_str(author.get("username"), 64), text=_str(value.get("text")), media_id=media_id,
        comment_id=comment_id,
    ))


# ---------------------------------------------------------------------------------------------
# Processing


class _AlreadyCaptured(Exception):
    pass


def delivery_process(*, delivery_id: int, now: datetime.datetime | None = None) -> WebhookDelivery | None:
    """Capture everything in a stored delivery, once. Safe to run twice and from two workers at once.

    All events of a delivery are captured in one transaction with the delivery marked processed, so a
    crash midway leaves it pending and a rerun starts clean. The attempt is counted (committed) before
    the processing starts: past META_WEBHOOK_MAX_ATTEMPTS attempts that never finished, the delivery is
    marked failed instead of being tried again. Database outages propagate (the task retries with
    backoff); anything else marks the delivery failed with the error.
    """
    now = now or timezone.now()
    if not WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).update(
        attempts=F("attempts") + 1
    ):
        return WebhookDelivery.objects.filter(pk=delivery_id).first()
    try:
        with transaction.atomic():
            # The row lock makes a second worker (drain, task and sweeper racing) wait, then see "processed".
            delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
            if delivery.status != WebhookDelivery.Status.PENDING:
                return delivery
            if delivery.attempts > settings.META_WEBHOOK_MAX_ATTEMPTS:
                _give_up(delivery, now)
                return delivery
            _capture_and_mark_processed(delivery, now)
            return delivery
    except RETRYABLE_ERRORS:
        raise
    except Exception as error:
        logger.exception("Instagram delivery %s failed", delivery_id)
        WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).update(
            status=WebhookDelivery.Status.FAILED, error=_error_text(error), processed_at=now
        )
        return WebhookDelivery.objects.filter(pk=delivery_id).first()


def deliveries_drain(*, limit: int, now: datetime.datetime | None = None) -> tuple[int, bool]:
    """Process pending deliveries that no worker has started yet, oldest first, each in its own
    transaction; returns (how many were handled, whether `limit` stopped the drain with deliveries
    possibly left).

    Each delivery is first claimed: its attempt is counted and committed (FOR UPDATE SKIP LOCKED, so
    drains running side by side, one per nudge, share the backlog instead of queueing on the same row).
    Then it is processed under its row lock. A claimed delivery is never taken by a drain again: if the
    worker dies on it, or the database goes away midway (the error propagates and the task retries),
    it stays pending for the sweeper, which counts every further attempt and gives up after
    META_WEBHOOK_MAX_ATTEMPTS. Without the claim, a delivery that kills its worker would be taken
    first again by every drain (tasks are acknowledged late and requeued when their worker is lost):
    a crash loop. Anything else marks the delivery failed with the error.
    """
    handled = 0
    while handled < limit:
        moment = now or timezone.now()
        delivery_id = _claim_first_attempt()
        if delivery_id is None:
            return handled, False
        with transaction.atomic():
            # Waits only for a worker already on this delivery (the sweeper, a replay): then it is done.
            delivery = (
                WebhookDelivery.objects.select_for_update()
                .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).first()
            )
            if delivery is not None:
                try:
                    with transaction.atomic():
                        _capture_and_mark_processed(delivery, moment)
                except RETRYABLE_ERRORS:
                    raise
                except Exception as error:
                    logger.exception("Instagram delivery %s failed", delivery.pk)
                    WebhookDelivery.objects.filter(pk=delivery.pk).update(
                        status=WebhookDelivery.Status.FAILED, error=_error_text(error), processed_at=moment,
                    )
        handled += 1
    return handled, True


def _claim_first_attempt() -> int | None:
    """The oldest pending delivery no worker has started, with its first attempt recorded (committed
    before any processing); None when there is none."""
    with transaction.atomic():
        delivery_id = (
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookDelivery.Status.PENDING, attempts=0)
            .order_by("received_at")  # the (status, received_at) index: no sort of the backlog
            .values_list("pk", flat=True)
            .first()
        )
        if delivery_id is not None:
            WebhookDelivery.objects.filter(pk=delivery_id).update(attempts=1)
    return delivery_id


def _give_up(delivery: WebhookDelivery, now: datetime.datetime) -> None:
    unfinished = delivery.attempts - 1
    logger.error("Instagram delivery %s: processing started %s times without finishing; marked failed.",
                 delivery.pk, unfinished)
    delivery.status = WebhookDelivery.Status.FAILED
    delivery.processed_at = now
    delivery.error = (
        f"Gave up: processing started {unfinished} times and never finished (the worker stopped on it,"
        " or the database was unreachable each time). Replay it once the cause is fixed."
    )
    delivery.save(update_fields=["status", "processed_at", "error"])


def _capture_and_mark_processed(delivery: WebhookDelivery, now: datetime.datetime) -> None:
    captured, notes = _capture_delivery(delivery, now)
    delivery.status = WebhookDelivery.Status.PROCESSED
    delivery.processed_at = now
    delivery.events_captured = captured
    delivery.note = "\n".join(notes)[:10_000]
    delivery.error = ""
    delivery.save(update_fields=["status", "processed_at", "events_captured", "note", "error"])


def _error_text(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


def _capture_delivery(delivery: WebhookDelivery, now: datetime.datetime) -> tuple[int, list[str]]:
    # Signed by Meta: never refused for its characters. NUL and lone surrogates (a message cut inside an
    # emoji) are cleaned here, so every contact of the delivery is captured with its text.
    payload = json_clean(json.loads(delivery.body))
    if not isinstance(payload, dict):
        return 0, ["Ignored: the body is not a JSON object."]
    events, notes = parse_delivery(payload, now=now)
    account_ids = {event.account_id for event in events}
    workspaces = {
        w.instagram_account_id: w
        for w in Workspace.objects.filter(instagram_account_id__in=account_ids, deleted_at__isnull=True)
    }
    unrouted = [event for event in events if event.account_id not in workspaces]
    for account_id in sorted(account_ids - set(workspaces)):
        notes.append(f"No workspace for Instagram account {account_id}: its events were not captured.")
    if unrouted:
        # Acknowledged and kept (the delivery row), counted for /metrics; never an error.
        instagram.unrouted_events_count(len(unrouted))
    captured = 0
    for event in events:
        workspace = workspaces.get(event.account_id)
        if workspace is None:
            continue
        if event.type == MENTION_LOOKUP:
            _mention_pending(workspace, event, delivery, now)
        elif _capture_event(workspace, event, delivery, now):
            captured += 1
    return captured, notes


def _mention_pending(workspace: Workspace, event: ParsedEvent, delivery: WebhookDelivery, now) -> None:
    if CapturedEvent.objects.filter(workspace=workspace, meta_id=event.meta_id).exists():
        return
    try:
        with transaction.atomic():
            mention = PendingMention.objects.create(
                workspace=workspace, delivery=delivery, meta_id=event.meta_id, media_id=event.media_id,
                comment_id=event.comment_id, occurred_at=event.occurred_at, next_attempt_at=now, created_at=now,
            )
    except IntegrityError:
        return  # the same mention, redelivered: already waiting for its look-up
    transaction.on_commit(lambda: _queue_mention(mention.pk), robust=True)


def _queue_mention(mention_id: int) -> None:
    try:
        enqueue.resolve_instagram_mention(mention_id)
    except Exception:
        logger.exception("Could not queue the look-up of mention %s; the sweep will pick it up.", mention_id)


def mention_capture(*, mention: PendingMention, author_id: str, username: str, now) -> bool:
    """Capture a looked-up mention's author as a `collaboration` contact (once per mention)."""
    workspace = Workspace.objects.get(pk=mention.workspace_id)
    event = ParsedEvent(
        account_id=workspace.instagram_account_id, type="mention", sender_id=author_id[:_MAX_ID],
        meta_id=mention.meta_id, occurred_at=mention.occurred_at, source=Contact.Source.COLLABORATION,
        username=username, media_id=mention.media_id, comment_id=mention.comment_id,
    )
    delivery = WebhookDelivery.objects.filter(pk=mention.delivery_id).first() if mention.delivery_id else None
    if author_id == workspace.instagram_account_id:
        return False  # the account mentioning itself
    return _capture_event(workspace, event, delivery, now)


def _capture_event(workspace: Workspace, event: ParsedEvent, delivery: WebhookDelivery | None, now) -> bool:
    """Capture one event unless its Meta id was captured before; True when it was new."""
    if event.type == UNSEND:
        Message.objects.filter(
            workspace=workspace, meta_mid=event.meta_id, direction=Message.Direction.INBOUND
        ).update(text="")
        return False
    if CapturedEvent.objects.filter(workspace=workspace, meta_id=event.meta_id).exists():
        return False
    try:
        with transaction.atomic():
            contact, created = _contact_capture(workspace, event, now)
            try:
                with transaction.atomic():
                    CapturedEvent.objects.create(
                        workspace=workspace, contact=contact, delivery=delivery, meta_id=event.meta_id,
                        type=event.type, occurred_at=event.occurred_at, captured_at=now,
                    )
                    if event.type in DM_TYPES:
                        Message.objects.create(
                            workspace=workspace, contact=contact, direction=Message.Direction.INBOUND,
                            origin=Message.Origin.CONTACT, status=Message.Status.RECEIVED, text=event.text,
                            meta_mid=event.meta_id, created_at=event.occurred_at,
                        )
            except IntegrityError:
                # Another delivery carrying the same event got there first (unique constraints).
                raise _AlreadyCaptured from None
            # Fired after the delivery's transaction commits; dropped if it rolls back.
            inbound_event_captured(InboundEvent(
                workspace_id=workspace.pk, contact_id=contact.pk, type=event.type, occurred_at=event.occurred_at,
                is_new_contact=created, text=event.text, meta_id=event.meta_id, media_id=event.media_id,
                comment_id=event.comment_id, referral_source=event.referral_source, ad_id=event.ad_id,
                payload=event.payload, extra={**event.extra, "delivery_id": delivery.pk if delivery else None},
            ))
    except _AlreadyCaptured:
        return False
    return True


def _contact_capture(workspace: Workspace, event: ParsedEvent, now) -> tuple[Contact, bool]:
    # A message from the person opens the 24-hour DM window; a comment or mention only a private reply
    # (contacts/windows.py): each moves its own column.
    column = "last_inbound_at" if event.type in windows.DM_OPENING_TYPES else "last_comment_at"
    contact, created = Contact.objects.get_or_create(
        workspace=workspace, igsid=event.sender_id,
        defaults={"source": event.source, "username": event.username, "captured_at": now,
                  column: event.occurred_at},
    )
    if created:
        return contact, True
    # Deliveries arrive out of order: the latest time wins, it never moves backwards.
    Contact.objects.filter(pk=contact.pk).filter(
        Q(**{f"{column}__isnull": True}) | Q(**{f"{column}__lt": event.occurred_at})
    ).update(**{column: event.occurred_at})
    if event.username and event.username != contact.username:
        Contact.objects.filter(pk=contact.pk).update(username=event.username)
    contact.refresh_from_db(fields=["last_inbound_at", "last_comment_at", "username"])
    return contact, False


def deliveries_sweep(*, now: datetime.datetime, limit: int = 500) -> int:
    """Process deliveries still pending a while after they arrived (the broker lost their nudge, or a
    drain's worker stopped on them midway)."""
    cutoff = now - datetime.timedelta(seconds=settings.META_WEBHOOK_SWEEP_AFTER_SECONDS)
    ids = list(
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, received_at__lte=cutoff)
        .order_by("received_at", "id").values_list("pk", flat=True)[:limit]
    )
    for delivery_id in ids:
        delivery_process(delivery_id=delivery_id, now=now)
    return len(ids)


def delivery_replay(*, delivery_id: int) -> bool:
    """Staff replay of a failed delivery: back to pending, its attempts counted afresh, and queued again;
    already-captured events stay captured once. Returns False when the delivery was not failed."""
    with transaction.atomic():
        replayed = WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.FAILED).update(
            status=WebhookDelivery.Status.PENDING, error="", processed_at=None, attempts=0
        )
        if replayed:
            transaction.on_commit(lambda: _queue(delivery_id))
    return bool(replayed)


def deliveries_prune(*, now: datetime.datetime) -> int:
    """Delete processed deliveries past the retention period: their raw bodies quote what people wrote,
    and what they produced (contacts, messages, captured events) is kept on its own."""
    cutoff = now - datetime.timedelta(days=settings.META_WEBHOOK_RETENTION_DAYS)
    deleted, _ = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PROCESSED, received_at__lt=cutoff
    ).delete()
    return deleted
