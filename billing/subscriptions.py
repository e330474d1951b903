"""Applying what Stripe says about a workspace's subscription to the local plan and quota (rules 7-9).

One code path for every source: Checkout completion (webhook or the return page), subscription
events, the add-on quantity change's response. All writes happen inside the caller's transaction with
the workspace's Subscription row locked, and never around a Stripe call.
"""

import datetime
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User, Workspace
from billing import stripe_client
from billing.models import PaymentFailure, Plan, PlanChange, Subscription
from billing.months import month_of
from billing.quota import base_quota, free_plan, usage_row_open
from billing.services import quota_refresh
from inro.errors import ApplicationError

logger = logging.getLogger(__name__)

# Event types in the order a subscription lives through them: a same-second event of a lower rank
# than the one applied is older (out-of-order delivery) and must not move the subscription back.
EVENT_RANKS = {
    "customer.subscription.created": 1,
    "customer.subscription.updated": 2,
    "customer.subscription.deleted": 3,
}
# Stripe statuses that keep the paid plan: past_due keeps it through Stripe's retries (rule 9).
PLAN_KEEPING_STATUSES = {"active", "trialing", "past_due"}
ENDED_STATUSES = {"canceled", "unpaid", "incomplete_expired"}


class UnknownPriceError(ApplicationError):
    """A live subscription with no price we know: a configuration problem staff must fix, then replay."""

    code = "unknown_price"
    status = 500


@dataclass(frozen=True, slots=True)
class StripeSubscriptionState:
    subscription_id: str
    customer_id: str
    status: str
    plan: Plan | None  # None: keep the current plan (e.g. `incomplete`, first payment not settled)
    addon_packs: int
    period_start: datetime.datetime | None
    period_end: datetime.datetime | None
    cancel_at_period_end: bool
    ended_at: datetime.datetime | None = None


def stripe_id(value) -> str:
    """An id from a field Stripe returns either as an id or as an expanded object."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def _timestamp(value) -> datetime.datetime | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
    return None


def plan_for_price(price_id: str) -> Plan | None:
    if not price_id:
        return None
    plan = Plan.objects.filter(stripe_price_id=price_id).first()
    if plan is None and price_id == settings.STRIPE_PRICE_PRO:
        plan = Plan.objects.filter(code=Plan.PRO).first()
    return plan


def is_addon_price(price_id: str) -> bool:
    if not price_id:
        return False
    return price_id == settings.STRIPE_PRICE_ADDON_PACK or Plan.objects.filter(stripe_addon_price_id=price_id).exists()


def stripe_subscription_state(obj: dict, *, deleted: bool = False) -> StripeSubscriptionState:
    """Read a Stripe subscription object: plan and packs from its items, period from items or itself."""
    status = str(obj.get("status") or "")
    items = ((obj.get("items") or {}).get("data")) or []
    plan = None
    packs = 0
    period_start = period_end = None
    for item in items:
        price_id = stripe_id(item.get("price"))
        item_plan = plan_for_price(price_id)
        if item_plan is not None:
            plan = item_plan
        elif is_addon_price(price_id):
            packs += int(item.get("quantity") or 0)
        # Current API versions keep the period on items; older ones on the subscription.
        period_start = period_start or _timestamp(item.get("current_period_start"))
        period_end = period_end or _timestamp(item.get("current_period_end"))
    period_start = period_start or _timestamp(obj.get("current_period_start"))
    period_end = period_end or _timestamp(obj.get("current_period_end"))
    if deleted or status in ENDED_STATUSES:
        plan, packs = free_plan(), 0
    elif status in PLAN_KEEPING_STATUSES:
        if plan is None:
            raise UnknownPriceError(
                f"Subscription {obj.get('id')} has no known plan price "
                f"({', '.join(stripe_id(i.get('price')) for i in items) or 'no items'})."
            )
    else:
        plan = None  # incomplete / paused: nothing paid yet, the plan does not change
    return StripeSubscriptionState(
        subscription_id=str(obj.get("id") or ""),
        customer_id=stripe_id(obj.get("customer")),
        status=status,
        plan=plan,
        addon_packs=packs,
        period_start=period_start,
        period_end=period_end,
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")) or obj.get("cancel_at") is not None,
        ended_at=_timestamp(obj.get("ended_at")),
    )


def subscription_locked(*, workspace_id: int) -> Subscription:
    """The workspace's Subscription row, created on Free if absent, locked until the transaction ends."""
    if not Subscription.objects.filter(workspace_id=workspace_id).exists():
        try:
            with transaction.atomic():
                Subscription.objects.create(workspace_id=workspace_id, plan=free_plan())
        except IntegrityError:
            pass  # someone created it first; theirs is locked below
    return Subscription.objects.select_for_update().select_related("plan").get(workspace_id=workspace_id)


