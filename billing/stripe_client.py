"""The Stripe boundary: the only module that imports `stripe`.

It pins the API version, reads keys and price ids from settings, honours STRIPE_API_BASE (a
Stripe-compatible server such as the local fake), hands plain dicts to the rest of billing, and turns
every Stripe error or timeout into one `BillingError` a customer can read. Callers never hold a
database transaction open while calling these functions.
"""

import functools
import json
import logging
from typing import Any

import stripe
from django.conf import settings

from inro.errors import ApplicationError
from inro.untrusted import json_parse

logger = logging.getLogger(__name__)

# Pinned explicitly: webhook payloads and responses are shaped by this version, whatever the account's
# default is. `current_period_*` live on subscription items from 2025-03-31.basil on.
API_VERSION = "2025-11-17.clover"
TIMEOUT_SECONDS = 20
DEFAULT_MAX_NETWORK_RETRIES = 2
WEBHOOK_TOLERANCE_SECONDS = 300


class BillingError(ApplicationError):
    """Stripe failed or could not be reached; nothing was charged by this request."""

    code = "billing_unavailable"
    status = 502


class WebhookSignatureError(ApplicationError):
    """A webhook whose Stripe-Signature is missing, wrong or too old: refused, nothing stored."""

    code = "bad_signature"
    status = 400


@functools.lru_cache(maxsize=8)
def _client_for(api_key: str, api_base: str, retries: int) -> stripe.StripeClient:
    base_addresses = {"api": api_base.rstrip("/")} if api_base else None
    return stripe.StripeClient(
        api_key,
        stripe_version=API_VERSION,
        base_addresses=base_addresses,
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
    )


def _client() -> stripe.StripeClient:
    return _client_for(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE or "",
        getattr(settings, "STRIPE_MAX_NETWORK_RETRIES", DEFAULT_MAX_NETWORK_RETRIES),
    )


def _as_dict(obj: Any) -> dict:
    """Plain nested dicts, so nothing outside this module depends on the SDK's types."""
    # str() of a StripeObject is its JSON: the one public, non-deprecated way to get the whole tree.
    return json.loads(str(obj))


def _billing_error(error: Exception, action: str) -> BillingError:
    logger.warning("stripe %s failed: %s: %s", action, type(error).__name__, error)
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError):
        return BillingError(
            "We could not reach our payment provider. Nothing was charged; please try again in a minute.",
            code="billing_unavailable", status=503,
        )
    return BillingError(
        "Our payment provider could not process this request. Nothing was charged; please try again "
        "later or contact support if it keeps happening.",
        code="billing_error", status=502,
    )


def _call(action: str, function, *args, **kwargs) -> dict:
    try:
        return _as_dict(function(*args, **kwargs))
    except stripe.StripeError as error:
        raise _billing_error(error, action) from error


def price_pro() -> str:
    return settings.STRIPE_PRICE_PRO


def price_addon_pack() -> str:
    return settings.STRIPE_PRICE_ADDON_PACK


def checkout_session_create(*, params: dict, idempotency_key: str) -> dict:
    """Create a Checkout Session; the idempotency key comes from the local CheckoutSession row."""
    return _call("checkout.sessions.create", _client().v1.checkout.sessions.create, params,
                 {"idempotency_key": idempotency_key})


def checkout_session_retrieve(*, session_id: str) -> dict:
    return _call("checkout.sessions.retrieve", _client().v1.checkout.sessions.retrieve, session_id)


def subscription_retrieve(*, subscription_id: str) -> dict:
    return _call("subscriptions.retrieve", _client().v1.subscriptions.retrieve, subscription_id)


def subscription_update(*, subscription_id: str, params: dict, idempotency_key: str) -> dict:
    return _call("subscriptions.update", _client().v1.subscriptions.update, subscription_id, params,
                 {"idempotency_key": idempotency_key})


def billing_portal_session_create(*, customer_id: str, return_url: str) -> dict:
    return _call("billing_portal.sessions.create", _client().v1.billing_portal.sessions.create,
                 {"customer": customer_id, "return_url": return_url})


def webhook_event_verify(*, payload: bytes, signature_header: str) -> dict:
    """Check Stripe-Signature with STRIPE_WEBHOOK_SECRET (300 s tolerance); return the event as a dict."""
    if not signature_header:
        raise WebhookSignatureError("Missing Stripe-Signature header.")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text, signature_header, settings.STRIPE_WEBHOOK_SECRET, WEBHOOK_TOLERANCE_SECONDS
        )
        event = json_parse(text)  # nesting bounded: a deep body is a 400, not a RecursionError
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as error:
        raise WebhookSignatureError(f"Invalid Stripe webhook: {error}") from error
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise WebhookSignatureError("Invalid Stripe webhook: not an event object.")
    return event


def invoice_list(*, customer_id: str, limit: int = 6) -> list[dict]:
    """The customer's latest invoices, newest first (hosted page and PDF links included)."""
    answer = _call("invoices.list", _client().v1.invoices.list, {"customer": customer_id, "limit": limit})
    return list(answer.get("data") or [])


def invoice_preview(*, customer_id: str, subscription_id: str, items: list[dict] | None = None,
                    proration_behavior: str = "", proration_date: int | None = None) -> dict:
    """Stripe's invoice preview for a subscription: its next renewal, or with `items` what changing
    them would invoice (prorations at `proration_date`). Creates nothing; charges nothing."""
    params: dict = {"customer": customer_id, "subscription": subscription_id}
    details: dict = {}
    if items:
        details["items"] = items
    if proration_behavior:
        details["proration_behavior"] = proration_behavior
    if proration_date is not None:
        details["proration_date"] = proration_date
    if details:
        params["subscription_details"] = details
    return _call("invoices.create_preview", _client().v1.invoices.create_preview, params)
