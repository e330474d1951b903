"""The bulk gate on a workspace the planner's statistics do not know, with and without the gate's
planner settings (billing/activation.py, `_StablePlans`). Not part of `make bench`: a check of plan
stability, whose figures bench/NOTES.md quotes ("Reservations and stable plans").

It recreates the bench database (BENCH_DATABASE_URL, name starting with inro_bench), fills the
contacts and the ledger with another workspace's 200,000 rows, analyses them, turns autovacuum off on
both tables (in that database only), then for each round and side seeds a fresh workspace of N
contacts (BENCH_STALE_N, default 10,000), activates every other one, and times `activate_many` of all
N with the quota at half the rest (a lookup, an insert, the deferred foreign-key checks at commit).
BENCH_STALE_ROUNDS rounds (default 3).

Run: .venv/bin/python bench/stale_plans.py
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    django_setup,
    ensure_database,
    integer,
    libpq_dsn,
    new_workspace,
    seed_contacts,
    vacuum_analyze,
)


class _DefaultPlanner:
    def __init__(self, cursor) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False


def main() -> None:
    ensure_database(recreate=True)
    django_setup(migrate=True)
    import psycopg

    from billing import activation
    from billing.activation import activate_many

    filler = new_workspace("ledger", quota=201_000)
    activate_many(filler, seed_contacts(filler.pk, 200_000), kind="campaign")
    vacuum_analyze("contacts_contact", "billing_activationrecord", "billing_monthlyusage")
    with psycopg.connect(libpq_dsn(), autocommit=True) as conn:
        for table in ("contacts_contact", "billing_activationrecord", "billing_monthlyusage"):
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    n = integer("BENCH_STALE_N", 10_000)
    gate_settings = activation._StablePlans
    times: dict[str, list[float]] = {"default planner": [], "gate settings": []}
    for number in range(1, integer("BENCH_STALE_ROUNDS", 3) + 1):
        for side, runs in times.items():
            activation._StablePlans = _DefaultPlanner if side == "default planner" else gate_settings
            workspace = new_workspace("stale", quota=max(n // 2 + (n - n // 2) // 2, 1000))
            ids = seed_contacts(workspace.pk, n)
            activate_many(workspace, ids[::2], kind="campaign", ref="seed")
            start = time.perf_counter()
            activate_many(workspace, ids, kind="campaign", ref="bench")
            runs.append(time.perf_counter() - start)
            print(f"round {number}, {side}: {runs[-1]:.3f} s", flush=True)
    activation._StablePlans = gate_settings
    for side, runs in times.items():
        print(f"{side}: median {statistics.median(runs):.3f} s, {min(runs):.3f}–{max(runs):.3f}")


if __name__ == "__main__":
    main()