def subscription_state_write(
    *, subscription: Subscription, plan: Plan, addon_packs: int, status: str,
    source_event_id: str = "", changed_by: User | None = None, reason: str = "", **fields,
) -> bool:
    """Write a new plan state on a locked row; history and quota follow. Returns whether plan/packs moved.

    The plan and packs given are those in effect from now on: callers hold a decrease back until the
    end of the paid period (`subscription_object_apply`, `scheduled_changes_apply_due`). An upgrade or
    more packs raise this month's quota at once and resume paused actions (rule 8, via quota_refresh's
    hook); a decrease lowers it at once, never below what is activated (the floor, billing.quota).
    """
    # Open this month's usage row at the old quota first, so the rise is seen as a rise (and fires the hook).
    usage_row_open(workspace_id=subscription.workspace_id, month=month_of())
    old_plan, old_packs = subscription.plan, subscription.addon_packs
    old_base = base_quota(subscription=subscription)
    subscription.plan = plan
    subscription.addon_packs = addon_packs
    if status in Subscription.Status.values:
        subscription.status = status
    for name, value in fields.items():
        setattr(subscription, name, value)
    subscription.save()
    changed = (old_plan.pk, old_packs) != (plan.pk, addon_packs)
    if not changed:
        return False
    PlanChange.objects.create(
        workspace_id=subscription.workspace_id, from_plan=old_plan, from_addon_packs=old_packs,
        to_plan=plan, to_addon_packs=addon_packs, source_event_id=source_event_id,
        changed_by=changed_by, reason=reason[:255],
    )
    new_base = base_quota(subscription=subscription)
    if new_base != old_base or plan.is_free != old_plan.is_free:
        quota_refresh(workspace=subscription.workspace)
    logger.info("plan change workspace=%s %s+%s -> %s+%s (%s)", subscription.workspace_id, old_plan.code,
                old_packs, plan.code, addon_packs, source_event_id or reason)
    return True


def _workspace_id_for(obj: dict) -> int | None:
    """Which workspace a Stripe subscription belongs to: our link, its metadata, or its customer."""
    local = Subscription.objects.filter(stripe_subscription_id=str(obj.get("id") or "")).first()
    if local is not None:
        return local.workspace_id
    raw = str((obj.get("metadata") or {}).get("workspace_id") or "")
    if raw.isdigit() and Workspace.objects.filter(pk=int(raw), deleted_at__isnull=True).exists():
        return int(raw)
    customer = stripe_id(obj.get("customer"))
    if customer:
        local = Subscription.objects.filter(stripe_customer_id=customer).first()
        if local is not None:
            return local.workspace_id
    return None


