"""Billing reads shared by the usage page, the API and the admin, so their numbers never disagree."""

import datetime
import math
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.utils import timezone

from accounts.models import Workspace
from billing.activation import UsageSnapshot, usage
from billing.integrity import Breakdown, usage_breakdown_from_records, usage_breakdown_rebuild
from billing.models import (
    ActivationRecord,
    AutomationKind,
    MonthlyUsage,
    PaymentFailure,
    Plan,
    PlanChange,
    Subscription,
)
from billing.months import billing_zone, month_end, month_of, month_start, previous_month
from billing.quota import free_plan
from contacts.models import Contact, ContactCount

ALERT_THRESHOLDS = (80, 100)


@dataclass(frozen=True, slots=True)
class Forecast:
    """Linear projection of this month's activations from the pace so far."""

    projected_activations: int
    limit_date: datetime.date | None  # the day the quota would run out at this pace, if this month
    daily_rate: float
    method: str


@dataclass(frozen=True, slots=True)
class UsageSummary:
    month: datetime.date
    activated: int
    quota: int
    remaining: int
    limit_reached: bool
    percent: int  # 0..100, for the meter
    level: str  # "ok", "warning" (>= 80%), "limit" (>= 100%)
    plan: Plan
    subscription: Subscription | None
    addon_packs: int
    resets_at: datetime.datetime
    forecast: Forecast
    # Reservations of actions under way (rule 13): not activations (not charged, not in `activated`),
    # but they hold headroom until confirmed or released, so `remaining` leaves them out.
    in_flight: int = 0


def plan_of(*, workspace: Workspace) -> tuple[Plan, Subscription | None]:
    subscription = Subscription.objects.select_related("plan").filter(workspace=workspace).first()
    if subscription is None:
        return free_plan(), None
    return subscription.plan, subscription


def usage_forecast(*, snapshot: UsageSnapshot, now: datetime.datetime) -> Forecast:
    start, end = month_start(snapshot.month), month_end(snapshot.month)
    elapsed_days = max((now - start).total_seconds() / 86400, 1 / 24)  # at least an hour of pace
    total_days = (end - start).total_seconds() / 86400
    rate = snapshot.activated / elapsed_days
    projected = min(math.ceil(rate * total_days), max(snapshot.quota, snapshot.activated))
    projected_uncapped = math.ceil(rate * total_days)
    limit_date = None
    if snapshot.activated >= snapshot.quota:
        limit_date = None if snapshot.limit_reached_at is None else snapshot.limit_reached_at.astimezone(
            billing_zone()).date()
    elif rate > 0 and projected_uncapped >= snapshot.quota:
        days_to_limit = snapshot.quota / rate
        limit_date = (start + datetime.timedelta(days=days_to_limit)).astimezone(billing_zone()).date()
    return Forecast(
        projected_activations=max(projected, snapshot.activated),
        limit_date=limit_date,
        daily_rate=round(rate, 1),
        method="Activations so far divided by days elapsed, times the days in the month (capped at the quota).",
    )


def usage_summary(*, workspace: Workspace, now: datetime.datetime | None = None) -> UsageSummary:
    now = now or timezone.now()
    snapshot = usage(workspace)
    plan, subscription = plan_of(workspace=workspace)
    percent = 100 if snapshot.quota == 0 else min(100, math.floor(100 * snapshot.activated / snapshot.quota))
    level = "limit" if snapshot.limit_reached else "warning" if percent >= ALERT_THRESHOLDS[0] else "ok"
    return UsageSummary(
        month=snapshot.month,
        activated=snapshot.activated,
        quota=snapshot.quota,
        remaining=snapshot.remaining,
        limit_reached=snapshot.limit_reached,
        percent=percent,
        level=level,
        plan=plan,
        subscription=subscription,
        addon_packs=subscription.addon_packs if subscription else 0,
        resets_at=month_end(snapshot.month),
        forecast=usage_forecast(snapshot=snapshot, now=now),
        in_flight=snapshot.in_flight,
    )


