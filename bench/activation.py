"""The activation gate on PostgreSQL, each figure beside a raw-SQL reference measured in the same run.

Scenarios (the rows "gate, new contacts", "gate, already active", "activate_many" and "bulk gate"):

- gate, new contacts: `activate` on contacts not yet active this month, 1 and N worker processes
  (spawned; each calls django.setup() and opens its own connection). Reference: the same logical
  operation through raw psycopg by the same number of workers: BEGIN; INSERT ... ON CONFLICT DO
  NOTHING; UPDATE billing_monthlyusage SET activated = activated + 1 WHERE id = ... AND activated <
  quota; COMMIT. Layout: one workspace per worker (each worker stands for another customer's
  campaign; quota = Pro + a bonus grant, far above what is used), and with BENCH_GATE_LAYOUT=both
  also all workers on one shared workspace (every writer then queues on the same usage-row lock).
  The ledger first holds BENCH_GATE_LEDGER (default 100,000) records of another workspace, as a
  ledger in use does: on an empty table PostgreSQL caches a sequential-scan plan for the gate's
  prepared lookup (planned while the table had a few rows), which gets slower with every record
  until the table is next analysed (in production autovacuum does that within a minute; a fresh
  bench database measured 1,700 → 290 calls/s over six rounds of 1.5 s).
- gate, already active: `activate` on those same contacts again (the common case: repeated
  engagement). Reference: a raw single-row SELECT by primary key, same workers.
- activate_many, new contacts: wall time for 10k and 100k contacts none of which is active.
  Reference: one raw INSERT ... SELECT FROM unnest(ids) ON CONFLICT DO NOTHING of the same rows.
- bulk gate: `activate_many` on 10k, 100k, 1M contact ids, half already active (every other one),
  quota = the active half + half of the rest. Reference: one raw INSERT ... SELECT ... ON CONFLICT
  DO NOTHING of the same ids on a twin workspace seeded the same way.
- every bulk row is the median of BENCH_BULK_ROUNDS (default 3) alternating rounds per side, each on
  fresh workspaces (seeded after the last analysis of the ledger, as a new customer's are), with the
  spread beside the median, so a round whose plan flipped shows up.
- reserved then confirmed: the automations' path (docs/product.md rule 13): `activate` or
  `activate_many` with confirm=False, then `activation_confirm` of what it holds, against the same
  raw references (single calls: one more statement a contact; batches: one more statement a batch).

Sizes: BENCH_WORKERS (default 1,8), BENCH_GATE_OPS (contacts per worker and round, default 4000),
BENCH_GATE_SECONDS (length of one timed run, default 1.5), BENCH_ROUNDS (runs per side, best kept,
default 4),
BENCH_NEW_SIZES (default 10000,100000), BENCH_BULK_SIZES (default 10000,100000,1000000),
BENCH_BULK_ROUNDS (rounds of each bulk row, default 3), BENCH_RESERVE_UP_TO (largest batch also timed
reserved then confirmed, default 100000),
BENCH_GATE_LAYOUT (per-worker | shared | both; default both), BENCH_ONLY (comma list of
single,bulk,new; default all).

Run: .venv/bin/python bench/activation.py  (or `make bench` for every scenario and RESULTS.md).
"""

import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Row,
    Timer,
    django_setup,
    emit,
    ensure_database,
    integer,
    libpq_dsn,
    new_workspace,
    seed_contacts,
    sizes,
    vacuum_analyze,
)

KIND = "campaign"
# What the reservation path (reserve, then confirm: what automations do, rule 13) must keep of the raw
# reference, which writes each ledger row once: a reservation writes its row twice (inserted reserved,
# then updated confirmed, a new version in every index) plus two history rows, about twice the
# one-shot gate's work for new contacts (bench/NOTES.md, "Reservations").
RESERVE_TARGET = 0.35


# --------------------------------------------------------------------------------------------------
# Worker processes: spawned once per worker count, each sets Django up and opens its own connections,
# then runs the commands it is sent; every run starts on a shared barrier and is bounded in time.


