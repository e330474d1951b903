"""Money on the billing page: prices, the next charge, the last invoices, what changing packs costs,
and cancelling at the end of the paid period (or taking that back).

Amounts come from Stripe (its invoice preview and invoice list), never recomputed here, so the page
says what the card will be charged. Reads call Stripe outside any transaction; a Stripe failure
leaves the page up with a sentence saying what could not be read. Changes (cancel, undo) go through
Stripe first and apply its answer like the webhook that follows would (billing.subscriptions).
"""

import datetime
import logging
import uuid
from dataclasses import dataclass, field

from django.db import transaction

from accounts.models import User, Workspace
from billing import stripe_client
from billing.checkout import MAX_ADDON_PACKS, _manager_membership, addon_price_id
from billing.models import Plan, Subscription
from billing.stripe_client import BillingError
from billing.subscriptions import ENDED_STATUSES, stripe_id, subscription_object_apply
from inro.errors import ApplicationError

logger = logging.getLogger(__name__)

INVOICES_SHOWN = 6
UNREADABLE = "Stripe could not be reached just now, so {what} cannot be shown; reload the page in a minute."


def _moment(value) -> datetime.datetime | None:
    if value in (None, "", 0):
        return None
    return datetime.datetime.fromtimestamp(int(value), tz=datetime.UTC)


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    description: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    number: str
    created: datetime.datetime | None
    period_start: datetime.datetime | None
    period_end: datetime.datetime | None
    amount_cents: int
    currency: str
    status: str  # Stripe's: draft, open, paid, uncollectible, void
    reason: str  # "Renewal", "Pack change", "First payment"
    hosted_url: str
    pdf_url: str

    @property
    def status_label(self) -> str:
        return {"paid": "Paid", "open": "Due", "void": "Void", "uncollectible": "Unpaid",
                "draft": "Draft"}.get(self.status, self.status.capitalize())

    @property
    def status_level(self) -> str:
        return {"paid": "ok", "open": "warning", "uncollectible": "limit"}.get(self.status, "")


@dataclass(frozen=True, slots=True)
class Charge:
    """What Stripe will charge, when, line by line (an invoice preview)."""

    amount_cents: int
    currency: str
    at: datetime.datetime | None
    lines: list[InvoiceLine] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BillingMoney:
    next_charge: Charge | None
    invoices: list[InvoiceRow]
    problems: list[str]  # what could not be read from Stripe, in the customer's words


@dataclass(frozen=True, slots=True)
class PackChangePreview:
    """Changing the add-on packs, priced by Stripe before anything changes."""

    current_packs: int
    new_packs: int
    increase: bool
    charged_now: Charge | None  # an increase is charged at once for the rest of the paid period
    next_charge: Charge | None  # the renewal at the new quantity
    takes_effect_at: datetime.datetime | None  # a decrease waits for the end of the paid period
    quota_now: int  # plan + packs in effect after the change
    quota_later: int
    monthly_price_cents: int  # plan + packs after the change, a month


_REASONS = {"subscription_cycle": "Renewal", "subscription_update": "Pack change", "subscription_create":
            "First payment", "manual": "Invoice"}


def _invoice_row(invoice: dict) -> InvoiceRow:
    return InvoiceRow(
        number=str(invoice.get("number") or invoice.get("id") or ""),
        created=_moment(invoice.get("created")),
        period_start=_moment(invoice.get("period_start")),
        period_end=_moment(invoice.get("period_end")),
        amount_cents=int(invoice.get("total") if invoice.get("total") is not None else invoice.get("amount_due") or 0),
        currency=str(invoice.get("currency") or "usd"),
        status=str(invoice.get("status") or ""),
        reason=_REASONS.get(str(invoice.get("billing_reason") or ""), "Invoice"),
        hosted_url=str(invoice.get("hosted_invoice_url") or ""),
        pdf_url=str(invoice.get("invoice_pdf") or ""),
    )


def _charge(preview: dict) -> Charge:
    lines = [InvoiceLine(description=str(line.get("description") or ""), amount_cents=int(line.get("amount") or 0))
             for line in ((preview.get("lines") or {}).get("data") or [])]
    return Charge(amount_cents=int(preview.get("amount_due") or 0), currency=str(preview.get("currency") or "usd"),
                  at=_moment(preview.get("next_payment_attempt")), lines=lines)


def _live(subscription: Subscription | None) -> bool:
    return bool(subscription is not None and subscription.stripe_subscription_id and not subscription.plan.is_free
                and subscription.status not in ENDED_STATUSES)


