"""Campaigns: one message to an audience, engaged contacts first, each contact sent at most once.

The fan-out freezes the audience into CampaignRecipient rows (one per contact, unique; one INSERT …
SELECT numbering them engaged-first), then works through the pending ones in batches of
CAMPAIGN_BATCH_SIZE: the gate decides for the whole batch (`activate_many`, keeping the workspace's
reserve out of reach), refused contacts become paused actions, allowed ones are sent with the
idempotency key `campaign:<id>:contact:<id>`. With the outbox backend a batch's messages, paused
actions and final statuses are written in one transaction (`send_messages_bulk`, one UPDATE for the
statuses, the counters moved by the batch's tally); on PostgreSQL writer threads write batch N while
batch N+1 is gated, committing in order. A networked backend (Graph) sends one message at a time,
outside transactions. A task retried after a crash picks up the rows still pending, and a send that
happened just before the crash is found by its key, not repeated; the counters are recounted at the end.
"""

import datetime
import json
import logging
import queue
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Count, Exists, F, IntegerField, Max, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User, Workspace
from automations.models import Campaign, CampaignRecipient, PausedAction, Segment
from automations.services.paused import PauseItem, paused_actions_cancel, paused_actions_create
from automations.services.segments import segment_contacts
from billing.activation import activate_many, usage
from billing.models import ActivationRecord, AutomationKind
from billing.months import month_of
from contacts.messaging import DM_WINDOW, backend_sends_in_bulk, send_message, send_messages_bulk
from contacts.models import Contact, Folder, FolderMembership, Message
from inro.errors import ApplicationError
from inro.sql import pg_array

logger = logging.getLogger(__name__)

_RECIPIENTS = CampaignRecipient._meta.db_table
_CONTACTS = Contact._meta.db_table

# A batch is one gate call and one transaction (its messages, paused actions and statuses).
CAMPAIGN_BATCH_SIZE = 5000
# Renew the fan-out lease every this many sends; the lease lasts CAMPAIGN_STALL_SECONDS, the same
# "no progress" span after which the beat job re-queues a stalled campaign, so a restarted worker can
# take over a killed one's campaign as soon as it is seen stalled.
FANOUT_RENEW_EVERY = 50


def _fanout_lease_span() -> datetime.timedelta:
    return datetime.timedelta(seconds=max(int(getattr(settings, "CAMPAIGN_STALL_SECONDS", 300)), 1))


class CampaignBusy(Exception):
    """Another worker is sending this campaign right now; try again later."""


@dataclass(frozen=True, slots=True)
class CampaignPreview:
    """What a launch now would do: the same order and headroom rules as the fan-out."""

    audience: int
    already_active: int
    would_activate: int
    would_be_limited: int
    outside_window: int  # not messaged (24-hour window closed), so never activated


def _clean_text(text: str) -> str:
    text = (text or "").strip()
    if not text or len(text) > 1000:
        raise ApplicationError("A campaign message needs 1 to 1000 characters.", code="invalid",
                               fields={"text": ["Enter 1 to 1000 characters."]})
    return text


def campaign_create(
    *, workspace: Workspace, name: str, text: str, audience: str = Campaign.Audience.ALL,
    segment: Segment | None = None, folder: Folder | None = None, scheduled_at: datetime.datetime | None = None,
) -> Campaign:
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ApplicationError("A campaign needs a name of 1 to 120 characters.", code="invalid",
                               fields={"name": ["Enter 1 to 120 characters."]})
    text = _clean_text(text)
    if audience not in Campaign.Audience.values:
        raise ApplicationError("Choose an audience: all contacts, a segment or a folder.", code="invalid",
                               fields={"audience": [f"One of {', '.join(Campaign.Audience.values)}."]})
    if audience == Campaign.Audience.SEGMENT and (segment is None or segment.workspace_id != workspace.pk):
        raise ApplicationError("Choose a segment of this workspace.", code="invalid", fields={"segment": ["Required."]})
    if audience == Campaign.Audience.FOLDER and (folder is None or folder.workspace_id != workspace.pk):
        raise ApplicationError("Choose a folder of this workspace.", code="invalid", fields={"folder": ["Required."]})
    if scheduled_at is not None and timezone.is_naive(scheduled_at):
        raise ApplicationError("The schedule needs a time zone.", code="invalid",
                               fields={"scheduled_at": ["Give a date and time with its time zone."]})
    return Campaign.objects.create(
        workspace=workspace, name=name, text=text, audience=audience,
        segment=segment if audience == Campaign.Audience.SEGMENT else None,
        folder=folder if audience == Campaign.Audience.FOLDER else None, scheduled_at=scheduled_at,
    )


