"""Scale-out proof: 2 gunicorn servers, 2 Celery workers and 1 beat on loopback, one
PostgreSQL database and one Redis broker, a mixed load for a minute, then the product's invariants.

Run from the repository root (not collected by pytest):

    .venv/bin/python tests/ops/scaleout.py [--duration 60] [--clients 12]

It creates (and drops first) the database `inro_scaleout` on 127.0.0.1:5432 and uses Redis
databases 11 (broker) and 12 (cache) on 127.0.0.1:6379, flushing only those two. Everything listens
on 127.0.0.1; every loop is bounded. Exit status 0 only when every check holds.
"""

import argparse
import collections
import hashlib
import hmac
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
PG = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "inro_scaleout"
REDIS = "redis://127.0.0.1:6379"
WEB_PORTS = (18101, 18102)
META_APP_SECRET = "scaleout-meta-secret"  # a throwaway local value
STRIPE_WEBHOOK_SECRET = "whsec_scaleout"
METRICS_TOKEN = "scaleout-metrics"

ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "DATABASE_", "CELERY_"))},
    "DJANGO_SETTINGS_MODULE": "inro.settings.production",
    "SECRET_KEY": "scaleout-" + "s" * 50,
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "false",
    "SECURE_HSTS_SECONDS": "0",
    "DATABASE_URL": f"{PG}/{DB_NAME}",
    "CONN_MAX_AGE": "60",
    "CELERY_BROKER_URL": f"{REDIS}/11",
    "CACHE_URL": "rediscache://127.0.0.1:6379/12",
    "EMAIL_URL": "consolemail://",
    "STRIPE_SECRET_KEY": "sk_test_scaleout",
    "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
    "STRIPE_API_BASE": "http://127.0.0.1:9",  # replaced by the local fake Stripe's address at start
    "META_APP_SECRET": META_APP_SECRET,
    "META_VERIFY_TOKEN": "scaleout-verify",
    "META_APP_ID": "1234",
    "INSTAGRAM_TOKEN_KEYS": "7ZwohmafExGyKSqOAgCyQUzrrHsgTjvnt7SzE77tbGA=",
    "META_GRAPH_API_BASE": "http://127.0.0.1:9",
    "INSTAGRAM_SEND_BACKEND": "outbox",
    "METRICS_TOKEN": METRICS_TOKEN,
    "LOG_LEVEL": "WARNING",
    "PYTHONPATH": str(ROOT),
}
BIN = Path(sys.executable).parent


# --- Set-up -----------------------------------------------------------------------------------------


def fresh_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def fresh_redis() -> None:
    import redis

    for db in (11, 12):
        redis.Redis.from_url(f"{REDIS}/{db}").flushdb()


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=ENV, check=True)  # noqa: S603


def setup_django() -> None:
    os.environ.update(ENV)
    import django

    django.setup()


