"""Stripe webhook intake: verify, store every event first under its unique id, then handle it once.

Exactly-once: the StripeEvent row is inserted with ON CONFLICT DO NOTHING, then locked (SELECT ...
FOR UPDATE) for the handling transaction; a duplicate delivery, even at the same moment, waits for
the lock and finds the event already processed. A handler runs in a savepoint: if it fails, its
writes are undone, the event is marked failed with the error, and the endpoint answers 500 so
Stripe retries. Handlers never call Stripe, so no transaction spans a network call.
"""

import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from billing import enqueue, stripe_client
from billing.checkout import checkout_session_apply
from billing.models import PaymentFailure, StripeEvent, Subscription
from billing.subscriptions import stripe_id, subscription_locked, subscription_object_apply
from inro.errors import ApplicationError
from inro.untrusted import json_clean

logger = logging.getLogger(__name__)

# Never stored, even though Stripe events carry no card numbers: defence in depth.
_SCRUBBED_KEYS = {"card", "payment_method_details", "card_present"}


def payload_scrubbed(value):
    if isinstance(value, dict):
        return {k: payload_scrubbed(v) for k, v in value.items() if k not in _SCRUBBED_KEYS}
    if isinstance(value, list):
        return [payload_scrubbed(v) for v in value]
    return value


def _object(event: dict) -> dict:
    return event["data"]["object"]


def handle_checkout_completed(event: dict) -> str:
    return checkout_session_apply(session=_object(event), source_event_id=event["id"])


def handle_subscription(event: dict) -> str:
    return subscription_object_apply(
        obj=_object(event), event_type=event["type"], event_created=event["created"], source_event_id=event["id"]
    )


def _invoice_subscription_id(invoice: dict) -> str:
    # Current API versions name the subscription under parent.subscription_details; older ones on top.
    details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    return stripe_id(details.get("subscription")) or stripe_id(invoice.get("subscription"))


def handle_invoice_payment_failed(event: dict) -> str:
    """Past due: the plan is kept while Stripe retries (rule 9); owners are emailed once per invoice."""
    invoice = _object(event)
    local = Subscription.objects.filter(stripe_subscription_id=_invoice_subscription_id(invoice) or "-").first()
    if local is None:
        return "invoice of a subscription not linked to any workspace"
    row = subscription_locked(workspace_id=local.workspace_id)
    failure, created = PaymentFailure.objects.get_or_create(
        stripe_invoice_id=str(invoice["id"]),
        defaults={
            "workspace_id": row.workspace_id,
            "stripe_subscription_id": row.stripe_subscription_id,
            "amount_due_cents": int(invoice.get("amount_due") or 0),
            "currency": str(invoice.get("currency") or "usd")[:3],
            "attempt_count": int(invoice.get("attempt_count") or 0),
            "hosted_invoice_url": str(invoice.get("hosted_invoice_url") or "")[:2000],
        },
    )
    if not created:
        PaymentFailure.objects.filter(pk=failure.pk).update(
            attempt_count=max(failure.attempt_count, int(invoice.get("attempt_count") or 0)), resolved_at=None
        )
    if row.status in (Subscription.Status.ACTIVE, Subscription.Status.TRIALING):
        Subscription.objects.filter(pk=row.pk).update(status=Subscription.Status.PAST_DUE)
    if created:
        # robust: with the broker down the event still counts as handled; the hourly job emails it later.
        transaction.on_commit(lambda: enqueue.payment_failed_notify(failure.pk), robust=True)
    return ""


def handle_invoice_paid(event: dict) -> str:
    invoice = _object(event)
    local = Subscription.objects.filter(stripe_subscription_id=_invoice_subscription_id(invoice) or "-").first()
    if local is None:
        return "invoice of a subscription not linked to any workspace"
    row = subscription_locked(workspace_id=local.workspace_id)
    PaymentFailure.objects.filter(stripe_invoice_id=str(invoice["id"]), resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )
    still_unpaid = PaymentFailure.objects.filter(
        workspace_id=row.workspace_id, stripe_subscription_id=row.stripe_subscription_id, resolved_at__isnull=True
    ).exists()
    if row.status == Subscription.Status.PAST_DUE and not still_unpaid:
        Subscription.objects.filter(pk=row.pk).update(status=Subscription.Status.ACTIVE)
    return ""


HANDLERS: dict[str, Callable[[dict], str]] = {
    "checkout.session.completed": handle_checkout_completed,
    "customer.subscription.created": handle_subscription,
    "customer.subscription.updated": handle_subscription,
    "customer.subscription.deleted": handle_subscription,
    "invoice.paid": handle_invoice_paid,
    "invoice.payment_failed": handle_invoice_payment_failed,
}


def _event_validated(event: dict) -> dict:
    data = event.get("data")
    created = event.get("created")
    if (not event["id"] or len(event["id"]) > 255 or not isinstance(created, int) or isinstance(created, bool)
            or not isinstance(data, dict) or not isinstance(data.get("object"), dict)):
        raise ApplicationError("Not a Stripe event.", code="invalid_event", status=400)
    return event


def stripe_event_receive(*, payload: bytes, signature_header: str) -> StripeEvent:
    """Verify and store the event (once), then handle it (once). Raises WebhookSignatureError (400)."""
    # Signed by Stripe: never refused for its characters; NUL and lone surrogates are cleaned before
    # anything is stored (PostgreSQL refuses both in jsonb and text).
    event = _event_validated(json_clean(
        stripe_client.webhook_event_verify(payload=payload, signature_header=signature_header)))
    StripeEvent.objects.bulk_create(
        [StripeEvent(event_id=event["id"], type=event["type"][:255], created=event["created"],
                     livemode=bool(event.get("livemode")), payload=payload_scrubbed(event))],
        ignore_conflicts=True,
    )
    return _process(event_id=event["id"], replay=False)


def stripe_event_replay(*, event: StripeEvent) -> StripeEvent:
    """Run an event's handler again (staff, from the admin); handlers are idempotent."""
    return _process(event_id=event.event_id, replay=True)


def _process(*, event_id: str, replay: bool) -> StripeEvent:
    with transaction.atomic():
        row = StripeEvent.objects.select_for_update().get(event_id=event_id)
        if not replay and row.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
            return row  # a duplicate delivery: handled already
        row.attempts += 1
        handler = HANDLERS.get(row.type)
        if handler is None:
            row.status, row.error = StripeEvent.Status.IGNORED, ""
        else:
            try:
                with transaction.atomic():
                    outcome = handler(row.payload)
            except Exception as error:
                logger.exception("stripe event %s (%s) failed", row.event_id, row.type)
                row.status, row.error = StripeEvent.Status.FAILED, f"{type(error).__name__}: {error}"[:4000]
            else:
                row.status = StripeEvent.Status.IGNORED if outcome else StripeEvent.Status.PROCESSED
                row.error = outcome
        row.processed_at = timezone.now()
        row.save(update_fields=["status", "error", "attempts", "processed_at"])
    return row
