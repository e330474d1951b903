"""A campaign's fan-out: sending one message to the frozen audience, each contact at most once.

The fan-out freezes the audience into CampaignBatch rows (the contact ids in engaged-first order,
CAMPAIGN_BATCH_SIZE per row), then works through the batches not done: the gate decides for the whole
batch (`activate_many`, keeping the workspace's reserve out of reach), refused contacts become paused
actions, allowed ones are sent with the idempotency key `campaign:<id>:contact:<id>`, and each
contact's CampaignRecipient row (unique per campaign and contact) is written once, with its final
status. With the outbox backend a batch's messages, recipient rows, paused actions and "done" mark are
written in one transaction (`send_messages_bulk`, one INSERT for the recipients, the counters moved by
the batch's tally); writer threads write batch N while batch N+1 is gated, committing in
order. A networked backend (Graph) sends one message at a time, outside transactions, each recipient
row written right after its send. A task retried after a crash takes up the batches not done, skips
their contacts that already have a row, and a send that happened just before the crash is found by
its key, not repeated; the counters are recounted at the end.
"""

import datetime
import itertools
import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import NamedTuple

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Count, F, IntegerField, Max, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Workspace
from automations.models import Campaign, CampaignBatch, CampaignRecipient, PausedAction
from automations.services.alerts import usage_alerts_check
from automations.services.campaigns import _queue_send, _window_cutoff, campaign_audience
from automations.services.engagement import reservation_settle
from automations.services.paused import PauseItem, paused_actions_create
from billing.activation import activate_many
from billing.models import AutomationKind
from contacts.instagram import connection_verify
from contacts.instagram_connection import DISCONNECTED_REASON, sending_blocked
from contacts.messaging import (
    DISCONNECTED,
    Delivery,
    MessageSender,
    Prepared,
    backend_sends_in_bulk,
    deliveries_record,
    messages_prepare,
    send_message,
    send_messages_bulk,
)
from contacts.models import Contact, Message
from inro.sql import pg_array

logger = logging.getLogger(__name__)

_RECIPIENTS = CampaignRecipient._meta.db_table
_BATCHES = CampaignBatch._meta.db_table
_CONTACTS = Contact._meta.db_table

# A batch is one gate call and one transaction (its messages, recipient rows and paused actions).
CAMPAIGN_BATCH_SIZE = 5000
# The freeze writes its batches this many at a time (20 batches: 100k ids in one statement).
_FREEZE_WRITE_EVERY = 20
# Renew the fan-out lease every this many sends; the lease lasts CAMPAIGN_STALL_SECONDS, the same
# "no progress" span after which the beat job re-queues a stalled campaign, so a restarted worker can
# take over a killed one's campaign as soon as it is seen stalled.
FANOUT_RENEW_EVERY = 50


def _fanout_lease_span() -> datetime.timedelta:
    return datetime.timedelta(seconds=max(int(getattr(settings, "CAMPAIGN_STALL_SECONDS", 300)), 1))


class CampaignBusy(Exception):
    """Another worker is sending this campaign right now; try again later."""


def campaigns_resume_stalled(*, now: datetime.datetime | None = None) -> list[int]:
    """Queue again the fan-out of campaigns "sending" with no progress for CAMPAIGN_STALL_SECONDS.

    A worker killed mid-campaign (SIGKILL, OOM, lost host) leaves its task unacknowledged in the broker
    until the visibility timeout (an hour on Redis): this gets the campaign going again within minutes.
    Sending again is safe: the batches not done are taken up, sends are found by their idempotency key.
    """
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=getattr(settings, "CAMPAIGN_STALL_SECONDS", 300))
    last_progress = CampaignRecipient.objects.filter(campaign_id=OuterRef("pk")).order_by().values(
        "campaign_id").annotate(last=Max("updated_at")).values("last")
    stalled = list(
        Campaign.objects.filter(status=Campaign.Status.SENDING, launched_at__lte=cutoff)
        # Progress: the last recipient row written, else the freeze (its first batch may be on its way),
        # else the launch (the freeze itself may be under way).
        .annotate(last_progress=Coalesce(Subquery(last_progress), "audience_frozen_at", "launched_at"))
        .filter(last_progress__lte=cutoff)
        .order_by("pk").values_list("pk", flat=True)[:500]
    )
    for campaign_id in stalled:
        logger.warning("campaign %s made no progress since %s: sending it again", campaign_id, cutoff)
        _queue_send(campaign_id)
    return stalled


