"""Billing's Celery tasks by name: billing's services queue work here, never through billing.tasks
(which calls the services). billing.tasks registers under these names."""

from inro.enqueue import registered_task

ROLL_OVER_MONTH = "billing.tasks.roll_over_month"
PAYMENT_FAILED_NOTIFY = "billing.tasks.payment_failed_notify"
LAPSE_SUBSCRIPTIONS = "billing.tasks.lapse_subscriptions"
ACTIVATIONS_SETTLE = "billing.tasks.activations_settle"
APPLY_SCHEDULED_PLAN_CHANGES = "billing.tasks.apply_scheduled_plan_changes"


def payment_failed_notify(failure_id: int) -> None:
    registered_task(PAYMENT_FAILED_NOTIFY).delay(failure_id)
