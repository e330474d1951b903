"""Quota writes: refreshing a month's quota (which resumes paused actions when it rises), bonus grants,
and applying an edited plan to this month at once."""

import datetime
import logging

from django.db import transaction

from accounts.models import User, Workspace
from billing import hooks
from billing.models import BonusGrant, Plan
from billing.months import month_of
from billing.quota import usage_quota_refresh
from inro.errors import ApplicationError

logger = logging.getLogger(__name__)


def quota_refresh(*, workspace: Workspace, month: datetime.date | None = None) -> int:
    """Recompute a month's quota; if it rose, resume paused actions after commit (rules 5, 8)."""
    month = month or month_of()
    with transaction.atomic():
        old, new = usage_quota_refresh(workspace_id=workspace.pk, month=month)
        if old is None or new > old:
            hooks.headroom_raised(workspace_id=workspace.pk, month=month)
    return new


MAX_SPENDING_FIGURE = 10_000_000
_UNCHANGED = object()


def _spending_figure(value, *, field: str, nullable: bool) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SPENDING_FIGURE:
        blank = " or empty for none" if nullable else ""
        raise ApplicationError(f"Enter a whole number from 0 to {MAX_SPENDING_FIGURE:,}{blank}.", code="invalid",
                               fields={field: [f"Enter a whole number from 0 to {MAX_SPENDING_FIGURE}{blank}."]})
    return value


def spending_controls_update(*, workspace: Workspace, monthly_cap=_UNCHANGED, conversation_reserve=_UNCHANGED,
                             ) -> Workspace:
    """Set the owners' spending controls (rule 16); callers check the role (owners and admins).

    `monthly_cap` (None: no cap) becomes part of this month's quota at once (billing.quota): lowering
    it pauses automations at the cap exactly as at the quota; raising or clearing it resumes paused
    actions after commit. `conversation_reserve` is the activations campaigns may not use; lowering
    it gives campaigns room, so paused actions are resumed too. Omitted arguments stay as they are.
    """
    changes = {}
    if monthly_cap is not _UNCHANGED:
        changes["monthly_cap"] = _spending_figure(monthly_cap, field="monthly_cap", nullable=True)
    if conversation_reserve is not _UNCHANGED:
        changes["activation_reserve"] = _spending_figure(conversation_reserve, field="conversation_reserve",
                                                         nullable=False)
    if workspace.deleted_at is not None:
        raise ApplicationError("This workspace is deleted.", code="workspace_deleted")
    month = month_of()
    with transaction.atomic():
        locked = Workspace.objects.select_for_update().get(pk=workspace.pk)
        old_reserve = locked.activation_reserve
        for name, value in changes.items():
            setattr(locked, name, value)
        if changes:
            locked.save(update_fields=list(changes))
        old, new = usage_quota_refresh(workspace_id=locked.pk, month=month)
        if old is None or new > old or locked.activation_reserve < old_reserve:
            hooks.headroom_raised(workspace_id=locked.pk, month=month)
    logger.info("spending controls workspace=%s cap=%s reserve=%s", locked.pk, locked.monthly_cap,
                locked.activation_reserve)
    return locked


def bonus_grant(
    *, workspace: Workspace, amount: int, reason: str, granted_by: User | None,
    month: datetime.date | None = None,
) -> BonusGrant:
    """Grant extra activations for a month (rule 12); paused actions resume at once."""
    reason = (reason or "").strip()
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise ApplicationError("A bonus must be a whole number of activations above zero.",
                               code="invalid_amount", fields={"amount": ["Enter a number above 0."]})
    if amount > 1_000_000:
        raise ApplicationError("A bonus above 1,000,000 activations is surely a typo.",
                               code="invalid_amount", fields={"amount": ["Enter at most 1000000."]})
    if not reason:
        raise ApplicationError("A bonus needs a reason.", code="reason_required",
                               fields={"reason": ["Say why this bonus is granted."]})
    if workspace.deleted_at is not None:
        raise ApplicationError("This workspace is deleted.", code="workspace_deleted")
    current = month_of()
    month = (month or current).replace(day=1)
    if month < current:
        raise ApplicationError("Bonuses can only be granted for the current or a future month.",
                               code="month_closed", fields={"month": ["Choose this month or later."]})
    with transaction.atomic():
        grant = BonusGrant.objects.create(
            workspace=workspace, month=month, amount=amount, reason=reason, granted_by=granted_by
        )
        if month == current:
            quota_refresh(workspace=workspace, month=month)
    logger.info("bonus granted workspace=%s month=%s amount=%s", workspace.pk, month, amount)
    return grant


def plan_apply_now(*, plan) -> int:
    """Recompute this month's quota of every workspace on `plan` after a staff edit ("apply now").

    Without it, an edited plan applies from the next month: this month's rows keep their quota.
    Quotas never drop below what is already activated (rule 8). Returns the workspaces touched.
    """
    workspaces = Workspace.objects.filter(deleted_at__isnull=True)
    if plan.code == Plan.FREE:
        workspaces = workspaces.filter(subscription__isnull=True) | workspaces.filter(subscription__plan=plan)
    else:
        workspaces = workspaces.filter(subscription__plan=plan)
    touched = 0
    for workspace in workspaces.distinct().iterator(chunk_size=500):
        quota_refresh(workspace=workspace)
        touched += 1
    return touched