def _freeze_audience(campaign: Campaign, now: datetime.datetime, batch_size: int) -> None:
    """Write the audience once, as batches of contact ids in engaged-first order; a retry keeps the
    first freeze.

    A few rows of compact id lists, not one row per contact: each contact's recipient row is written
    later, once, with its final status. The ids come from one query over the audience's own SQL.
    """
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.audience_frozen_at is not None:
            if not CampaignBatch.objects.filter(campaign_id=locked.pk).exists():
                _adopt_pending_rows(locked.pk, batch_size)
            return
        # The estimate of a 100k-contact audience crosses jit_above_cost: compiling costs more than
        # this one pass saves. LOCAL: for this transaction only.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")
        # Streamed, a few batches written at a time: memory stays flat whatever the audience's size.
        audience = campaign_audience(campaign=locked).values_list("id", flat=True).iterator(chunk_size=batch_size)
        frozen, unwritten = 0, []
        for number, ids in enumerate(iter(lambda: list(itertools.islice(audience, batch_size)), [])):
            unwritten.append(CampaignBatch(campaign_id=locked.pk, number=number, first_rank=frozen, contact_ids=ids))
            frozen += len(ids)
            if len(unwritten) == _FREEZE_WRITE_EVERY:
                CampaignBatch.objects.bulk_create(unwritten)
                unwritten = []
        CampaignBatch.objects.bulk_create(unwritten)
        Campaign.objects.filter(pk=locked.pk).update(audience_frozen_at=now, recipients_count=frozen)


def _adopt_pending_rows(campaign_id: int, batch_size: int) -> None:
    """Turn pending recipient rows into batches, ranks kept: a campaign frozen by a worker of the release
    before automations 0007, taken over by this one (the migration converts nothing, see its note)."""
    pending = CampaignRecipient.objects.filter(campaign_id=campaign_id, status=CampaignRecipient.Status.PENDING)
    batches: list[CampaignBatch] = []
    for rank, contact_id in pending.order_by("rank", "id").values_list("rank", "contact_id"):
        last = batches[-1] if batches else None
        if last is None or rank != last.first_rank + len(last.contact_ids) or len(last.contact_ids) >= batch_size:
            last = CampaignBatch(campaign_id=campaign_id, number=len(batches), first_rank=rank, contact_ids=[])
            batches.append(last)
        last.contact_ids.append(contact_id)
    if batches:
        CampaignBatch.objects.bulk_create(batches)
        pending.delete()


def campaign_counters_refresh(*, campaign_id: int, recount_recipients: bool = False) -> None:
    """Counters straight from the recipient rows, in one UPDATE: exact whatever ran before.

    `recipients_count` is the audience frozen at launch, kept while contacts are still to be reached;
    `recount_recipients` (the end of the fan-out) sets it to the rows written, which leaves out the
    contacts deleted before their turn.
    """

    def count(status: str | None) -> Coalesce:
        rows = CampaignRecipient.objects.filter(campaign_id=OuterRef("pk"))
        if status is not None:
            rows = rows.filter(status=status)
        return Coalesce(
            Subquery(rows.values("campaign_id").annotate(n=Count("id")).values("n")[:1], output_field=IntegerField()),
            Value(0),
        )

    Status = CampaignRecipient.Status
    recount = {"recipients_count": count(None)} if recount_recipients else {}
    Campaign.objects.filter(pk=campaign_id).update(
        **recount, sent_count=count(Status.SENT), limited_count=count(Status.LIMITED),
        skipped_window_count=count(Status.SKIPPED_WINDOW), failed_count=count(Status.FAILED),
    )


def _message_key(campaign_id: int, contact_id: int) -> str:
    return f"campaign:{campaign_id}:contact:{contact_id}"


def _final_status(status: str) -> str:
    # A duplicate still "queued" is a send whose worker died between storing and delivering it: its
    # outcome is unknown, and sending again could message the contact twice, so it ends as failed.
    if status == Message.Status.QUEUED:
        return CampaignRecipient.Status.FAILED
    return status


def _record(recipient_id: int, sent, now: datetime.datetime, *, from_status: str) -> None:
    CampaignRecipient.objects.filter(pk=recipient_id, status=from_status).update(
        status=_final_status(sent.status), message=sent.message, updated_at=now
    )


@contextmanager
def _fanout_lease(campaign_id: int) -> Iterator[Callable[[], bool] | None]:
    """One fan-out per campaign at a time (a redelivered task while the first still runs).

    A lease in the campaign row, taken and renewed with conditional UPDATEs (no session state, so
    it works behind PgBouncer's transaction pooling). Yields a `renew` function, or None when
    another worker holds a live lease. A killed worker's lease runs out after CAMPAIGN_STALL_SECONDS.
    """
    token = str(uuid.uuid4())

    def take() -> bool:
        now = timezone.now()
        return bool(
            Campaign.objects.filter(pk=campaign_id)
            .filter(Q(fanout_lease_until__isnull=True) | Q(fanout_lease_until__lt=now) | Q(fanout_token=token))
            .update(fanout_token=token, fanout_lease_until=now + _lease())
        )

    if not take():
        yield None
        return
    try:
        yield take
    finally:
        _lease_release(campaign_id, token)


def _lease() -> datetime.timedelta:
    """CAMPAIGN_FANOUT_LEASE_SECONDS when set (tests shorten it), else CAMPAIGN_STALL_SECONDS."""
    seconds = getattr(settings, "CAMPAIGN_FANOUT_LEASE_SECONDS", None)
    return datetime.timedelta(seconds=seconds) if seconds else _fanout_lease_span()


