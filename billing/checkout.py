"""Plan purchases through Stripe: Checkout for Free -> Pro, add-on quantity changes, the portal (rule 8).

Order of work, so nothing is ever half-created: write the local CheckoutSession row (committed), call
Stripe outside any transaction with an idempotency key made from that row, then record the outcome
in a short transaction. A failed call marks the row failed and shows the customer a clear message.
"""

import datetime
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, User, Workspace
from accounts.selectors import membership_for_user
from billing import stripe_client
from billing.models import CheckoutSession, Plan, Subscription
from billing.stripe_client import BillingError
from billing.subscriptions import (
    ENDED_STATUSES,
    stripe_id,
    subscription_locked,
    subscription_object_apply,
    subscription_state_write,
)
from inro.errors import ApplicationError

logger = logging.getLogger(__name__)

MAX_ADDON_PACKS = 100
# A second click within this window reuses the open Checkout page instead of making another one.
OPEN_SESSION_REUSE = datetime.timedelta(minutes=30)
PAID_STATUSES = {"paid", "no_payment_required"}


@dataclass(frozen=True, slots=True)
class CheckoutStart:
    url: str
    kind: str  # "checkout": go to Stripe; "quantity": applied on the existing subscription; "unchanged"
    checkout: CheckoutSession | None


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def billing_page_url(workspace: Workspace) -> str:
    return _absolute(reverse("billing:overview", kwargs={"workspace_id": workspace.pk}))


def _manager_membership(*, workspace: Workspace, user: User) -> Membership:
    membership = membership_for_user(user=user, workspace_id=workspace.pk)  # 404 for outsiders
    if not membership.can_manage_billing:
        raise ApplicationError("Only the workspace's owners can change its plan or payment.",
                               code="forbidden", status=403)
    return membership


def _validated(plan_code: str, addon_packs) -> tuple[Plan, int]:
    if isinstance(addon_packs, bool) or not isinstance(addon_packs, int) or not 0 <= addon_packs <= MAX_ADDON_PACKS:
        raise ApplicationError(
            f"Add-on packs must be a whole number from 0 to {MAX_ADDON_PACKS}.", code="invalid_addon_packs",
            fields={"addon_packs": [f"Enter a number from 0 to {MAX_ADDON_PACKS}."]},
        )
    plan = Plan.objects.filter(code=str(plan_code or ""), is_public=True).first()
    if plan is None or plan.is_free or not plan_price_id(plan):
        raise ApplicationError("This plan cannot be bought online.", code="invalid_plan",
                               fields={"plan": ["Choose the Pro plan."]})
    if addon_packs and not plan.addon_pack_size:
        raise ApplicationError("This plan has no add-on packs.", code="invalid_addon_packs",
                               fields={"addon_packs": ["This plan has no add-on packs."]})
    return plan, addon_packs


def plan_price_id(plan: Plan) -> str:
    if plan.stripe_price_id:
        return plan.stripe_price_id
    return stripe_client.price_pro() if plan.code == Plan.PRO else ""


def addon_price_id(plan: Plan) -> str:
    return plan.stripe_addon_price_id or stripe_client.price_addon_pack()


def checkout_begin(*, workspace: Workspace, user: User, plan_code: str, addon_packs: int) -> CheckoutStart:
    """Start an upgrade; see `checkout_start`. Also says which path was taken, for the page's message."""
    _manager_membership(workspace=workspace, user=user)
    plan, addon_packs = _validated(plan_code, addon_packs)
    current = Subscription.objects.select_related("plan").filter(workspace=workspace).first()
    if (current is not None and current.stripe_subscription_id and not current.plan.is_free
            and current.status not in ENDED_STATUSES):
        if current.plan_id != plan.pk:
            raise ApplicationError("To switch plans, use “Manage payment and invoices”.", code="plan_switch")
        return _addon_quantity_change(workspace=workspace, user=user, subscription=current,
                                      plan=plan, addon_packs=addon_packs)
    return _checkout_session_start(workspace=workspace, user=user, plan=plan, addon_packs=addon_packs,
                                   customer_id=current.stripe_customer_id if current else "")


