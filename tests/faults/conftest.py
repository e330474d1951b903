"""Fault injection fixtures: a real Celery worker on Redis against the test database, a real broker
for the test process, and the closing integrity check every fault test ends with.

Processes started here are always killed in teardown (their whole process group), and every wait is
bounded.
"""

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.core.management import call_command
from django.db import connection
from kombu import pools as kombu_pools

from inro.celery import app as celery_app

REPO = Path(__file__).resolve().parents[2]
# A Redis database of this suite's own, and a queue of this test run's own: the same suite may run
# from several checkouts at once on one Redis, and no worker may take another run's tasks.
FAULTS_REDIS_DB = int(os.environ.get("FAULTS_REDIS_DB", "10"))  # 11-13: ops scale-out, bench
BROKER_URL = f"redis://127.0.0.1:6379/{FAULTS_REDIS_DB}"
QUEUE = f"faults-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
# Nothing listens here: a broker that is down (connection refused at once, loopback only).
DEAD_BROKER_URL = "redis://127.0.0.1:1/0"


def wait_until(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    if s["HOST"].startswith("/"):  # a unix socket directory (the embedded server of `make test`)
        return f"postgres://{s['USER']}{password}@/{quote(s['HOST'], safe='')}/{s['NAME']}"
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Worker:
    """`celery -A inro worker` in its own session, on the faults Redis db and the test database."""

    def __init__(self, log_path: Path, extra_env: dict | None = None, concurrency: int = 1):
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.concurrency = concurrency
        self.process: subprocess.Popen | None = None
        self._log = None

    def start(self) -> "Worker":
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "inro.settings.test",
            "DATABASE_URL": test_database_url(),
            "CELERY_BROKER_URL": BROKER_URL,
            "TEST_CELERY_BROKER_URL": BROKER_URL,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
            "LOG_LEVEL": "INFO",
            **self.extra_env,
        }
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        start_offset = self.log_path.stat().st_size
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [str(Path(sys.executable).parent / "celery"), "-A", "inro", "worker", "-P", "prefork",
             "-c", str(self.concurrency), "-Q", QUEUE, "--without-heartbeat", "--without-gossip", "--without-mingle",
             "-l", "INFO", "-n", f"faults-{os.getpid()}-{time.monotonic_ns()}@localhost"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")
            with open(self.log_path, "rb") as log:
                log.seek(start_offset)
                return b" ready." in log.read()

        # Bounded; 60 s was not always enough on a loaded machine.
        wait_until(ready, timeout=180, interval=0.2, what="the Celery worker to be ready")
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """The whole worker (main process and pool children) at once."""
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGKILL)
        if self._log:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def redis_broker():
    """The faults Redis db; this run's queue is emptied before and after the test (nothing else is touched)."""
    client = redis.Redis.from_url(BROKER_URL)

    def clear():
        client.delete(QUEUE, f"_kombu.binding.{QUEUE}", f"_kombu.binding_permanent.{QUEUE}",
                      *[f"{QUEUE}{sep}{n}" for sep in ("\x06\x16",) for n in range(10)])

    clear()
    yield client
    clear()
    client.close()


@pytest.fixture
def workers(tmp_path, redis_broker):
    """Start workers with `workers.start()`; every one started is killed at teardown."""
    started: list[Worker] = []

    class Workers:
        log = tmp_path / "worker.log"

        def start(self, **kwargs) -> Worker:
            worker = Worker(self.log, **kwargs)
            started.append(worker)
            return worker.start()

    yield Workers()
    for worker in started:
        worker.stop()


def _reset_producer_pool() -> None:
    kombu_pools.reset()  # closes and forgets kombu's process-wide connection and producer pools
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    # Routing follows the default queue set below: forget what earlier tests cached (the queue map,
    # the default queue and the sender that captured it).
    for cached in ("queues", "default_queue", "router", "send_task_message"):
        celery_app.amqp.__dict__.pop(cached, None)
    celery_app.amqp._rtable = None


@contextmanager
def broker(url: str):
    """The test process publishes tasks to `url` for real (not inline) while inside the block."""
    conf = celery_app.conf
    # The app reads Django settings under the CELERY_ namespace: override the namespaced keys.
    keys = ("CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_TRANSPORT_OPTIONS",
            "CELERY_TASK_DEFAULT_QUEUE")
    saved = {key: conf.get(key) for key in keys}
    # Tests elsewhere set the plain keys too (ops' readiness test pins broker_write_url): override them.
    saved_plain = {key: conf.changes.get(key) for key in ("broker_url", "broker_write_url", "broker_read_url")}
    _reset_producer_pool()
    conf.update({"CELERY_BROKER_URL": url, "CELERY_TASK_ALWAYS_EAGER": False,
                 "CELERY_BROKER_TRANSPORT_OPTIONS": {}, "CELERY_TASK_DEFAULT_QUEUE": QUEUE})
    for key in saved_plain:
        conf.changes[key] = url
    assert (conf.broker_url, conf.broker_write_url, conf.task_always_eager) == (url, url, False)
    try:
        yield
    finally:
        _reset_producer_pool()
        conf.update(saved)
        for key, value in saved_plain.items():
            if value is None:
                conf.changes.pop(key, None)
            else:
                conf.changes[key] = value


def assert_no_drift() -> None:
    """Every fault test ends here: `manage.py usage_integrity` finds every counter equal to its records."""
    out = io.StringIO()
    call_command("usage_integrity", stdout=out)
    assert "No drift: every counter equals its activation records." in out.getvalue(), out.getvalue()
