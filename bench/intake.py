"""Webhook intake under a load generator.

Target: signed Meta deliveries accepted per second ≥ 0.5 of the same server's static 200 view, and
p99 < 100 ms.

Starts gunicorn as production runs it (`-c inro/gunicorn_conf.py`, inro.settings.production, DEBUG
off, persistent database connections) with 2 workers of GUNICORN_THREADS threads (default 4) on
127.0.0.1 (a free port) on the bench database, with Celery on Redis at 127.0.0.1:6379 (database
BENCH_REDIS_DB, default 13; no worker: the drain task is only nudged, as the view's contract is
"store, nudge, answer"; the queue is deleted afterwards), or kombu's in-memory transport when Redis
does not answer. Requests carry `X-Forwarded-Proto: https` as the TLS proxy in front sets it. No
access log and no worker recycling (GUNICORN_MAX_REQUESTS=0) during the run.

wrk (Debian package `wrk`) sends, with BENCH_INTAKE_CONNECTIONS (default 16) connections on 2
threads, after a warm-up of both sides, BENCH_INTAKE_ROUNDS (default 3) rounds of
BENCH_INTAKE_SECONDS (default 10) per side, alternating (static, deliveries, static, ...), so a
machine whose load moves hurts both sides alike:
- signed deliveries: distinct Instagram messaging notifications (BENCH_INTAKE_BODIES per round,
  default 30,000, new ones each round, generated here and signed with the app secret), POSTed to
  /webhooks/instagram/;
- the reference: GET /healthz (a static JSON 200 through the same middleware stack).
Each side's figure is its median round (by rate; that round's p50 and p99), so one lull or one burst
of load from other work on the machine moves neither side; every round is printed, with the ratio of
the best rounds and the round-by-round ratios beside it, the CPU each request cost the gunicorn
workers and the database's backends (per request: much less moved by other work on the machine than
the rates are), and the WAL flushes per commit (pg_stat_wal: 1.0 when every delivery's commit waits
for a disk flush of its own, lower when concurrent commits share one). Loopback only, bounded in
time; gunicorn is stopped at the end.

Run: .venv/bin/python bench/intake.py
"""

import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_URL, ROOT, Row, django_setup, emit, ensure_database, integer, redis_url

SECRET = "bench-meta-app-secret"  # noqa: S105 - a throwaway secret for the local server only


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def broker_url() -> str:
    return redis_url(integer("BENCH_REDIS_DB", 13)) or "memory://"


