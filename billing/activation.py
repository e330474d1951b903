"""The activation gate: the only code that creates ActivationRecords (docs/product.md rules 1 to 4, 13).

Every automated action asks `activate` (one contact) or `activate_many` (a batch) before it does
anything to a contact. Manual actions never call it (rule 6).

Reserve, then confirm or release (rule 13). With `confirm=False` the gate grants a *reservation*: the
ledger row exists in state `reserved` and the month's `reserved` counter holds its unit of quota, so
the quota stays exact under any race (activated + reserved <= quota). The action then calls
`activation_confirm` when it engaged the contact (the row becomes confirmed, the unit moves from
`reserved` to `activated`) or `activation_release` when it ended without engaging it (the row is
deleted, the unit is freed and billing's headroom hook resumes paused actions after commit). A
contact already reserved by an action in flight is *joined* (its `holds` grows): it is released only
when every holder let go without engaging it, and confirmed by the first that engaged it, once.
`confirm=True` (the default) confirms at once: for a caller whose action engaged the contact as the
gate decided. What the figures count is confirmed rows only (`ActivationRecord.objects`); every step
of a reservation is kept in ActivationEvent. `activations_settle` (a beat job) settles reservations
a dead worker left behind.

Concurrency design, the same for both entry points:
- the month's MonthlyUsage row is the per-workspace lock: it is locked if there is headroom (one
  contact: SELECT ... FOR NO KEY UPDATE where `activated < quota`), or locked with SELECT ... FOR
  UPDATE for a batch, *before* any record is inserted, so every writer takes the locks in the same
  order and cannot deadlock;
- the record is inserted with ON CONFLICT DO NOTHING; for one contact the counter moves in the same
  statement only if the record was inserted (so that statement needs no transaction of its own); for
  a batch, in the same transaction, by the number of records inserted;
- the unique constraint (workspace, contact, month) and the CHECK activated <= quota are the last
  line of defence, not the only one; so is the composite foreign key
  activation_contact_in_workspace (a record's contact is a contact of its workspace), which a batch
  with room for every id given relies on instead of looking its bare ids up first.
"""

import datetime
import logging
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Workspace
from billing import hooks
from billing.models import ActivationEvent, ActivationRecord, AutomationKind, MonthlyUsage
from billing.months import billing_zone, month_of
from billing.quota import quota_for, usage_row_open
from contacts.models import Contact
from inro.errors import ApplicationError
from inro.sql import kept_server_cursor, pg_array, prepared_statements_allowed

logger = logging.getLogger(__name__)

ACTIVATED = "activated"
ALREADY_ACTIVE = "already_active"
QUOTA_EXHAUSTED = "quota_exhausted"

_RECORDS = ActivationRecord._meta.db_table
_EVENTS = ActivationEvent._meta.db_table
_USAGE = MonthlyUsage._meta.db_table
RESERVED = ActivationRecord.State.RESERVED.value
CONFIRMED = ActivationRecord.State.CONFIRMED.value
_CONTACTS = Contact._meta.db_table
# One index probe per given id (primary key; the once-per-month unique index), as LATERAL subqueries
# that OFFSET 0 keeps from being flattened: a plain join lets the planner hash the workspace's every
# contact (or month's every record) to look up a batch of a few thousand ids. `+ 0` keeps the
# workspace and the month out of index conditions, so the only usable index is the one on the id:
# for a workspace the statistics do not know yet (new, or grown since the last ANALYZE) the planner
# otherwise may probe (workspace, month, activated_at) on the workspace alone and filter all of its
# records for each id (seen in `make bench`: over 20 s for a batch of 5,000 instead of 30 ms).
_ONE_CONTACT = f"SELECT c.id FROM {_CONTACTS} c WHERE c.id = t.id AND c.workspace_id + 0 = %s OFFSET 0"  # noqa: S608
_ONE_RECORD = (
    f"SELECT r.contact_id FROM {_RECORDS} r"  # noqa: S608
    " WHERE r.contact_id = t.id AND r.workspace_id + 0 = %s AND r.month + 0 = %s OFFSET 0"
)
# Is this contact active (or reserved) this month (the gate's lookup for one contact; one unique-index probe)?
_STATE_OF = f"SELECT state FROM {_RECORDS} WHERE workspace_id = %s AND contact_id = %s AND month = %s"  # noqa: S608
# The ledger rows of given contact ids in a month, whatever their state: one probe per id on the
# contact index (the pattern of _ONE_RECORD), never a scan of the workspace's month.
_ROWS_OF = (
    "SELECT x.id FROM unnest(%s::bigint[]) AS t(id) CROSS JOIN LATERAL"  # noqa: S608
    f" (SELECT r.id FROM {_RECORDS} r WHERE r.contact_id = t.id AND r.workspace_id + 0 = %s"
    " AND r.month + 0 = %s OFFSET 0) x"
)
# The same as one array, for `WHERE id = ANY(...)`: ARRAY(subquery) is computed once (an InitPlan)
# before the rows are touched, so the statement is driven by the ids whatever the planner thinks of
# the table. (`WHERE id IN (subquery)` let it start from the reserved rows, via their partial index,
# and run the whole subquery again for each: 114 s to confirm 5,000 reservations on a never-analysed
# workspace, EXPLAIN in bench/NOTES.md.)
# `state || ''` keeps the partial index of reservations (the settle job's) out of these statements: its
# rows are every reservation in flight, of every workspace, and the probes by id are what they need.
_IDS_OF = f"ARRAY({_ROWS_OF})"
# History of a reservation step, one event per contact id returned by the CTE named in {source}.
_EVENTS_FROM = (
    f"INSERT INTO {_EVENTS} (workspace_id, contact_id, month, action, kind, by, reason, at)"  # noqa: S608
    " SELECT %s, contact_id, %s, %s, %s, %s, %s, %s FROM {source}"
)
# The ledger's composite foreign key (billing 0009): a record's contact is a contact of its workspace.
_RECORD_FK = "activation_contact_in_workspace"
# A batch's records from one id array; ids already active (or reserved) this month are left alone.
_INSERT_FROM_ARRAY = (
    f"INSERT INTO {_RECORDS} (workspace_id, contact_id, month, activated_at, kind, automation_ref, state, holds)"  # noqa: S608
    " SELECT %s, contact_id, %s, %s, %s, %s, %s, %s FROM unnest(%s::bigint[]) AS t(contact_id)"
    " ON CONFLICT (workspace_id, contact_id, month) DO NOTHING"
)
_KINDS = frozenset(AutomationKind.values)


