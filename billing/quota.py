"""What a workspace may activate in a month, and the lazily opened MonthlyUsage row that holds it.

Quota = plan's monthly activations + add-on packs x pack size + bonus grants for the month (rules 7,
12). The row is opened on first use, so activation never waits on the rollover job (rule 11).
"""

import datetime

from django.db import IntegrityError, transaction
from django.db.models import F, Sum, Value
from django.db.models.functions import Greatest

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


def usage_row_open(*, workspace_id: int, month: datetime.date) -> MonthlyUsage:
    """Get the month's usage row, creating it with the current quota if it does not exist yet."""
    row = MonthlyUsage.objects.filter(workspace_id=workspace_id, month=month).first()
    if row is not None:
        return row
    # Normally 0; counting keeps a row opened late (catch-up) equal to its records (rule 2).
    activated = ActivationRecord.objects.filter(workspace_id=workspace_id, month=month).count()
    quota = max(quota_for(workspace_id=workspace_id, month=month), activated)
    try:
        with transaction.atomic():
            # Records already there: the per-day/kind breakdown is rebuilt from them on first read.
            unknown = {"activated_by_day": None, "activated_by_kind": None} if activated else {}
            return MonthlyUsage.objects.create(
                workspace_id=workspace_id, month=month, quota=quota, activated=activated, **unknown
            )
    except IntegrityError:
        # Another process opened it first: theirs is as good as ours.
        return MonthlyUsage.objects.get(workspace_id=workspace_id, month=month)


def usage_quota_refresh(*, workspace_id: int, month: datetime.date) -> tuple[int | None, int]:
    """Recompute a month's quota after a plan, pack or bonus change; returns (old, new).

    `old` is None when the month's row did not exist yet (it opens with the new quota). Never below
    what is already activated (rule 8). Call inside the transaction that changed the inputs; the
    caller decides whether a rise should resume paused actions.
    """
    row = MonthlyUsage.objects.select_for_update().filter(workspace_id=workspace_id, month=month).first()
    if row is None:
        return None, usage_row_open(workspace_id=workspace_id, month=month).quota
    old = row.quota
    new_quota = quota_for(workspace_id=workspace_id, month=month)
    # Never below what is activated or reserved in flight (the CHECK: activated + reserved <= quota).
    MonthlyUsage.objects.filter(pk=row.pk).update(quota=Greatest(Value(new_quota), F("activated") + F("reserved")))
    row.refresh_from_db(fields=["quota", "activated", "reserved"])
    if row.activated + row.reserved < row.quota and row.limit_reached_at is not None:
        MonthlyUsage.objects.filter(pk=row.pk).update(limit_reached_at=None)
    return old, row.quota