def _serve(barrier, inbox, outbox) -> None:
    django_setup()
    import psycopg
    from django.db import connection

    from accounts.models import Workspace
    from billing.activation import activate, activation_confirm
    from contacts.models import Contact

    raw = psycopg.connect(libpq_dsn())
    connection.ensure_connection()
    while True:
        command = inbox.get()
        if command is None:
            break
        index, mode, workspace_id, ids, seconds = command
        reasons: dict[str, int] = {}
        done = 0
        try:
            if mode in ("gate", "gate-reserve"):
                workspace = Workspace.objects.get(pk=workspace_id)
                contacts = [Contact(pk=cid, workspace_id=workspace_id) for cid in ids]
                reserve = mode == "gate-reserve"
                barrier.wait(timeout=120)
                start = time.perf_counter()
                deadline = start + seconds
                for contact in contacts:
                    if reserve:
                        # What an automation does: reserve, act, confirm (rule 13).
                        result = activate(workspace, contact, kind=KIND, ref="bench", confirm=False)
                        if result.held:
                            activation_confirm(workspace_id=workspace_id, month=result.month,
                                               contact_ids=[contact.pk], kind=KIND, ref="bench")
                    else:
                        result = activate(workspace, contact, kind=KIND, ref="bench")
                    reasons[result.reason] = reasons.get(result.reason, 0) + 1
                    done += 1
                    if time.perf_counter() >= deadline:
                        break
            elif mode == "raw-new":
                usage_id = raw.execute(
                    "SELECT id FROM billing_monthlyusage WHERE workspace_id = %s"
                    " AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date",
                    [workspace_id],
                ).fetchone()[0]
                raw.commit()
                barrier.wait(timeout=120)
                start = time.perf_counter()
                deadline = start + seconds
                for cid in ids:
                    # psycopg sends BEGIN before the first statement, as Django's atomic() does.
                    raw.execute(
                        "INSERT INTO billing_activationrecord (workspace_id, contact_id, month,"
                        " activated_at, kind, automation_ref)"
                        " VALUES (%s, %s, date_trunc('month', now() AT TIME ZONE 'UTC')::date, now(), %s, %s)"
                        " ON CONFLICT (workspace_id, contact_id, month) DO NOTHING",
                        [workspace_id, cid, KIND, "bench"],
                    )
                    raw.execute(
                        "UPDATE billing_monthlyusage SET activated = activated + 1"
                        " WHERE id = %s AND activated < quota",
                        [usage_id],
                    )
                    raw.commit()
                    done += 1
                    if time.perf_counter() >= deadline:
                        break
            elif mode == "raw-select":
                raw.autocommit = True  # one round trip a call, as the gate's already-active path
                barrier.wait(timeout=120)
                start = time.perf_counter()
                deadline = start + seconds
                for record_id in ids:
                    raw.execute("SELECT * FROM billing_activationrecord WHERE id = %s", [record_id]).fetchone()
                    done += 1
                    if time.perf_counter() >= deadline:
                        break
                raw.autocommit = False
            else:
                raise ValueError(mode)
            outbox.put((start, time.perf_counter(), done, reasons, index))
        except BaseException as exc:  # reported to the parent, which fails loudly
            outbox.put(("error", repr(exc), 0, {}, index))
            barrier.abort()
    raw.close()
    connection.close()


class Workers:
    """`n` spawned worker processes kept for several runs."""

    def __init__(self, n: int) -> None:
        ctx = mp.get_context("spawn")
        self.barrier = ctx.Barrier(n)
        self.inboxes = [ctx.Queue() for _ in range(n)]
        self.outbox = ctx.Queue()
        self.procs = [ctx.Process(target=_serve, args=(self.barrier, q, self.outbox)) for q in self.inboxes]
        for p in self.procs:
            p.start()

    def run(self, mode: str, plan: list[tuple[int, list[int]]], seconds: float) -> tuple[float, int, dict, list]:
        """One run: worker i works on plan[i] for at most `seconds`.

        Returns (seconds, operations, reasons, operations of each worker)."""
        for index, (inbox, (workspace_id, ids)) in enumerate(zip(self.inboxes, plan, strict=True)):
            inbox.put((index, mode, workspace_id, ids, seconds))
        got = [self.outbox.get(timeout=600) for _ in plan]
        errors = [g for g in got if g[0] == "error"]
        if errors:
            self.close()
            raise RuntimeError(f"{mode} worker failed: {errors[0][1]}")
        reasons: dict[str, int] = {}
        for g in got:
            for k, v in g[3].items():
                reasons[k] = reasons.get(k, 0) + v
        each = [0] * len(plan)
        for g in got:
            each[g[4]] = g[2]
        return max(g[1] for g in got) - min(g[0] for g in got), sum(g[2] for g in got), reasons, each

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()