class _PreparedCursor(psycopg.Cursor):
    """Server-side binding, each statement prepared once per connection (psycopg caches them).

    The gate's single-contact statements run thousands of times a second with the same text;
    preparing them spares PostgreSQL the parse and plan of every call (bench/activation.py).
    Django keeps prepare_threshold off by default (a pooler in transaction mode that does not
    track prepared statements cannot keep them), so only the gate's hot path opts in; see
    _hot_cursor for when it stays off.
    """

    def execute(self, query, params=None, *, prepare=True, binary=None):
        return super().execute(query, params, prepare=prepare, binary=binary)


class _GateCursor:
    """The gate's hot statements on a prepared cursor kept per connection, with Django's error
    translation; logged and passed through execute wrappers like any query whenever Django is
    logging queries (DEBUG, CaptureQueriesContext) or a wrapper is installed."""

    __slots__ = ("db", "cursor")

    def __init__(self, db, cursor) -> None:
        self.db, self.cursor = db, cursor

    def __enter__(self) -> "_GateCursor":
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def execute(self, sql: str, params: list) -> None:
        db = self.db
        if db.queries_logged or db.execute_wrappers:
            db._prepare_cursor(self.cursor).execute(sql, params)
            return
        with db.wrap_database_errors:
            self.cursor.execute(sql, params)

    def fetchone(self):
        return self.cursor.fetchone()

    def fetchall(self):
        return self.cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self.cursor.rowcount


def _hot_cursor(db=None):
    """A cursor for the gate's repeated single-contact statements (see _PreparedCursor); prepared
    statements stay off with BILLING_GATE_PREPARED_STATEMENTS = False and behind a transaction pooler."""
    db = db or connections[DEFAULT_DB_ALIAS]
    if not prepared_statements_allowed(db, "BILLING_GATE_PREPARED_STATEMENTS"):
        return db.cursor()
    cursor = kept_server_cursor(db, "_billing_gate_cursor", _PreparedCursor)
    return _GateCursor(db, cursor)


class ActivationInputError(ApplicationError, ValueError):
    """The gate was called with something it must refuse outright; nothing was written."""

    status = 400


@dataclass(frozen=True, slots=True)
class ActivationResult:
    allowed: bool
    newly_activated: bool  # a new unit of quota was taken (reserved, or confirmed at once)
    reason: str
    month: datetime.date
    # With confirm=False: this call holds a reservation of `month` the caller must confirm or release
    # (newly reserved, or joined while another action held it). False for a confirmed contact.
    held: bool = False


@dataclass(frozen=True, slots=True)
class BatchActivationResult:
    """Contacts as given (instances or ids), each list in the order given."""

    allowed: tuple
    refused: tuple
    newly_activated: tuple
    already_active: tuple
    month: datetime.date
    limit_reached: bool
    # With confirm=False: the contacts (as given, once each) whose reservation this call holds.
    held: tuple = ()


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    month: datetime.date
    activated: int  # confirmed activations: what is charged and shown
    quota: int
    remaining: int  # quota - activated - in flight
    limit_reached: bool
    limit_reached_at: datetime.datetime | None = None
    in_flight: int = 0  # reservations granted to actions under way, not yet confirmed or released


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(
            f"{kind!r} is not an automated action kind; expected one of {', '.join(AutomationKind.values)}."
            " Manual actions never go through the activation gate."
        )


def _check_workspace(workspace: Workspace) -> None:
    if workspace.pk is None or workspace.deleted_at is not None:
        raise ActivationInputError(
            f"Workspace {workspace.pk} is deleted: nothing can be activated in it.",
            code="workspace_deleted",
        )


def _ref(ref: object) -> str:
    return "" if ref is None else str(ref)[:64]


def _adapt(now: datetime.datetime, month: datetime.date, db=None) -> tuple:
    ops = (db or connection).ops
    return ops.adapt_datetimefield_value(now), ops.adapt_datefield_value(month)


def _day_key(now: datetime.datetime) -> str:
    """The day of the billing month `now` falls on, as the key of MonthlyUsage.activated_by_day."""
    return str(now.astimezone(billing_zone()).day)


# SET clauses moving the per-day, per-kind and per-automation counters of a usage row along with
# `activated`. Parameters, in order: day key, day key, [n,] kind, kind, [n,] ref, ref[, n] (see
# _breakdown_params). A None breakdown ("not known", see billing.selectors) stays None: jsonb_set of
# NULL is NULL.
_BREAKDOWN = (
    "activated_by_day = jsonb_set(activated_by_day, ARRAY[%s::text],"
    " to_jsonb(COALESCE((activated_by_day ->> %s::text)::int, 0) + {n})),"
    " activated_by_kind = jsonb_set(activated_by_kind, ARRAY[%s::text],"
    " to_jsonb(COALESCE((activated_by_kind ->> %s::text)::int, 0) + {n})),"
    " activated_by_ref = jsonb_set(activated_by_ref, ARRAY[%s::text],"
    " to_jsonb(COALESCE((activated_by_ref ->> %s::text)::int, 0) + {n}))"
)


def _breakdown(n_sql: str = "%s::int") -> str:
    """The SET clauses moving the per-day, per-kind and per-automation counters by `n_sql` (a
    placeholder by default)."""
    return _BREAKDOWN.format(n=n_sql)


def _breakdown_params(day: str, kind: str, ref: str, n: int | None = None) -> list:
    """Parameters of `_breakdown()`: with `n` for the placeholder form, without it for an SQL count."""
    if n is None:
        return [day, day, kind, kind, ref, ref]
    return [day, day, n, kind, kind, n, ref, ref, n]


