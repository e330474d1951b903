"""Billing's Celery tasks: thin wrappers over services, safe to run twice."""

from celery import shared_task
from django.utils import timezone

from billing import services


@shared_task(name="billing.tasks.roll_over_month")
def roll_over_month() -> list[str]:
    """Scheduled by celery-beat shortly after 00:00 UTC on the 1st, and hourly as a safety net.

    The hourly run also emails payment failures whose notification was never queued (broker down).
    """
    opened = [m.isoformat() for m in services.month_roll_over_as_needed(now=timezone.now())]
    services.payment_failure_emails_unsent()
    return opened


@shared_task(name="billing.tasks.payment_failed_notify")
def payment_failed_notify(failure_id: int) -> bool:
    """Email the owners about an unpaid invoice; at most once per invoice, however often it runs."""
    return services.payment_failure_email(failure_id=failure_id)


@shared_task(name="billing.tasks.lapse_subscriptions")
def lapse_subscriptions() -> list[int]:
    """Hourly: subscriptions cancelled at period end whose period is over return to Free (rule 9)."""
    from billing.subscriptions import subscriptions_lapse_as_needed

    return subscriptions_lapse_as_needed(now=timezone.now())


@shared_task(name="billing.tasks.apply_scheduled_plan_changes")
def apply_scheduled_plan_changes() -> list[int]:
    """Every minute: downgrades and fewer packs whose paid period is over take effect (rule 8)."""
    from billing.subscriptions import scheduled_changes_apply_due

    return scheduled_changes_apply_due(now=timezone.now())
