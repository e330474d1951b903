"""Liveness and readiness probes for load balancers and orchestrators: cheap, unauthenticated."""

import logging

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from inro.celery import app

logger = logging.getLogger(__name__)


def database_reachable() -> bool:
    """One `SELECT 1` on the default database (connect timeout: DATABASE_CONNECT_TIMEOUT)."""
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any failure means "not ready"; the reason goes to the log, not the probe
        logger.warning("readiness: database unreachable", exc_info=True)
        return False
    return True


def broker_reachable() -> bool:
    """Open (and close) one connection to the Celery broker, with a short timeout and no retry."""
    timeout = settings.READINESS_TIMEOUT_SECONDS
    try:
        with app.connection_for_write(connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    except Exception:  # refused, timed out, DNS, auth: all mean "not ready"
        logger.warning("readiness: broker unreachable", exc_info=True)
        return False
    return True


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests. Touches neither the database nor the broker."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready for traffic: the database and the broker answer. 503 names what failed."""
    checks = {
        "database": "ok" if database_reachable() else "unreachable",
        "broker": "ok" if broker_reachable() else "unreachable",
    }
    ready = all(state == "ok" for state in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks},
                        status=200 if ready else 503)
