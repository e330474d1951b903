"""Campaign fan-out: target ≥ 10,000 recipients/s.

The scenario: a workspace with BENCH_FANOUT_RECIPIENTS (default 100,000) contacts, all with an
open messaging window (their last inbound message spread over the last 10 hours, so the engaged-first
order is not the order of the ids), a segment selecting them ("wrote in since yesterday"), quota for
all of them, and a campaign to that segment, launched with the outbox send backend (messages are
stored, nothing leaves the machine). The fan-out runs in ONE real Celery worker (`-P solo`, i.e.
concurrency 1) on Redis at 127.0.0.1:6379, database BENCH_FANOUT_REDIS_DB (default 14, purged before
and after), against the bench database. Timed from `campaign_launch` (the task is queued on commit)
until the campaign is done and every batch of its audience is written; the worker is stopped at the
end, always.

Run: .venv/bin/python bench/fanout.py
"""

import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH_URL,
    ROOT,
    Row,
    django_setup,
    emit,
    ensure_database,
    integer,
    new_workspace,
    redis_url,
)

QUEUE = "bench-fanout"


def broker_url() -> str:
    url = redis_url(integer("BENCH_FANOUT_REDIS_DB", 14))
    if url is None:
        sys.exit("Redis does not answer on 127.0.0.1:6379: the fan-out bench needs a real broker and worker.")
    return url


def purge(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()  # the bench's own database number: nobody else's keys


def seed_contacts(workspace_id: int, count: int) -> None:
    """`count` contacts who wrote in during the last 10 hours (one set-based INSERT)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO contacts_contact (workspace_id, igsid, username, name, source, captured_at,"
            " last_inbound_at, email, phone, custom_fields, biography)"
            " SELECT %s, %s || g, 'lead_' || g, '', 'dm', now() - interval '30 days',"
            " now() - (g * 7919 %% 36000) * interval '1 second', '', '', '{}', ''"
            " FROM generate_series(1, %s) AS g ORDER BY g",
            [workspace_id, f"f{workspace_id}-", count],
        )


def start_worker(broker: str, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": BENCH_URL,
        "DJANGO_SETTINGS_MODULE": "inro.settings.local",
        "DEBUG": "false",
        "CELERY_BROKER_URL": broker,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
        "INSTAGRAM_SEND_BACKEND": "outbox",
        "LOG_LEVEL": "INFO",
        "PYTHONWARNINGS": "ignore:No directory at",  # whitenoise: no collectstatic here
    }
    log = open(log_path, "wb")  # noqa: SIM115 - the worker writes it; closed with the temporary directory
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("celery")), "-A", "inro", "worker", "-P", "solo", "-Q", QUEUE,
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO",
         "-n", f"bench-fanout-{os.getpid()}@localhost"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while b" ready." not in log_path.read_bytes():
        if worker.poll() is not None or time.monotonic() > deadline:
            stop_worker(worker)
            raise RuntimeError(f"the Celery worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    return worker


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)


def main() -> None:
    # SIGTERM (bench/run.py's timeout, Ctrl-C's cousin) unwinds through the `finally` that stops the worker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ensure_database()
    broker = broker_url()
    os.environ["CELERY_BROKER_URL"] = broker
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    os.environ["CELERY_TASK_DEFAULT_QUEUE"] = QUEUE
    os.environ["INSTAGRAM_SEND_BACKEND"] = "outbox"
    django_setup(migrate=True)
    from django.db import connection
    from django.db.models import Count
    from django.utils import timezone

    from automations.models import Campaign, CampaignBatch, CampaignRecipient
    from automations.services.campaigns import campaign_create, campaign_launch
    from automations.services.segments import segment_create, segment_size

    n = integer("BENCH_FANOUT_RECIPIENTS", 100_000)
    timeout = integer("BENCH_FANOUT_TIMEOUT", 900)
    workspace = new_workspace("fanout", quota=n + 1000)
    seed_contacts(workspace.pk, n)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE contacts_contact")
    since = (timezone.now() - datetime.timedelta(days=1)).isoformat()
    segment = segment_create(workspace=workspace, name="wrote in since yesterday",
                             rules={"sources": ["dm"], "last_inbound_after": since})
    assert segment_size(segment=segment) == n
    campaign = campaign_create(workspace=workspace, name="bench fan-out", text="Hello from the bench",
                               audience=Campaign.Audience.SEGMENT, segment=segment)

    purge(broker)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        worker = start_worker(broker, Path(tmp) / "worker.log")
        try:
            start = time.perf_counter()
            campaign_launch(campaign=campaign, launched_by=None)  # queues the task on commit
            pending = CampaignBatch.objects.filter(campaign=campaign, done_at__isnull=True)
            while True:
                status = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).get()
                if status == Campaign.Status.DONE and not pending.exists():
                    break
                if status != Campaign.Status.SENDING or worker.poll() is not None:
                    raise RuntimeError(f"campaign {status}, worker exit code {worker.poll()}:\n"
                                       f"{(Path(tmp) / 'worker.log').read_text()[-3000:]}")
                if time.perf_counter() - start > timeout:
                    raise RuntimeError(f"the campaign did not finish within {timeout} s")
                time.sleep(0.05)
            took = time.perf_counter() - start
        finally:
            stop_worker(worker)
            purge(broker)
    load_after = os.getloadavg()
    campaign.refresh_from_db()
    statuses = dict(
        CampaignRecipient.objects.filter(campaign=campaign).values_list("status").annotate(n=Count("id"))
        .values_list("status", "n")
    )
    total = sum(statuses.values())
    if statuses != {CampaignRecipient.Status.SENT: n} or campaign.sent_count != n:
        raise RuntimeError(f"expected {n:,} sent, got {statuses} (sent_count {campaign.sent_count})")
    rate = total / took
    print(f"  {total:,} recipients in {took:.2f} s: {statuses}; load average before"
          f" {', '.join(f'{x:.2f}' for x in load_before)}, after {', '.join(f'{x:.2f}' for x in load_after)}",
          flush=True)
    emit([Row(
        scenario=f"campaign fan-out to a {total:,}-contact segment (outbox backend, 1 Celery worker on Redis)",
        figure=f"{rate:,.0f} recipients/s ({took:,.1f} s)",
        reference="—",
        ratio="—",
        target="≥ 10,000 recipients/s",
        met=Row.verdict(rate >= 10_000),
    )])


if __name__ == "__main__":
    main()