def checkout_start(*, workspace: Workspace, user: User, plan_code: str, addon_packs: int) -> str:
    """Upgrade Free -> Pro with `addon_packs` packs, or change the packs of a live Pro subscription.

    Returns the URL to send the customer to: Stripe Checkout for an upgrade, the billing page when
    the existing subscription's add-on quantity was changed (with proration). Raises ApplicationError
    (403 for members, 400 for bad input) or BillingError (502/503) when Stripe fails.
    """
    return checkout_begin(workspace=workspace, user=user, plan_code=plan_code, addon_packs=addon_packs).url


def _checkout_session_start(*, workspace: Workspace, user: User, plan: Plan, addon_packs: int,
                            customer_id: str) -> CheckoutStart:
    reusable = (
        CheckoutSession.objects.filter(
            workspace=workspace, kind=CheckoutSession.Kind.CHECKOUT, status=CheckoutSession.Status.OPEN,
            plan=plan, addon_packs=addon_packs, created_at__gte=timezone.now() - OPEN_SESSION_REUSE,
        ).exclude(url="").first()
    )
    if reusable is not None:
        return CheckoutStart(url=reusable.url, kind="checkout", checkout=reusable)
    row = CheckoutSession.objects.create(
        workspace=workspace, created_by=user, kind=CheckoutSession.Kind.CHECKOUT, plan=plan,
        addon_packs=addon_packs,
    )
    line_items = [{"price": plan_price_id(plan), "quantity": 1}]
    if addon_packs:
        line_items.append({"price": addon_price_id(plan), "quantity": addon_packs})
    metadata = {"workspace_id": str(workspace.pk), "checkout_id": str(row.pk), "addon_packs": str(addon_packs)}
    success = reverse("billing:checkout_success", kwargs={"workspace_id": workspace.pk})
    cancel = reverse("billing:checkout_cancel", kwargs={"workspace_id": workspace.pk})
    params = {
        "mode": "subscription",
        "line_items": line_items,
        "client_reference_id": str(workspace.pk),
        "metadata": metadata,
        "subscription_data": {"metadata": {"workspace_id": str(workspace.pk), "checkout_id": str(row.pk)}},
        # Stripe fills in {CHECKOUT_SESSION_ID}; it must reach Stripe unescaped.
        "success_url": _absolute(success) + "?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": _absolute(cancel),
    }
    if customer_id:
        params["customer"] = customer_id
    else:
        params["customer_email"] = user.email
    try:
        session = stripe_client.checkout_session_create(params=params, idempotency_key=row.idempotency_key)
    except BillingError as error:
        CheckoutSession.objects.filter(pk=row.pk).update(status=CheckoutSession.Status.FAILED, error=error.message)
        raise
    url = str(session.get("url") or "")
    CheckoutSession.objects.filter(pk=row.pk).update(
        status=CheckoutSession.Status.OPEN, stripe_session_id=str(session.get("id") or ""), url=url
    )
    row.refresh_from_db()
    logger.info("checkout %s opened for workspace %s: %s", row.pk, workspace.pk, row.stripe_session_id)
    return CheckoutStart(url=url, kind="checkout", checkout=row)


def _addon_quantity_change(*, workspace: Workspace, user: User, subscription: Subscription, plan: Plan,
                           addon_packs: int) -> CheckoutStart:
    if addon_packs == subscription.addon_packs:
        return CheckoutStart(url=billing_page_url(workspace), kind="unchanged", checkout=None)
    row = CheckoutSession.objects.create(
        workspace=workspace, created_by=user, kind=CheckoutSession.Kind.QUANTITY, plan=plan,
        addon_packs=addon_packs,
    )
    try:
        remote = stripe_client.subscription_retrieve(subscription_id=subscription.stripe_subscription_id)
        addon_price = addon_price_id(plan)
        addon_item = next(
            (item for item in (remote.get("items") or {}).get("data") or []
             if stripe_id(item.get("price")) == addon_price),
            None,
        )
        if addon_item is None:
            items = [{"price": addon_price, "quantity": addon_packs}]
        elif addon_packs == 0:
            items = [{"id": addon_item["id"], "deleted": True}]
        else:
            items = [{"id": addon_item["id"], "quantity": addon_packs}]
        # More packs are charged now, prorated; fewer take effect at the end of the paid period (rule 8).
        increase = addon_packs > subscription.addon_packs
        updated = stripe_client.subscription_update(
            subscription_id=subscription.stripe_subscription_id,
            params={"items": items, "proration_behavior": "always_invoice" if increase else "none"},
            idempotency_key=row.idempotency_key,
        )
    except BillingError as error:
        CheckoutSession.objects.filter(pk=row.pk).update(status=CheckoutSession.Status.FAILED, error=error.message)
        raise
    with transaction.atomic():
        CheckoutSession.objects.filter(pk=row.pk).update(
            status=CheckoutSession.Status.COMPLETED, completed_at=timezone.now()
        )
        # Stripe's answer is the new state: apply it now (the webhook that follows changes nothing).
        subscription_object_apply(obj=updated, changed_by=user, reason="add-on packs changed")
    return CheckoutStart(url=billing_page_url(workspace), kind="quantity", checkout=row)