def _lease_release(campaign_id: int, token: str) -> None:
    def release() -> None:
        Campaign.objects.filter(pk=campaign_id, fanout_token=token).update(fanout_token="", fanout_lease_until=None)

    try:
        release()
    except (OperationalError, InterfaceError):
        # The connection died under the fan-out (database restart): release on a fresh one, so the
        # task's retry is not held off for the whole lease.
        connection.close()
        try:
            release()
        except (OperationalError, InterfaceError):
            logger.warning("campaign %s: lease not released; it runs out by itself", campaign_id)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _micros(moment: datetime.datetime) -> int:
    """Microseconds since the Unix epoch: how the fan-out carries times it only compares."""
    return (moment - _EPOCH) // datetime.timedelta(microseconds=1)


class _Pending(NamedTuple):
    """A contact of a batch still to be reached, as the fan-out reads it: a plain tuple, no model.

    The contact's last inbound message comes as microseconds since the epoch, an integer the driver
    reads in C: the fan-out only compares it with the window's cutoff, and Django's time-zone-aware
    loader (pure Python) cost about 20 µs a row, a tenth of the fan-out's own CPU time.
    """

    rank: int
    contact_id: int
    last_inbound_us: int | None

    @property
    def last_inbound_at(self) -> datetime.datetime | None:
        us = self.last_inbound_us
        return None if us is None else _EPOCH + datetime.timedelta(microseconds=us)


class _Outcome(NamedTuple):
    """A recipient's final status, as its row is written."""

    contact_id: int
    rank: int
    status: str
    message_id: int | None = None


def _next_batch(campaign_id: int, after: int) -> tuple[int, int] | None:
    """(id, number) of the campaign's first batch not done after number `after`, or None."""
    return (CampaignBatch.objects.filter(campaign_id=campaign_id, done_at__isnull=True, number__gt=after)
            .order_by("number").values_list("id", "number").first())


def _batch_pending(campaign_id: int, batch_id: int) -> list[_Pending]:
    """The batch's contacts still to be reached, in rank order, with what the fan-out needs of them.

    The ids are unpacked in SQL and joined to the contacts by primary key: a contact deleted since the
    launch drops out, and one that already has its recipient row (an earlier attempt) is left out.
    """
    with connection.cursor() as cursor:
        # extract(epoch) is exact (numeric) on PostgreSQL 14 and later.
        cursor.execute(
            "SELECT b.first_rank + e.ord - 1, c.id, (extract(epoch FROM c.last_inbound_at) * 1000000)::bigint"  # noqa: S608
            f" FROM {_BATCHES} b"
            " CROSS JOIN LATERAL jsonb_array_elements_text(b.contact_ids) WITH ORDINALITY AS e(id, ord)"
            f" JOIN {_CONTACTS} c ON c.id = e.id::bigint"
            f" WHERE b.id = %s AND NOT EXISTS (SELECT 1 FROM {_RECIPIENTS} r"
            " WHERE r.campaign_id = %s AND r.contact_id = c.id)"
            " ORDER BY e.ord - 1",
            [batch_id, campaign_id],
        )
        return list(map(_Pending._make, cursor.fetchall()))


def _outcomes_write(campaign_id: int, outcomes: list[_Outcome], now: datetime.datetime, *,
                    batch_id: int | None = None) -> list[tuple[int, int, str]]:
    """Write recipient rows with their final status in one INSERT and mark the batch done (`batch_id`).
    A contact that already has its row is left alone. Returns (recipient id, contact id, status) of the
    rows written."""
    written: list[tuple[int, int, str]] = []
    if outcomes:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_RECIPIENTS} (campaign_id, contact_id, rank, status, message_id, updated_at)"  # noqa: S608
                " SELECT %s, v.contact_id, v.rank, v.status, v.message_id, %s"
                " FROM unnest(%s::bigint[], %s::integer[], %s::text[], %s::bigint[])"
                " AS v(contact_id, rank, status, message_id)"
                " ON CONFLICT DO NOTHING RETURNING id, contact_id, status",
                [campaign_id, now, pg_array(o.contact_id for o in outcomes), pg_array(o.rank for o in outcomes),
                 pg_array(str(o.status) for o in outcomes), pg_array(o.message_id for o in outcomes)],
            )
            written = cursor.fetchall()
    if batch_id is not None:
        CampaignBatch.objects.filter(pk=batch_id).update(done_at=now)
    return written


def _counters_move(campaign_id: int, written: list[tuple[int, int, str]], *,
                   before_counters: Callable[[], None] | None = None) -> None:
    """Move the campaign's counters by the recipient rows just written; the last statement of their
    transaction, as it holds the campaign row until the commit. `before_counters`: a writer thread's
    wait for the previous batch's commit (see _BatchWriter)."""
    if before_counters is not None:
        # A writer thread: check the deferred foreign keys of the batch (about 8 µs each, a fifth of a
        # second for 5,000 recipients) now, not at the commit, since the fan-out's lease renewal and
        # the next batch wait for the campaign row this UPDATE takes: it is held for the commit only.
        # Back to the default after. (Without writers nothing else waits for the row meanwhile.)
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        before_counters()
    Status = CampaignRecipient.Status
    tally = Counter(status for _, _, status in written)
    if tally:
        Campaign.objects.filter(pk=campaign_id).update(
            sent_count=F("sent_count") + tally[Status.SENT], limited_count=F("limited_count") + tally[Status.LIMITED],
            skipped_window_count=F("skipped_window_count") + tally[Status.SKIPPED_WINDOW],
            failed_count=F("failed_count") + tally[Status.FAILED],
        )