def engaged_first(contacts: QuerySet[Contact]) -> QuerySet[Contact]:
    """Most recently engaged first (latest inbound message), never-engaged last, then oldest id."""
    return contacts.order_by(F("last_inbound_at").desc(nulls_last=True), "id")


def campaign_audience(*, campaign: Campaign) -> QuerySet[Contact]:
    if campaign.audience == Campaign.Audience.SEGMENT:
        contacts = segment_contacts(segment=campaign.segment)
    elif campaign.audience == Campaign.Audience.FOLDER:
        contacts = Contact.objects.filter(workspace_id=campaign.workspace_id).filter(
            Exists(FolderMembership.objects.filter(folder_id=campaign.folder_id, contact_id=OuterRef("pk")))
        )
    else:
        contacts = Contact.objects.filter(workspace_id=campaign.workspace_id)
    return engaged_first(contacts)


def _window_cutoff(now: datetime.datetime) -> datetime.datetime:
    # Same rule as contacts.messaging.window_is_open: open while now < last_inbound_at + 24 h.
    return now - DM_WINDOW


def campaign_preview(*, campaign: Campaign, now: datetime.datetime | None = None) -> CampaignPreview:
    """How a launch now would split the audience (all SQL counts; engages nobody)."""
    now = now or timezone.now()
    workspace = Workspace.objects.get(pk=campaign.workspace_id)
    contacts = campaign_audience(campaign=campaign)
    total = contacts.count()
    in_window = contacts.filter(last_inbound_at__gt=_window_cutoff(now))
    reachable = in_window.count()
    active = in_window.filter(Exists(ActivationRecord.objects.filter(
        workspace_id=workspace.pk, month=month_of(now), contact_id=OuterRef("pk")
    ))).count()
    snapshot = usage(workspace)
    headroom = max(snapshot.quota - workspace.activation_reserve - snapshot.activated, 0)
    candidates = reachable - active
    would_activate = min(headroom, candidates)
    return CampaignPreview(
        audience=total, already_active=active, would_activate=would_activate,
        would_be_limited=candidates - would_activate, outside_window=total - reachable,
    )