def subscription_object_apply(
    *, obj: dict, event_type: str = "customer.subscription.updated", event_created: int | None = None,
    source_event_id: str = "", changed_by: User | None = None, reason: str = "",
    now: datetime.datetime | None = None,
) -> str:
    """Apply a Stripe subscription object. Returns "" when applied, else why it was ignored.

    With `event_created` (webhooks) the event is compared with the last one applied to this
    subscription and ignored if older; without it (a response Stripe just sent us) it applies as is
    and leaves the ordering mark alone.
    """
    workspace_id = _workspace_id_for(obj)
    if workspace_id is None:
        return "subscription not linked to any workspace"
    deleted = event_type == "customer.subscription.deleted"
    state = stripe_subscription_state(obj, deleted=deleted)
    row = subscription_locked(workspace_id=workspace_id)
    if row.stripe_subscription_id != state.subscription_id:
        # Only the subscription the workspace runs on can end it (not, say, an abandoned checkout's).
        if deleted or state.status in ENDED_STATUSES:
            return "an ended subscription that is not the workspace's current one"
        if row.stripe_subscription_id and not row.plan.is_free and row.status not in ENDED_STATUSES:
            logger.warning("workspace %s has a second live subscription %s (current %s)", workspace_id,
                           state.subscription_id, row.stripe_subscription_id)
            return "the workspace already has another live subscription"
        row.stripe_state_at, row.stripe_state_rank = None, 0  # a new subscription: a new timeline
    rank = EVENT_RANKS.get(event_type, 2)
    if event_created is not None:
        if row.stripe_state_at is not None and row.stripe_subscription_id == state.subscription_id and (
            (event_created, rank) < (row.stripe_state_at, row.stripe_state_rank)
        ):
            return "older than the subscription state already applied"
        row.stripe_state_at, row.stripe_state_rank = event_created, rank
    plan = state.plan or row.plan
    packs = state.addon_packs if state.plan is not None else row.addon_packs
    paid_until = _paid_until(row=row, state=state, plan=plan, addon_packs=packs, deleted=deleted,
                             event_created=event_created, now=now or timezone.now())
    if paid_until is not None:
        # The customer paid for what is in effect until `paid_until`: keep it, and the change waits.
        schedule = {"scheduled_plan": plan, "scheduled_addon_packs": packs, "scheduled_for": paid_until}
        plan, packs = row.plan, row.addon_packs
    else:
        schedule = {"scheduled_plan": None, "scheduled_addon_packs": None, "scheduled_for": None}
    subscription_state_write(
        subscription=row,
        plan=plan,
        addon_packs=packs,
        status=state.status,
        **schedule,
        source_event_id=source_event_id,
        changed_by=changed_by,
        reason=reason or event_type,
        stripe_subscription_id=state.subscription_id,
        stripe_customer_id=state.customer_id or row.stripe_customer_id,
        current_period_start=state.period_start,
        current_period_end=state.period_end,
        cancel_at_period_end=False if state.plan is not None and state.plan.is_free else state.cancel_at_period_end,
    )
    return ""


def _paid_until(*, row: Subscription, state: StripeSubscriptionState, plan: Plan, addon_packs: int, deleted: bool,
                event_created: int | None, now: datetime.datetime) -> datetime.datetime | None:
    """When Stripe's new state is a decrease (downgrade, cancellation, fewer packs) that must wait for
    the end of the period already paid for, that end; None when it applies now (docs/product.md, "The
    paid period"; rule 8).

    The period paid for at the current level is the items' `current_period_end` Stripe gives (API
    2025+ keeps it on the subscription items), or the one a decrease seen earlier is already waiting
    for. A renewal event (its period starts at or after that end) applies the decrease. A subscription
    ended for non-payment (rule 9) ends now: that period was never paid.
    """
    if plan.pk == row.plan_id and addon_packs == row.addon_packs:
        return None
    old_base = base_quota(subscription=row)
    new_base = plan.monthly_activations + addon_packs * plan.addon_pack_size
    if new_base >= old_base and not (plan.is_free and not row.plan.is_free):
        return None  # an upgrade, or a change that takes nothing away: at once
    ended = deleted or state.status in ENDED_STATUSES
    if ended and (state.status in {"unpaid", "incomplete_expired"} or row.status == Subscription.Status.PAST_DUE
                  or PaymentFailure.objects.filter(workspace_id=row.workspace_id, resolved_at__isnull=True).exists()):
        return None
    if row.scheduled_for is not None:
        paid_until = row.scheduled_for
    elif (row.current_period_end is not None and state.period_start is not None
          and state.period_start >= row.current_period_end):
        paid_until = row.current_period_end  # Stripe already renewed at the lower level
    else:
        paid_until = state.period_end or row.current_period_end
    if paid_until is None:
        return None
    if ended and state.ended_at is not None:
        moment = state.ended_at  # Stripe ends a subscription cancelled at period end exactly then
    elif event_created is not None:
        moment = datetime.datetime.fromtimestamp(event_created, tz=datetime.UTC)
    else:
        moment = now
    # An event handled late (a retry, a replay) does not hold back a change whose period is already over.
    return paid_until if paid_until > max(moment, now) else None