class _EarlierBatchFailed(Exception):
    """Rolls back a batch written after one that failed: batches commit in order or not at all."""


class _BatchWriter:
    """Writes the fan-out's batches on connections of their own while the fan-out reads and gates the
    next batch (outbox backend: see `_overlap_batches`).

    Each batch is written in one transaction, as without the writer. Two threads write two batches at
    once (the writes are most of the work), but they commit in the order the batches were handed over:
    a batch waits for the previous one to commit before it takes the campaign row (its counters) and
    commits. So the batches not done after a failure are always the tail of the campaign: the first
    error rolls back the batches handed over after it, lets the earlier ones commit, and is raised to
    the fan-out at its next hand-over or at `close`. At most one batch waits for a thread.
    """

    def __init__(self, threads: int = 2) -> None:
        self._queue: queue.Queue[tuple[int, Callable[[Callable[[], None]], None]] | None] = queue.Queue(maxsize=1)
        self._turn = threading.Condition()
        self._handed_over = 0
        self._committed = 0  # batches 1.._committed have committed
        self._failed: tuple[int, BaseException] | None = None  # the first failure: (batch number, error)
        self._threads = [threading.Thread(target=self._run, name="campaign-batch-writer", daemon=True)
                         for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        try:
            while (job := self._queue.get()) is not None:
                number, write = job
                try:
                    self._check_earlier(number)
                    write(lambda number=number: self._wait_for_previous(number))
                except BaseException as error:  # handed over to the fan-out's thread
                    with self._turn:
                        if not isinstance(error, _EarlierBatchFailed) and (
                                self._failed is None or number < self._failed[0]):
                            self._failed = (number, error)
                        self._turn.notify_all()
                else:
                    with self._turn:
                        self._committed = number
                        self._turn.notify_all()
        finally:
            connection.close()  # this thread's own connection

    def _check_earlier(self, number: int) -> None:
        if self._failed is not None and self._failed[0] < number:
            raise _EarlierBatchFailed

    def _wait_for_previous(self, number: int) -> None:
        with self._turn:
            while self._committed < number - 1:
                self._check_earlier(number)
                self._turn.wait(timeout=1)
            self._check_earlier(number)

    def submit(self, write: Callable[[Callable[[], None]], None]) -> None:
        """Hand over a batch: `write(wait_for_previous)` writes it in one transaction and calls
        `wait_for_previous()` just before it updates the campaign's counters and commits."""
        self._handed_over += 1
        while True:
            self._raise_error()
            try:
                self._queue.put((self._handed_over, write), timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self, *, raise_error: bool = True) -> None:
        """Wait for the batches handed over to be written; raise the first error, if any."""
        for _ in self._threads:
            self._queue.put(None)  # each thread takes from the queue until this, even after an error
        for thread in self._threads:
            thread.join()
        if raise_error:
            self._raise_error()

    def _raise_error(self) -> None:
        if self._failed is not None:
            raise self._failed[1]


def _overlap_batches() -> bool:
    """Write batch N on a second connection while batch N+1 is read and gated: with the outbox
    backend, outside a caller's transaction (a second connection would not see its rows)."""
    return settings.CAMPAIGN_FANOUT_OVERLAP and not connection.in_atomic_block and backend_sends_in_bulk()


def _send_batch(campaign: Campaign, workspace: Workspace, batch_id: int, batch: list[_Pending],
                renew: Callable[[], bool] = lambda: True, writer: _BatchWriter | None = None,
                turn_ends: float | None = None) -> bool:
    """Send one batch; True when its turn ended before the batch was done (network backends)."""
    now = timezone.now()
    cutoff = _micros(_window_cutoff(now))
    Status = CampaignRecipient.Status
    # Broadcasts follow the window rule (rules 5, 14): a closed window is skipped before the gate, so
    # it never engages nor charges anyone.
    outcomes = [_Outcome(r.contact_id, r.rank, Status.SKIPPED_WINDOW) for r in batch
                if r.last_inbound_us is None or r.last_inbound_us <= cutoff]
    reachable = [r for r in batch if r.last_inbound_us is not None and r.last_inbound_us > cutoff]
    refused: set[int] = set()
    held: set[int] = set()
    month = None
    # A broken Instagram connection stops the sends before the gate: kept as paused, nothing charged.
    blocked = bool(reachable) and (
        sending_blocked(workspace_id=workspace.pk)
        # Sends that go to Meta one by one: one check of the token first, so a revoked one stops the
        # batch here rather than after the gate allowed it.
        or (not backend_sends_in_bulk() and not connection_verify(workspace_id=workspace.pk))
    )
    reason = DISCONNECTED_REASON if blocked else ""
    if blocked:
        refused = {r.contact_id for r in reachable}
    elif reachable and not backend_sends_in_bulk():
        # Over the network the gate is asked chunk by chunk while earlier sends are in flight.
        _write_outcomes(campaign, workspace, [], outcomes, now)
        return _send_concurrently(campaign, workspace, batch_id, reachable, renew, turn_ends=turn_ends)
    elif reachable:
        # Reservations (rule 13): each is confirmed when its message is sent, released when it is not.
        result = activate_many(
            workspace, [r.contact_id for r in reachable], kind=AutomationKind.CAMPAIGN, ref=campaign.ref,
            reserve=workspace.activation_reserve, confirm=False,
        )
        refused, held, month = set(result.refused), set(result.held), result.month
    limited = [r for r in reachable if r.contact_id in refused]
    allowed = [r for r in reachable if r.contact_id not in refused]
    outcomes += [_Outcome(r.contact_id, r.rank, Status.LIMITED) for r in limited]

    def write(before_counters: Callable[[], None] | None = None) -> None:
        # One transaction for the whole batch: the messages, the recipient rows, the paused actions,
        # the batch's "done" and its reservations confirmed or released commit together, so a crash
        # anywhere leaves the batch to do again and its retry repeats it exactly (the gate's
        # reservations, committed before, are found again in flight and joined).
        with transaction.atomic():
            sent: list = []
            if allowed:
                sent = send_messages_bulk(
                    workspace=workspace, text=campaign.text, origin=Message.Origin.AUTOMATED,
                    items=[(r.contact_id, _message_key(campaign.pk, r.contact_id)) for r in allowed],
                    automation_ref=campaign.ref, now=now,
                )
                outcomes.extend(_Outcome(r.contact_id, r.rank, _final_status(s.status), s.message_id)
                                for r, s in zip(allowed, sent, strict=True))
            _write_outcomes(campaign, workspace, limited, outcomes, now, batch_id=batch_id,
                            before_counters=before_counters, reason=reason)
            # Last, so the usage row is held only for the commit (the next batch's gate waits on it).
            if held:
                by_status: dict[str, list[int]] = {}
                for s in sent:
                    if s.contact_id in held:
                        by_status.setdefault(_final_status(s.status), []).append(s.contact_id)
                for status, contact_ids in sorted(by_status.items()):
                    engaged = status == Status.SENT
                    reservation_settle(
                        workspace_id=workspace.pk, month=month, kind=AutomationKind.CAMPAIGN, ref=campaign.ref,
                        engaged=contact_ids if engaged else [], not_engaged=[] if engaged else contact_ids,
                        reason=str(status),
                    )

    if writer is None:
        write()
    else:
        writer.submit(write)
    return False


def _write_outcomes(campaign: Campaign, workspace: Workspace, limited: list[_Pending], outcomes: list[_Outcome],
                    now: datetime.datetime, *, batch_id: int | None = None,
                    before_counters: Callable[[], None] | None = None, reason: str = "") -> None:
    """Recipient rows for the batch's outcomes, paused actions for its refused contacts, then the
    campaign's counters."""
    with transaction.atomic(savepoint=False):
        written = _outcomes_write(campaign.pk, outcomes, now, batch_id=batch_id)
        recipient_ids = {contact_id: recipient_id for recipient_id, contact_id, _ in written}
        paused_actions_create(
            workspace=workspace, kind=AutomationKind.CAMPAIGN, automation_ref=campaign.ref,
            action_type=PausedAction.ActionType.CAMPAIGN_MESSAGE, needs_window=True, now=now, reason=reason,
            items=[PauseItem(Contact(pk=r.contact_id, workspace_id=workspace.pk, last_inbound_at=r.last_inbound_at),
                             _message_key(campaign.pk, r.contact_id),
                             {"campaign_id": campaign.pk, "recipient_id": recipient_ids[r.contact_id]})
                   for r in limited if r.contact_id in recipient_ids],
        )
        _counters_move(campaign.pk, written, before_counters=before_counters)


_send_pool_lock = threading.Lock()
_send_pools: dict[int, ThreadPoolExecutor] = {}


def _send_pool() -> ThreadPoolExecutor:
    """This process's pool of threads calling Meta (META_SEND_CONCURRENCY of them), made on first use
    (so after a prefork worker has forked) and kept for every campaign the process sends."""
    size = max(1, int(settings.META_SEND_CONCURRENCY))
    with _send_pool_lock:
        pool = _send_pools.get(size)
        if pool is None:
            pool = _send_pools[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="meta-send")
        return pool


_UNKNOWN_OUTCOME = ("Outcome unknown: the worker sending it stopped before Meta's answer was recorded;"
                    " not sent again, so that nobody gets it twice.")
_CANCELLED = "The campaign was cancelled before this message was sent."
# Outcomes are written at least this often while sends are in flight (and whenever this many are in).
_FLUSH_EVERY_SECONDS = 0.5
_FLUSH_EVERY_SENDS = 200


def _send_concurrently(campaign: Campaign, workspace: Workspace, batch_id: int, reachable: list[_Pending],
                       renew: Callable[[], bool], *, turn_ends: float | None = None) -> bool:
    """A backend that talks to the network (Graph API): up to META_SEND_CONCURRENCY calls to Meta in
    flight at once (a pool of threads per worker process, each call paced by its account's rate), the
    database work batched around them on this thread and never held open across a call:

    1. the next chunk of contacts (one pool-width) goes to the gate (`activate_many`, reservations) while
       the previous chunk's sends are in flight; refused contacts become paused actions at once;
    2. the allowed ones' messages are stored as queued under their keys in one INSERT
       (`messages_prepare`), just before their sends start: a key used before is not sent again (a
       still-queued one, whose earlier attempt died with its send in flight, ends failed: Meta may or
       may not have it, and Meta has no idempotency key, so sending again could message the contact
       twice);
    3. the threads call Meta (no database);
    4. every half second (or 200 answers) one transaction writes the messages' outcomes, the recipient
       rows, the counters and the reservations confirmed (sent) or released (refused);
    5. the batch is marked done last.

    When the turn ends (`turn_ends`) no new chunk is taken: the sends prepared go out, their outcomes are
    written and the batch is left not done, its other contacts for the next turn. Cancelled meanwhile,
    or stopped by an error, the batch stops submitting, waits for the calls in flight, writes their
    outcomes, and releases what it still holds. A rejected token (error 190) stops the batch: the rest
    waits for the reconnect as paused actions."""
    Status = CampaignRecipient.Status
    contacts = Contact.objects.only("id", "igsid", "workspace_id").in_bulk([r.contact_id for r in reachable])
    unsettled: dict[int, datetime.date] = {}  # contact id -> month of the reservation it holds
    sender = MessageSender(workspace=workspace)
    pool = _send_pool()
    width = max(1, int(settings.META_SEND_CONCURRENCY))
    position = 0  # reachable[:position] went to the gate
    ready: list[tuple[_Pending, Prepared]] = []
    in_flight: dict[Future, tuple[_Pending, Prepared]] = {}
    answered: list[tuple[_Pending, Prepared, Delivery | None]] = []
    last_flush = time.monotonic()
    sent_since_renew = 0
    stop: str | None = None  # why no more chunks are taken: "cancelled", "disconnected", "turn"
    exhausted = False
    chunks = 0

    def settle(contact_ids: list[int], *, engaged: bool) -> None:
        by_month: dict[datetime.date, list[int]] = {}
        for contact_id in contact_ids:
            by_month.setdefault(unsettled[contact_id], []).append(contact_id)
        for month, ids in sorted(by_month.items()):
            reservation_settle(workspace_id=workspace.pk, month=month, kind=AutomationKind.CAMPAIGN,
                               ref=campaign.ref, engaged=ids if engaged else [], not_engaged=[] if engaged else ids,
                               reason=Status.SENT if engaged else "not_sent")

    def flush() -> None:
        nonlocal answered, last_flush
        done, answered = answered, []
        last_flush = time.monotonic()
        if not done:
            return
        now = timezone.now()
        outcomes = []
        for recipient, prepared, delivery in done:
            status = delivery.status if delivery is not None else _final_status(prepared.status)
            if status != DISCONNECTED:
                outcomes.append(_Outcome(recipient.contact_id, recipient.rank, _final_status(status),
                                         prepared.message_id))
        with transaction.atomic():
            deliveries_record(workspace=workspace, deliveries=[d for _, _, d in done if d is not None], now=now)
            written = _outcomes_write(campaign.pk, outcomes, now)
            _counters_move(campaign.pk, written)
            settle([o.contact_id for o in outcomes if o.contact_id in unsettled and o.status == Status.SENT],
                   engaged=True)
            settle([o.contact_id for o in outcomes if o.contact_id in unsettled and o.status != Status.SENT],
                   engaged=False)
        for o in outcomes:
            unsettled.pop(o.contact_id, None)

    def next_chunk() -> None:
        """Gate the next chunk; write its refused contacts as limited; store the allowed ones' messages."""
        nonlocal exhausted, position
        chunk = reachable[position:position + width]
        position += len(chunk)
        exhausted = position >= len(reachable)
        if not chunk:
            return
        # Reservations (rule 13): each is confirmed when its message is sent, released when it is not.
        result = activate_many(workspace, [r.contact_id for r in chunk], kind=AutomationKind.CAMPAIGN,
                               ref=campaign.ref, reserve=workspace.activation_reserve, confirm=False)
        refused, held = set(result.refused), set(result.held)
        unsettled.update((contact_id, result.month) for contact_id in held)
        limited = [r for r in chunk if r.contact_id in refused]
        allowed = [r for r in chunk if r.contact_id not in refused]
        if limited:
            _write_outcomes(campaign, workspace, limited, [_Outcome(r.contact_id, r.rank, Status.LIMITED)
                                                           for r in limited], timezone.now())
        prepared = messages_prepare(
            workspace=workspace, text=campaign.text, automation_ref=campaign.ref,
            items=[(r.contact_id, _message_key(campaign.pk, r.contact_id)) for r in allowed],
        )
        for recipient, item in zip(allowed, prepared, strict=True):
            if item.duplicate and item.status == Message.Status.QUEUED:
                # Its earlier attempt died with the send in flight or about to start: the outcome is
                # unknown and it is not sent again (see above).
                answered.append((recipient, item, Delivery(item.message_id, Status.FAILED.value,
                                                           error=_UNKNOWN_OUTCOME)))
            elif item.duplicate:
                answered.append((recipient, item, None))  # its earlier attempt's outcome
            else:
                ready.append((recipient, item))

    try:
        while True:
            # Keep the pool full: gate and store the next chunk while the previous one is in flight.
            if stop is None and not exhausted and len(ready) < width and len(in_flight) < 2 * width:
                if sent_since_renew >= FANOUT_RENEW_EVERY:
                    sent_since_renew = 0
                    if not renew():
                        raise CampaignBusy(f"Campaign {campaign.pk}: the lease was lost to another worker.")
                    if not Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.SENDING).exists():
                        stop = "cancelled"
                if stop is None and turn_ends is not None and chunks and time.monotonic() >= turn_ends:
                    stop = "turn"  # (a turn sends at least one chunk)
                if stop is None:
                    next_chunk()
                    chunks += 1
            while stop in (None, "turn") and ready and len(in_flight) < width:
                recipient, item = ready.pop(0)
                future = pool.submit(sender.deliver, message_id=item.message_id,
                                     contact=contacts[recipient.contact_id], text=campaign.text,
                                     automation_ref=campaign.ref)
                in_flight[future] = (recipient, item)
                sent_since_renew += 1
            if not in_flight and (stop is not None or (exhausted and not ready)) and (stop != "turn" or not ready):
                break
            if in_flight:
                finished, _ = wait(list(in_flight), timeout=_FLUSH_EVERY_SECONDS, return_when=FIRST_COMPLETED)
            else:
                finished = set()
            for future in finished:
                recipient, item = in_flight.pop(future)
                delivery = future.result()
                answered.append((recipient, item, delivery))
                if delivery.status == DISCONNECTED:
                    stop = "disconnected"
            if len(answered) >= _FLUSH_EVERY_SENDS or time.monotonic() - last_flush >= _FLUSH_EVERY_SECONDS:
                flush()
        flush()
        if stop == "cancelled":
            # Messages stored but never handed to Meta end failed, not left queued; their contacts, like
            # the others not reached, get no recipient row, and the finally releases their reservations.
            deliveries_record(workspace=workspace, deliveries=[
                Delivery(item.message_id, Status.FAILED.value, error=_CANCELLED) for _, item in ready])
            return False
        if stop == "turn":
            return True  # the batch's other contacts are sent in the campaign's next turn
        if stop == "disconnected":
            # Meta rejected the workspace's token: the recipients not answered wait for the reconnect as
            # paused actions (their queued messages, if stored, are sent under their keys then); their
            # reservations are released by the finally, and the resume asks the gate again.
            answered_ids = set(CampaignRecipient.objects.filter(
                campaign_id=campaign.pk, contact_id__in=[r.contact_id for r in reachable]).values_list(
                "contact_id", flat=True))
            rest = [r for r in reachable if r.contact_id not in answered_ids]
            _write_outcomes(campaign, workspace, rest, [_Outcome(r.contact_id, r.rank, Status.LIMITED) for r in rest],
                            timezone.now(), batch_id=batch_id, reason=DISCONNECTED_REASON)
            return False
        _outcomes_write(campaign.pk, [], timezone.now(), batch_id=batch_id)
        return False
    except BaseException:
        # The sends already handed to Meta finish; their outcomes are written if the database lets us.
        for future in list(in_flight):
            recipient, item = in_flight.pop(future)
            try:
                answered.append((recipient, item, future.result()))
            except Exception:  # noqa: S112 - its message stays queued: it ends failed on the retry
                continue
        try:
            flush()
        except Exception:
            logger.warning("campaign %s: outcomes of %s sends left to the retry", campaign.pk, len(answered))
        raise
    finally:
        if unsettled:
            try:
                settle(sorted(unsettled), engaged=False)
            except DatabaseError:
                # The database went away: the settle job releases them once ACTIVATION_SETTLE_SECONDS pass.
                logger.warning("campaign %s: %s reservations left to the settle job", campaign.pk, len(unsettled))