def activate(
    workspace: Workspace, contact: Contact, *, kind: str, ref: object = None, reserve: int = 0, confirm: bool = True
) -> ActivationResult:
    """Ask whether an automated action of `kind` may engage `contact` now, activating it if needed.

    `reserve` keeps that many activations out of reach of this call (campaigns leave room for people
    who write in). Already-active contacts are always allowed (rule 3). With `confirm=False` the
    activation is a reservation (`result.held`) the caller confirms or releases (rule 13).
    """
    _check_kind(kind)
    _check_workspace(workspace)
    if contact.workspace_id != workspace.pk:
        raise ActivationInputError(
            f"Contact {contact.pk} does not belong to workspace {workspace.pk}.",
            code="contact_not_in_workspace",
        )
    now = timezone.now()
    month = month_of(now)
    db = connections[DEFAULT_DB_ALIAS]  # looked up once: each `connection.x` is a thread-local lookup
    db_now, db_month = _adapt(now, month, db)
    ref_text = _ref(ref)

    for _attempt in range(6):
        with _hot_cursor(db) as cursor:
            # The common case (repeated engagement) in one round trip on one unique index.
            cursor.execute(_STATE_OF, [workspace.pk, contact.pk, db_month])
            row = cursor.fetchone()
        if row is not None:
            if row[0] == CONFIRMED:
                return ActivationResult(True, False, ALREADY_ACTIVE, month)
            # Reserved by an action in flight: join it, or (engaged at once) confirm it.
            if confirm:
                if activation_confirm(workspace_id=workspace.pk, month=month, contact_ids=[contact.pk], kind=kind,
                                      ref=ref_text, reason="engaged"):
                    return ActivationResult(True, True, ACTIVATED, month)
            elif _join(db, workspace.pk, [contact.pk], db_month, db_now, kind, ref_text):
                return ActivationResult(True, False, ALREADY_ACTIVE, month, held=True)
            continue  # confirmed or released meanwhile: look again
        # The count and the record are one statement: outside a transaction it is its own (one round
        # trip, no BEGIN or COMMIT); inside the caller's, a savepoint keeps an error from aborting it,
        # as everywhere else.
        single = not db.in_atomic_block
        with nullcontext() if single else transaction.atomic(), _hot_cursor(db) as cursor:
            counted, usage_id = _count_and_record(
                cursor, workspace.pk, contact.pk, db_month, db_now, _day_key(now), kind, ref_text, max(reserve, 0),
                confirm,
            )
            if counted:
                return ActivationResult(True, True, ACTIVATED, month, held=not confirm)
            if usage_id is not None:
                # No headroom, or a concurrent call activated or reserved the contact first: an active
                # contact stays free (rule 3), a reserved one is joined.
                cursor.execute(_STATE_OF, [workspace.pk, contact.pk, db_month])
                if cursor.fetchone() is not None:
                    continue
                # The row in the way may have been a reservation released since: with room left, try
                # again rather than report a quota that is not exhausted.
                cursor.execute(f"SELECT activated + reserved + %s < quota FROM {_USAGE} WHERE id = %s",  # noqa: S608
                               [max(reserve, 0), usage_id])
                if cursor.fetchone()[0]:
                    continue
                _mark_limit_reached(cursor, usage_id, db_now)
                return ActivationResult(False, False, QUOTA_EXHAUSTED, month)
        # First use this month: open the row (lazily, rule 11) and try again.
        usage_row_open(workspace_id=workspace.pk, month=month)
    raise ApplicationError(  # pragma: no cover - each retry follows a concurrent change
        "The activation kept conflicting; try again.", code="conflict", status=409
    )


def _join(db, workspace_id: int, contact_ids: list[int], db_month, db_now, kind: str, ref: str) -> list[int]:
    """Hold the reservations in flight of these contacts as well (holds + 1, taken again now, so the
    settle job waits for this holder too); returns the contact ids joined, each with its event."""
    with nullcontext() if not db.in_atomic_block else transaction.atomic(), db.cursor() as cursor:
        cursor.execute(
            f"WITH j AS (UPDATE {_RECORDS} SET holds = holds + 1, activated_at = GREATEST(activated_at, %s)"  # noqa: S608
            f" WHERE id = ANY({_IDS_OF}) AND state || '' = %s RETURNING contact_id),"
            f" h AS ({_EVENTS_FROM.format(source='j')})"
            " SELECT contact_id FROM j",
            [db_now, pg_array(contact_ids), workspace_id, db_month, RESERVED,
             workspace_id, db_month, ActivationEvent.Action.JOINED.value, kind, ref, "", db_now],
        )
        return [row[0] for row in cursor.fetchall()]


# One statement, one round trip. `l` locks the usage row if there is headroom (re-checked on the
# latest version after a wait, as an UPDATE would); the INSERT reads `l`, the UPDATE reads the
# INSERT's result, so they run in that order. The last column tells, in the statement's snapshot,
# whether the month's row existed at all. Confirmed at once: `activated` and the breakdown move;
# reserved: `reserved` moves and the reservation's event is written by the same statement.
_COUNT_LOCK = (
    f"WITH l AS (SELECT id FROM {_USAGE} WHERE workspace_id = %s AND month = %s"  # noqa: S608
    " AND activated + reserved + %s < quota FOR NO KEY UPDATE),"
    f" i AS (INSERT INTO {_RECORDS} (workspace_id, contact_id, month, activated_at, kind,"
    " automation_ref, state, holds) SELECT %s::bigint, %s::bigint, %s::date, %s::timestamptz, %s::text,"
    " %s::text, %s::text, %s::smallint FROM l ON CONFLICT (workspace_id, contact_id, month) DO NOTHING"
    " RETURNING contact_id),"
)
_COUNT_AND_RECORD = (
    _COUNT_LOCK  # noqa: S608
    + f" u AS (UPDATE {_USAGE} SET activated = activated + 1, {_breakdown()}"  # noqa: S608
    " WHERE id = (SELECT id FROM l) AND EXISTS (SELECT 1 FROM i) RETURNING id)"
    f" SELECT EXISTS (SELECT 1 FROM u), (SELECT id FROM {_USAGE} WHERE workspace_id = %s AND month = %s)"
)
_COUNT_AND_RESERVE = (
    _COUNT_LOCK  # noqa: S608
    + f" u AS (UPDATE {_USAGE} SET reserved = reserved + 1"  # noqa: S608
    " WHERE id = (SELECT id FROM l) AND EXISTS (SELECT 1 FROM i) RETURNING id),"
    f" h AS ({_EVENTS_FROM.format(source='i')})"
    f" SELECT EXISTS (SELECT 1 FROM u), (SELECT id FROM {_USAGE} WHERE workspace_id = %s AND month = %s)"
)


