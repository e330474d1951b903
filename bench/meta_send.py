"""Sending at Meta's pace: campaigns and replies through the Graph backend to a local stand-in for Meta's
Send API (contacts/fakemeta/send_api.py) that answers in 150 ms and records every call's time, account
and token. Real processes: Celery workers on Redis (broadcast queue and conversation queue, as in the
Procfile), gunicorn for the signed webhooks, PostgreSQL (the bench database).

Phases (BENCH_META_PHASES, default all of them, in this order):
- idle replies: reply latency with no broadcast running (the reference of the next figure);
- single: one account, one broadcast worker, a BENCH_META_SINGLE-contact campaign (default 20,000):
  DMs/s as the stand-in saw them, and the most calls of the account in any one-second window;
- many: BENCH_META_ACCOUNTS accounts (default 16) broadcasting BENCH_META_PER_ACCOUNT contacts each
  (default 2,000) at once on 2 broadcast workers: total DMs/s, and the fairness ratio (the slowest
  account's calls against the fastest's while all of them were sending); meanwhile signed webhook DMs
  matching a keyword scenario arrive every half second: reply latency from the delivery's POST to the
  stand-in receiving the reply (p50, p99);
- private: comments on a post of an account with a comment scenario, BENCH_META_COMMENTS of them at
  once (default 50), private replies paced at a compressed rate (20 per 10 s): the most in any window.

Redis databases BENCH_META_REDIS_DB (broker, default 5) and BENCH_META_PACING_REDIS_DB (pacing,
default 6), flushed before and after. Ports: BENCH_META_PORT (stand-in, default 18200) and the next
one (gunicorn). Every process started here is stopped at the end.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/inro_bench_x .venv/bin/python bench/meta_send.py
"""

import datetime
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_URL, ROOT, Row, django_setup, emit, ensure_database, integer, new_workspace, percentile

QUEUE = "bench-meta"
CONVERSATION_QUEUE = "bench-meta-conversation"
APP_SECRET = "bench-meta-app-secret"  # noqa: S105 - loopback only
SECRET_KEY = "bench-meta-secret-key-" + "x" * 40
DELAY = float(os.environ.get("BENCH_META_DELAY", "0.15"))
SEND_RATE = integer("BENCH_META_SEND_RATE", 250)
PRIVATE_RATE, PRIVATE_WINDOW = 20, 10
# The broadcast workers run at a lower CPU priority than the conversation workers and the web server, as
# they would on machines of their own: on this one machine everything shares 2 cores (0: no nice).
NICE = int(os.environ.get("BENCH_META_BROADCAST_NICE", "19"))
RUN = f"{int(time.time()) % 10**7:07d}"
PHASES = [p.strip() for p in os.environ.get("BENCH_META_PHASES", "idle,single,many,private").split(",") if p.strip()]


def redis_db(name: str, default: int) -> str:
    return f"redis://127.0.0.1:6379/{integer(name, default)}"


BROKER = redis_db("BENCH_META_REDIS_DB", 5)
PACING = redis_db("BENCH_META_PACING_REDIS_DB", 6)


