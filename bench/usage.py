"""Usage page and `usage/` API latency on a big workspace.

Target: median < 100 ms, and the number of queries independent of the data size.

A workspace with BENCH_USAGE_CONTACTS (default 1,000,000) contacts and BENCH_USAGE_ACTIVATIONS
(default 200,000) activations this month (through the gate, `activate_many`, then spread over the
month's days as real traffic would be), and a small twin (1% of both) for the query count. Each
URL is requested through Django's test Client (the whole middleware, view and template stack, no
network): 3 warm-up requests, then BENCH_USAGE_RUNS (default 30) timed ones; median and p95.
The page is requested logged in (session), the API with an `Authorization: Token` header.

Run: .venv/bin/python bench/usage.py
"""

import datetime
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Row,
    django_setup,
    emit,
    ensure_database,
    integer,
    median,
    new_workspace,
    percentile,
    run_token,
    seed_contacts,
    vacuum_analyze,
)


def build(contacts: int, activations: int, label: str):
    """A Pro workspace with `contacts` contacts, `activations` of them activated this month; returns
    (workspace, owner, API key)."""
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Membership, User
    from accounts.services import api_token_create
    from billing.activation import activate_many
    from billing.integrity import usage_breakdown_rebuild
    from billing.models import ActivationRecord
    from billing.months import month_of, month_start

    workspace = new_workspace(label, quota=max(activations + 1000, 1000))
    user = User.objects.create_user(email=f"{label}-{run_token()}@bench.example", password=None)
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.OWNER)
    _, key = api_token_create(user=user, name="bench")
    ids = seed_contacts(workspace.pk, contacts)
    vacuum_analyze("contacts_contact")
    chunk = 50_000
    for start in range(0, activations, chunk):
        kind = "campaign" if (start // chunk) % 2 == 0 else "scenario"
        activate_many(workspace, ids[start : min(start + chunk, activations)], kind=kind, ref="campaign:1")
    # The gate stamps "now"; spread the records over the month's days so far, as traffic would.
    now = timezone.now()
    elapsed = max((now - month_start(month_of())).days, 0) + 1
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ActivationRecord._meta.db_table} SET activated_at = %s"
            " + ((id %% %s) * interval '1 day') + ((id * 7919 %% 50400) * interval '1 second')"
            " WHERE workspace_id = %s",
            [month_start(month_of()) + datetime.timedelta(hours=8), elapsed, workspace.pk],
        )
    # Moving records behind the gate's back: recount the month's per-day counters from the ledger.
    usage_breakdown_rebuild(workspace_id=workspace.pk, month=month_of())
    return workspace, user, key


def measure(client, url: str, runs: int, headers: dict) -> tuple[list[float], int]:
    from django.db import connection

    for _ in range(3):
        response = client.get(url, **headers)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        client.get(url, **headers)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url, **headers)
        samples.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
    return samples, len(queries)


def main() -> None:
    ensure_database()
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    django_setup(migrate=True)
    from django.test import Client

    contacts = integer("BENCH_USAGE_CONTACTS", 1_000_000)
    activations = min(integer("BENCH_USAGE_ACTIVATIONS", 200_000), contacts)
    runs = integer("BENCH_USAGE_RUNS", 30)
    sizes = {
        "big": (contacts, activations),
        "small": (max(contacts // 100, 1), max(activations // 100, 1)),
    }
    t0 = time.perf_counter()
    built = {name: build(c, a, f"usage{name}") for name, (c, a) in sizes.items()}
    vacuum_analyze("contacts_contact", "billing_activationrecord", "billing_monthlyusage")
    print(f"  seeded in {time.perf_counter() - t0:.0f} s", flush=True)

    results = {}
    for name, (workspace, user, key) in built.items():
        page = Client()
        page.force_login(user)
        api = Client()
        results[(name, "page")] = measure(page, f"/w/{workspace.pk}/", runs, {})
        results[(name, "api")] = measure(api, f"/api/v1/workspaces/{workspace.pk}/usage/", runs,
                                         {"HTTP_AUTHORIZATION": f"Token {key}"})

    big_c, big_a = sizes["big"]
    small_c, small_a = sizes["small"]
    rows = []
    for what, label in (("page", "usage page"), ("api", "`usage/` API")):
        samples, queries = results[("big", what)]
        _, small_queries = results[("small", what)]
        mid, p95 = median(samples), percentile(samples, 95)
        print(f"  {label}: median {mid * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, {queries} queries"
              f" ({small_queries} on the small workspace)", flush=True)
        rows.append(Row(
            scenario=f"{label}, {big_c:,} contacts, {big_a:,} activations this month",
            figure=f"median {mid * 1000:,.1f} ms, p95 {p95 * 1000:,.1f} ms",
            reference="—",
            ratio="—",
            target="median < 100 ms",
            met=Row.verdict(mid < 0.1),
        ))
        rows.append(Row(
            scenario=f"{label}, queries per request",
            figure=f"{queries} ({big_c:,} contacts)",
            reference=f"{small_queries} ({small_c:,} contacts, {small_a:,} activations)",
            ratio="—",
            target="independent of data size",
            met=Row.verdict(queries == small_queries),
        ))
    emit(rows)


if __name__ == "__main__":
    main()
