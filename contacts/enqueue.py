"""Contacts' Celery tasks by name: contacts.intake queues work here, never through contacts.tasks
(which calls intake). contacts.tasks registers under these names."""

from inro.enqueue import registered_task

PROCESS_INSTAGRAM_DELIVERY = "contacts.tasks.process_instagram_delivery"
DRAIN_INSTAGRAM_DELIVERIES = "contacts.tasks.drain_instagram_deliveries"
SWEEP_PENDING_DELIVERIES = "contacts.tasks.sweep_pending_deliveries"
RESOLVE_INSTAGRAM_MENTION = "contacts.tasks.resolve_instagram_mention"
RESOLVE_DUE_INSTAGRAM_MENTIONS = "contacts.tasks.resolve_due_instagram_mentions"
REFRESH_INSTAGRAM_TOKENS = "contacts.tasks.refresh_instagram_tokens"


def process_instagram_delivery(delivery_id: int) -> None:
    registered_task(PROCESS_INSTAGRAM_DELIVERY).delay(delivery_id)


def drain_instagram_deliveries(*, countdown: float | None = None) -> None:
    registered_task(DRAIN_INSTAGRAM_DELIVERIES).apply_async(countdown=countdown)


def resolve_instagram_mention(mention_id: int) -> None:
    registered_task(RESOLVE_INSTAGRAM_MENTION).delay(mention_id)
