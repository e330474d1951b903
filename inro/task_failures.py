"""Task failures counted per task in the shared cache, by a Celery signal connected in every process.

Failures happen in worker processes and /metrics is served by a web process, so a process-local
counter would not do (set CACHE_URL to Redis in production). The web layer reads the counts.
"""

import logging
from typing import Any

from celery import signals
from django.core.cache import cache

logger = logging.getLogger(__name__)

TASK_FAILURE_KEY = "ops:task_failures:{}"


@signals.task_failure.connect(dispatch_uid="inro.task_failures.count")
def _count_task_failure(sender: Any = None, **kwargs: Any) -> None:
    name = getattr(sender, "name", None) or "unknown"
    key = TASK_FAILURE_KEY.format(name)
    try:
        cache.add(key, 0, timeout=None)
        cache.incr(key)
    except Exception:  # the cache being down must never turn a task failure into a worse one
        logger.warning("could not count the failure of task %s", name, exc_info=True)


def failure_counts(names: list[str]) -> dict[str, int]:
    """{task name: failures counted} for the given tasks (0 for a task that never failed)."""
    found = cache.get_many([TASK_FAILURE_KEY.format(name) for name in names])
    return {name: int(found.get(TASK_FAILURE_KEY.format(name), 0)) for name in names}