def _count_and_record(
    cursor, workspace_id: int, contact_id: int, db_month, db_now, day: str, kind: str, ref: str, reserve: int,
    confirm: bool = True,
) -> tuple[bool, int | None]:
    """Insert the record and move the month's counter if there is headroom, in one statement.

    Returns (counted, usage row id or None when the month's row is not open yet). The usage-row lock
    is taken first, so it orders all writers of a workspace. The counter moves only if the record was
    inserted, so nothing is ever undone: a contact activated by a concurrent call is not counted, and
    the caller finds its record.
    """
    head = [workspace_id, db_month, reserve, workspace_id, contact_id, db_month, db_now, kind, ref]
    tail = [workspace_id, db_month]
    if confirm:
        cursor.execute(_COUNT_AND_RECORD, [*head, CONFIRMED, 0, *_breakdown_params(day, kind, ref, 1), *tail])
    else:
        cursor.execute(_COUNT_AND_RESERVE, [*head, RESERVED, 1, workspace_id, db_month,
                                            ActivationEvent.Action.RESERVED.value, kind, ref, "", db_now, *tail])
    counted, usage_id = cursor.fetchone()
    return bool(counted), usage_id


def _mark_limit_reached(cursor, usage_id: int, db_now) -> None:
    # Rule 4: the workspace is marked "limit reached" when the quota itself is used up.
    cursor.execute(
        f"UPDATE {_USAGE} SET limit_reached_at = %s"  # noqa: S608
        " WHERE id = %s AND limit_reached_at IS NULL AND activated + reserved >= quota",
        [db_now, usage_id],
    )


# Planner settings for the gate's batch statements, so their plans never depend on how fresh the
# statistics are. Every statement of a batch is meant to be driven by its id array: one index probe
# per id (primary key, the contact index, the unique index), nested loops, never a scan of the
# workspace. A workspace the statistics do not know yet (new, or grown since the last ANALYZE) is
# rated at a row or two, which ties every index that starts with workspace_id and can turn a probe per
# id into a walk of the workspace per id (seen in `make bench`: 3.67 s for a batch of 10,000 against
# 0.10 s). With sequential scans, hash and merge joins priced out the planner has only the probes
# left, whatever the estimates; JIT is off because the cost of a big array crosses jit_above_cost
# and compiling costs more than the statement (50 ms for 10,000 ids). The settings hold for the
# gate's own transaction, including the deferred foreign-key checks at its COMMIT; inside a caller's
# transaction they are put back as they were before returning.
_STABLE_PLANS = ("enable_seqscan", "enable_hashjoin", "enable_mergejoin", "jit")


class _StablePlans:
    """`with _StablePlans(cursor):` the gate's planner settings for the statements inside."""

    __slots__ = ("cursor", "before", "nested")

    def __init__(self, cursor) -> None:
        self.cursor = cursor
        self.before: list = []
        # Outside a caller's transaction the settings end with the gate's own (SET LOCAL semantics).
        self.nested = len(connection.atomic_blocks) > 1

    def __enter__(self) -> "_StablePlans":
        reads = ", ".join(f"current_setting('{name}')" for name in _STABLE_PLANS)
        sets = ", ".join(f"set_config('{name}', 'off', true)" for name in _STABLE_PLANS)
        self.cursor.execute(f"SELECT {reads}, {sets}")
        self.before = list(self.cursor.fetchone()[: len(_STABLE_PLANS)])
        return self

    def __exit__(self, exc_type, *exc) -> bool:
        if self.nested and exc_type is None:
            self.cursor.execute(
                "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in _STABLE_PLANS),
                [value for pair in zip(_STABLE_PLANS, self.before, strict=True) for value in pair],
            )
        return False


def _lock_usage(cursor, workspace_id: int, db_month) -> int | None:
    """Lock the month's usage row (the order every writer of a workspace follows: usage row, then
    ledger rows); its id, or None when the month has no row (then it has no reservation either)."""
    cursor.execute(
        f"SELECT id FROM {_USAGE} WHERE workspace_id = %s AND month = %s FOR NO KEY UPDATE",  # noqa: S608
        [workspace_id, db_month],
    )
    row = cursor.fetchone()
    return None if row is None else row[0]


_CONFIRM = (
    f" c AS (UPDATE {_RECORDS} SET state = %s, holds = 0, activated_at = %s, kind = %s, automation_ref = %s"  # noqa: S608
    f" WHERE id = ANY({_IDS_OF}) AND state || '' = %s AND {{locked}} RETURNING contact_id),"
    f" h AS ({_EVENTS_FROM.format(source='c')}),"
    f" u AS (UPDATE {_USAGE} SET activated = activated + (SELECT count(*) FROM c),"
    f" reserved = reserved - (SELECT count(*) FROM c), {_breakdown('(SELECT count(*) FROM c)::int')}"
    " WHERE id = {usage} AND EXISTS (SELECT 1 FROM c))"
    " SELECT contact_id FROM c"
)
# Under the usage-row lock taken by an earlier statement of the transaction.
_CONFIRM_LOCKED = "WITH" + _CONFIRM.format(locked="true", usage="%s")
# One statement, one round trip, no transaction of its own (one contact, from an action's worker): `l`
# locks the usage row first (a condition without columns of the ledger is checked once, before any
# ledger row is touched), so the order of locks is the gate's: usage row, then ledger row.
_CONFIRM_ALONE = (
    f"WITH l AS (SELECT id FROM {_USAGE} WHERE workspace_id = %s AND month = %s FOR NO KEY UPDATE),"  # noqa: S608
    + _CONFIRM.format(locked="(SELECT id FROM l) IS NOT NULL", usage="(SELECT id FROM l)")
)


