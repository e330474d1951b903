"""What a workspace may activate in a month, and the lazily opened MonthlyUsage row that holds it.

The month's quota, the figure the gate reads (`MonthlyUsage.quota`), is worked out by `quota_compute`:

    plan_quota = max(plan + packs, floor) + bonuses      (rules 7, 8, 12)
    quota      = min(plan_quota, cap), never below what is already activated   (rule 16)

- plan + packs: the plan's monthly activations plus add-on packs x pack size, as in effect now (a
  decrease waits for the end of the paid period, billing.subscriptions);
- floor: when plan + packs (plus the bonuses of the moment) fell below what the month had already
  activated, the quota was kept at that figure (`kept_at`); the floor stands in for plan + packs as
  `kept_at - kept_at_bonus`, so bonuses granted afterwards add on top of it: a bonus of N granted when
  R remain always leaves R + N remaining;
- cap: the owners' monthly cap (Workspace.monthly_cap), shown separately; raising or clearing it
  gives back what it held.

The row is opened on first use, so activation never waits on the rollover job (rule 11).
"""

import datetime

from django.db import IntegrityError, transaction
from django.db.models import Sum

from accounts.models import Workspace
from billing.models import ActivationRecord, BonusGrant, MonthlyUsage, Plan, Subscription


def free_plan() -> Plan:
    return Plan.objects.get(code=Plan.FREE)


def base_quota(*, subscription: Subscription | None, free: Plan | None = None) -> int:
    """Plan activations plus add-on packs, before bonuses."""
    if subscription is None:
        return (free or free_plan()).monthly_activations
    plan = subscription.plan
    return plan.monthly_activations + subscription.addon_packs * plan.addon_pack_size


def bonus_total(*, workspace_id: int, month: datetime.date) -> int:
    total = BonusGrant.objects.filter(workspace_id=workspace_id, month=month).aggregate(
        total=Sum("amount")
    )["total"]
    return total or 0


def quota_for(*, workspace_id: int, month: datetime.date) -> int:
    subscription = (
        Subscription.objects.select_related("plan").filter(workspace_id=workspace_id).first()
    )
    return base_quota(subscription=subscription) + bonus_total(workspace_id=workspace_id, month=month)


def quota_compute(
    *, base: int, bonus: int, activated: int, kept_at: int = 0, kept_at_bonus: int = 0, cap: int | None = None,
    reserved: int = 0,
) -> tuple[int, int, int]:
    """The month's quota from its parts (see the module note); returns (quota, kept_at, kept_at_bonus).

    A new floor is recorded only when plan + packs + bonuses would fall below `activated` (confirmed
    activations): the floor then keeps the quota at exactly what is activated, and never moves again
    unless the plan falls below it once more. `reserved` (reservations in flight, rule 13) is held
    too, as the usage row's CHECK requires (activated + reserved <= quota), but is no floor: once
    those reservations are settled, the next refresh leaves only what they confirmed.
    """
    floor = kept_at - kept_at_bonus if kept_at else 0
    plan_quota = max(base, floor) + bonus
    if plan_quota < activated:
        kept_at, kept_at_bonus = activated, bonus
        plan_quota = activated
    quota = plan_quota if cap is None else max(min(plan_quota, cap), activated)
    return max(quota, activated + reserved), kept_at, kept_at_bonus


def workspace_cap(*, workspace_id: int) -> int | None:
    return Workspace.objects.filter(pk=workspace_id).values_list("monthly_cap", flat=True).first()


def current_base(*, workspace_id: int) -> int:
    subscription = (
        Subscription.objects.select_related("plan").filter(workspace_id=workspace_id).first()
    )
    return base_quota(subscription=subscription)


def usage_row_open(*, workspace_id: int, month: datetime.date) -> MonthlyUsage:
    """Get the month's usage row, creating it with the current quota if it does not exist yet."""
    row = MonthlyUsage.objects.filter(workspace_id=workspace_id, month=month).first()
    if row is not None:
        return row
    # Normally 0; counting keeps a row opened late (catch-up) equal to its records (rule 2).
    activated = ActivationRecord.objects.filter(workspace_id=workspace_id, month=month).count()
    quota, kept_at, kept_at_bonus = quota_compute(
        base=current_base(workspace_id=workspace_id), bonus=bonus_total(workspace_id=workspace_id, month=month),
        activated=activated, cap=workspace_cap(workspace_id=workspace_id),
    )
    try:
        with transaction.atomic():
            # Records already there: the per-day/kind breakdown is rebuilt from them on first read.
            unknown = ({"activated_by_day": None, "activated_by_kind": None, "activated_by_ref": None}
                       if activated else {})
            return MonthlyUsage.objects.create(
                workspace_id=workspace_id, month=month, quota=quota, activated=activated,
                kept_at=kept_at, kept_at_bonus=kept_at_bonus, **unknown
            )
    except IntegrityError:
        # Another process opened it first: theirs is as good as ours.
        return MonthlyUsage.objects.get(workspace_id=workspace_id, month=month)


def usage_quota_refresh(*, workspace_id: int, month: datetime.date) -> tuple[int | None, int]:
    """Recompute a month's quota after a plan, pack, bonus or cap change; returns (old, new).

    `old` is None when the month's row did not exist yet (it opens with the new quota). Never below
    what is already activated (rule 8): the floor is recorded then (see quota_compute). Call inside
    the transaction that changed the inputs; the caller decides whether a rise should resume paused
    actions. The row lock keeps the gate from moving `activated` while this reads it.
    """
    row = MonthlyUsage.objects.select_for_update().filter(workspace_id=workspace_id, month=month).first()
    if row is None:
        return None, usage_row_open(workspace_id=workspace_id, month=month).quota
    old = row.quota
    quota, kept_at, kept_at_bonus = quota_compute(
        base=current_base(workspace_id=workspace_id), bonus=bonus_total(workspace_id=workspace_id, month=month),
        activated=row.activated, kept_at=row.kept_at, kept_at_bonus=row.kept_at_bonus,
        cap=workspace_cap(workspace_id=workspace_id), reserved=row.reserved,
    )
    changes = {"quota": quota, "kept_at": kept_at, "kept_at_bonus": kept_at_bonus}
    if row.activated + row.reserved < quota and row.limit_reached_at is not None:
        changes["limit_reached_at"] = None
    MonthlyUsage.objects.filter(pk=row.pk).update(**changes)
    return old, quota