def campaign_launch(*, campaign: Campaign, launched_by: User | None, now: datetime.datetime | None = None) -> Campaign:
    """Launch now, or at `scheduled_at` if it is still ahead. The fan-out runs in a task after commit."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != Campaign.Status.DRAFT:
            raise ApplicationError(f"This campaign is {locked.get_status_display().lower()}: it cannot be launched.",
                                   code="campaign_not_draft", status=409)
        locked.launched_by = launched_by
        if locked.scheduled_at is not None and locked.scheduled_at > now:
            locked.status = Campaign.Status.SCHEDULED
            locked.save(update_fields=["status", "launched_by"])
        else:
            locked.status = Campaign.Status.SENDING
            locked.launched_at = now
            locked.save(update_fields=["status", "launched_by", "launched_at"])
            transaction.on_commit(lambda: _queue_send(locked.pk))
    return locked


def _queue_send(campaign_id: int) -> None:
    from automations import tasks  # noqa: PLC0415 - tasks import services

    tasks.campaign_send.delay(campaign_id)


def campaigns_launch_due(*, now: datetime.datetime | None = None) -> list[int]:
    """Start scheduled campaigns whose time has come (beat, every minute). Safe to run twice."""
    now = now or timezone.now()
    started = []
    due = Campaign.objects.filter(status=Campaign.Status.SCHEDULED, scheduled_at__lte=now).values_list("pk", flat=True)
    for campaign_id in list(due[:500]):
        with transaction.atomic():
            # The conditional update is the claim: a second beat run finds nothing left to start.
            if Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SCHEDULED).update(
                status=Campaign.Status.SENDING, launched_at=now
            ):
                started.append(campaign_id)
                transaction.on_commit(lambda campaign_id=campaign_id: _queue_send(campaign_id))
    return started


def campaigns_resume_stalled(*, now: datetime.datetime | None = None) -> list[int]:
    """Queue again the fan-out of campaigns "sending" with no progress for CAMPAIGN_STALL_SECONDS.

    A worker killed mid-campaign (SIGKILL, OOM, lost host) leaves its task unacknowledged in the broker
    until the visibility timeout (an hour on Redis): this gets the campaign going again within minutes.
    Sending again is safe: pending rows are picked up, sends are found by their idempotency key.
    """
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=getattr(settings, "CAMPAIGN_STALL_SECONDS", 300))
    last_progress = CampaignRecipient.objects.filter(campaign_id=OuterRef("pk")).order_by().values(
        "campaign_id").annotate(last=Max("updated_at")).values("last")
    stalled = list(
        Campaign.objects.filter(status=Campaign.Status.SENDING, launched_at__lte=cutoff)
        .annotate(last_progress=Subquery(last_progress))
        .exclude(last_progress__gt=cutoff)
        .order_by("pk").values_list("pk", flat=True)[:500]
    )
    for campaign_id in stalled:
        logger.warning("campaign %s made no progress since %s: sending it again", campaign_id, cutoff)
        _queue_send(campaign_id)
    return stalled


def campaign_cancel(*, campaign: Campaign, now: datetime.datetime | None = None) -> Campaign:
    """Stop a campaign: nothing more is sent, its paused messages are cancelled."""
    now = now or timezone.now()
    with transaction.atomic():
        updated = Campaign.objects.filter(
            pk=campaign.pk,
            status__in=[Campaign.Status.DRAFT, Campaign.Status.SCHEDULED, Campaign.Status.SENDING],
        ).update(status=Campaign.Status.CANCELLED, finished_at=now)
        if not updated:
            raise ApplicationError("This campaign has already finished.", code="campaign_finished", status=409)
        paused_actions_cancel(workspace=campaign.workspace, automation_ref=campaign.ref, now=now)
    campaign.refresh_from_db()
    return campaign


def _freeze_audience(campaign: Campaign, now: datetime.datetime) -> None:
    """Write the recipient rows once, in engaged-first order; a retry keeps the first freeze.

    One INSERT … SELECT over the audience's own SQL: the ids never travel through Python, and the rank
    is the engaged-first position (`engaged_first`), numbered by the database.
    """
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.audience_frozen_at is not None:
            return
        audience = campaign_audience(campaign=locked).order_by().values_list("id", "last_inbound_at")
        audience_sql, audience_params = audience.query.sql_with_params()
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # The estimate of a 100k-contact audience crosses jit_above_cost: compiling costs more
                # than this one pass saves. LOCAL: for this transaction only.
                cursor.execute("SET LOCAL jit = off")
            # Same order as engaged_first: latest inbound first, never-engaged last, then oldest id.
            cursor.execute(
                f"INSERT INTO {_RECIPIENTS} (campaign_id, contact_id, rank, status, updated_at)"  # noqa: S608
                " SELECT %s, a.id, row_number() OVER (ORDER BY a.last_inbound_at DESC NULLS LAST, a.id) - 1, %s, %s"
                f" FROM ({audience_sql}) AS a WHERE 1 = 1"
                " ON CONFLICT DO NOTHING",
                [locked.pk, CampaignRecipient.Status.PENDING.value,
                 connection.ops.adapt_datetimefield_value(now), *audience_params],
            )
            frozen = cursor.rowcount  # no rows before: an earlier attempt's freeze rolled back whole
        Campaign.objects.filter(pk=locked.pk).update(audience_frozen_at=now, recipients_count=frozen)


def campaign_counters_refresh(*, campaign_id: int) -> None:
    """Counters straight from the recipient rows, in one UPDATE: exact whatever ran before."""

    def count(status: str | None) -> Coalesce:
        rows = CampaignRecipient.objects.filter(campaign_id=OuterRef("pk"))
        if status is not None:
            rows = rows.filter(status=status)
        return Coalesce(
            Subquery(rows.values("campaign_id").annotate(n=Count("id")).values("n")[:1], output_field=IntegerField()),
            Value(0),
        )

    Status = CampaignRecipient.Status
    Campaign.objects.filter(pk=campaign_id).update(
        recipients_count=count(None), sent_count=count(Status.SENT), limited_count=count(Status.LIMITED),
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
        # task's retry is not held off for the whole lease (issue 8).
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
    """A pending recipient as the fan-out reads it: a plain tuple, no model instance.

    The contact's last inbound message comes as microseconds since the epoch, an integer the driver
    reads in C: the fan-out only compares it with the window's cutoff, and Django's time-zone-aware
    loader (pure Python) cost about 20 µs a row, a tenth of the fan-out's own CPU time.
    """

    recipient_id: int
    rank: int
    contact_id: int
    last_inbound_us: int | None

    @property
    def last_inbound_at(self) -> datetime.datetime | None:
        us = self.last_inbound_us
        return None if us is None else _EPOCH + datetime.timedelta(microseconds=us)


def _pending_batch(campaign_id: int, batch_size: int, after: _Pending | None = None) -> list[_Pending]:
    """The next pending recipients by rank, with what the batch needs of their contact.

    Keyset: the scan starts after the last row of the previous batch, on the partial index
    recipient_pending_rank, and stops after `batch_size` rows; only those rows probe the contacts.
    """
    postgres = connection.vendor == "postgresql"
    contact = (
        # OFFSET 0 keeps PostgreSQL from flattening it: one primary-key probe per recipient row.
        f"CROSS JOIN LATERAL (SELECT c.last_inbound_at FROM {_CONTACTS} c WHERE c.id = r.contact_id OFFSET 0) c"  # noqa: S608
        if postgres else f"JOIN {_CONTACTS} c ON c.id = r.contact_id"
    )
    # extract(epoch) is exact (numeric) on PostgreSQL 14 and later.
    last_inbound = "(extract(epoch FROM c.last_inbound_at) * 1000000)::bigint" if postgres else "c.last_inbound_at"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.id, r.rank, r.contact_id, {last_inbound} FROM ("  # noqa: S608
            f"SELECT id, rank, contact_id FROM {_RECIPIENTS} WHERE campaign_id = %s AND status = %s"
            " AND (rank, id) > (%s, %s) ORDER BY rank, id LIMIT %s"
            f") r {contact} ORDER BY r.rank, r.id",
            [campaign_id, CampaignRecipient.Status.PENDING.value, after.rank if after else -1,
             after.recipient_id if after else 0, batch_size],
        )
        rows = cursor.fetchall()
    if postgres:
        return list(map(_Pending._make, rows))
    parse = connection.ops.convert_datetimefield_value
    field = Contact._meta.get_field("last_inbound_at")
    return [_Pending(*row[:3], None if row[3] is None else _micros(parse(row[3], field, connection))) for row in rows]


def _outcomes_write(campaign_id: int, outcomes: list[tuple[int, str, int | None]], now: datetime.datetime,
                    *, before_counters: Callable[[], None] | None = None) -> None:
    """Final statuses of a batch's recipients, (recipient id, status, message id), in one UPDATE; the
    campaign's counters move by what that UPDATE changed (rows no longer pending are left alone)."""
    if not outcomes:
        return
    Status = CampaignRecipient.Status
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {_RECIPIENTS} AS r SET status = v.status, message_id = v.message_id, updated_at = %s"  # noqa: S608
                " FROM unnest(%s::bigint[], %s::text[], %s::bigint[]) AS v(id, status, message_id)"
                # r.id = ANY(…): the rows are found by primary key whatever the table's statistics say
                # (a campaign frozen a second ago is not in them yet: no hash of all its pending rows).
                " WHERE r.id = v.id AND r.id = ANY(%s::bigint[]) AND r.campaign_id = %s AND r.status = %s"
                " RETURNING r.status",
                [now, ids := pg_array(o[0] for o in outcomes), pg_array(str(o[1]) for o in outcomes),
                 pg_array(o[2] for o in outcomes), ids, campaign_id, Status.PENDING.value],
            )
        else:
            cursor.execute(
                f"WITH v AS (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS status,"  # noqa: S608
                " json_extract(value, '$[2]') AS message_id FROM json_each(%s))"
                f" UPDATE {_RECIPIENTS} SET status = v.status, message_id = v.message_id, updated_at = %s"
                f" FROM v WHERE {_RECIPIENTS}.id = v.id AND {_RECIPIENTS}.status = %s RETURNING {_RECIPIENTS}.status",
                [json.dumps(outcomes), connection.ops.adapt_datetimefield_value(now), Status.PENDING.value],
            )
        tally = Counter(row[0] for row in cursor.fetchall())
    if before_counters is not None:
        before_counters()
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
    next batch (PostgreSQL, outbox backend: see `_overlap_batches`).

    Each batch is written in one transaction, as without the writer. Two threads write two batches at
    once (the writes are most of the work), but they commit in the order the batches were handed over:
    a batch waits for the previous one to commit before it takes the campaign row (its counters) and
    commits. So the rows still pending after a failure are always the tail of the campaign: the first
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
                except BaseException as error:  # noqa: BLE001 - handed over to the fan-out's thread
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
    """Write batch N on a second connection while batch N+1 is read and gated: on PostgreSQL with the
    outbox backend, outside a caller's transaction (a second connection would not see its rows)."""
    return (
        settings.CAMPAIGN_FANOUT_OVERLAP and connection.vendor == "postgresql"
        and not connection.in_atomic_block and backend_sends_in_bulk()
    )