class Processes:
    """The fleet: started together, stopped together (SIGTERM, then SIGKILL after a bounded wait)."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], **extra_env: str) -> None:
        log = (self.logdir / f"{name}.log").open("w")
        proc = subprocess.Popen(argv, cwd=ROOT, env={**ENV, **extra_env}, stdout=log,  # noqa: S603
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc))

    def alive(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self.procs}

    def stop(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for _, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def start_fleet(fleet: Processes) -> None:
    for i, port in enumerate(WEB_PORTS, 1):
        fleet.start(f"web{i}", [str(BIN / "gunicorn"), "-c", "inro/gunicorn_conf.py", "inro.wsgi"],
                    GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="3", GUNICORN_ACCESS_LOG="/dev/null")
    for i in (1, 2):
        fleet.start(f"worker{i}", [str(BIN / "celery"), "-A", "inro", "worker", "-n", f"w{i}@scaleout",
                                   "--concurrency=3", "--loglevel=WARNING", "--without-gossip", "--without-mingle"])
    fleet.start("beat", [str(BIN / "celery"), "-A", "inro", "beat", "--loglevel=WARNING",
                         "-s", str(fleet.logdir / "beat-schedule")])


def wait_ready() -> None:
    for port in WEB_PORTS:
        for _ in range(150):  # ~30 s at most per server
            status, _ = http("GET", port, "/readyz")
            if status == 200:
                break
            time.sleep(0.2)
        else:
            raise SystemExit(f"web server on port {port} never became ready")


# --- HTTP and signatures ----------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def http(method: str, port: int, path: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 30, follow: bool = False) -> tuple[int, str]:
    """One request on loopback; redirects are not followed. Returns (status, body or Location)."""
    request = urllib.request.Request(  # loopback only
        f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        if 300 <= error.code < 400:
            return error.code, error.headers.get("Location", "")
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError):
        return 0, ""


def meta_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(META_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


# --- The load ---------------------------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_action: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.latencies: list[float] = []

    def record(self, action: str, status: int, seconds: float) -> None:
        with self.lock:
            self.by_action[action][status] += 1
            self.latencies.append(seconds)


def drive(actions: list[tuple[str, int, object]], duration: float, clients: int, stats: Stats) -> None:
    names = [name for name, _, _ in actions]
    weights = [weight for _, weight, _ in actions]
    calls = {name: call for name, _, call in actions}
    deadline = time.monotonic() + duration

    def client(number: int) -> None:
        rng = random.Random(number)  # load mix, not security
        for _ in range(1_000_000):  # bounded; the deadline ends it long before
            if time.monotonic() >= deadline:
                return
            name = rng.choices(names, weights)[0]
            port = WEB_PORTS[rng.randrange(len(WEB_PORTS))]
            started = time.monotonic()
            status = calls[name](port, rng)
            if status is not None:  # None: nothing left to do for this action (e.g. every upgrade done)
                stats.record(name, status, time.monotonic() - started)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 120)


def wait_for_queues_to_drain(limit_seconds: float = 120) -> float:
    import redis

    broker = redis.Redis.from_url(f"{REDIS}/11")
    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < limit_seconds:
        waiting = sum(broker.llen(key) for key in broker.scan_iter("celery*") if broker.type(key) == b"list")
        unacked = broker.hlen("unacked") if broker.exists("unacked") else 0
        quiet = quiet + 1 if waiting == 0 and unacked == 0 else 0
        if quiet >= 5:  # five quiet polls in a row: nothing queued, nothing in flight
            break
        time.sleep(0.5)
    return time.monotonic() - started


# --- Scenario: data, actions and checks -------------------------------------------------------------

from tests.ops import scaleout_scenario as scenario  # noqa: E402  (needs ROOT on sys.path first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--logdir", type=Path, default=ROOT / "var" / "scaleout")
    args = parser.parse_args()
    args.logdir.mkdir(parents=True, exist_ok=True)

    print(f"scale-out: fresh database {DB_NAME}, Redis dbs 11/12, logs in {args.logdir}")
    fresh_database()
    fresh_redis()
    manage("migrate", "--noinput", "-v", "0")
    setup_django()
    stripe_server = scenario.start_fake_stripe()
    ENV["STRIPE_API_BASE"] = stripe_server.base_url  # the fleet talks to the local fake only
    plan = scenario.seed(stripe_server.fake)

    fleet = Processes(args.logdir)
    stats = Stats()
    try:
        start_fleet(fleet)
        wait_ready()
        print(f"fleet up: {', '.join(name for name, _ in fleet.procs)}; driving {args.clients} clients "
              f"for {args.duration:.0f} s")
        started = time.monotonic()
        plan.started_at, plan.ends_at = started, started + args.duration
        drive(scenario.actions(plan, http=http, meta_signature=meta_signature), args.duration, args.clients, stats)
        load_seconds = time.monotonic() - started
        drained = wait_for_queues_to_drain()
        late_upgrades = scenario.settle(plan, http, WEB_PORTS[0])
        drained += wait_for_queues_to_drain()
        alive = fleet.alive()
    finally:
        fleet.stop()
        stripe_server.stop()

    latencies = sorted(stats.latencies)
    total = len(latencies)
    errors = sum(n for counter in stats.by_action.values() for status, n in counter.items()
                 if status == 0 or status >= 500)
    print(f"\nrequests: {total} in {load_seconds:.1f} s ({total / load_seconds:.0f}/s); 5xx or no answer: "
          f"{errors}; p50 {latencies[total // 2] * 1000:.0f} ms, p99 {latencies[int(total * 0.99)] * 1000:.0f} ms; "
          f"queues drained in {drained:.1f} s")
    for name, counter in sorted(stats.by_action.items()):
        print(f"  {name:<24} {sum(counter.values()):>6}  statuses {dict(sorted(counter.items()))}")
    print(f"late upgrades (after the load, at the limit): statuses {late_upgrades}")
    print(f"processes alive at the end: {alive}")

    results = scenario.check(plan)
    errors += sum(1 for status in late_upgrades if status != 200)
    results.append(("no 5xx and every request answered", errors == 0, f"{errors} failed"))
    results.append(("every process survived the load", all(alive.values()), str(alive)))
    print("\nchecks:")
    for name, ok, detail in results:
        print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