def campaign_send(*, campaign_id: int, batch_size: int | None = None, turn_seconds: float | None = None) -> Campaign:
    """The fan-out (the task's body). Safe to run again after a crash at any point.

    `turn_seconds`: this call's turn; once it is over and batches are left, it returns with the campaign
    still "sending" and the caller queues it again behind the other work (`campaign_turn_seconds`)."""
    batch_size = batch_size or (CAMPAIGN_BATCH_SIZE if backend_sends_in_bulk()
                                else max(1, int(settings.CAMPAIGN_NETWORK_BATCH_SIZE)))
    with _fanout_lease(campaign_id) as renew:
        if renew is None:
            raise CampaignBusy(f"Campaign {campaign_id} is being sent by another worker.")
        return _campaign_send_leased(campaign_id, batch_size, renew, turn_seconds=turn_seconds)


def campaign_turn_seconds(*, campaign_id: int) -> float | None:
    """How long a fan-out task sends before it lets others have the workers: CAMPAIGN_TURN_SECONDS
    shared by the campaigns its workspace (one Instagram account) is sending, so broadcasts take turns
    by account, not by campaign. None: no turns (the outbox backend, 0, or no other campaign sending)."""
    base = float(settings.CAMPAIGN_TURN_SECONDS)
    if base <= 0 or backend_sends_in_bulk():
        return None
    workspace_id = Campaign.objects.filter(pk=campaign_id).values_list("workspace_id", flat=True).first()
    sending = Campaign.objects.filter(status=Campaign.Status.SENDING).exclude(pk=campaign_id)
    if not sending.exists():
        return None  # no other broadcast waits for the workers: no turns
    return base / max(1, sending.filter(workspace_id=workspace_id).count() + 1)