def _send_batch(campaign: Campaign, workspace: Workspace, batch: list[_Pending],
                renew: Callable[[], bool] = lambda: True, writer: _BatchWriter | None = None) -> None:
    now = timezone.now()
    cutoff = _micros(_window_cutoff(now))
    Status = CampaignRecipient.Status
    # Broadcasts follow the window rule (rule 5): a closed window is skipped without engaging anyone.
    outcomes: list[tuple[int, str, int | None]] = [
        (r.recipient_id, Status.SKIPPED_WINDOW, None) for r in batch
        if r.last_inbound_us is None or r.last_inbound_us <= cutoff
    ]
    reachable = [r for r in batch if r.last_inbound_us is not None and r.last_inbound_us > cutoff]
    refused: set[int] = set()
    if reachable:
        result = activate_many(
            workspace, [r.contact_id for r in reachable], kind=AutomationKind.CAMPAIGN, ref=campaign.ref,
            reserve=workspace.activation_reserve,
        )
        refused = set(result.refused)
    limited = [r for r in reachable if r.contact_id in refused]
    allowed = [r for r in reachable if r.contact_id not in refused]
    outcomes += [(r.recipient_id, Status.LIMITED, None) for r in limited]
    if allowed and not backend_sends_in_bulk():
        _write_limited(campaign, workspace, limited, outcomes, now)
        _send_one_by_one(campaign, workspace, allowed, renew)
        return

    def write(before_counters: Callable[[], None] | None = None) -> None:
        # One transaction for the whole batch: the messages, the paused actions and the final statuses
        # commit together, so a crash anywhere leaves the batch pending and its retry repeats it exactly
        # (the gate's activations, committed before, are found again as already active).
        with transaction.atomic():
            if allowed:
                sent = send_messages_bulk(
                    workspace=workspace, text=campaign.text, origin=Message.Origin.AUTOMATED,
                    items=[(r.contact_id, _message_key(campaign.pk, r.contact_id)) for r in allowed],
                    automation_ref=campaign.ref, now=now,
                )
                outcomes.extend((r.recipient_id, _final_status(s.status), s.message_id)
                                for r, s in zip(allowed, sent, strict=True))
            _write_limited(campaign, workspace, limited, outcomes, now, before_counters=before_counters)

    if writer is None:
        write()
    else:
        writer.submit(write)