# --------------------------------------------------------------------------------------------------
# Scenarios.


def _ratio_row(scenario: str, fig: float, ref: float, unit: str, target: float, *, higher_is_better=True) -> Row:
    ratio = fig / ref if higher_is_better else ref / fig
    return Row(
        scenario=scenario,
        figure=f"{fig:,.0f} {unit}" if unit != "s" else f"{fig:.3f} s",
        reference=f"{ref:,.0f} {unit}" if unit != "s" else f"{ref:.3f} s",
        ratio=f"{ratio:.2f}",
        target=f"≥ {target:g} of reference",
        met=Row.verdict(ratio >= target),
    )


def _plan(side: str, workers: int, layout: str, per_worker: int) -> list[tuple[int, list[int]]]:
    """Workspaces and fresh contacts for `workers` workers: worker i gets per_worker contact ids."""
    n_ws = workers if layout == "per-worker" else 1
    spaces = [new_workspace(f"{side}{workers}", quota=1000 + 1_000_000) for _ in range(n_ws)]
    ids = {ws.pk: seed_contacts(ws.pk, per_worker * workers // n_ws) for ws in spaces}
    plan = []
    for i in range(workers):
        ws = spaces[i % n_ws].pk
        k = i // n_ws
        plan.append((ws, ids[ws][k * per_worker : (k + 1) * per_worker]))
    return plan


def _ledger_in_use(records: int) -> None:
    """Fill the ledger with `records` activations of another workspace (once per database)."""
    from billing.activation import activate_many
    from billing.models import ActivationRecord

    missing = records - ActivationRecord.objects.count()
    if missing > 0:
        filler = new_workspace("ledger", quota=1000 + missing)
        activate_many(filler, seed_contacts(filler.pk, missing), kind=KIND)
        vacuum_analyze("contacts_contact", "billing_activationrecord", "billing_monthlyusage")


def single(workers_list: list[int], ops: int, seconds: float, rounds: int, layouts: list[str]) -> list[Row]:
    """Best of `rounds` time-bounded runs per side, gate and reference alternating."""
    from billing.models import ActivationRecord

    _ledger_in_use(integer("BENCH_GATE_LEDGER", 100_000))
    rows: list[Row] = []
    for workers in workers_list:
        pool = Workers(workers)
        try:
            for layout in layouts:
                if layout == "shared" and workers == 1:
                    continue
                label = f"{workers} worker{'s' if workers > 1 else ''}"
                if workers > 1:
                    label += ", one workspace each" if layout == "per-worker" else ", one shared workspace"
                gate_plan = _plan("gate", workers, layout, ops * rounds)
                raw_plan = _plan("raw", workers, layout, ops * rounds)
                reserve_plan = _plan("reserve", workers, layout, ops * rounds)
                vacuum_analyze("contacts_contact", "billing_activationrecord", "billing_monthlyusage")

                best = {"gate": 0.0, "raw": 0.0, "again": 0.0, "select": 0.0, "reserve": 0.0}
                used = [0] * workers
                raw_used = [0] * workers
                reserve_used = [0] * workers
                for r in range(rounds):
                    # New contacts: each round on contacts no earlier round touched.
                    plan = [(ws, ids[used[i]:]) for i, (ws, ids) in enumerate(gate_plan)]
                    took, n, reasons, each = pool.run("gate", plan, seconds)
                    gate_round = n / took
                    if reasons.get("activated", 0) != n:
                        raise RuntimeError(f"gate refused or found active some new contacts: {reasons}")
                    used = [u + e for u, e in zip(used, each, strict=True)]
                    best["gate"] = max(best["gate"], n / took)
                    plan = [(ws, ids[raw_used[i]:]) for i, (ws, ids) in enumerate(raw_plan)]
                    took, n, _, each = pool.run("raw-new", plan, seconds)
                    raw_used = [u + e for u, e in zip(raw_used, each, strict=True)]
                    best["raw"] = max(best["raw"], n / took)
                    raw_round = n / took
                    # The automations' path: reserved, then confirmed (two calls a contact).
                    plan = [(ws, ids[reserve_used[i]:]) for i, (ws, ids) in enumerate(reserve_plan)]
                    took, n, reasons, each = pool.run("gate-reserve", plan, seconds)
                    if reasons.get("activated", 0) != n:
                        raise RuntimeError(f"reserving refused or found active some new contacts: {reasons}")
                    reserve_used = [u + e for u, e in zip(reserve_used, each, strict=True)]
                    best["reserve"] = max(best["reserve"], n / took)
                    print(f"  {label} round {r + 1}: new, gate {gate_round:,.0f}/s (best {best['gate']:,.0f}),"
                          f" raw {raw_round:,.0f}/s (best {best['raw']:,.0f}),"
                          f" reserved+confirmed {n / took:,.0f}/s (best {best['reserve']:,.0f})", flush=True)
                # Already active: the contacts activated above, again (gate) / their records by pk (raw).
                # Statistics first, as autovacuum has them for records activated earlier in a month: on
                # a table analysed while these workspaces had no records, the planner rates "this
                # workspace's month" at one row, ties the unique index with the (workspace, month, …)
                # ones, and may scan the whole month to find one contact (NOTES.md, "already active").
                vacuum_analyze("billing_activationrecord")
                again_plan = [(ws, ids[: used[i]]) for i, (ws, ids) in enumerate(gate_plan)]
                select_plan = []
                for i, (ws, ids) in enumerate(raw_plan):
                    rec = dict(ActivationRecord.objects.filter(workspace_id=ws, contact_id__in=ids[: raw_used[i]])
                               .values_list("contact_id", "id"))
                    select_plan.append((ws, [rec[c] for c in ids[: raw_used[i]]]))
                for r in range(rounds):
                    took, n, reasons, _ = pool.run("gate", again_plan, seconds)
                    if reasons.get("already_active", 0) != n:
                        raise RuntimeError(f"already-active contacts not all allowed as such: {reasons}")
                    best["again"] = max(best["again"], n / took)
                    took, n, _, _ = pool.run("raw-select", select_plan, seconds)
                    best["select"] = max(best["select"], n / took)
                    print(f"  {label} round {r + 1}: already active, gate {best['again']:,.0f}/s,"
                          f" select {best['select']:,.0f}/s", flush=True)
                rows.append(_ratio_row(f"gate, new contacts ({label})", best["gate"], best["raw"],
                                       "activations/s", 0.5))
                rows.append(_ratio_row(f"gate, new contacts reserved then confirmed ({label})", best["reserve"],
                                       best["raw"], "activations/s", RESERVE_TARGET))
                rows.append(_ratio_row(f"gate, already active ({label})", best["again"], best["select"],
                                       "calls/s", 0.5))
        finally:
            pool.close()
    return rows


def _raw_insert_select(workspace_id: int, ids: list[int]) -> tuple[float, int]:
    import psycopg

    with psycopg.connect(libpq_dsn()) as conn:
        conn.execute("SELECT 1")
        conn.commit()
        with Timer() as t:
            cur = conn.execute(
                "INSERT INTO billing_activationrecord (workspace_id, contact_id, month, activated_at, kind,"
                " automation_ref) SELECT %s, t.id, date_trunc('month', now() AT TIME ZONE 'UTC')::date, now(),"
                " %s, %s FROM unnest(%s::bigint[]) AS t(id)"
                " ON CONFLICT (workspace_id, contact_id, month) DO NOTHING",
                [workspace_id, KIND, "bench", ids],
            )
            inserted = cur.rowcount
            conn.commit()
    return t.seconds, inserted


def _reserve_and_confirm(workspace, ids: list[int], ref: str):
    """The automations' path for a batch: reserve (activate_many, confirm=False), then confirm every
    reservation held (their messages were all sent). Returns the gate's result."""
    from billing.activation import activate_many, activation_confirm

    result = activate_many(workspace, ids, kind=KIND, ref=ref, confirm=False)
    confirmed = activation_confirm(workspace_id=workspace.pk, month=result.month, contact_ids=list(result.held),
                                   kind=KIND, ref=ref, reason="sent")
    if len(confirmed) != len(result.held):
        raise RuntimeError(f"confirmed {len(confirmed)} of {len(result.held)} reservations")
    return result


def _spread(times: list[float]) -> str:
    return f"{statistics.median(times):.3f} s" + (f" ({min(times):.3f}–{max(times):.3f})" if len(times) > 1 else "")


def _median_row(label: str, gate: list[float], raw: list[float], target: float) -> Row:
    """Median of the rounds on each side; the figure also shows the spread, so a round whose plan
    flipped shows up even when the median does not move."""
    row = _ratio_row(label, statistics.median(gate), statistics.median(raw), "s", target, higher_is_better=False)
    row.figure, row.reference = _spread(gate), _spread(raw)
    return row


def bulk_new(new_sizes: list[int], rounds: int, reserve_up_to: int) -> list[Row]:
    from billing.activation import activate_many

    rows = []
    for n in new_sizes:
        # A batch takes a fraction of a second to seconds, where one cold cache, one checkpoint or one
        # flipped plan moves the figure by half: median of `rounds` alternating rounds per side, each
        # on fresh workspaces.
        gate_times, raw_times, reserve_times = [], [], []
        for round_number in range(1, rounds + 1):
            gate_ws = new_workspace(f"new{n}", quota=max(n, 1000) + 1000)
            raw_ws = new_workspace(f"newraw{n}", quota=max(n, 1000) + 1000)
            gate_ids = seed_contacts(gate_ws.pk, n)
            raw_ids = seed_contacts(raw_ws.pk, n)
            if n <= reserve_up_to:
                reserve_ws = new_workspace(f"newres{n}", quota=max(n, 1000) + 1000)
                reserve_ids = seed_contacts(reserve_ws.pk, n)
            vacuum_analyze("contacts_contact", "billing_activationrecord")
            with Timer() as t:
                result = activate_many(gate_ws, gate_ids, kind=KIND, ref="bench")
            if len(result.newly_activated) != n:
                raise RuntimeError(f"activate_many activated {len(result.newly_activated)} of {n}")
            raw_s, inserted = _raw_insert_select(raw_ws.pk, raw_ids)
            if inserted != n:
                raise RuntimeError(f"raw insert added {inserted} of {n}")
            gate_times.append(t.seconds)
            raw_times.append(raw_s)
            line = f"  activate_many new {n} round {round_number}: {t.seconds:.3f}s, raw {raw_s:.3f}s"
            if n <= reserve_up_to:
                with Timer() as r:
                    _reserve_and_confirm(reserve_ws, reserve_ids, "bench")
                reserve_times.append(r.seconds)
                line += f", reserved+confirmed {r.seconds:.3f}s"
            print(line, flush=True)
        suffix = f" (median of {rounds} rounds)" if rounds > 1 else ""
        row = _median_row(f"activate_many, {n:,} new contacts{suffix}", gate_times, raw_times, 0.5)
        if n >= 100_000:
            row.target += "; 100k < 3 s"
            ok = row.met == "yes" and (n > 100_000 or statistics.median(gate_times) < 3.0)
            row.met = Row.verdict(ok)
        rows.append(row)
        if reserve_times:
            rows.append(_median_row(f"activate_many reserved then confirmed, {n:,} new contacts{suffix}",
                                    reserve_times, raw_times, RESERVE_TARGET))
    return rows


def _half_active_twin(n: int, label: str, *, analyze: bool = True):
    """A workspace with n contacts, every other one active this month, quota = active + half the rest."""
    from billing.activation import activate_many

    active = n // 2
    rest = n - active
    workspace = new_workspace(label, quota=max(active + rest // 2, 1000))
    ids = seed_contacts(workspace.pk, n)
    if analyze:
        vacuum_analyze("contacts_contact")
    pre = ids[::2]
    result = activate_many(workspace, pre, kind=KIND, ref="bench-seed")
    if len(result.newly_activated) != len(pre):
        raise RuntimeError("pre-activation fell short")
    return workspace, ids


def bulk(bulk_sizes: list[int], rounds: int, reserve_up_to: int) -> list[Row]:
    from billing.activation import activate_many, usage

    rows = []
    medians: dict[int, float] = {}
    for n in bulk_sizes:
        expected_new = min(n - n // 2, max(n // 2 + (n - n // 2) // 2, 1000) - n // 2)
        gate_times, raw_times, reserve_times = [], [], []
        for round_number in range(1, rounds + 1):
            # Fresh workspaces every round: the statistics know them as little as a new customer's
            # (seeded and pre-activated after the last analysis of the ledger), which is when a plan
            # that depends on them would flip.
            gate_ws, gate_ids = _half_active_twin(n, f"bulk{n}")
            raw_ws, raw_ids = _half_active_twin(n, f"bulkraw{n}")
            reserve = n <= reserve_up_to
            if reserve:
                reserve_ws, reserve_ids = _half_active_twin(n, f"bulkres{n}")
            with Timer() as t:
                result = activate_many(gate_ws, gate_ids, kind=KIND, ref="bench")
            if len(result.newly_activated) != expected_new or len(result.already_active) != n // 2:
                raise RuntimeError(
                    f"bulk {n}: {len(result.newly_activated)} new (expected {expected_new}),"
                    f" {len(result.already_active)} already active"
                )
            snapshot = usage(gate_ws)
            if snapshot.activated != n // 2 + expected_new:
                raise RuntimeError(f"bulk {n}: counter {snapshot.activated} does not match the records")
            raw_s, inserted = _raw_insert_select(raw_ws.pk, raw_ids)
            gate_times.append(t.seconds)
            raw_times.append(raw_s)
            line = f"  bulk {n} round {round_number}: gate {t.seconds:.3f}s ({expected_new} new), raw {raw_s:.3f}s"
            if reserve:
                with Timer() as r:
                    held = _reserve_and_confirm(reserve_ws, reserve_ids, "bench")
                if len(held.newly_activated) != expected_new:
                    raise RuntimeError(f"bulk {n}: reserved {len(held.newly_activated)} (expected {expected_new})")
                reserve_times.append(r.seconds)
                line += f", reserved+confirmed {r.seconds:.3f}s"
            print(line + f" ({inserted} raw rows)", flush=True)
        medians[n] = statistics.median(gate_times)
        suffix = f", median of {rounds} rounds" if rounds > 1 else ""
        rows.append(_median_row(f"bulk gate, {n:,} contacts (½ active, quota ½ of rest{suffix})", gate_times,
                                raw_times, 0.5))
        if reserve_times:
            rounds_note = f" (median of {rounds} rounds)" if rounds > 1 else ""
            rows.append(_median_row(f"bulk gate reserved then confirmed, {n:,} contacts{rounds_note}", reserve_times,
                                    raw_times, RESERVE_TARGET))
    if 100_000 in medians and 1_000_000 in medians:
        growth = medians[1_000_000] / medians[100_000]
        rows.append(Row(
            scenario="bulk gate, growth 100k → 1M",
            figure=f"{medians[1_000_000]:.3f} s",
            reference=f"{medians[100_000]:.3f} s (100k)",
            ratio=f"{growth:.1f}×",
            target="≤ 12×",
            met=Row.verdict(growth <= 12),
        ))
    return rows


def main() -> None:
    ensure_database()
    django_setup(migrate=True)
    only = {part.strip() for part in os.environ.get("BENCH_ONLY", "single,new,bulk").split(",")}
    layout = os.environ.get("BENCH_GATE_LAYOUT", "both")
    layouts = {"both": ["per-worker", "shared"], "per-worker": ["per-worker"], "shared": ["shared"]}.get(layout)
    if layouts is None:
        sys.exit("BENCH_GATE_LAYOUT must be per-worker, shared or both")
    rows: list[Row] = []
    if "single" in only:
        rows += single(sizes("BENCH_WORKERS", "1,8"), integer("BENCH_GATE_OPS", 4000),
                       float(os.environ.get("BENCH_GATE_SECONDS", "1.5")), integer("BENCH_ROUNDS", 4), layouts)
    rounds = integer("BENCH_BULK_ROUNDS", 3)
    if "new" in only:
        rows += bulk_new(sizes("BENCH_NEW_SIZES", "10000,100000"), rounds, integer("BENCH_RESERVE_UP_TO", 100_000))
    if "bulk" in only:
        rows += bulk(sizes("BENCH_BULK_SIZES", "10000,100000,1000000"), rounds,
                     integer("BENCH_RESERVE_UP_TO", 100_000))
    emit(rows)


if __name__ == "__main__":
    main()
