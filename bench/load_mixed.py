"""Load: 16 concurrent clients for 60 s against a live server on loopback, on a workspace near its limit.

The mix: signed Meta webhook deliveries (new and known contacts; processed inline), campaign launches
(the service, to a random folder: the gate decides at the edge), manual DMs (the API), bonus grants
(the service: headroom rises, paused actions resume), usage reads (the API and the usage page).
Afterwards: activations <= quota for every workspace and month, every counter equals its records
(`usage_integrity`), no 5xx. Prints requests, errors, p50/p99 per kind.

It builds a fresh PostgreSQL database of its own, starts gunicorn on a free loopback port and, as
production runs, real Celery workers on Redis (LOAD_REDIS_DB, default 5, flushed before and after): one
for the default queue (threads, 4 at once) and one for the conversation queue; the service calls of the
clients queue their tasks there too. After the load it measures the time until every queued task has run
(the queues and the workers' unacknowledged tasks empty). LOAD_EAGER=true runs tasks inline instead
(the old way: a bonus grant then resumes paused actions inside the request). Everything it started is
stopped at the end (bounded waits everywhere).

    .venv/bin/python bench/load_mixed.py        # LOAD_CLIENTS=16 LOAD_SECONDS=60 LOAD_DATABASE_URL=...
"""

import hashlib
import hmac
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
_BENCH = os.environ.get("BENCH_DATABASE_URL")
DATABASE_URL = os.environ.get("LOAD_DATABASE_URL") or (
    f"{_BENCH}_load_mixed" if _BENCH else "postgres://postgres@127.0.0.1:5432/inro_load_mixed")
EAGER = os.environ.get("LOAD_EAGER", "false").lower() in ("1", "true", "yes")
REDIS_URL = f"redis://127.0.0.1:6379/{int(os.environ.get('LOAD_REDIS_DB', '5'))}"
QUEUES = ("load-default", "load-conversation")
CLIENTS = int(os.environ.get("LOAD_CLIENTS", "16"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "60"))
CONTACTS = int(os.environ.get("LOAD_CONTACTS", "3000"))
FOLDERS = 30
QUOTA, ACTIVE_AT_START = 1000, 900  # near its limit: 100 activations of headroom when the load starts
IG_ACCOUNT = "17841400000099999"
APP_SECRET = "meta_app_secret_test"  # noqa: S105 - inro.settings.test's value, loopback only
ENV = {
    **os.environ,
    "DATABASE_URL": DATABASE_URL,
    "DJANGO_SETTINGS_MODULE": "inro.settings.test",
    "CELERY_TASK_ALWAYS_EAGER": "true" if EAGER else "false",
    "TEST_CELERY_BROKER_URL": REDIS_URL,
    "CELERY_TASK_DEFAULT_QUEUE": QUEUES[0],
    "CELERY_CONVERSATION_QUEUE": QUEUES[1],
    "API_THROTTLE_USER": "1000000/min",
    "LOG_LEVEL": "WARNING",
}
os.environ.update({k: ENV[k] for k in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "CELERY_TASK_ALWAYS_EAGER",
                                       "TEST_CELERY_BROKER_URL", "CELERY_TASK_DEFAULT_QUEUE",
                                       "CELERY_CONVERSATION_QUEUE")})
os.environ["LOG_LEVEL"] = "WARNING"


def fresh_database() -> None:
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    server = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=ENV,
                   check=True, timeout=300)