def lua_script(path: Path, bodies: int, tag: str) -> None:
    """A wrk script cycling through `bodies` distinct signed deliveries (each thread its own share)."""
    lines = ["local requests = {}"]
    now = int(time.time() * 1000)
    for i in range(bodies):
        body = json.dumps({
            "object": "instagram",
            "entry": [{
                "id": "17841400000000001",
                "time": now,
                "messaging": [{
                    "sender": {"id": f"{5_000_000_000 + i}"},
                    "recipient": {"id": "17841400000000001"},
                    "timestamp": now + i,
                    "message": {"mid": f"bench-mid-{now}-{tag}-{i}", "text": f"hello {i}"},
                }],
            }],
        }, separators=(",", ":"))
        signature = "sha256=" + hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
        lines.append(f"requests[{i + 1}] = {{{json.dumps(body)}, {json.dumps(signature)}}}")
    # Each wrk thread formats its share of the requests once, in init(), so that request() only hands
    # out a ready string: formatting per request cost the load generator, which shares the machine's
    # two cores with the server, about 60 µs more per delivery than the static side's native path.
    lines += [
        "local formatted = {}",
        "local count = 0",
        "local counter = 0",
        "local threads = 0",
        "function setup(thread) thread:set('offset', threads); threads = threads + 1 end",
        "function init(args)",
        "  local offset = tonumber(wrk.thread:get('offset')) or 0",
        f"  for i = offset + 1, {bodies}, 2 do",
        "    local item = requests[i]",
        "    count = count + 1",
        "    formatted[count] = wrk.format('POST', nil, {['Content-Type'] = 'application/json',"
        " ['X-Forwarded-Proto'] = 'https', ['X-Hub-Signature-256'] = item[2]}, item[1])",
        "  end",
        "  requests = nil",
        "end",
        "function request()",
        "  counter = counter + 1",
        "  return formatted[((counter - 1) % count) + 1]",
        "end",
    ]
    path.write_text("\n".join(lines) + "\n")


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
               "-H", "X-Forwarded-Proto: https"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def latency(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rate": rate, "p50": latency("50"), "p99": latency("99"), "requests": requests,
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else "", "raw": out}


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU time of each of these processes so far (those that are gone are left out)."""
    times = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return times


def cpu_spent(before: dict[int, float], pids: list[int]) -> float:
    """CPU spent since `before` by these processes; one not in `before` started since: all of its CPU."""
    after = cpu_seconds(pids)
    return sum(spent - before.get(pid, 0.0) for pid, spent in after.items())


def database_backends() -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def wal_flushes_and_commits() -> tuple[int, int] | None:
    """WAL flushes of the whole server (pg_stat_wal, PostgreSQL 14 and later) and commits in the bench
    database so far; None where pg_stat_wal does not exist. Backends report both counters together,
    up to a second late, so their ratio over a round holds even where each count lags."""
    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT (SELECT wal_sync FROM pg_stat_wal), xact_commit FROM pg_stat_database"
                           " WHERE datname = current_database()")
            return tuple(cursor.fetchone())
    except DatabaseError:
        return None


def measured(url: str, seconds: int, connections: int, script: Path | None, workers: list[int]) -> dict:
    """One wrk round, with the CPU the gunicorn workers and the bench database's backends spent on it
    per request (much less moved by other work on the machine than the rates are), and the WAL
    flushes per commit (1.0: no two commits shared a flush). Approximate for the database: a backend
    that ends during the round (CONN_MAX_AGE) is left out."""
    web_before, db_before = cpu_seconds(workers), cpu_seconds(database_backends())
    wal_before = wal_flushes_and_commits()
    result = wrk(url, seconds, connections, script)
    wal_after = wal_flushes_and_commits()
    requests = max(result["requests"], 1)
    result["web_cpu_us"] = cpu_spent(web_before, workers) / requests * 1e6
    result["db_cpu_us"] = cpu_spent(db_before, database_backends()) / requests * 1e6
    result["flushes_per_commit"] = None
    if wal_before and wal_after and wal_after[1] - wal_before[1] >= requests // 2:  # a round that commits
        result["flushes_per_commit"] = (wal_after[0] - wal_before[0]) / (wal_after[1] - wal_before[1])
    return result


def server_env(broker: str) -> dict:
    """Production settings with the environment they require; throwaway values, loopback only."""
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "GUNICORN_", "CELERY_", "DEBUG"))
    }
    cache = broker.replace("redis://", "rediscache://") if broker.startswith("redis") else "locmemcache://"
    env.update({
        "DATABASE_URL": BENCH_URL,
        "DJANGO_SETTINGS_MODULE": "inro.settings.production",
        "SECRET_KEY": "bench-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "STRIPE_SECRET_KEY": "sk_test_bench",
        "STRIPE_WEBHOOK_SECRET": "whsec_bench",
        "META_APP_SECRET": SECRET,
        "META_VERIFY_TOKEN": "bench-verify-token",
        "META_APP_ID": "bench-app",
        "INSTAGRAM_TOKEN_KEYS": Fernet.generate_key().decode(),
        "CACHE_URL": cache,
        "CELERY_BROKER_URL": broker,
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": os.environ.get("GUNICORN_THREADS", "4"),
        "GUNICORN_ACCESS_LOG": "",
        "GUNICORN_LOG_LEVEL": "warning",
        "GUNICORN_MAX_REQUESTS": "0",
        "PYTHONWARNINGS": "ignore:No directory at",  # whitenoise: no collectstatic here
    })
    return env


def flushes(result: dict) -> str | None:
    ratio = result["flushes_per_commit"]
    return None if ratio is None else f"WAL flushes per commit {ratio:.2f}"


def median_round(results: list[dict]) -> dict:
    """The round with the median rate (the lower middle one for an even count), with its p50 and p99."""
    ranked = sorted(results, key=lambda result: result["rate"])
    return ranked[(len(ranked) - 1) // 2]


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    ensure_database()
    broker = broker_url()
    os.environ["CELERY_BROKER_URL"] = broker
    django_setup(migrate=True)
    from contacts.models import WebhookDelivery

    seconds = integer("BENCH_INTAKE_SECONDS", 10)
    connections = integer("BENCH_INTAKE_CONNECTIONS", 16)
    bodies = integer("BENCH_INTAKE_BODIES", 30_000)
    if bodies < 2:
        sys.exit("BENCH_INTAKE_BODIES must be at least 2: each of wrk's two threads sends its own share")
    rounds = integer("BENCH_INTAKE_ROUNDS", 3)
    before = WebhookDelivery.objects.count()

    port = free_port()
    env = server_env(broker)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    statics: list[dict] = []
    deliveries: list[dict] = []
    load: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        scripts = []
        for round_number in range(rounds + 1):  # the first one warms up
            scripts.append(Path(tmp) / f"deliveries-{round_number}.lua")
            lua_script(scripts[-1], bodies, f"r{round_number}")
        server = subprocess.Popen(
            [str(gunicorn), "-c", "inro/gunicorn_conf.py", "--bind", f"127.0.0.1:{port}", "inro.wsgi"],
            cwd=ROOT, env=env, start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:  # noqa: S310 - loopback
                        if response.status == 200:
                            break
                except OSError:
                    time.sleep(0.2)
            else:
                raise RuntimeError("gunicorn did not come up")
            wrk(f"{base}/healthz", 2, connections)  # warm-up: every thread's code paths and connections
            wrk(f"{base}/webhooks/instagram/", 2, connections, scripts[0])
            workers = [int(pid) for pid in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()]
            for round_number in range(1, rounds + 1):
                load.append(Path("/proc/loadavg").read_text().split()[0])
                statics.append(measured(f"{base}/healthz", seconds, connections, None, workers))
                deliveries.append(measured(f"{base}/webhooks/instagram/", seconds, connections,
                                           scripts[round_number], workers))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    stored = WebhookDelivery.objects.count() - before
    if broker.startswith("redis"):
        import redis

        redis.Redis.from_url(broker).delete("celery")  # our drain nudges; nobody consumes them
    for number, (static, delivery) in enumerate(zip(statics, deliveries, strict=True), start=1):
        for label, result in (("static", static), ("deliveries", delivery)):
            wal = flushes(result)
            print(f"  round {number} (load {load[number - 1]}) {label}: {result['rate']:,.0f} req/s,"
                  f" p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, {result['requests']:,} requests,"
                  f" CPU per request: gunicorn {result['web_cpu_us']:,.0f} µs,"
                  f" PostgreSQL {result['db_cpu_us']:,.0f} µs,{f' {wal},' if wal else ''}"
                  f" non-2xx {result['non2xx']} {result['socket_errors']}", flush=True)
    sent = sum(result["requests"] for result in deliveries)
    print(f"  deliveries stored: {stored:,} (broker {broker}; {sent:,} sent in the measured rounds)", flush=True)
    refused = [result for result in deliveries if result["non2xx"]]
    if refused:
        print(refused[0]["raw"])
        raise RuntimeError(f"{sum(r['non2xx'] for r in refused)} deliveries were not accepted")
    static, delivery = median_round(statics), median_round(deliveries)
    ratio = delivery["rate"] / static["rate"]
    best_ratio = max(r["rate"] for r in deliveries) / max(r["rate"] for r in statics)
    paired = sorted(d["rate"] / s["rate"] for s, d in zip(statics, deliveries, strict=True))
    print(f"  ratio of the median rounds {ratio:.2f}; of the best rounds {best_ratio:.2f};"
          f" round by round {', '.join(f'{r:.2f}' for r in paired)}", flush=True)
    emit([
        Row(
            scenario=f"webhook intake, signed deliveries (gunicorn 2 workers × {env['GUNICORN_THREADS']} threads,"
            f" wrk {connections} connections, median of {rounds} alternating rounds)",
            figure=f"{delivery['rate']:,.0f} req/s, p50 {delivery['p50']:.1f} ms, p99 {delivery['p99']:.1f} ms"
            + (f"; {wal}" if (wal := flushes(delivery)) else ""),
            reference=f"static 200: {static['rate']:,.0f} req/s, p99 {static['p99']:.1f} ms",
            ratio=f"{ratio:.2f}",
            target="≥ 0.5 of reference; p99 < 100 ms",
            met=Row.verdict(ratio >= 0.5 and delivery["p99"] < 100),
        ),
    ])


if __name__ == "__main__":
    main()