def usage_breakdown(*, workspace: Workspace, month: datetime.date | None = None) -> Breakdown:
    """A month's activations by day of the month ("1".."31") and by kind, from its usage row.

    The gate keeps these counters beside `activated`, so this is one row read whatever the month's
    size. A row whose breakdown is not known yet (opened over existing records, repaired, or written
    before the counters existed) is rebuilt from the ledger once; a month without a row is counted.
    """
    month = (month or month_of()).replace(day=1)
    row = (
        MonthlyUsage.objects.filter(workspace=workspace, month=month)
        .values_list("activated_by_day", "activated_by_kind").first()
    )
    if row is None:
        return usage_breakdown_from_records(workspace_id=workspace.pk, month=month)
    if row[0] is None or row[1] is None:
        return usage_breakdown_rebuild(workspace_id=workspace.pk, month=month)
    return row


def activations_by_kind_everywhere(*, month: datetime.date | None = None) -> dict[str, int]:
    """The month's activations by kind over all workspaces (metrics), summed from the usage rows'
    counters; rows whose breakdown is not known yet are counted from their records."""
    month = (month or month_of()).replace(day=1)
    table = MonthlyUsage._meta.db_table
    totals: dict[str, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT j.key, SUM(CAST(j.value AS integer)) FROM {table} u, jsonb_each_text(u.activated_by_kind) AS j"  # noqa: S608
            " WHERE u.month = %s GROUP BY j.key",
            [connection.ops.adapt_datefield_value(month)],
        )
        for kind, n in cursor.fetchall():
            totals[kind] = int(n)
    unknown = MonthlyUsage.objects.filter(month=month, activated_by_kind__isnull=True).values("workspace_id")
    counted = (
        ActivationRecord.objects.filter(month=month, workspace_id__in=unknown).order_by()
        .values_list("kind").annotate(n=Count("id")).values_list("kind", "n")
    )
    for kind, n in counted:
        totals[kind] = totals.get(kind, 0) + n
    return totals


def activations_per_day(
    *, workspace: Workspace, month: datetime.date | None = None, breakdown: Breakdown | None = None
) -> list[tuple[datetime.date, int]]:
    """Every day of the month up to today (or the month's end), with its activations; zeros included."""
    month = (month or month_of()).replace(day=1)
    by_day = (breakdown or usage_breakdown(workspace=workspace, month=month))[0]
    last_day = min(timezone.now().astimezone(billing_zone()).date(),
                   (month_end(month) - datetime.timedelta(seconds=1)).astimezone(billing_zone()).date())
    days = []
    day = month
    while day <= last_day:
        days.append((day, by_day.get(str(day.day), 0)))
        day += datetime.timedelta(days=1)
    return days


def activations_per_kind(
    *, workspace: Workspace, month: datetime.date | None = None, breakdown: Breakdown | None = None
) -> list[tuple[str, str, int]]:
    """(kind, label, count) for every automated kind, zeros included, in a fixed order."""
    month = (month or month_of()).replace(day=1)
    by_kind = (breakdown or usage_breakdown(workspace=workspace, month=month))[1]
    return [(kind, label, by_kind.get(kind, 0)) for kind, label in AutomationKind.choices]


def usage_history(*, workspace: Workspace, months: int = 12) -> list[MonthlyUsage]:
    """Previous months, newest first (the current month excluded)."""
    current = month_of()
    return list(
        MonthlyUsage.objects.filter(workspace=workspace, month__lt=current).order_by("-month")[:months]
    )


def activation_list(
    *, workspace: Workspace, month: datetime.date | None = None, kind: str | None = None, search: str | None = None
) -> QuerySet[ActivationRecord]:
    """A month's activations, newest first, with the contact joined (no per-row queries)."""
    month = (month or month_of()).replace(day=1)
    records = ActivationRecord.objects.filter(workspace=workspace, month=month).select_related("contact")
    if kind:
        records = records.filter(kind=kind)
    if search:
        search = search.strip().lstrip("@")
        records = records.filter(contact__username__icontains=search) | records.filter(
            contact__name__icontains=search
        )
    return records.order_by("-activated_at", "-id")


def database_contact_count(*, workspace: Workspace) -> int:
    """Contacts in the workspace's database: one row, kept by the database (contacts.ContactCount)."""
    count = ContactCount.objects.filter(workspace=workspace).values_list("contacts", flat=True).first()
    return count or 0