def build():
    import django

    django.setup()
    from django.utils import timezone

    from accounts.models import Membership, User, Workspace
    from accounts.services import api_token_create
    from billing.activation import activate_many
    from billing.models import AutomationKind
    from billing.services import bonus_grant
    from contacts.models import Contact, Folder, FolderMembership

    user = User.objects.create_user(email="load@example.test", password="load-password-2026")  # noqa: S106
    workspace = Workspace.objects.create(name="Load Brand", slug="load-brand", instagram_account_id=IG_ACCOUNT)
    Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.OWNER)
    now = timezone.now()
    Contact.objects.bulk_create([
        Contact(workspace=workspace, igsid=f"7{i:010d}", username=f"load_{i}", name=f"Load {i}", source="dm",
                captured_at=now, last_inbound_at=now) for i in range(CONTACTS)
    ], batch_size=2000)
    ids = list(Contact.objects.filter(workspace=workspace).order_by("pk").values_list("pk", flat=True))
    bonus_grant(workspace=workspace, amount=QUOTA - 100, reason="load test", granted_by=None)
    activate_many(workspace, ids[:ACTIVE_AT_START], kind=AutomationKind.SCENARIO, ref="scenario:load")
    rng = random.Random(7)  # test data
    for n in range(FOLDERS):
        folder = Folder.objects.create(workspace=workspace, name=f"Segment {n}")
        FolderMembership.objects.bulk_create([FolderMembership(folder=folder, contact_id=cid)
                                              for cid in rng.sample(ids, 100)])
    _, key = api_token_create(user=user, name="load")
    return workspace, user, key, ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, log_path: Path) -> subprocess.Popen:
    log = log_path.open("wb")
    process = subprocess.Popen(  # fixed argv
        [str(Path(sys.executable).parent / "gunicorn"), "inro.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "4", "--threads", "4", "--worker-class", "gthread", "--timeout", "60"],
        cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200:
                return process
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise SystemExit(f"gunicorn did not start; see {log_path}")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = defaultdict(list)
        self.status = defaultdict(lambda: defaultdict(int))
        self.errors = []

    def add(self, kind: str, seconds: float, status: int | str):
        with self.lock:
            self.latency[kind].append(seconds)
            self.status[kind][status] += 1
            if not isinstance(status, int) or status >= 500:
                self.errors.append((kind, status))


def run_load(base: str, workspace_id: int, key: str, ids: list[int]) -> Stats:
    import requests
    from django.db import connections

    from accounts.models import Workspace
    from automations.services import campaign_create, campaign_launch
    from billing.services import bonus_grant
    from contacts.models import Folder

    stats = Stats()
    deadline = time.monotonic() + SECONDS
    counter = iter(range(10**9))
    counter_lock = threading.Lock()
    folders = list(Folder.objects.filter(workspace_id=workspace_id).values_list("pk", flat=True))

    def next_n() -> int:
        with counter_lock:
            return next(counter)

    def timed(kind, fn):
        started = time.perf_counter()
        try:
            status = fn()
        except Exception as error:  # counted and printed as an error
            status = type(error).__name__
        stats.add(kind, time.perf_counter() - started, status)

    def client(seed: int):
        rng = random.Random(seed)  # load mix
        http = requests.Session()
        api = {"Authorization": f"Token {key}"}
        web = requests.Session()
        page = web.get(f"{base}/login/", timeout=30)
        web.post(f"{base}/login/", data={"username": "load@example.test", "password": "load-password-2026",
                                         "csrfmiddlewaretoken": page.cookies.get("csrftoken")},
                 headers={"Referer": f"{base}/login/"}, timeout=30)
        workspace = Workspace.objects.get(pk=workspace_id)
        try:
            while time.monotonic() < deadline:
                roll = rng.random()
                if roll < 0.35:  # a Meta delivery: a DM from a known contact or a brand-new one
                    n = next_n()
                    sender = f"7{rng.choice(range(CONTACTS)):010d}" if rng.random() < 0.5 else f"8{n:010d}"
                    stamp = int(time.time() * 1000)
                    body = json.dumps({"object": "instagram", "entry": [{"id": IG_ACCOUNT, "time": stamp,
                        "messaging": [{"sender": {"id": sender}, "recipient": {"id": IG_ACCOUNT},
                                       "timestamp": stamp,
                                       "message": {"mid": f"load-mid-{n}-{seed}", "text": f"hi {n}"}}]}]}).encode()
                    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
                    timed("meta_webhook", lambda b=body, s=signature: http.post(
                        f"{base}/webhooks/instagram/", data=b, timeout=30,
                        headers={"Content-Type": "application/json", "X-Hub-Signature-256": s}).status_code)
                elif roll < 0.38:  # the same-run reference: a static answer under the same load
                    timed("healthz", lambda: http.get(f"{base}/healthz", timeout=30).status_code)
                elif roll < 0.55:
                    timed("usage_api", lambda: http.get(f"{base}/api/v1/workspaces/{workspace_id}/usage/",
                                                        headers=api, timeout=30).status_code)
                elif roll < 0.62:
                    timed("usage_page", lambda: web.get(f"{base}/w/{workspace_id}/", timeout=30).status_code)
                elif roll < 0.82:
                    contact_id = rng.choice(ids)
                    timed("manual_dm", lambda c=contact_id: http.post(
                        f"{base}/api/v1/workspaces/{workspace_id}/contacts/{c}/messages/", json={"text": "Thanks!"},
                        headers=api, timeout=30).status_code)
                elif roll < 0.95:
                    def launch():
                        campaign = campaign_create(workspace=workspace, name=f"Load {next_n()}", text="Sale",
                                                   audience="folder",
                                                   folder=Folder.objects.get(pk=rng.choice(folders)))
                        campaign_launch(campaign=campaign, launched_by=None)
                        return 200
                    timed("campaign_launch", launch)
                else:
                    def grant():
                        bonus_grant(workspace=workspace, amount=rng.randint(1, 10), reason="load", granted_by=None)
                        return 200
                    timed("bonus_grant", grant)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 300)
    return stats


def check_and_report(stats: Stats, workspace_id: int, drain_seconds: float | None, load_text: str) -> int:
    import io

    from django.core.management import call_command
    from django.db.models import Count, F

    from billing.integrity import usage_drift
    from billing.models import ActivationRecord, MonthlyUsage

    over = list(MonthlyUsage.objects.filter(activated__gt=F("quota")).values_list("workspace_id", "month"))
    records = {(r["workspace_id"], r["month"]): r["n"] for r in
               ActivationRecord.objects.values("workspace_id", "month").annotate(n=Count("id"))}
    quotas = {(u.workspace_id, u.month): u.quota for u in MonthlyUsage.objects.all()}
    over += [k for k, n in records.items() if n > quotas.get(k, 0)]
    drift = usage_drift()
    out = io.StringIO()
    call_command("usage_integrity", stdout=out)
    usage = MonthlyUsage.objects.get(workspace_id=workspace_id, month=MonthlyUsage.objects.latest("month").month)

    total = sum(len(v) for v in stats.latency.values())
    http_kinds = ("meta_webhook", "usage_api", "usage_page", "manual_dm", "healthz")
    http_total = sum(len(stats.latency[k]) for k in http_kinds)
    mode = "tasks inline" if EAGER else "Celery workers on Redis"
    print(f"\nload_mixed: {CLIENTS} clients for {SECONDS:.0f}s against gunicorn on loopback (PostgreSQL, {mode})")
    print(f"{'kind':<16}{'count':>8}{'p50 ms':>10}{'p99 ms':>10}  statuses")
    all_latency = []
    for kind in sorted(stats.latency):
        values = sorted(stats.latency[kind])
        all_latency += values
        p50 = statistics.median(values) * 1000
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))] * 1000
        print(f"{kind:<16}{len(values):>8}{p50:>10.1f}{p99:>10.1f}  {dict(stats.status[kind])}")
    all_latency.sort()
    print(f"{'all':<16}{total:>8}{statistics.median(all_latency) * 1000:>10.1f}"
          f"{all_latency[int(len(all_latency) * 0.99)] * 1000:>10.1f}")
    print(f"HTTP requests: {http_total} ({http_total / SECONDS:.0f}/s); service operations: {total - http_total}; "
          f"errors (5xx or exceptions): {len(stats.errors)}")
    print(f"workspace: {usage.activated} activated of a quota of {usage.quota}; "
          f"months over quota: {len(over)}; drift rows: {len(drift)}")
    print(out.getvalue().strip())
    failed = bool(over or drift or stats.errors)
    if stats.errors:
        print("errors:", stats.errors[:20])
    print("RESULT:", "FAIL" if failed else "OK")
    http = sorted(v for k in http_kinds if k != "healthz" for v in stats.latency[k])
    static = sorted(stats.latency["healthz"])
    p99 = http[min(len(http) - 1, int(len(http) * 0.99))] if http else 0.0
    static_p99 = static[min(len(static) - 1, int(len(static) * 0.99))] if static else 0.0
    drained = "inline" if drain_seconds is None else f"{drain_seconds:.1f} s"
    from common import Row, emit

    emit([Row(
        scenario=f"mixed load, {CLIENTS} clients × {SECONDS:.0f} s, {mode} (load {load_text})",
        figure=f"HTTP p99 {p99 * 1000:,.0f} ms (p50 {statistics.median(http) * 1000:,.0f} ms);"
               f" every queued task run {drained} after the load",
        reference=f"/healthz in the same mix: p99 {static_p99 * 1000:,.0f} ms",
        ratio=f"{static_p99 / p99:.2f}" if p99 else "—",
        target="HTTP p99 < 500 ms; no 5xx; no drift",
        met=Row.verdict(p99 < 0.5 and not failed),
    )])
    return 1 if failed else 0


