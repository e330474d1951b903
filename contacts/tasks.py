"""Instagram intake tasks: thin wrappers over contacts.intake, safe to run twice."""

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from contacts import instagram, intake

# A database outage leaves the deliveries pending: retry 8 times, backoff from 5 s doubling up to 10 min.
_RETRY_WHILE_DATABASE_AWAY = {
    "autoretry_for": intake.RETRYABLE_ERRORS,
    "retry_backoff": 5,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(name="contacts.tasks.process_instagram_delivery", **_RETRY_WHILE_DATABASE_AWAY)
def process_instagram_delivery(delivery_id: int) -> str | None:
    """One delivery (staff replay, and tasks queued before the drain existed); it stays pending until
    this succeeds."""
    delivery = intake.delivery_process(delivery_id=delivery_id)
    return delivery.status if delivery else None


@shared_task(name="contacts.tasks.drain_instagram_deliveries", **_RETRY_WHILE_DATABASE_AWAY)
def drain_instagram_deliveries() -> int:
    """Nudged by the webhook view (throttled, see intake.DrainNudge): process every pending delivery.

    Several may run at once (SKIP LOCKED shares the backlog). After META_WEBHOOK_DRAIN_BATCH
    deliveries it queues itself again instead of holding a worker for a whole backlog.
    """
    handled, more = intake.deliveries_drain(limit=settings.META_WEBHOOK_DRAIN_BATCH)
    if more:
        drain_instagram_deliveries.delay()
    return handled


@shared_task(name="contacts.tasks.sweep_pending_deliveries")
def sweep_pending_deliveries() -> int:
    """Every minute (celery-beat, contacts 0004): deliveries whose nudge was lost to a broker outage;
    also drops processed deliveries past their retention period."""
    now = timezone.now()
    swept = intake.deliveries_sweep(now=now)
    intake.deliveries_prune(now=now)
    return swept


@shared_task(name="contacts.tasks.resolve_instagram_mention", **_RETRY_WHILE_DATABASE_AWAY)
def resolve_instagram_mention(mention_id: int) -> str:
    """Look up who @mentioned a workspace's account; a failure waits for the sweep (with backoff)."""
    return instagram.mention_resolve(mention_id=mention_id)


@shared_task(name="contacts.tasks.resolve_due_instagram_mentions")
def resolve_due_instagram_mentions() -> int:
    """Every minute (celery-beat, contacts 0010): mention look-ups due again after a failure."""
    return instagram.mentions_resolve_due()


@shared_task(name="contacts.tasks.refresh_instagram_tokens")
def refresh_instagram_tokens() -> dict:
    """Every hour (celery-beat, contacts 0010): refresh tokens at least a day old expiring within 7 days."""
    return instagram.tokens_refresh_due()
