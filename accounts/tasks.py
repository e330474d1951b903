"""Account jobs: housekeeping of the API's idempotency keys."""

from celery import shared_task

from accounts.services import idempotency_purge


@shared_task
def purge_idempotency_keys() -> int:
    """Daily (celery-beat, accounts 0003): forget Idempotency-Keys past their 24-hour window. Safe to run twice."""
    return idempotency_purge()