def contacts_filter_activated(
    contacts: QuerySet[Contact], *, workspace: Workspace, activated: bool, month: datetime.date | None = None
) -> QuerySet[Contact]:
    """Keep contacts activated (or not) in the month: the database-vs-activated split."""
    month = (month or month_of()).replace(day=1)
    is_active = Exists(
        ActivationRecord.objects.filter(workspace=workspace, month=month, contact=OuterRef("pk"))
    )
    return contacts.filter(is_active) if activated else contacts.exclude(is_active)


def months_with_activity(*, workspace: Workspace, limit: int = 24) -> list[datetime.date]:
    current = month_of()
    months = [current]
    month = current
    for _ in range(limit - 1):
        month = previous_month(month)
        months.append(month)
    return months


# --- Stripe billing: the billing page, banners and the plan history.


@dataclass(frozen=True, slots=True)
class BillingAlert:
    code: str  # "past_due", "ending"
    level: str  # "error", "warning", "info"
    message: str


def billing_alerts(workspace: Workspace) -> list[BillingAlert]:
    """Banners for the usage and billing pages: a failed payment (rule 9), a plan ending at period end."""

    alerts = []
    subscription = Subscription.objects.select_related("plan").filter(workspace=workspace).first()
    unpaid = PaymentFailure.objects.filter(workspace=workspace, resolved_at__isnull=True).exists()
    if subscription is not None and not subscription.plan.is_free and (subscription.is_past_due or unpaid):
        alerts.append(BillingAlert(
            code="past_due", level="error",
            message="Your last payment failed. Your plan stays active while we retry; update your payment "
                    "method to keep it.",
        ))
    if subscription is not None and not subscription.plan.is_free and subscription.cancel_at_period_end:
        end = subscription.current_period_end
        local_end = end.astimezone(billing_zone()) if end else None
        when = f"on {local_end:%B} {local_end.day}, {local_end.year}" if local_end else "at the end of the paid period"
        alerts.append(BillingAlert(
            code="ending", level="warning",
            message=f"Your {subscription.plan.name} plan ends {when}; the workspace then returns to Free.",
        ))
    return alerts


def plan_history(*, workspace: Workspace, limit: int = 50):

    return list(
        PlanChange.objects.filter(workspace=workspace)
        .select_related("from_plan", "to_plan", "changed_by")
        .order_by("-created_at", "-id")[:limit]
    )


@dataclass(frozen=True, slots=True)
class BillingOverview:
    plan: Plan
    subscription: Subscription | None
    addon_packs: int
    addon_activations: int
    plan_quota: int  # plan activations plus packs, before bonuses
    quota_this_month: int
    activated_this_month: int
    status: str
    next_renewal: datetime.datetime | None
    cancel_at_period_end: bool
    has_payment_account: bool
    alerts: list
    history: list
    pro_plan: Plan | None


def billing_overview(*, workspace: Workspace) -> BillingOverview:
    plan, subscription = plan_of(workspace=workspace)
    snapshot = usage(workspace)
    packs = subscription.addon_packs if subscription else 0
    live = subscription is not None and not plan.is_free
    return BillingOverview(
        plan=plan,
        subscription=subscription,
        addon_packs=packs,
        addon_activations=packs * plan.addon_pack_size,
        plan_quota=plan.monthly_activations + packs * plan.addon_pack_size,
        quota_this_month=snapshot.quota,
        activated_this_month=snapshot.activated,
        status=subscription.get_status_display() if live else "Free",
        next_renewal=subscription.current_period_end if live and not subscription.cancel_at_period_end else None,
        cancel_at_period_end=live and subscription.cancel_at_period_end,
        has_payment_account=bool(subscription and subscription.stripe_customer_id),
        alerts=billing_alerts(workspace),
        history=plan_history(workspace=workspace),
        pro_plan=Plan.objects.filter(code=Plan.PRO).first(),
    )


def contact_activations(*, workspace: Workspace, contact: Contact, months: int = 24) -> list[ActivationRecord]:
    """A contact's activations, newest month first: which automation engaged it, and when."""
    return list(
        ActivationRecord.objects.filter(workspace=workspace, contact=contact).order_by("-month")[:months]
    )
