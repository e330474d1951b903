"""Deploy checks of our own (`manage.py check --deploy`), beside Django's security ones."""

from django.conf import settings
from django.core.checks import Tags, Warning, register

PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register(Tags.caches, deploy=True)
def shared_cache_check(app_configs, **kwargs) -> list[Warning]:
    """Sign-in throttling and the task-failure counters of /metrics live in the cache: a cache of
    each process's own would let an attacker's guesses spread over the web processes uncounted."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend in PROCESS_LOCAL_CACHES:
        return [Warning(
            f"The default cache is {backend.rsplit('.', 1)[-1]}, private to each process.",
            hint="Point CACHE_URL at a shared cache, e.g. rediscache://redis.internal:6379/1 (docs/deploy.md).",
            id="inro.W001",
        )]
    return []
