"""Benchmark: the usage page and the contacts page on a big workspace.

A workspace with 200,000 contacts and 50,000 activations this month (through the gate, spread over
the month's days) is built once in its own PostgreSQL database, then each page is requested through
Django's test client (the full middleware and template stack, no network) and timed. Prints the
median and the 95th percentile; the target is a usage page under 150 ms at the median.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/inro_bench_web .venv/bin/python bench/usage_page.py
"""

import datetime
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/inro_bench_web")
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inro.settings.test")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

CONTACTS = int(os.environ.get("BENCH_CONTACTS", "200000"))
ACTIVATIONS = int(os.environ.get("BENCH_ACTIVATIONS", "50000"))
RUNS = int(os.environ.get("BENCH_RUNS", "40"))
SLUG = f"bench-usage-{CONTACTS}-{ACTIVATIONS}"


def create_database() -> None:
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    server = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(server, autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')


def build():
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Membership, User, Workspace
    from billing.activation import activate_many
    from billing.integrity import usage_breakdown_rebuild
    from billing.models import ActivationRecord, Plan, Subscription
    from billing.months import month_of, month_start
    from billing.services import quota_refresh
    from contacts.models import Contact

    call_command("migrate", verbosity=0)
    user, _ = User.objects.get_or_create(email="bench@example.test")
    workspace = Workspace.objects.filter(slug=SLUG).first()
    if workspace is not None:
        return user, workspace
    print(f"Building {CONTACTS:,} contacts and {ACTIVATIONS:,} activations (once)...", flush=True)
    workspace = Workspace.objects.create(name="Bench Brand", slug=SLUG)
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.OWNER)
    Subscription.objects.create(workspace=workspace, plan=Plan.objects.get(code=Plan.PRO),
                                addon_packs=ACTIVATIONS // 1000, status=Subscription.Status.ACTIVE)
    quota_refresh(workspace=workspace)
    sources = [choice for choice, _ in Contact.Source.choices]
    now = timezone.now()
    for start in range(0, CONTACTS, 10_000):
        Contact.objects.bulk_create([
            Contact(workspace=workspace, igsid=f"{SLUG}-{i}", username=f"lead_{i}", name=f"Lead {i}",
                    source=sources[i % len(sources)], captured_at=now - datetime.timedelta(minutes=i))
            for i in range(start, min(start + 10_000, CONTACTS))
        ], batch_size=10_000)
    ids = list(Contact.objects.filter(workspace=workspace).order_by("pk").values_list("pk", flat=True)[:ACTIVATIONS])
    for start in range(0, len(ids), 5_000):
        activate_many(workspace, ids[start:start + 5_000], kind="campaign" if start % 10_000 else "scenario",
                      ref="campaign:1")
    # The gate stamps "now"; spread the records over the days so far, as a month of traffic would.
    elapsed = max((now - month_start(month_of())).days, 0) + 1
    table = ActivationRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET activated_at = %s + ((id %% %s) * interval '1 day')"
            " + ((id * 7919 %% 50400) * interval '1 second') WHERE workspace_id = %s",
            [month_start(month_of()) + datetime.timedelta(hours=8), elapsed, workspace.pk],
        )
    usage_breakdown_rebuild(workspace_id=workspace.pk, month=month_of())  # records moved behind the gate
    # What autovacuum does after a bulk load in production: visibility map and statistics.
    connection.ensure_connection()
    connection.connection.autocommit = True
    with connection.connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return user, workspace


def timed(client, url: str, params: dict | None = None) -> list[float]:
    for _ in range(3):
        assert client.get(url, params or {}).status_code == 200
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        response = client.get(url, params or {})
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return samples


def count_queries(client, url: str, params: dict | None) -> int:
    from django.db import connection

    seen = []

    def counter(execute, sql, *args):
        seen.append(sql)
        return execute(sql, *args)

    with connection.execute_wrapper(counter):
        client.get(url, params or {})
    return len(seen)


def main() -> None:
    create_database()
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    user, workspace = build()
    client = Client()
    client.force_login(user)
    pages = [
        ("usage page", f"/w/{workspace.pk}/", None),
        ("usage page, page 40", f"/w/{workspace.pk}/", {"page": 40}),
        ("usage page, search", f"/w/{workspace.pk}/", {"q": "lead_123"}),
        ("contacts page", f"/w/{workspace.pk}/contacts/", None),
        ("contacts, not activated", f"/w/{workspace.pk}/contacts/", {"activated": "no"}),
    ]
    print(f"{CONTACTS:,} contacts, {ACTIVATIONS:,} activations this month, {RUNS} runs each, on {connection.vendor}")
    print(f"{'page':28} {'median ms':>10} {'p95 ms':>8} {'queries':>8}")
    results = {}
    for label, url, params in pages:
        queries = count_queries(client, url, params)
        samples = sorted(timed(client, url, params))
        median = statistics.median(samples)
        results[label] = median
        p95 = samples[int(len(samples) * 0.95) - 1]
        print(f"{label:28} {median:10.1f} {p95:8.1f} {queries:8}")
    verdict = "OK" if results["usage page"] < 150 else "TOO SLOW"
    print(f"usage page median {results['usage page']:.1f} ms: {verdict} (target < 150 ms)")
    if verdict != "OK":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