def _confirm_params(workspace_id: int, contact_ids: list[int], db_month, now, kind: str, ref: str, reason: str,
                    by: str | None) -> list:
    db_now = _adapt(now, db_month)[0]
    return [CONFIRMED, db_now, kind, ref, pg_array(contact_ids), workspace_id, db_month, RESERVED,
            workspace_id, db_month, ActivationEvent.Action.CONFIRMED.value, kind, by or ref, reason[:64], db_now,
            *_breakdown_params(_day_key(now), kind, ref)]


def _confirm_rows(cursor, usage_id: int, workspace_id: int, contact_ids: list[int], db_month, now, kind: str,
                  ref: str, reason: str, by: str | None = None) -> list[int]:
    """Under the usage-row lock: confirm the reservations of these contacts (the action that engaged them
    is the one recorded), move the units from `reserved` to `activated`, write the events."""
    cursor.execute(_CONFIRM_LOCKED,
                   [*_confirm_params(workspace_id, contact_ids, db_month, now, kind, ref, reason, by), usage_id])
    return [row[0] for row in cursor.fetchall()]


def _month_param(month: datetime.date) -> datetime.date:
    return month.replace(day=1)


def activation_confirm(
    *, workspace_id: int, month: datetime.date, contact_ids: Sequence[int], kind: str, ref: object = None,
    reason: str = "engaged", by: str | None = None,
) -> list[int]:
    """The action engaged these contacts: confirm their reservations of `month` (rule 13).

    Returns the contact ids whose reservation this call confirmed; a contact already confirmed (by
    this or another action) stays as it is, charged once; one with no reservation is left alone.
    """
    _check_kind(kind)
    ids = sorted(set(contact_ids))
    if not ids:
        return []
    month = _month_param(month)
    now = timezone.now()
    if len(ids) == 1 and not connection.in_atomic_block:
        # One contact (an action's worker after its send): one statement, its own transaction.
        with _hot_cursor() as cursor:
            cursor.execute(_CONFIRM_ALONE, [workspace_id, month, *_confirm_params(
                workspace_id, ids, month, now, kind, _ref(ref), reason, by)])
            return [row[0] for row in cursor.fetchall()]
    with transaction.atomic(), connection.cursor() as cursor, _StablePlans(cursor):
        usage_id = _lock_usage(cursor, workspace_id, month)
        if usage_id is None:
            return []
        return _confirm_rows(cursor, usage_id, workspace_id, ids, month, now, kind, _ref(ref), reason, by)


def activation_release(
    *, workspace_id: int, month: datetime.date, contact_ids: Sequence[int], ref: object = None, reason: str,
    everyone: bool = False, older_than: datetime.datetime | None = None, by: str | None = None,
) -> list[int]:
    """The action ended without engaging these contacts: let go of their reservations of `month`.

    Each id lets go of one hold; a reservation whose last holder let go is deleted, its unit freed,
    and billing's headroom hook fires after commit so paused actions resume (rule 13). A contact
    confirmed meanwhile (another action engaged it) stays activated, once. `everyone` drops every hold
    (the settle job, for a dead worker's reservation), only of rows last taken before `older_than`.
    Returns the contact ids whose reservation was deleted.
    """
    ids = sorted(set(contact_ids))
    if not ids:
        return []
    month = _month_param(month)
    now = timezone.now()
    ref = by or _ref(ref)
    with transaction.atomic(), connection.cursor() as cursor, _StablePlans(cursor):
        usage_id = _lock_usage(cursor, workspace_id, month)
        if usage_id is None:
            return []
        age = " AND activated_at < %s" if older_than is not None else ""
        age_params = [older_than] if older_than is not None else []
        # First the reservations this lets go of for good (a concurrent join that committed first is
        # seen by the re-check and keeps the row), then, in a new snapshot, one hold of the others.
        cursor.execute(
            f"WITH d AS (DELETE FROM {_RECORDS} WHERE id = ANY({_IDS_OF}) AND state || '' = %s"  # noqa: S608
            f" {'' if everyone else 'AND holds <= 1'}{age} RETURNING contact_id, kind),"
            f" h AS (INSERT INTO {_EVENTS} (workspace_id, contact_id, month, action, kind, by, reason, at)"
            " SELECT %s, contact_id, %s, %s, kind, %s, %s, %s FROM d),"
            f" u AS (UPDATE {_USAGE} SET reserved = reserved - (SELECT count(*) FROM d),"
            " limit_reached_at = CASE WHEN activated + reserved - (SELECT count(*) FROM d) < quota THEN NULL"
            " ELSE limit_reached_at END WHERE id = %s AND EXISTS (SELECT 1 FROM d))"
            " SELECT contact_id FROM d",
            [pg_array(ids), workspace_id, month, RESERVED, *age_params,
             workspace_id, month, ActivationEvent.Action.RELEASED.value, ref, reason[:64], now, usage_id],
        )
        released = [row[0] for row in cursor.fetchall()]
        rest = sorted(set(ids).difference(released))
        if rest and not everyone:
            cursor.execute(
                f"WITH g AS (UPDATE {_RECORDS} SET holds = holds - 1 WHERE id = ANY({_IDS_OF})"  # noqa: S608
                " AND state || '' = %s AND holds > 1 RETURNING contact_id, kind),"
                f" h AS (INSERT INTO {_EVENTS} (workspace_id, contact_id, month, action, kind, by, reason, at)"
                " SELECT %s, contact_id, %s, %s, kind, %s, %s, %s FROM g) SELECT count(*) FROM g",
                [pg_array(rest), workspace_id, month, RESERVED,
                 workspace_id, month, ActivationEvent.Action.LET_GO.value, ref, reason[:64], now],
            )
        if released:
            hooks.headroom_raised(workspace_id=workspace_id, month=month)
    return released