def _write_limited(campaign: Campaign, workspace: Workspace, limited: list[_Pending],
                   outcomes: list[tuple[int, str, int | None]], now: datetime.datetime,
                   *, before_counters: Callable[[], None] | None = None) -> None:
    """Paused actions for the refused contacts, and the batch's statuses decided before any send."""
    with transaction.atomic(savepoint=False):
        paused_actions_create(
            workspace=workspace, kind=AutomationKind.CAMPAIGN, automation_ref=campaign.ref,
            action_type=PausedAction.ActionType.CAMPAIGN_MESSAGE, needs_window=True, now=now,
            items=[PauseItem(Contact(pk=r.contact_id, workspace_id=workspace.pk, last_inbound_at=r.last_inbound_at),
                             _message_key(campaign.pk, r.contact_id),
                             {"campaign_id": campaign.pk, "recipient_id": r.recipient_id}) for r in limited],
        )
        _outcomes_write(campaign.pk, outcomes, now, before_counters=before_counters)


def _send_one_by_one(campaign: Campaign, workspace: Workspace, allowed: list[_Pending],
                     renew: Callable[[], bool]) -> None:
    """A backend that talks to the network (Graph API): one message at a time, never inside a
    transaction; each recipient's status is written right after its send."""
    contacts = Contact.objects.in_bulk([r.contact_id for r in allowed])
    for position, recipient in enumerate(allowed):
        if position and position % FANOUT_RENEW_EVERY == 0 and not renew():
            raise CampaignBusy(f"Campaign {campaign.pk}: the lease was lost to another worker.")
        sent = send_message(
            workspace=workspace, contact=contacts[recipient.contact_id], text=campaign.text,
            origin=Message.Origin.AUTOMATED, idempotency_key=_message_key(campaign.pk, recipient.contact_id),
            automation_ref=campaign.ref,
        )
        _outcomes_write(campaign.pk, [(recipient.recipient_id, _final_status(sent.status), sent.message.pk)],
                        timezone.now())