def billing_money(*, subscription: Subscription | None) -> BillingMoney:
    """The next charge (Stripe's invoice preview) and the last invoices of the workspace's customer."""
    if subscription is None or not subscription.stripe_customer_id:
        return BillingMoney(next_charge=None, invoices=[], problems=[])
    problems = []
    next_charge = None
    if _live(subscription) and not subscription.cancel_at_period_end:
        try:
            next_charge = _charge(stripe_client.invoice_preview(
                customer_id=subscription.stripe_customer_id, subscription_id=subscription.stripe_subscription_id,
            ))
        except BillingError:
            problems.append(UNREADABLE.format(what="the next charge"))
    try:
        invoices = [_invoice_row(i) for i in stripe_client.invoice_list(
            customer_id=subscription.stripe_customer_id, limit=INVOICES_SHOWN)]
    except BillingError:
        invoices = []
        problems.append(UNREADABLE.format(what="your invoices"))
    return BillingMoney(next_charge=next_charge, invoices=invoices, problems=problems)


def _addon_item_change(*, remote: dict, plan: Plan, addon_packs: int) -> list[dict]:
    """The items change `checkout._addon_quantity_change` sends, for the same quantity."""
    addon_price = addon_price_id(plan)
    addon_item = next((item for item in (remote.get("items") or {}).get("data") or []
                       if stripe_id(item.get("price")) == addon_price), None)
    if addon_item is None:
        return [{"price": addon_price, "quantity": addon_packs}]
    if addon_packs == 0:
        return [{"id": addon_item["id"], "deleted": True}]
    return [{"id": addon_item["id"], "quantity": addon_packs}]


def pack_change_preview(*, workspace: Workspace, addon_packs: int,
                        now: datetime.datetime | None = None) -> PackChangePreview:
    """What changing the packs to `addon_packs` costs, from Stripe's preview; changes nothing.

    More packs are charged now, prorated to the end of the paid period, and raise the quota at once;
    fewer take effect at the end of the paid period, with nothing refunded (docs/product.md)."""
    if not 0 <= addon_packs <= MAX_ADDON_PACKS:
        raise ApplicationError(f"Add-on packs must be a whole number from 0 to {MAX_ADDON_PACKS}.",
                               code="invalid", status=400)
    subscription = Subscription.objects.select_related("plan").filter(workspace=workspace).first()
    if not _live(subscription):
        raise ApplicationError("Packs can be changed on a paid plan only: upgrade first.", code="no_subscription",
                               status=409)
    plan = subscription.plan
    current = subscription.addon_packs
    increase = addon_packs > current
    at = int((now or datetime.datetime.now(tz=datetime.UTC)).timestamp())
    remote = stripe_client.subscription_retrieve(subscription_id=subscription.stripe_subscription_id)
    items = _addon_item_change(remote=remote, plan=plan, addon_packs=addon_packs)
    charged_now = None
    if increase:
        charged_now = _charge(stripe_client.invoice_preview(
            customer_id=subscription.stripe_customer_id, subscription_id=subscription.stripe_subscription_id,
            items=items, proration_behavior="always_invoice", proration_date=at,
        ))
    next_charge = None
    if not subscription.cancel_at_period_end:
        next_charge = _charge(stripe_client.invoice_preview(
            customer_id=subscription.stripe_customer_id, subscription_id=subscription.stripe_subscription_id,
            items=items, proration_behavior="none",
        ))
    before = plan.monthly_activations + current * plan.addon_pack_size
    after = plan.monthly_activations + addon_packs * plan.addon_pack_size
    return PackChangePreview(
        current_packs=current, new_packs=addon_packs, increase=increase, charged_now=charged_now,
        next_charge=next_charge, takes_effect_at=None if increase else subscription.current_period_end,
        quota_now=after if increase else before, quota_later=after,
        monthly_price_cents=plan.price_cents + addon_packs * plan.addon_pack_price_cents,
    )


def cancellation_set(*, workspace: Workspace, user: User, cancel: bool) -> Subscription:
    """Cancel the paid plan at the end of the paid period (`cancel=True`), or take a scheduled
    cancellation back (`cancel=False`). Owners only. Stripe first; its answer is applied at once."""
    _manager_membership(workspace=workspace, user=user)
    subscription = Subscription.objects.select_related("plan").filter(workspace=workspace).first()
    if not _live(subscription):
        raise ApplicationError("There is no paid plan to cancel.", code="no_subscription", status=409)
    if subscription.cancel_at_period_end == cancel:
        return subscription
    updated = stripe_client.subscription_update(
        subscription_id=subscription.stripe_subscription_id, params={"cancel_at_period_end": cancel},
        idempotency_key=f"cancel-at-period-end:{subscription.pk}:{cancel}:{uuid.uuid4().hex}",
    )
    with transaction.atomic():
        why = subscription_object_apply(
            obj=updated, changed_by=user,
            reason="cancelled at the end of the paid period" if cancel else "scheduled cancellation taken back",
        )
    if why:
        logger.warning("cancellation change for workspace %s not applied: %s", workspace.pk, why)
    subscription.refresh_from_db()
    return subscription