def _split_contacts(workspace: Workspace, contacts: Sequence) -> tuple[list[int], list[int]]:
    """Ids of `contacts` (instances or ids) and, among them, the bare ids still to check in the database.

    Instances are checked here against `workspace`; anything else is refused outright.
    """
    ids: list[int] = []
    unchecked: list[int] = []
    for item in contacts:
        if isinstance(item, Contact):
            if item.workspace_id != workspace.pk:
                raise ActivationInputError(
                    f"Contact {item.pk} does not belong to workspace {workspace.pk}.",
                    code="contact_not_in_workspace",
                )
            ids.append(item.pk)
        elif isinstance(item, int) and not isinstance(item, bool):
            ids.append(item)
            unchecked.append(item)
        else:
            raise ActivationInputError(f"{item!r} is not a contact.", code="not_a_contact")
    return ids, unchecked


def _foreign_error(workspace: Workspace, how_many: int) -> ActivationInputError:
    return ActivationInputError(
        f"{how_many} of the contacts given does not belong to workspace {workspace.pk}.",
        code="contact_not_in_workspace",
    )


def _contact_ids(workspace: Workspace, contacts: Sequence) -> list[int]:
    """Ids of `contacts` (instances or ids), each checked to belong to `workspace`."""
    ids, unchecked = _split_contacts(workspace, contacts)
    if unchecked:
        wanted = set(unchecked)
        found = _count_contacts(workspace.pk, sorted(wanted))
        if found != len(wanted):
            raise _foreign_error(workspace, len(wanted) - found)
    return ids


def _count_contacts(workspace_id: int, ids: list[int]) -> int:
    """How many of `ids` (distinct) are contacts of the workspace."""
    with connection.cursor() as cursor:
        # Driven by the array: one primary-key probe per id, whatever the table's statistics say
        # (a filter `id = ANY(array)` on a stale row estimate degenerates into ids x rows).
        cursor.execute(
            f"SELECT count(*) FROM unnest(%s::bigint[]) AS t(id) CROSS JOIN LATERAL ({_ONE_CONTACT}) c",  # noqa: S608
            [pg_array(ids), workspace_id],
        )
        return cursor.fetchone()[0]


def _foreign_and_active(
    cursor, workspace_id: int, db_month, ids: list[int], *, check: bool
) -> tuple[set[int], set[int]]:
    """One query driven by the id array: ids that are not contacts of the workspace (only looked up
    when `check`) and ids already active this month."""
    if check:
        cursor.execute(
            "SELECT t.id, c.id IS NULL, r.contact_id IS NOT NULL FROM unnest(%s::bigint[]) AS t(id)"  # noqa: S608
            f" LEFT JOIN LATERAL ({_ONE_CONTACT}) c ON true LEFT JOIN LATERAL ({_ONE_RECORD}) r ON true"
            " WHERE c.id IS NULL OR r.contact_id IS NOT NULL",
            [pg_array(ids), workspace_id, workspace_id, db_month],
        )
        foreign: set[int] = set()
        active: set[int] = set()
        for contact_id, is_foreign, is_active in cursor.fetchall():
            if is_foreign:
                foreign.add(contact_id)
            if is_active:
                active.add(contact_id)
        return foreign, active
    cursor.execute(
        f"SELECT r.contact_id FROM unnest(%s::bigint[]) AS t(id) CROSS JOIN LATERAL ({_ONE_RECORD}) r",  # noqa: S608
        [pg_array(ids), workspace_id, db_month],
    )
    return set(), {row[0] for row in cursor.fetchall()}


def _insert_records(cursor, workspace_id: int, ids: list[int], db_month, db_now, kind: str, ref: str,
                    confirm: bool = True) -> int:
    if not ids:
        return 0
    cursor.execute(_INSERT_FROM_ARRAY, [workspace_id, db_month, db_now, kind, ref, *_state(confirm), pg_array(ids)])
    return cursor.rowcount


def _state(confirm: bool) -> tuple[str, int]:
    """(state, holds) of a new ledger row: confirmed at once, or a reservation with its one holder."""
    return (CONFIRMED, 0) if confirm else (RESERVED, 1)


class _LostRace(Exception):
    """Raised inside the batch transaction to roll it back; never escapes this module."""


class _ForeignIds(Exception):
    """The ledger's foreign key refused a bare id; rolls the batch back. Never escapes this module."""


def _insert_all_returning(cursor, workspace_id: int, ids: list[int], db_month, db_now, kind: str, ref: str,
                          *, check: bool, confirm: bool = True) -> list[int]:
    """When the headroom covers every id: insert them all, return the ones that were new.

    No lookup first: the INSERT's own conflict check finds the contacts already active (one probe per
    id where the lookup and the conflict check made two). With `check`, the composite foreign key is
    checked at the end of the statement instead of at commit, so a bare id that is not a contact of the
    workspace raises here and nothing is written; an id that conflicts has a record of this workspace,
    so the key already vouches for it.
    """
    if check:
        cursor.execute(f"SET CONSTRAINTS {_RECORD_FK} IMMEDIATE")
    try:
        cursor.execute(_INSERT_FROM_ARRAY + " RETURNING contact_id",
                       [workspace_id, db_month, db_now, kind, ref, *_state(confirm), pg_array(ids)])
    except IntegrityError as error:
        diag = getattr(error.__cause__, "diag", None)
        if getattr(diag, "constraint_name", None) == _RECORD_FK:
            raise _ForeignIds from error
        raise
    inserted = [row[0] for row in cursor.fetchall()]
    if check:
        # Back to the default for the rest of a caller's transaction (an error rolls it back anyway).
        cursor.execute(f"SET CONSTRAINTS {_RECORD_FK} DEFERRED")
    return inserted