def campaign_send(*, campaign_id: int, batch_size: int | None = None) -> Campaign:
    """The fan-out (the task's body). Safe to run again after a crash at any point."""
    batch_size = batch_size or CAMPAIGN_BATCH_SIZE
    with _fanout_lease(campaign_id) as renew:
        if renew is None:
            raise CampaignBusy(f"Campaign {campaign_id} is being sent by another worker.")
        return _campaign_send_leased(campaign_id, batch_size, renew)


def _campaign_send_leased(campaign_id: int, batch_size: int, renew: Callable[[], bool]) -> Campaign:
    from automations.services.alerts import usage_alerts_check  # noqa: PLC0415

    campaign = Campaign.objects.select_related("workspace").get(pk=campaign_id)
    if campaign.status != Campaign.Status.SENDING:
        return campaign
    workspace = campaign.workspace
    _freeze_audience(campaign, timezone.now())
    writer = _BatchWriter() if _overlap_batches() else None
    try:
        batch: list[_Pending] = []
        while True:
            if not Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).exists():
                break  # cancelled meanwhile
            # Keyset: with a writer, the previous batch may still be pending (being written).
            batch = _pending_batch(campaign_id, batch_size, after=batch[-1] if batch else None)
            if not batch:
                break
            if not renew():
                raise CampaignBusy(f"Campaign {campaign_id}: the lease was lost to another worker.")
            _send_batch(campaign, workspace, batch, renew, writer)
    except BaseException:
        if writer is not None:
            writer.close(raise_error=False)  # the batch being written commits or rolls back whole
        raise
    if writer is not None:
        writer.close()
    # The batches moved the counters by their own tallies; one exact recount settles them whatever
    # ran before (a crash between a batch and its tally, a paused message resumed meanwhile).
    campaign_counters_refresh(campaign_id=campaign_id)
    Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).update(
        status=Campaign.Status.DONE, finished_at=timezone.now()
    )
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