def flush() -> None:
    import redis

    for url in (BROKER, PACING):
        redis.Redis.from_url(url).flushdb()  # the bench's own database numbers


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children so far (utime + stime, from /proc)."""
    total = 0.0
    for task in [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]:
        try:
            fields = Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def environment(meta_base: str) -> dict:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "META_"))},
        "DATABASE_URL": BENCH_URL, "DJANGO_SETTINGS_MODULE": "inro.settings.local", "DEBUG": "false",
        "SECRET_KEY": SECRET_KEY, "META_APP_SECRET": APP_SECRET, "FAKE_STRIPE": "false",
        "CELERY_BROKER_URL": BROKER, "CELERY_TASK_ALWAYS_EAGER": "false", "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
        "CELERY_CONVERSATION_QUEUE": CONVERSATION_QUEUE, "INSTAGRAM_SEND_BACKEND": "graph",
        "META_GRAPH_API_BASE": meta_base, "META_PACING_URL": PACING, "META_SEND_RATE": str(SEND_RATE),
        "META_PRIVATE_REPLY_RATE": str(PRIVATE_RATE), "META_PRIVATE_REPLY_WINDOW_SECONDS": str(PRIVATE_WINDOW),
        "LOG_LEVEL": "INFO",
        "PYTHONWARNINGS": "ignore:No directory at",
    }


class Processes:
    def __init__(self, env: dict, tmp: Path):
        self.env, self.tmp, self.started = env, tmp, []

    def start(self, name: str, argv: list[str], ready: bytes | None = None) -> subprocess.Popen:
        log_path = self.tmp / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed with the temporary directory
        process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.started.append(process)
        deadline = time.monotonic() + 120
        while ready is not None and ready not in log_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        return process

    def worker(self, name: str, queue: str, *pool: str, nice: int = 0) -> subprocess.Popen:
        celery = str(Path(sys.executable).with_name("celery"))
        niced = ["nice", "-n", str(nice)] if nice else []
        return self.start(name, [*niced, celery, "-A", "inro", "worker", *pool, "-Q", queue, "--without-heartbeat",
                                 "--without-gossip", "--without-mingle", "-l", "INFO",
                                 "-n", f"{name}-{os.getpid()}@localhost"], b" ready.")

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def account(workspace, number: int) -> str:
    from accounts.models import Workspace
    from contacts.models import InstagramConnection
    from contacts.tokens import token_encrypt

    account_id = f"17841{RUN}{number:05d}"  # unique per run: the bench database may keep earlier runs
    Workspace.objects.filter(pk=workspace.pk).update(instagram_account_id=account_id)
    workspace.instagram_account_id = account_id
    now = datetime.datetime.now(tz=datetime.UTC)
    InstagramConnection.objects.create(
        workspace=workspace, account_id=account_id, username=f"bench{number}",
        token_encrypted=token_encrypt(f"IGAAbench{number}token"), token_refreshed_at=now,
        token_expires_at=now + datetime.timedelta(days=60),
    )
    return account_id


def seed(workspace_id: int, count: int, prefix: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO contacts_contact (workspace_id, igsid, username, name, source, captured_at,"
            " last_inbound_at, email, phone, custom_fields, biography)"
            " SELECT %s, %s || g, 'lead_' || g, '', 'dm', now() - interval '30 days',"
            " now() - (g * 7919 %% 36000) * interval '1 second', '', '', '{}', ''"
            " FROM generate_series(1, %s) AS g ORDER BY g",
            [workspace_id, prefix, count],
        )


def signed_post(session, base: str, payload: dict) -> None:
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = session.post(f"{base}/webhooks/instagram/", data=body, timeout=30,
                            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature})
    if response.status_code != 200:
        raise RuntimeError(f"webhook answered {response.status_code}: {response.text[:300]}")


def dm(account_id: str, sender: str, text: str, n: int) -> dict:
    stamp = int(time.time() * 1000)
    return {"object": "instagram", "entry": [{"id": account_id, "time": stamp, "messaging": [{
        "sender": {"id": sender}, "recipient": {"id": account_id}, "timestamp": stamp,
        "message": {"mid": f"bench-meta-mid-{sender}-{n}", "text": text}}]}]}


def comment(account_id: str, sender: str, n: int) -> dict:
    return {"object": "instagram", "entry": [{"id": account_id, "time": int(time.time()), "changes": [{
        "field": "comments", "value": {"id": f"1786{n:011d}", "from": {"id": sender, "username": f"fan{n}"},
                                       "text": "me please", "media": {"id": "17887498072083520"}}}]}]}


class Replies:
    """Signed DMs that match the keyword scenario, one every `every` seconds, from new senders: the
    latency of each is the stand-in's arrival time of the reply minus the POST's start."""

    def __init__(self, base: str, account_id: str, meta, tag: str, every: float = 0.5):
        self.base, self.account_id, self.meta, self.tag, self.every = base, account_id, meta, tag, every
        self.posted: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import requests

        session = requests.Session()
        n = 0
        while not self._stop.is_set():
            sender = f"5{self.tag}{n:08d}"
            self.posted[sender] = time.time()
            signed_post(session, self.base, dm(self.account_id, sender, "what is the price?", n))
            n += 1
            self._stop.wait(self.every)

    def start(self) -> "Replies":
        self._thread.start()
        return self

    def stop(self, *, wait_for_replies: float = 30) -> list[float]:
        self._stop.set()
        self._thread.join(timeout=30)
        deadline = time.monotonic() + wait_for_replies
        while time.monotonic() < deadline:
            got = {c.recipient for c in self.meta.accepted(self.account_id)}
            if all(sender in got for sender in self.posted):
                break
            time.sleep(0.2)
        first: dict[str, float] = {}
        for call in self.meta.accepted(self.account_id):
            if call.recipient in self.posted and call.recipient not in first:
                first[call.recipient] = call.at
        missing = [s for s in self.posted if s not in first]
        if missing:
            print(f"  {len(missing)} of {len(self.posted)} replies never reached the stand-in", flush=True)
        return [first[s] - self.posted[s] for s in first] + [float("inf")] * len(missing)


def wait_done(campaign_ids: list[int], timeout: float) -> None:
    from automations.models import Campaign

    deadline = time.monotonic() + timeout
    while Campaign.objects.filter(pk__in=campaign_ids).exclude(status=Campaign.Status.DONE).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"campaigns not done within {timeout:.0f} s")
        time.sleep(0.2)


def launch(workspace, name: str):
    from automations.services.campaigns import campaign_create, campaign_launch

    campaign = campaign_create(workspace=workspace, name=name, text=f"{name}: new drop")
    campaign_launch(campaign=campaign, launched_by=None)  # queued on commit
    return campaign


def ms(seconds: float) -> str:
    return "never" if seconds == float("inf") else f"{seconds * 1000:,.0f} ms"


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from contacts.fakemeta.send_api import SendApiStandIn

    port = integer("BENCH_META_PORT", 18200)
    meta = SendApiStandIn(delay=DELAY, port=port).start()
    env = environment(meta.base_url)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("CELERY_", "META_", "INSTAGRAM_", "SECRET"))})
    ensure_database()
    django_setup(migrate=True)
    from automations.models import Campaign
    from automations.services.scenarios import scenario_create

    single_n = integer("BENCH_META_SINGLE", 20_000)
    accounts_n = integer("BENCH_META_ACCOUNTS", 16)
    per_account = integer("BENCH_META_PER_ACCOUNT", 2_000)
    comments_n = integer("BENCH_META_COMMENTS", 50)
    rows: list[Row] = []
    flush()
    tag = RUN[-5:]
    logs = ROOT / "var" / "bench_meta_send"  # the processes' logs, kept for a look after the run
    logs.mkdir(parents=True, exist_ok=True)
    if True:
        processes = Processes(env, logs)
        try:
            gunicorn = str(Path(sys.executable).with_name("gunicorn"))
            web = f"http://127.0.0.1:{port + 1}"
            processes.start("gunicorn", [gunicorn, "inro.wsgi", "--bind", f"127.0.0.1:{port + 1}", "--workers", "2",
                                         "--threads", "4", "--worker-class", "gthread", "--timeout", "60"],
                            b"Booting worker")
            processes.worker("conversation", CONVERSATION_QUEUE, "-P", "prefork", "-c", "4")
            broadcast_1 = processes.worker("broadcast-1", QUEUE, "-P", "threads", "-c", "4", nice=NICE)
            time.sleep(2)  # gunicorn's workers import the app
            # The replying brand: account 0 of the many, with a keyword scenario.
            brands = [new_workspace(f"meta{n}", quota=1000 + per_account + 10_000) for n in range(accounts_n)]
            accounts = [account(brand, n) for n, brand in enumerate(brands)]
            scenario_create(workspace=brands[0], name="Price", trigger_type="dm_keyword",
                            trigger_config={"keywords": ["price"]}, steps=[{"type": "send_message",
                                                                            "text": "It is 20 EUR."}])

            idle = None
            if "idle" in PHASES:
                replies = Replies(web, accounts[0], meta, f"{tag}0", every=0.5).start()
                time.sleep(10)
                idle = replies.stop()
                print(f"  idle replies: {len(idle)}, p50 {ms(percentile(idle, 50))}, p99 {ms(percentile(idle, 99))}"
                      f" (load {load()})", flush=True)

            single_rate = None
            if "single" in PHASES:
                brand = new_workspace("meta-single", quota=single_n + 1000)
                single_account = account(brand, 900)
                seed(brand.pk, single_n, f"s{brand.pk}-")
                load_before = load()
                cpu_before, here_before = cpu_seconds(broadcast_1.pid), time.process_time()
                campaign = launch(brand, "single")
                wait_done([campaign.pk], timeout=single_n / 50 + 120)
                worker_cpu = cpu_seconds(broadcast_1.pid) - cpu_before
                here_cpu = time.process_time() - here_before
                calls = meta.accepted(single_account)
                span = max(c.at for c in calls) - min(c.at for c in calls)
                single_rate = len(calls) / span
                worst = meta.max_in_any_second(single_account)
                worst_calendar = max(meta.per_second(single_account).values())
                print(f"  single: {len(calls):,} DMs in {span:.1f} s = {single_rate:,.0f}/s; most in any 1 s window"
                      f" {worst}, in any calendar second {worst_calendar}; in flight at most {meta.max_in_flight};"
                      f" load {load_before} -> {load()}; CPU per DM: worker {worker_cpu / len(calls) * 1000:.2f} ms,"
                      f" stand-in and bench {here_cpu / len(calls) * 1000:.2f} ms", flush=True)
                per_second = meta.per_second(single_account)
                print(f"  per second: {list(per_second.values())}", flush=True)
                ok = len(calls) == single_n and single_rate >= 0.8 * SEND_RATE and worst <= SEND_RATE
                rows.append(Row(
                    scenario=f"one account, one worker: a {single_n:,}-contact campaign to the Send API stand-in"
                             f" ({DELAY * 1000:.0f} ms answers; load {load_before})",
                    figure=f"{single_rate:,.0f} DMs/s; at most {worst} in any 1 s window",
                    reference=f"META_SEND_RATE {SEND_RATE}/s",
                    ratio=f"{single_rate / SEND_RATE:.2f}",
                    target=f"≥ 0.8 × META_SEND_RATE; never above {SEND_RATE} in any 1 s",
                    met=Row.verdict(ok)))

            if "many" in PHASES:
                processes.worker("broadcast-2", QUEUE, "-P", "threads", "-c", "4", nice=NICE)
                for brand in brands:
                    seed(brand.pk, per_account, f"m{brand.pk}-")
                load_before = load()
                started = time.time()
                replies = Replies(web, accounts[0], meta, f"{tag}1", every=0.5).start()
                campaigns = [launch(brand, f"many{n}") for n, brand in enumerate(brands)]
                wait_done([c.pk for c in campaigns], timeout=accounts_n * per_account / 50 + 180)
                latencies = replies.stop()
                broadcast = [c for c in meta.accepted() if c.account_id in set(accounts) and c.text.startswith("many")]
                span = max(c.at for c in broadcast) - min(c.at for c in broadcast)
                total_rate = len(broadcast) / span
                ends = {a: max(c.at for c in broadcast if c.account_id == a) for a in accounts}
                window_end = min(ends.values())
                counts = {a: sum(1 for c in broadcast if c.account_id == a and c.at <= window_end) for a in accounts}
                fairness = min(counts.values()) / max(counts.values())
                sent = sum(Campaign.objects.filter(pk__in=[c.pk for c in campaigns])
                           .values_list("sent_count", flat=True))
                p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
                print(f"  many: {len(broadcast):,} DMs in {span:.1f} s = {total_rate:,.0f}/s; until the first account"
                      f" finished ({window_end - started:.1f} s) per account min {min(counts.values())} max"
                      f" {max(counts.values())}; replies {len(latencies)}: p50 {ms(p50)}, p99 {ms(p99)};"
                      f" load {load_before} -> {load()}", flush=True)
                reference = f"one account, one worker: {single_rate:,.0f}/s" if single_rate else "—"
                rows.append(Row(
                    scenario=f"{accounts_n} accounts broadcasting {per_account:,} contacts each at once, 2 workers"
                             f" (load {load_before})",
                    figure=f"{total_rate:,.0f} DMs/s in all; fairness {fairness:.2f} (slowest/fastest account)",
                    reference=reference,
                    ratio=f"{total_rate / single_rate:.2f}" if single_rate else "—",
                    target="fairness ≥ 0.7",
                    met=Row.verdict(fairness >= 0.7 and len(broadcast) == sent)))
                idle_text = (f"no broadcast: p50 {ms(percentile(idle, 50))}, p99 {ms(percentile(idle, 99))}"
                             if idle else "—")
                rows.append(Row(
                    scenario=f"reply latency, signed webhook DM → keyword scenario → reply at the stand-in, during"
                             f" the {accounts_n} broadcasts ({len(latencies)} replies)",
                    figure=f"p50 {ms(p50)}, p99 {ms(p99)}",
                    reference=idle_text,
                    ratio=f"{percentile(idle, 99) / p99:.2f}" if idle and p99 not in (0, float("inf")) else "—",
                    target="p99 < 2 s",
                    met=Row.verdict(p99 < 2.0)))

            if "private" in PHASES:
                brand = new_workspace("meta-private", quota=2000)
                private_account = account(brand, 901)
                scenario_create(workspace=brand, name="Giveaway", trigger_type="comment", trigger_config={},
                                steps=[{"type": "send_message", "text": "Check your DMs!"}])
                import requests

                session = requests.Session()
                started = time.time()
                for n in range(comments_n):
                    signed_post(session, web, comment(private_account, f"6{tag}{n:06d}", n))
                deadline = time.monotonic() + comments_n / PRIVATE_RATE * PRIVATE_WINDOW + 60
                while len(meta.accepted(private_account)) < comments_n and time.monotonic() < deadline:
                    time.sleep(0.5)
                calls = meta.accepted(private_account)
                worst = meta.max_in_any_second(private_account, span=PRIVATE_WINDOW)
                took = max(c.at for c in calls) - started if calls else 0
                print(f"  private: {len(calls)} of {comments_n} private replies in {took:.1f} s; most in any"
                      f" {PRIVATE_WINDOW} s window {worst} (load {load()})", flush=True)
                rows.append(Row(
                    scenario=f"private replies, {comments_n} comments at once, compressed rate"
                             f" {PRIVATE_RATE} per {PRIVATE_WINDOW} s (stands for 750 an hour)",
                    figure=f"all {len(calls)} sent in {took:.0f} s; at most {worst} in any {PRIVATE_WINDOW} s",
                    reference=f"META_PRIVATE_REPLY_RATE {PRIVATE_RATE} per {PRIVATE_WINDOW} s",
                    ratio=f"{worst / PRIVATE_RATE:.2f}",
                    target=f"≤ {PRIVATE_RATE} per window; every one sent",
                    met=Row.verdict(worst <= PRIVATE_RATE and len(calls) == comments_n)))
        finally:
            processes.stop_all()
            meta.stop()
            flush()
    emit(rows)


if __name__ == "__main__":
    main()