def activate_many(
    workspace: Workspace,
    contacts: Iterable,
    *,
    kind: str,
    ref: object = None,
    reserve: int = 0,
    confirm: bool = True,
) -> BatchActivationResult:
    """The gate for a batch, with a fixed number of queries whatever its size.

    Contacts (instances or ids) are considered in the order given: the first ones get the headroom,
    so a caller that orders by engagement activates its most engaged contacts first. With
    `confirm=False` the allowed contacts not yet confirmed are reservations (`result.held`) the
    caller confirms or releases (rule 13).
    """
    _check_kind(kind)
    _check_workspace(workspace)
    items = list(contacts)
    # Bare ids are checked inside the batch's one lookup query, under the usage-row lock.
    ids, unchecked = _split_contacts(workspace, items)
    now = timezone.now()
    month = month_of(now)
    db_now, db_month = _adapt(now, month)
    ref_text = _ref(ref)
    unique_ids = list(dict.fromkeys(ids))
    usage_id = usage_row_open(workspace_id=workspace.pk, month=month).pk

    for _attempt in range(3):
        try:
            with transaction.atomic(), connection.cursor() as cursor, _StablePlans(cursor):
                cursor.execute(
                    f"SELECT quota, activated, reserved FROM {_USAGE} WHERE id = %s FOR UPDATE",  # noqa: S608
                    [usage_id],
                )
                quota, activated, in_flight = cursor.fetchone()
                headroom = max(quota - max(reserve, 0) - activated - in_flight, 0)
                if unique_ids and headroom >= len(unique_ids):
                    # Room for all (the common case): nothing to choose, so no lookup first.
                    new_ids = _insert_all_returning(cursor, workspace.pk, unique_ids, db_month, db_now, kind,
                                                    ref_text, check=bool(unchecked), confirm=confirm)
                    active = set(unique_ids).difference(new_ids)
                    candidates = new_ids
                else:
                    if unique_ids:
                        foreign, active = _foreign_and_active(
                            cursor, workspace.pk, db_month, unique_ids, check=bool(unchecked)
                        )
                        foreign.intersection_update(unchecked)  # instances were checked already
                        if foreign:
                            raise _foreign_error(workspace, len(foreign))  # rolls back: nothing written
                    else:
                        active = set()
                    candidates = [contact_id for contact_id in unique_ids if contact_id not in active]
                    new_ids = candidates[:headroom]
                    inserted = _insert_records(cursor, workspace.pk, new_ids, db_month, db_now, kind, ref_text,
                                               confirm)
                    if inserted != len(new_ids):
                        # Cannot happen while every writer holds the usage lock; retry rather than miscount.
                        raise _LostRace
                # Contacts found reserved by an action in flight (only possible when the month has
                # reservations: the counter is exact): joined, or confirmed by a batch engaged at once.
                in_flight_ids: list[int] = []
                if active and in_flight:
                    in_flight_ids = sorted(active)
                    if confirm:
                        in_flight_ids = _confirm_rows(cursor, usage_id, workspace.pk, in_flight_ids, db_month, now,
                                                      kind, ref_text, "engaged")
                    else:
                        in_flight_ids = _join(connection, workspace.pk, in_flight_ids, db_month, db_now, kind,
                                              ref_text)
                if new_ids and confirm:
                    cursor.execute(
                        f"UPDATE {_USAGE} SET activated = activated + %s, {_breakdown()}"  # noqa: S608
                        " WHERE id = %s",
                        [len(new_ids), *_breakdown_params(_day_key(now), kind, ref_text, len(new_ids)), usage_id],
                    )
                elif new_ids:
                    cursor.execute(
                        f"WITH h AS ({_EVENTS_FROM.format(source='unnest(%s::bigint[]) AS t(contact_id)')})"  # noqa: S608
                        f" UPDATE {_USAGE} SET reserved = reserved + %s WHERE id = %s",
                        [workspace.pk, db_month, ActivationEvent.Action.RESERVED.value, kind, ref_text, "", db_now,
                         pg_array(new_ids), len(new_ids), usage_id],
                    )
                refused_any = len(candidates) > len(new_ids)
                if refused_any:
                    _mark_limit_reached(cursor, usage_id, db_now)
            break
        except _LostRace:
            continue
        except _ForeignIds:
            wanted = sorted(set(unchecked))
            raise _foreign_error(workspace, len(wanted) - _count_contacts(workspace.pk, wanted)) from None
    else:  # pragma: no cover - defensive
        raise ApplicationError("The activation batch kept conflicting; try again.", code="conflict", status=409)

    new_set = set(new_ids)
    # Confirmed at once, a reservation found in flight is a new activation for this batch.
    newly_set = new_set.union(in_flight_ids) if confirm else new_set
    held_set = set() if confirm else new_set.union(in_flight_ids)
    allowed, refused, newly, already, held = [], [], [], [], []
    seen: set[int] = set()
    for item, contact_id in zip(items, ids, strict=True):
        repeat = contact_id in seen
        seen.add(contact_id)
        if contact_id in active or contact_id in new_set:
            allowed.append(item)
            # A contact listed twice is newly activated once; the repeat is already active.
            (newly if contact_id in newly_set and not repeat else already).append(item)
            if contact_id in held_set and not repeat:
                held.append(item)
        else:
            refused.append(item)
    return BatchActivationResult(
        allowed=tuple(allowed),
        refused=tuple(refused),
        newly_activated=tuple(newly),
        already_active=tuple(already),
        month=month,
        limit_reached=activated + in_flight + len(new_ids) >= quota,
        held=tuple(held),
    )


@dataclass(frozen=True, slots=True)
class SettleResult:
    confirmed: int
    released: int
    kept: int  # still in progress: their action is alive (a retrying delivery, a running fan-out)


SETTLED_BY = "settle-job"