def start_worker(name: str, queue: str, *pool: str) -> subprocess.Popen:
    log_path = ROOT / "var" / f"load_mixed_{name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(  # fixed argv
        [str(Path(sys.executable).parent / "celery"), "-A", "inro", "worker", *pool, "-Q", queue,
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO",
         "-n", f"load-{name}-{os.getpid()}@localhost"],
        cwd=ROOT, env={**ENV, "LOG_LEVEL": "INFO"}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while b" ready." not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise SystemExit(f"the {name} worker did not start; see {log_path}")
        time.sleep(0.2)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def drained_after(client, limit: float = 600) -> float:
    """Seconds until the queues and the workers' unacknowledged tasks stay empty for half a second."""
    started = time.monotonic()
    quiet_since = None
    while time.monotonic() - started < limit:
        busy = sum(client.llen(q) for q in QUEUES) + client.hlen("unacked")
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 0.5:
            return quiet_since - started
        time.sleep(0.05)
    raise SystemExit(f"queued tasks still not run {limit:.0f} s after the load")


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()  # this bench's own database number
    fresh_database()
    workspace, _, key, ids = build()
    port = int(os.environ.get("LOAD_PORT", "0")) or free_port()
    log_path = ROOT / "var" / "load_mixed_gunicorn.log"
    log_path.parent.mkdir(exist_ok=True)
    workers = [] if EAGER else [start_worker("default", QUEUES[0], "-P", "threads", "-c", "4"),
                                start_worker("conversation", QUEUES[1], "-c", "2")]
    server = start_server(port, log_path)
    drain_seconds = None
    load_text = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        stats = run_load(f"http://127.0.0.1:{port}", workspace.pk, key, ids)
        if not EAGER:
            drain_seconds = drained_after(client)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        for worker in workers:
            stop(worker)
        client.flushdb()
    return check_and_report(stats, workspace.pk, drain_seconds, load_text)


if __name__ == "__main__":
    sys.exit(main())