def checkout_session_apply(*, session: dict, source_event_id: str = "") -> str:
    """Apply a completed, paid Checkout Session once. Returns "" when applied, else why not.

    The same code path for `checkout.session.completed` and the return page's own check; the
    conditional status update makes a second application a no-op.
    """
    if session.get("mode") != "subscription":
        return "not a subscription checkout"
    local = CheckoutSession.objects.filter(stripe_session_id=str(session.get("id") or "")).first()
    if local is None:
        return "checkout session not created by this installation"
    if session.get("status") != "complete" or session.get("payment_status") not in PAID_STATUSES:
        return "checkout session not paid yet"
    subscription_id = stripe_id(session.get("subscription"))
    customer_id = stripe_id(session.get("customer"))
    with transaction.atomic():
        row = subscription_locked(workspace_id=local.workspace_id)
        claimed = (
            CheckoutSession.objects.filter(pk=local.pk)
            .exclude(status=CheckoutSession.Status.COMPLETED)
            .update(status=CheckoutSession.Status.COMPLETED, completed_at=timezone.now(), error="")
        )
        if not claimed:
            return "already applied"
        same_subscription = row.stripe_subscription_id == subscription_id
        if same_subscription and row.stripe_state_at is not None and not row.plan.is_free:
            return ""  # the subscription's own events came first and are authoritative
        if not same_subscription and row.stripe_subscription_id and (
            not row.plan.is_free and row.status not in ENDED_STATUSES
        ):
            logger.warning("checkout %s paid while workspace %s already has live subscription %s",
                           local.pk, local.workspace_id, row.stripe_subscription_id)
            return "the workspace already has another live subscription"
        if not same_subscription:
            row.stripe_state_at, row.stripe_state_rank = None, 0  # a new subscription: a new timeline
        subscription_state_write(
            subscription=row, plan=local.plan, addon_packs=local.addon_packs,
            status=Subscription.Status.ACTIVE, source_event_id=source_event_id,
            changed_by=None if source_event_id else local.created_by,
            reason="checkout completed" if source_event_id else "checkout return page",
            stripe_subscription_id=subscription_id, stripe_customer_id=customer_id or row.stripe_customer_id,
            cancel_at_period_end=False,
        )
    return ""


def checkout_session_verify(*, workspace: Workspace, session_id: str) -> CheckoutSession:
    """The return page: ask Stripe about the session and apply it if it is paid (idempotent).

    404 for a session id that is not this workspace's. A Stripe failure leaves it "processing": the
    webhook will apply it.
    """
    local = CheckoutSession.objects.filter(workspace=workspace, stripe_session_id=session_id or "-").first()
    if local is None:
        raise ApplicationError("No such checkout.", code="not_found", status=404)
    if local.status == CheckoutSession.Status.COMPLETED:
        return local
    try:
        session = stripe_client.checkout_session_retrieve(session_id=local.stripe_session_id)
    except BillingError:
        return local
    checkout_session_apply(session=session)
    local.refresh_from_db()
    return local


def portal_start(*, workspace: Workspace, user: User) -> str:
    """A Stripe billing portal session (payment methods, invoices, cancellation); returns its URL."""
    _manager_membership(workspace=workspace, user=user)
    subscription = Subscription.objects.filter(workspace=workspace).first()
    if subscription is None or not subscription.stripe_customer_id:
        # 409: the request is fine, the workspace is not in a state to have a portal yet.
        raise ApplicationError("There is no payment account yet: upgrade to Pro first.", code="no_billing_account",
                               status=409)
    session = stripe_client.billing_portal_session_create(
        customer_id=subscription.stripe_customer_id, return_url=billing_page_url(workspace)
    )
    return str(session.get("url") or "")