def activations_settle(*, now: datetime.datetime | None = None, limit: int = 2000) -> SettleResult:
    """Settle reservations a dead worker left in flight (rule 13; the beat job, every minute).

    A reservation last taken more than ACTIVATION_SETTLE_SECONDS ago is confirmed where the engagement
    is recorded (a message sent, a segment membership, enrichment data, a delivery answered 2xx:
    automations' probe says where), released where it is not, and kept while its action is still
    under way (a delivery retrying, a fan-out holding its lease). Safe to run twice: a row confirmed
    or released meanwhile is left alone, and a reservation taken again since is too young to touch.
    """
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=max(int(getattr(settings, "ACTIVATION_SETTLE_SECONDS", 600)), 0))
    confirmed = released = kept = 0
    stale = list(
        ActivationRecord.all_states.filter(state=ActivationRecord.State.RESERVED, activated_at__lt=cutoff)
        .order_by("activated_at")
        .values_list("workspace_id", "contact_id", "month", "kind", "automation_ref", "activated_at")[:limit]
    )
    if any(row[1] is None for row in stale):
        released += _release_erased(cutoff)
    reservations = [hooks.Reservation(*row) for row in stale if row[1] is not None]
    verdicts = hooks.engagement_verdicts(reservations=reservations)
    groups: dict[tuple, list[int]] = {}
    for r in reservations:
        verdict = verdicts[(r.workspace_id, r.contact_id)]
        if verdict == hooks.IN_PROGRESS:
            kept += 1
            continue
        key = (verdict, r.workspace_id, r.month, r.kind, r.automation_ref)
        groups.setdefault(key, []).append(r.contact_id)
    for (verdict, workspace_id, month, kind, ref), ids in sorted(groups.items()):
        if verdict == hooks.ENGAGED:
            confirmed += len(activation_confirm(workspace_id=workspace_id, month=month, contact_ids=ids, kind=kind,
                                                ref=ref, reason="engagement_recorded", by=SETTLED_BY))
        else:
            released += len(activation_release(workspace_id=workspace_id, month=month, contact_ids=ids,
                                               reason="no_engagement_recorded", everyone=True, older_than=cutoff,
                                               by=SETTLED_BY))
    if confirmed or released:
        logger.warning("settled reservations left in flight: %s confirmed, %s released, %s kept",
                       confirmed, released, kept)
    return SettleResult(confirmed=confirmed, released=released, kept=kept)


def _release_erased(cutoff: datetime.datetime) -> int:
    """Release reservations whose contact was erased (a privacy request) while in flight: nobody can
    be engaged through them any more."""
    released = 0
    orphans = (ActivationRecord.all_states.filter(state=ActivationRecord.State.RESERVED, contact__isnull=True,
                                                  activated_at__lt=cutoff)
               .values_list("workspace_id", "month").distinct())
    for workspace_id, month in list(orphans):
        with transaction.atomic(), connection.cursor() as cursor:
            usage_id = _lock_usage(cursor, workspace_id, month)
            rows = ActivationRecord.all_states.filter(
                workspace_id=workspace_id, month=month, state=ActivationRecord.State.RESERVED,
                contact__isnull=True, activated_at__lt=cutoff)
            gone, _ = rows.delete()
            if gone and usage_id is not None:
                MonthlyUsage.objects.filter(pk=usage_id).update(reserved=F("reserved") - gone)
                ActivationEvent.objects.create(workspace_id=workspace_id, contact=None, month=month,
                                               action=ActivationEvent.Action.RELEASED, by=SETTLED_BY,
                                               reason="contact_erased", at=timezone.now())
                hooks.headroom_raised(workspace_id=workspace_id, month=month)
            released += gone
    return released


def usage(workspace: Workspace, month: datetime.date | None = None) -> UsageSnapshot:
    """A month's confirmed activations against its quota (default: the current month).

    Reservations in flight are not activations yet: they are `in_flight`, and they hold headroom
    (`remaining` leaves them out) until they are confirmed or released.
    """
    current = month_of()
    month = (month or current).replace(day=1)
    in_flight = 0
    if month == current:
        row = usage_row_open(workspace_id=workspace.pk, month=month)
        activated, quota, reached_at, in_flight = row.activated, row.quota, row.limit_reached_at, row.reserved
    else:
        row = MonthlyUsage.objects.filter(workspace_id=workspace.pk, month=month).first()
        if row is not None:
            activated, quota, reached_at, in_flight = row.activated, row.quota, row.limit_reached_at, row.reserved
        else:
            activated = ActivationRecord.objects.filter(workspace_id=workspace.pk, month=month).count()
            quota = max(quota_for(workspace_id=workspace.pk, month=month), activated)
            reached_at = None
    return UsageSnapshot(
        month=month,
        activated=activated,
        quota=quota,
        remaining=max(quota - activated - in_flight, 0),
        limit_reached=activated + in_flight >= quota,
        limit_reached_at=reached_at,
        in_flight=in_flight,
    )


def history_import(
    workspace: Workspace, *, month: datetime.date, entries: Sequence[tuple[int, datetime.datetime, str, str]]
) -> int:
    """Load activations of a *past* month (migration from another system, demo data).

    `entries` are (contact_id, activated_at, kind, ref). The current month is refused: it only ever
    moves through the gate. The month's usage row follows the records it gains. Returns rows added.
    """
    month = month.replace(day=1)
    if month >= month_of():
        raise ActivationInputError("Only past months can be imported.", code="month_not_closed")
    _check_workspace(workspace)
    for _, _, kind, _ in entries:
        _check_kind(kind)
    ids = _contact_ids(workspace, [contact_id for contact_id, _, _, _ in entries])
    if len(set(ids)) != len(ids):
        raise ActivationInputError("A contact appears twice in one month.", code="duplicate_contact")
    with transaction.atomic():
        before = ActivationRecord.objects.filter(workspace_id=workspace.pk, month=month).count()
        ActivationRecord.objects.bulk_create(
            [
                ActivationRecord(workspace_id=workspace.pk, contact_id=contact_id, month=month,
                                 activated_at=at, kind=kind, automation_ref=_ref(ref))
                for contact_id, at, kind, ref in entries
            ],
            ignore_conflicts=True,
            batch_size=2000,
        )
        after = ActivationRecord.objects.filter(workspace_id=workspace.pk, month=month).count()
        row, _ = MonthlyUsage.objects.get_or_create(
            workspace_id=workspace.pk, month=month,
            defaults={"quota": max(quota_for(workspace_id=workspace.pk, month=month), after), "activated": 0},
        )
        # The breakdown becomes "not known" and is rebuilt from the records on first read.
        MonthlyUsage.objects.filter(pk=row.pk).update(
            activated=after, quota=max(row.quota, after), activated_by_day=None, activated_by_kind=None,
            activated_by_ref=None
        )
    return after - before
