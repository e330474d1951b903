"""Month rollover over many workspaces: target < 5 s to open the month.

Seeds BENCH_ROLLOVER_WORKSPACES (default 10,000) workspaces, a fifth of them on Pro with add-on packs
and a tenth with a bonus grant for next month, each with this month's usage row open (as after a
month of use) and one contact, half of them with a campaign message paused at the limit, then
times `billing.rollover.month_roll_over_as_needed(now=<first instant of next
month>)`: closing this month and opening next month's usage row for every workspace. Listeners of
the month-opened hook (resuming paused actions) run after it, timed apart; with
CELERY_TASK_ALWAYS_EAGER unset they only enqueue. The bench database is throwaway, so opening next
month there harms nothing; run it last (make bench does).

Run: .venv/bin/python bench/rollover.py
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row, django_setup, emit, ensure_database, integer, run_token


def main() -> None:
    ensure_database()
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "false")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")  # the resume tasks are only queued here
    django_setup(migrate=True)
    from django.db import connection

    from accounts.models import Workspace
    from billing import hooks
    from billing.models import BonusGrant, MonthlyUsage, MonthRollover, Plan, Subscription
    from billing.months import month_of, month_start, next_month
    from billing.rollover import month_roll_over_as_needed

    n = integer("BENCH_ROLLOVER_WORKSPACES", 10_000)
    token = run_token()
    current = month_of()
    upcoming = next_month(current)
    if MonthRollover.objects.filter(month=upcoming).exists():
        sys.exit("Next month was already rolled over in this database: run `make bench` (recreates it).")
    # Earlier months of this database (other scenarios) count as done: only next month is opened.
    MonthRollover.objects.get_or_create(month=current, defaults={"completed_at": month_start(current)})

    t0 = time.perf_counter()
    spaces = Workspace.objects.bulk_create(
        [Workspace(name=f"roll {token} {i}", slug=f"roll-{token}-{i}") for i in range(n)], batch_size=5000
    )
    pro = Plan.objects.get(code=Plan.PRO)
    Subscription.objects.bulk_create(
        [Subscription(workspace=ws, plan=pro, addon_packs=i % 4) for i, ws in enumerate(spaces) if i % 5 == 0],
        batch_size=5000,
    )
    BonusGrant.objects.bulk_create(
        [BonusGrant(workspace=ws, month=upcoming, amount=250, reason="bench") for i, ws in enumerate(spaces)
         if i % 10 == 0],
        batch_size=5000,
    )
    MonthlyUsage.objects.bulk_create(
        [MonthlyUsage(workspace=ws, month=current, quota=100, activated=i % 100) for i, ws in enumerate(spaces)],
        batch_size=5000, ignore_conflicts=True,
    )
    # One contact a workspace and, for every other workspace, a campaign message paused at the limit.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO contacts_contact (workspace_id, igsid, username, name, source, captured_at,"
            " last_inbound_at, email, phone, custom_fields, biography)"
            " SELECT id, 'roll-' || id, 'lead', '', 'dm', now(), now(), '', '', '{}', ''"
            " FROM accounts_workspace WHERE slug LIKE %s",
            [f"roll-{token}-%"],
        )
        cursor.execute(
            "INSERT INTO automations_pausedaction (workspace_id, contact_id, kind, automation_ref, action_type,"
            " payload, dedupe_key, created_at, status, reason)"
            " SELECT c.workspace_id, c.id, 'campaign', 'campaign:1', 'campaign_message', '{}',"
            " 'campaign:1:contact:' || c.id, now(), 'waiting', 'quota_exhausted'"
            " FROM contacts_contact c JOIN accounts_workspace w ON w.id = c.workspace_id"
            " WHERE w.slug LIKE %s AND w.id %% 2 = 0",
            [f"roll-{token}-%"],
        )
        paused = cursor.rowcount
        cursor.execute("ANALYZE accounts_workspace; ANALYZE billing_monthlyusage; ANALYZE billing_subscription;"
                       " ANALYZE automations_pausedaction")
    total = Workspace.objects.filter(deleted_at__isnull=True).count()
    print(f"  seeded {n:,} workspaces ({total:,} live in the database), {paused:,} paused actions,"
          f" in {time.perf_counter() - t0:.1f} s", flush=True)

    listeners = list(hooks._month_listeners)
    hooks._month_listeners.clear()  # the opening alone first; listeners are timed apart below
    try:
        start = time.perf_counter()
        opened = month_roll_over_as_needed(now=month_start(upcoming))
        opening = time.perf_counter() - start
    finally:
        hooks._month_listeners.extend(listeners)
    rows_opened = MonthlyUsage.objects.filter(month=upcoming).count()
    if opened != [upcoming] or rows_opened != total:
        raise RuntimeError(f"rollover opened {opened}, {rows_opened} rows for {total} workspaces")
    start = time.perf_counter()
    for listener in listeners:
        listener(month=upcoming)
    resuming = time.perf_counter() - start
    print(f"  opening {opening:.3f} s for {rows_opened:,} workspaces; {len(listeners)} month-opened listener(s)"
          f" {resuming:.3f} s", flush=True)

    emit([
        Row(
            scenario=f"month rollover, {rows_opened:,} workspaces, {paused:,} paused actions (opening the month)",
            figure=f"{opening:.2f} s",
            reference="—",
            ratio="—",
            target="< 5 s",
            met=Row.verdict(opening < 5),
        ),
        Row(
            scenario="month rollover, month-opened listeners (queue the resumes)",
            figure=f"{resuming:.2f} s",
            reference="—",
            ratio="—",
            target="may continue in the background",
            met="—",
        ),
    ])


if __name__ == "__main__":
    main()
