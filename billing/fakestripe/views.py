"""The fake served in-process under /_fake_stripe/ for the offline demo (`make run`, DEBUG only).

Stripe's API for the SDK (STRIPE_API_BASE points here), a hosted "checkout" page whose Pay button
completes the session and delivers Stripe's signed events to our webhook service (signature
checked, the same code path as /webhooks/stripe/), and a small "portal" to cancel or fail a payment.
Every view answers 404 unless settings.FAKE_STRIPE_ENABLED, which only local settings set.
"""

import datetime
import json

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt

from billing.checkout import addon_price_id, plan_price_id
from billing.fakestripe import MONTH_SECONDS, FakeStripe, sign_payload
from billing.models import Plan, Subscription
from billing.webhooks import stripe_event_receive

_fake: FakeStripe | None = None


def fake() -> FakeStripe:
    global _fake
    if _fake is None:
        _fake = FakeStripe(hosted_base=settings.SITE_URL.rstrip("/") + "/_fake_stripe")
    return _fake


def known_from_database(stripe: FakeStripe) -> None:
    """Teach the fake what the database already knows: the plans' prices, and every paid subscription
    it has never seen (the demo's `cus_demo`, or one made before `make run` restarted, since the fake
    keeps its state in memory)."""
    for plan in Plan.objects.exclude(price_cents=0):
        if plan_price_id(plan):
            stripe.price_set(plan_price_id(plan), plan.price_cents, f"{plan.name} plan")
        if plan.addon_pack_size:
            stripe.price_set(addon_price_id(plan), plan.addon_pack_price_cents,
                             f"Add-on pack ({plan.addon_pack_size:,} activations)")
    rows = (Subscription.objects.select_related("plan", "workspace").exclude(stripe_customer_id="")
            .exclude(stripe_subscription_id="").exclude(plan__price_cents=0))
    for row in rows:
        if row.stripe_subscription_id in stripe.subscriptions:
            continue
        end = row.current_period_end or datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(days=30)
        start = row.current_period_start or end - datetime.timedelta(seconds=MONTH_SECONDS)
        status = row.status if row.status in ("active", "past_due", "trialing", "unpaid") else "active"
        stripe.subscription_adopt(
            subscription_id=row.stripe_subscription_id, customer_id=row.stripe_customer_id,
            items=[(plan_price_id(row.plan), 1), (addon_price_id(row.plan), row.addon_packs)],
            period_start=int(start.timestamp()), period_end=int(end.timestamp()), status=status,
            cancel_at_period_end=row.cancel_at_period_end, metadata={"workspace_id": str(row.workspace_id)},
        )


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
    known_from_database(fake())
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
    "undo_cancel": "Keep the plan (undo a scheduled cancellation)",
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
    known_from_database(stripe)
    subscriptions = [s for s in stripe.subscriptions.values()
                     if s["customer"] == portal["customer"] and s["status"] != "canceled"]
    subscription = subscriptions[-1] if subscriptions else None
    if request.method == "POST":
        action = request.POST.get("action")
        if subscription is not None and action in PORTAL_ACTIONS:
            deliver(_portal_events(stripe, subscription, action))
        return redirect(portal["return_url"])
    invoices = sorted((i for i in stripe.invoices.values() if i["customer"] == portal["customer"]),
                      key=lambda i: i["created"], reverse=True)
    return render(request, "billing/fake_stripe_portal.html", {
        "portal": portal, "subscription": subscription, "actions": PORTAL_ACTIONS, "invoices": invoices,
    })


def invoice_page(request: HttpRequest, invoice_id: str) -> HttpResponse:
    """Stripe's hosted invoice page, in small."""
    _enabled()
    invoice = fake().invoices.get(invoice_id)
    if invoice is None:
        raise Http404("No such invoice.")
    return render(request, "billing/fake_stripe_invoice.html", {
        "invoice": invoice, "created": datetime.datetime.fromtimestamp(invoice["created"], tz=datetime.UTC),
        "lines": [{"description": line["description"], "amount": f"{line['amount'] / 100:.2f}"}
                  for line in invoice["lines"]["data"]],
        "total": f"{invoice['amount_due'] / 100:.2f}",
    })


def _pdf(lines: list[str]) -> bytes:
    """A one-page PDF with these lines of text (Helvetica): enough for a demo invoice."""
    def escape(text: str) -> str:
        text = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return text.encode("latin-1", "replace").decode("latin-1")

    text = "BT /F1 12 Tf 72 760 Td 16 TL " + " ".join(f"({escape(line)}) Tj T*" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(text.encode('latin-1'))} >>\nstream\n{text}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def invoice_pdf(request: HttpRequest, invoice_id: str) -> HttpResponse:
    _enabled()
    invoice = fake().invoices.get(invoice_id)
    if invoice is None:
        raise Http404("No such invoice.")
    created = datetime.datetime.fromtimestamp(invoice["created"], tz=datetime.UTC)
    lines = [f"Invoice {invoice['number']} (fake Stripe, local demo: no money)", f"Date: {created:%d %B %Y}", ""]
    lines += [f"{line['description']}: ${line['amount'] / 100:.2f}" for line in invoice["lines"]["data"]]
    lines += ["", f"Total: ${invoice['amount_due'] / 100:.2f} ({invoice['status']})"]
    response = HttpResponse(_pdf(lines), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{invoice["number"]}.pdf"'
    return response


def _portal_events(stripe: FakeStripe, subscription: dict, action: str) -> list[dict]:
    if action == "cancel_at_period_end":
        return [stripe.subscription_cancel_at_period_end(subscription["id"])]
    if action == "undo_cancel":
        with stripe.lock:
            subscription["cancel_at_period_end"] = False
        return [stripe.subscription_updated_event(subscription["id"],
                                                  previous_attributes={"cancel_at_period_end": True})]
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
