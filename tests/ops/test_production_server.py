"""The production settings and gunicorn config, run for real: a gunicorn on a loopback port."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get(url: str, **headers) -> tuple[int, dict, bytes]:
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers={"Host": "app.inro.example", **headers})  # noqa: S310
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def production_server(tmp_path):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "LOG_FORMAT"))},
        "DJANGO_SETTINGS_MODULE": "inro.settings.production",
        "SECRET_KEY": "test-production-server-" + "x" * 40,
        "ALLOWED_HOSTS": "app.inro.example",
        "STRIPE_SECRET_KEY": "sk_test_server", "STRIPE_WEBHOOK_SECRET": "whsec_server",
        "META_APP_SECRET": "meta_server", "META_VERIFY_TOKEN": "verify_server",
        "META_APP_ID": "1234", "INSTAGRAM_TOKEN_KEYS": "7ZwohmafExGyKSqOAgCyQUzrrHsgTjvnt7SzE77tbGA=",
        "CELERY_BROKER_URL": "memory://", "EMAIL_URL": "smtp://127.0.0.1:25",
        "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1",
    }  # DATABASE_URL as given to the suite: /readyz only runs SELECT 1
    log = (tmp_path / "gunicorn.log").open("w+")
    process = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
        [sys.executable, "-m", "gunicorn", "-c", "inro/gunicorn_conf.py", "inro.wsgi"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):  # bounded: at most ~10 s to start
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        # The master binds before its worker has loaded the app: on a loaded machine the first answer
        # can take longer than a request's timeout, so wait (bounded) until the worker answers at all.
        for _ in range(60):
            try:
                warm_up = urllib.request.Request(f"{base}/healthz", headers={"X-Request-ID": "warm-up"})  # noqa: S310
                with urllib.request.urlopen(warm_up, timeout=1):  # noqa: S310
                    break
            except urllib.error.HTTPError:
                break  # it answered (the Host is not the allowed one): the app is loaded
            except OSError:
                time.sleep(0.5)
        yield base, tmp_path / "gunicorn.log"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def test_production_server_probes_redirects_headers_and_json_access_log(production_server):
    base, log_path = production_server

    health = get(f"{base}/healthz", **{"X-Request-ID": "probe-0001"})
    page = get(f"{base}/metrics?hub.verify_token=leaky-value")
    ready = get(f"{base}/readyz")

    # Probes answer over plain HTTP; everything else is sent to HTTPS.
    assert (health[0], json.loads(health[2])) == (200, {"status": "ok"})
    assert health[1]["X-Request-ID"] == "probe-0001"
    assert "default-src 'self'" in health[1]["Content-Security-Policy"]
    assert health[1]["X-Frame-Options"] == "DENY"
    assert page[0] == 301 and page[1]["Location"].startswith("https://app.inro.example/metrics")
    assert ready[0] == 200
    # Behind the proxy (X-Forwarded-Proto from a trusted address), HSTS is sent.
    secure = get(f"{base}/healthz", **{"X-Forwarded-Proto": "https"})
    assert secure[1]["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"

    access = []
    for _ in range(50):  # the access log is written after the response: bounded wait
        lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        access = [line for line in lines
                  if line.get("logger") == "gunicorn.access" and line.get("request_id") != "warm-up"]
        if len(access) >= 4:
            break
        time.sleep(0.1)
    first = access[0]
    assert (first["method"], first["path"], first["status"], first["request_id"]) == (
        "GET", "/healthz", 200, "probe-0001")
    assert access[1]["query"] == "hub.verify_token=[REDACTED]"
    assert "leaky-value" not in log_path.read_text()
