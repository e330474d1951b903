"""Billing writes: bonus grants, quota refreshes and the monthly rollover."""

import datetime
import logging

from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from accounts.models import User, Workspace
from billing import hooks
from billing.models import ActivationRecord, BonusGrant, MonthlyUsage, MonthRollover, Subscription
from billing.months import month_of, months_between, next_month
from billing.quota import base_quota, free_plan, quota_compute, usage_quota_refresh
from inro.errors import ApplicationError

logger = logging.getLogger(__name__)

ROLLOVER_BATCH_SIZE = 1000


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


def _open_month_for_all(month: datetime.date, *, closed_at: datetime.datetime | None) -> int:
    """Open `month`'s usage rows for every live workspace, in batches; returns how many were new."""
    free = free_plan()
    opened = 0
    last_id = 0
    while True:
        workspace_ids = list(
            Workspace.objects.filter(deleted_at__isnull=True, pk__gt=last_id)
            .exclude(monthly_usage__month=month)
            .order_by("pk")
            .values_list("pk", flat=True)[:ROLLOVER_BATCH_SIZE]
        )
        if not workspace_ids:
            return opened
        last_id = workspace_ids[-1]
        subscriptions = {
            s.workspace_id: s
            for s in Subscription.objects.select_related("plan").filter(workspace_id__in=workspace_ids)
        }
        bonuses = dict(
            BonusGrant.objects.filter(workspace_id__in=workspace_ids, month=month)
            .values("workspace_id")
            .annotate(total=Sum("amount"))
            .values_list("workspace_id", "total")
        )
        caps = dict(
            Workspace.objects.filter(pk__in=workspace_ids, monthly_cap__isnull=False).values_list("pk", "monthly_cap")
        )
        recorded: dict[int, int] = {}
        if closed_at is not None:
            recorded = dict(
                ActivationRecord.objects.filter(workspace_id__in=workspace_ids, month=month)
                .values_list("workspace_id")
                .annotate(n=Count("id"))
                .values_list("workspace_id", "n")
            )
        rows = []
        for ws in workspace_ids:
            activated = recorded.get(ws, 0)
            quota, kept_at, kept_at_bonus = quota_compute(
                base=base_quota(subscription=subscriptions.get(ws), free=free), bonus=bonuses.get(ws, 0),
                activated=activated, cap=caps.get(ws),
            )
            unknown = {"activated_by_day": None, "activated_by_kind": None} if activated else {}
            rows.append(MonthlyUsage(
                workspace_id=ws, month=month, quota=quota, activated=activated, kept_at=kept_at,
                kept_at_bonus=kept_at_bonus, closed_at=closed_at, **unknown,
            ))
        created = MonthlyUsage.objects.bulk_create(rows, ignore_conflicts=True)
        opened += len(created)


def month_roll_over_as_needed(*, now: datetime.datetime) -> list[datetime.date]:
    """Close past months and open the current one for every workspace (rule 11).

    Idempotent and catching up: each month from the last completed rollover to `now`'s month is
    handled once. Activation never depends on this having run (rows open lazily); this makes the
    figures complete, resets what is per month, and resumes paused actions. Returns the months opened.
    """
    current = month_of(now)
    last_done = (
        MonthRollover.objects.filter(completed_at__isnull=False)
        .order_by("-month")
        .values_list("month", flat=True)
        .first()
    )
    first = next_month(last_done) if last_done else current
    pending = months_between(first, current) if first <= current else []
    # Close every earlier month still open (figures frozen; the rows keep matching their records).
    MonthlyUsage.objects.filter(month__lt=current, closed_at__isnull=True).update(closed_at=now)
    done = []
    for month in pending:
        # Two beats by accident (a misconfigured deploy): the month's row is claimed under a row lock; a second run
        # waits for the first to commit, finds the month completed and leaves it (hooks fire once).
        with transaction.atomic():
            MonthRollover.objects.get_or_create(month=month)
            rollover = MonthRollover.objects.select_for_update().get(month=month)
            if rollover.completed_at is not None:
                continue
            opened = _open_month_for_all(month, closed_at=now if month < current else None)
            MonthRollover.objects.filter(pk=rollover.pk).update(
                completed_at=timezone.now(), workspaces_opened=rollover.workspaces_opened + opened
            )
        done.append(month)
        logger.info("month rollover %s: %s usage rows opened", month, opened)
    if done:
        hooks.month_opened(month=current)
    return done


def plan_apply_now(*, plan) -> int:
    """Recompute this month's quota of every workspace on `plan` after a staff edit ("apply now").

    Without it, an edited plan applies from the next month: this month's rows keep their quota.
    Quotas never drop below what is already activated (rule 8). Returns the workspaces touched.
    """
    from billing.models import Plan

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


# --- Stripe billing (issue 4). Implemented in billing/checkout.py and billing/webhooks.py; exported
# here so interfaces (web pages, API, admin) call services only.
from billing.checkout import checkout_begin, checkout_session_verify, checkout_start, portal_start  # noqa: E402
from billing.webhooks import stripe_event_receive, stripe_event_replay  # noqa: E402

__all__ = [
    "bonus_grant", "spending_controls_update",
    "checkout_begin", "checkout_session_verify", "checkout_start", "month_roll_over_as_needed",
    "payment_failure_email", "portal_start", "quota_refresh", "stripe_event_receive", "stripe_event_replay",
]


def payment_failure_email(*, failure_id: int) -> bool:
    """Tell the owners a payment failed (rule 9). Claims the row first so a retry never sends twice."""
    from django.core.mail import send_mail

    from accounts.models import Membership
    from billing.checkout import billing_page_url
    from billing.models import PaymentFailure

    claimed = PaymentFailure.objects.filter(pk=failure_id, emailed_at__isnull=True).update(emailed_at=timezone.now())
    if not claimed:
        return False
    failure = PaymentFailure.objects.select_related("workspace").get(pk=failure_id)
    owners = list(
        Membership.objects.filter(workspace=failure.workspace, role=Membership.Role.OWNER, user__is_active=True)
        .values_list("user__email", flat=True)
    )
    if not owners:
        return False
    amount = f"{failure.amount_due_cents / 100:.2f} {failure.currency.upper()}"
    body = (
        f"Hello,\n\nWe could not collect the payment of {amount} for {failure.workspace.name}'s Pro plan.\n"
        "Your plan and its activations stay as they are while our payment provider retries the card over "
        "the next days. To avoid returning to the Free plan, update your payment method:\n\n"
        f"{billing_page_url(failure.workspace)}\n\n— Inro billing\n"
    )
    try:
        send_mail(f"Payment failed for {failure.workspace.name}", body, None, owners)
    except Exception:
        PaymentFailure.objects.filter(pk=failure_id).update(emailed_at=None)  # let the retry send it
        raise
    return True


def payment_failure_emails_unsent() -> int:
    """Email the payment failures nobody was told about yet (their task was lost to a broker outage)."""
    from billing.models import PaymentFailure

    sent = 0
    for failure_id in PaymentFailure.objects.filter(emailed_at__isnull=True, resolved_at__isnull=True).order_by(
        "pk"
    ).values_list("pk", flat=True)[:500]:
        try:
            sent += payment_failure_email(failure_id=failure_id)
        except Exception:  # the mail server failing: the row stays unsent for the next run
            logger.exception("payment failure %s: email not sent", failure_id)
    return sent
