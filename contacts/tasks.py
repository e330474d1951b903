"""Instagram intake tasks: thin wrappers over contacts.intake, safe to run twice."""

from celery import shared_task
from django.utils import timezone

from contacts import intake


@shared_task(
    name="contacts.tasks.process_instagram_delivery",
    autoretry_for=intake.RETRYABLE_ERRORS,
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def process_instagram_delivery(delivery_id: int) -> str | None:
    """Queued after commit by the webhook view; the delivery stays pending until this succeeds."""
    delivery = intake.delivery_process(delivery_id=delivery_id)
    return delivery.status if delivery else None


@shared_task(name="contacts.tasks.sweep_pending_deliveries")
def sweep_pending_deliveries() -> int:
    """Every minute (celery-beat, contacts 0004): deliveries whose task was lost to a broker outage;
    also drops processed deliveries past their retention period."""
    now = timezone.now()
    swept = intake.deliveries_sweep(now=now)
    intake.deliveries_prune(now=now)
    return swept
