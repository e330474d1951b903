"""Account jobs: housekeeping of the API's idempotency keys and expired device tokens."""

from celery import shared_task

from accounts.services import api_tokens_purge_expired, idempotency_purge


@shared_task
def purge_idempotency_keys() -> int:
    """Daily (celery-beat, accounts 0003): forget Idempotency-Keys past their 24-hour window, and delete
    API tokens past their idle or absolute expiry (they stopped working already). Safe to run twice."""
    return idempotency_purge() + api_tokens_purge_expired()