def _campaign_send_leased(campaign_id: int, batch_size: int, renew: Callable[[], bool], *,
                          turn_seconds: float | None = None) -> Campaign:
    turn_ends = time.monotonic() + turn_seconds if turn_seconds else None
    campaign = Campaign.objects.select_related("workspace").get(pk=campaign_id)
    if campaign.status != Campaign.Status.SENDING:
        return campaign
    workspace = campaign.workspace
    _freeze_audience(campaign, timezone.now(), batch_size)
    writer = _BatchWriter() if _overlap_batches() else None
    try:
        number = -1
        while True:
            if not Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).exists():
                break  # cancelled meanwhile
            # Keyset on the batch number: with a writer, the previous batch may still be being written.
            batch = _next_batch(campaign_id, after=number)
            if batch is None:
                break
            if turn_ends is not None and number >= 0 and time.monotonic() >= turn_ends:
                # This turn is over: the campaign stays "sending", its caller queues it again.
                campaign.refresh_from_db()
                return campaign
            if not renew():
                raise CampaignBusy(f"Campaign {campaign_id}: the lease was lost to another worker.")
            batch_id, number = batch
            if _send_batch(campaign, workspace, batch_id, _batch_pending(campaign_id, batch_id), renew, writer,
                           turn_ends=turn_ends):
                campaign.refresh_from_db()
                return campaign  # its turn is over mid-batch: the campaign stays "sending"
    except BaseException:
        if writer is not None:
            writer.close(raise_error=False)  # the batch being written commits or rolls back whole
        raise
    if writer is not None:
        writer.close()
    if (Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).exists()
            and CampaignBatch.objects.filter(campaign_id=campaign_id, done_at__isnull=True).exists()):
        # A batch left not done (its turn ended): never "done" with contacts still to reach.
        campaign.refresh_from_db()
        return campaign
    # The batches moved the counters by their own tallies; one exact recount settles them whatever
    # ran before (a crash between a batch and its tally, a paused message resumed meanwhile).
    with transaction.atomic():
        finished = Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).update(
            status=Campaign.Status.DONE, finished_at=timezone.now()
        )
        campaign_counters_refresh(campaign_id=campaign_id, recount_recipients=bool(finished))
    usage_alerts_check(workspace=workspace)
    campaign.refresh_from_db()
    logger.info("campaign %s: sent=%s limited=%s skipped=%s failed=%s", campaign.pk, campaign.sent_count,
                campaign.limited_count, campaign.skipped_window_count, campaign.failed_count)
    return campaign