def scheduled_changes_apply_due(*, now: datetime.datetime) -> list[int]:
    """Every minute: apply the decreases whose paid period is over (when Stripe's renewal event has not
    already done it). Idempotent; returns the workspaces changed."""
    due = list(
        Subscription.objects.filter(scheduled_for__isnull=False, scheduled_for__lte=now)
        .values_list("workspace_id", flat=True)
    )
    changed = []
    for workspace_id in due:
        with transaction.atomic():
            row = subscription_locked(workspace_id=workspace_id)
            if row.scheduled_for is None or row.scheduled_for > now or row.scheduled_plan_id is None:
                continue
            subscription_state_write(
                subscription=row, plan=row.scheduled_plan, addon_packs=row.scheduled_addon_packs or 0,
                status=row.status, reason="paid period ended", scheduled_plan=None, scheduled_addon_packs=None,
                scheduled_for=None,
            )
        changed.append(workspace_id)
    return changed


# Stripe ends a cancelled subscription at the period end and sends `customer.subscription.deleted`;
# past this grace without that event, the safety net below asks Stripe (or, if unreachable, ends it).
LAPSE_GRACE = datetime.timedelta(hours=1)


def subscriptions_lapse_as_needed(*, now: datetime.datetime) -> list[int]:
    """Rule 9 safety net: subscriptions set to end whose paid period is over return to Free.

    Each is re-read from Stripe first, outside any transaction, and Stripe's answer applied; when
    Stripe cannot be reached the cancellation Stripe already confirmed is applied locally. Returns
    the workspace ids that went back to Free. Idempotent: run it as often as you like.
    """
    due = list(
        Subscription.objects.filter(cancel_at_period_end=True, current_period_end__lt=now - LAPSE_GRACE)
        .exclude(plan__code=Plan.FREE)
        .values_list("workspace_id", "stripe_subscription_id")
    )
    lapsed = []
    for workspace_id, subscription_id in due:
        remote = None
        if subscription_id:
            try:
                remote = stripe_client.subscription_retrieve(subscription_id=subscription_id)
            except stripe_client.BillingError:
                remote = None
        with transaction.atomic():
            if remote is not None:
                ended = remote.get("status") in ENDED_STATUSES
                event_type = "customer.subscription.deleted" if ended else "customer.subscription.updated"
                subscription_object_apply(obj=remote, event_type=event_type, reason="paid period ended", now=now)
            else:
                row = subscription_locked(workspace_id=workspace_id)
                if row.plan.is_free or not row.cancel_at_period_end or row.current_period_end >= now - LAPSE_GRACE:
                    continue
                subscription_state_write(subscription=row, plan=free_plan(), addon_packs=0,
                                         status=Subscription.Status.CANCELED, reason="paid period ended",
                                         cancel_at_period_end=False, scheduled_plan=None,
                                         scheduled_addon_packs=None, scheduled_for=None)
        if Subscription.objects.filter(workspace_id=workspace_id, plan__code=Plan.FREE).exists():
            lapsed.append(workspace_id)
    return lapsed
