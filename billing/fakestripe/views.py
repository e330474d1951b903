"""The fake served in-process under /_fake_stripe/ for the offline demo (`make run`, DEBUG only).

Stripe's API for the SDK (STRIPE_API_BASE points here), a hosted "checkout" page whose Pay button
completes the session and delivers Stripe's signed events to our webhook service (signature
checked, the same code path as /webhooks/stripe/), and a small "portal" to cancel or fail a payment.
Every view answers 404 unless settings.FAKE_STRIPE_ENABLED, which only local settings set.
"""

import json

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt

from billing.fakestripe import FakeStripe, sign_payload
from billing.models import Plan
from billing.webhooks import stripe_event_receive

_fake: FakeStripe | None = None


def fake() -> FakeStripe:
    global _fake
    if _fake is None:
        _fake = FakeStripe(hosted_base=settings.SITE_URL.rstrip("/") + "/_fake_stripe")
    return _fake


def _enabled() -> None:
    if not getattr(settings, "FAKE_STRIPE_ENABLED", False):
        raise Http404("The fake Stripe is not enabled.")


def deliver(events: list[dict]) -> list[str]:
    """Sign each event as Stripe does and hand it to our webhook service; returns their statuses."""
    statuses = []
    for event in events:
        payload = json.dumps(event)
        header = sign_payload(payload, settings.STRIPE_WEBHOOK_SECRET)
        statuses.append(stripe_event_receive(payload=payload.encode(), signature_header=header).status)
    return statuses


@csrf_exempt
def api(request: HttpRequest, path: str) -> HttpResponse:
    _enabled()
    body = request.body.decode() if request.method == "POST" else request.META.get("QUERY_STRING", "")
    status, payload = fake().handle(
        request.method, f"/v1/{path}", body, idempotency_key=request.headers.get("Idempotency-Key", ""),
        authorization=request.headers.get("Authorization", ""),
        stripe_version=request.headers.get("Stripe-Version", ""),
    )
    return JsonResponse(payload, status=status)


def _price_lines(line_items: list[dict]) -> list[dict]:
    lines = []
    for item in line_items:
        plan = Plan.objects.filter(stripe_price_id=item["price"]).first()
        addon = Plan.objects.filter(stripe_addon_price_id=item["price"]).first()
        if plan is not None:
            name, cents = f"{plan.name} plan", plan.price_cents
        elif addon is not None:
            name, cents = f"Add-on pack ({addon.addon_pack_size:,} activations)", addon.addon_pack_price_cents
        else:
            name, cents = item["price"], 0
        lines.append({"name": name, "quantity": item["quantity"], "amount": f"{cents * item['quantity'] / 100:.2f}"})
    return lines


def checkout_page(request: HttpRequest, session_id: str) -> HttpResponse:
    _enabled()
    stripe = fake()
    session = stripe.sessions.get(session_id)
    if session is None:
        raise Http404("No such checkout session.")
    if request.method == "POST":
        if request.POST.get("action") == "cancel" or session["status"] != "open":
            return redirect(session["cancel_url"])
        deliver(stripe.checkout_complete(session_id))
        return redirect(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id))
    return render(request, "billing/fake_stripe_checkout.html", {
        "session": session, "lines": _price_lines(stripe.session_line_items.get(session_id, [])),
    })


PORTAL_ACTIONS = {
    "cancel_at_period_end": "Cancel at the end of the period",
    "end_now": "End the subscription now (as at period end)",
    "fail_payment": "Simulate a failed renewal payment",
    "pay_invoices": "Pay the open invoices",
}


def portal_page(request: HttpRequest, portal_id: str) -> HttpResponse:
    _enabled()
    stripe = fake()
    portal = stripe.portal_sessions.get(portal_id)
    if portal is None:
        raise Http404("No such portal session.")
    subscriptions = [s for s in stripe.subscriptions.values()
                     if s["customer"] == portal["customer"] and s["status"] != "canceled"]
    subscription = subscriptions[-1] if subscriptions else None
    if request.method == "POST":
        action = request.POST.get("action")
        if subscription is not None and action in PORTAL_ACTIONS:
            deliver(_portal_events(stripe, subscription, action))
        return redirect(portal["return_url"])
    return render(request, "billing/fake_stripe_portal.html", {
        "portal": portal, "subscription": subscription, "actions": PORTAL_ACTIONS,
    })


def _portal_events(stripe: FakeStripe, subscription: dict, action: str) -> list[dict]:
    if action == "cancel_at_period_end":
        return [stripe.subscription_cancel_at_period_end(subscription["id"])]
    if action == "end_now":
        return [stripe.subscription_end(subscription["id"])]
    if action == "fail_payment":
        return stripe.invoice_payment_failed(subscription["id"])
    events = []
    for invoice in stripe.invoices.values():
        details = invoice["parent"]["subscription_details"]
        if details["subscription"] == subscription["id"] and invoice["status"] == "open":
            invoice["status"] = "paid"
            events.append(stripe.event("invoice.paid", invoice))
    subscription["status"] = "active"
    events.append(stripe.subscription_updated_event(subscription["id"]))
    return events
