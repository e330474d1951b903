"""Billing's Celery tasks: thin wrappers over services, safe to run twice."""

from celery import shared_task
from django.utils import timezone

from billing import activation, enqueue
from billing.payment_failures import payment_failure_email, payment_failure_emails_unsent
from billing.rollover import month_roll_over_as_needed
from billing.subscriptions import scheduled_changes_apply_due, subscriptions_lapse_as_needed


@shared_task(name=enqueue.ROLL_OVER_MONTH)
def roll_over_month() -> list[str]:
    """Scheduled by celery-beat shortly after 00:00 UTC on the 1st, and hourly as a safety net.

    The hourly run also emails payment failures whose notification was never queued (broker down).
    """
    opened = [m.isoformat() for m in month_roll_over_as_needed(now=timezone.now())]
    payment_failure_emails_unsent()
    return opened


@shared_task(name=enqueue.PAYMENT_FAILED_NOTIFY)
def payment_failed_notify(failure_id: int) -> bool:
    """Email the owners about an unpaid invoice; at most once per invoice, however often it runs."""
    return payment_failure_email(failure_id=failure_id)


@shared_task(name=enqueue.LAPSE_SUBSCRIPTIONS)
def lapse_subscriptions() -> list[int]:
    """Hourly: subscriptions cancelled at period end whose period is over return to Free (rule 9)."""
    return subscriptions_lapse_as_needed(now=timezone.now())


@shared_task(name=enqueue.ACTIVATIONS_SETTLE)
def activations_settle() -> dict:
    """Every minute: settle activation reservations left in flight by a dead worker (rule 13)."""
    result = activation.activations_settle(now=timezone.now())
    return {"confirmed": result.confirmed, "released": result.released, "kept": result.kept}


@shared_task(name=enqueue.APPLY_SCHEDULED_PLAN_CHANGES)
def apply_scheduled_plan_changes() -> list[int]:
    """Every minute: downgrades and fewer packs whose paid period is over take effect (rule 8)."""
    return scheduled_changes_apply_due(now=timezone.now())