def campaign_recipient_resume(*, action: PausedAction, now: datetime.datetime) -> str:
    """Send a paused campaign message (the gate already allowed it)."""
    campaign = Campaign.objects.filter(pk=action.payload.get("campaign_id")).first()
    if campaign is None or campaign.status == Campaign.Status.CANCELLED:
        return "campaign_cancelled"
    sent = send_message(
        workspace=campaign.workspace, contact=action.contact, text=campaign.text, origin=Message.Origin.AUTOMATED,
        idempotency_key=_message_key(campaign.pk, action.contact_id), automation_ref=campaign.ref,
    )
    if sent.status == DISCONNECTED:
        return DISCONNECTED  # still limited: it waits for the reconnect again
    _record(action.payload["recipient_id"], sent, now, from_status=CampaignRecipient.Status.LIMITED)
    campaign_counters_refresh(campaign_id=campaign.pk)
    return _final_status(sent.status)


def campaign_recipients_expired(*, actions: list[PausedAction], now: datetime.datetime) -> None:
    """Paused messages whose window closed: their recipients end as skipped_window, not limited."""
    recipient_ids = [a.payload["recipient_id"] for a in actions if "recipient_id" in a.payload]
    CampaignRecipient.objects.filter(pk__in=recipient_ids, status=CampaignRecipient.Status.LIMITED).update(
        status=CampaignRecipient.Status.SKIPPED_WINDOW, updated_at=now
    )
    for campaign_id in sorted({a.payload["campaign_id"] for a in actions if "campaign_id" in a.payload}):
        campaign_counters_refresh(campaign_id=campaign_id)
