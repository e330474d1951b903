"""gunicorn settings for production (`gunicorn -c inro/gunicorn_conf.py inro.wsgi`), all from the env.

Access log lines are JSON with the request id the app returned, and query strings are redacted
(Meta's verification GET carries `hub.verify_token`).
"""

import datetime
import json
import os

from gunicorn.glogging import Logger


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_int('PORT', 8000)}"
workers = _int("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1) + 1)
# Threads per worker (gthread): a request waiting on PostgreSQL (the webhook's commit, a page's
# queries) no longer holds the whole process; each thread keeps its own database connection.
threads = _int("GUNICORN_THREADS", 4)
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or ("gthread" if threads > 1 else "sync")
timeout = _int("GUNICORN_TIMEOUT", 30)  # a worker silent this long is killed and replaced
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then so slow leaks never accumulate; jitter avoids restarting all at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 200)
# Only the proxy in front may set X-Forwarded-Proto/For (SECURE_PROXY_SSL_HEADER trusts it).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
limit_request_line = 8190
limit_request_fields = 100
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or None  # /dev/shm on containers


class JsonAccessLogger(Logger):
    """One JSON object per request on the access log."""

    def access(self, resp, req, environ, request_time) -> None:
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.logconfig_dict or self.cfg.syslog):
            return
        # Not at the top: importing `inro` loads the Celery app and Django's settings, and gunicorn's
        # master reads this file before the application exists.
        from inro.observability import redact  # noqa: PLC0415

        atoms = self.atoms(resp, req, environ, request_time)
        entry = {
            "time": datetime.datetime.now(tz=datetime.UTC).isoformat(),
            "level": "INFO",
            "logger": "gunicorn.access",
            "remote_addr": atoms["h"],
            "method": atoms["m"],
            "path": atoms["U"],
            "query": redact(atoms["q"]),
            "status": resp.status_code if hasattr(resp, "status_code") else atoms["s"],
            "bytes": atoms["B"],
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "request_id": atoms.get("{x-request-id}o", "-"),
            "user_agent": atoms["a"],
        }
        try:
            self.access_log.info(json.dumps(entry, default=str))
        except Exception:  # an access log line must never fail the request
            self.exception("could not write the access log line")


logger_class = JsonAccessLogger


def post_worker_init(worker) -> None:
    """Register every app's Celery tasks before the first request, so requests never race to do it."""
    from inro.celery import app  # noqa: PLC0415  (the application exists only once the worker loaded it)

    app.loader.import_default_modules()