# --- API additions (issue 6): edit and delete drafts ------------------------------------------------

_EDITABLE = ("name", "text", "audience", "segment", "folder", "scheduled_at")


def campaign_update(*, campaign: Campaign, **changes) -> Campaign:
    """Edit a draft (409 once launched), with the checks of `campaign_create`.

    `changes` may hold name, text, audience, segment, folder, scheduled_at; the others stay as they are.
    """
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise ApplicationError(f"These fields cannot be edited: {', '.join(sorted(unknown))}.", code="invalid")
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != Campaign.Status.DRAFT:
            raise ApplicationError(f"This campaign is {locked.get_status_display().lower()}: only drafts can be "
                                   "edited.", code="campaign_not_draft", status=409)
        values = {field: changes[field] if field in changes else getattr(locked, field) for field in _EDITABLE}
        name = (values["name"] or "").strip()
        if not name or len(name) > 120:
            raise ApplicationError("A campaign needs a name of 1 to 120 characters.", code="invalid",
                                   fields={"name": ["Enter 1 to 120 characters."]})
        audience, segment, folder = values["audience"], values["segment"], values["folder"]
        if audience not in Campaign.Audience.values:
            raise ApplicationError("Choose an audience: all contacts, a segment or a folder.", code="invalid",
                                   fields={"audience": [f"One of {', '.join(Campaign.Audience.values)}."]})
        if audience == Campaign.Audience.SEGMENT and (segment is None or segment.workspace_id != locked.workspace_id):
            raise ApplicationError("Choose a segment of this workspace.", code="invalid",
                                   fields={"segment": ["Required."]})
        if audience == Campaign.Audience.FOLDER and (folder is None or folder.workspace_id != locked.workspace_id):
            raise ApplicationError("Choose a folder of this workspace.", code="invalid",
                                   fields={"folder": ["Required."]})
        if values["scheduled_at"] is not None and timezone.is_naive(values["scheduled_at"]):
            raise ApplicationError("The schedule needs a time zone.", code="invalid",
                                   fields={"scheduled_at": ["Give a date and time with its time zone."]})
        locked.name, locked.text, locked.audience = name, _clean_text(values["text"]), audience
        locked.segment = segment if audience == Campaign.Audience.SEGMENT else None
        locked.folder = folder if audience == Campaign.Audience.FOLDER else None
        locked.scheduled_at = values["scheduled_at"]
        locked.save(update_fields=list(_EDITABLE))
    return locked


def campaign_delete(*, campaign: Campaign) -> None:
    """Delete a draft; a launched campaign is kept (its recipients are the send-once ledger)."""
    deleted, _ = Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.DRAFT).delete()
    if not deleted:
        raise ApplicationError("Only drafts can be deleted; cancel a launched campaign instead.",
                               code="campaign_not_draft", status=409)
