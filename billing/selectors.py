"""Billing reads shared by the usage page, the API and the admin, so their numbers never disagree."""

import datetime
import math
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from accounts.models import Workspace
from billing.activation import UsageSnapshot, usage
from billing.integrity import (
    Breakdown,
    usage_breakdown_from_records,
    usage_breakdown_rebuild,
    usage_by_ref_from_records,
    usage_by_ref_rebuild,
)
from billing.models import (
    ActivationRecord,
    AutomationKind,
    BonusGrant,
    MonthlyUsage,
    PaymentFailure,
    Plan,
    PlanChange,
    Subscription,
)
from billing.months import billing_zone, month_end, month_of, month_start, previous_month
from billing.quota import bonus_total, free_plan
from contacts.models import Contact, ContactCount

ALERT_THRESHOLDS = (80, 100)


@dataclass(frozen=True, slots=True)
class Forecast:
    """Linear projection of this month's activations from the pace so far, not capped at the quota: the
    pace is what tells how much room the month needs (at the quota itself, actions pause)."""

    projected_activations: int
    limit_date: datetime.date | None  # the day the quota would run out at this pace, if this month
    daily_rate: float
    method: str
    # What the pace asks beyond the quota: activations short, and the add-on packs (and their monthly
    # price, in the plan's currency) that would cover them. 0 when the quota holds.
    shortfall: int = 0
    packs_needed: int = 0
    packs_price_cents: int = 0
    pack_size: int = 0

    @property
    def reaches_limit(self) -> bool:
        return self.limit_date is not None


@dataclass(frozen=True, slots=True)
class ScheduledChange:
    """A decrease Stripe already has, waiting for the end of the paid period (docs/product.md)."""

    plan: Plan
    addon_packs: int
    takes_effect_at: datetime.datetime
    monthly_activations: int  # plan + packs once it applies


@dataclass(frozen=True, slots=True)
class QuotaParts:
    """How this month's quota adds up, and what holds headroom back: one reading for every surface
    (usage page, billing page, API, admin), so they always tell the same story (rules 8, 12, 16)."""

    plan_name: str
    plan_activations: int
    addon_packs: int
    addon_pack_size: int
    addon_activations: int
    bonus: int  # every bonus granted for the month
    kept_at: int | None  # the floor, when it holds plan + packs up: activations already used
    floor_added: int  # what the floor adds above plan + packs (0 without a floor)
    plan_quota: int  # max(plan + packs, floor) + bonuses: the quota before the cap
    cap: int | None
    cap_holds: bool  # the cap sets the quota below plan_quota
    quota: int  # what the gate reads
    activated: int
    remaining: int
    reserve: int
    campaign_remaining: int  # what campaigns may still use: remaining minus the reserve
    held_by: str  # "plan", "floor" or "cap": what sets the quota
    scheduled: ScheduledChange | None

    @property
    def reserve_kept(self) -> int:
        """How much of what remains the reserve holds back from campaigns."""
        return min(self.reserve, self.remaining)

    @property
    def notes(self) -> list[str]:
        """Short phrases saying what the quota is made of and what holds headroom back."""
        notes = []
        if self.kept_at is not None:
            notes.append(f"kept at {self.kept_at:,}: already used this month")
        if self.bonus:
            notes.append(f"+{self.bonus:,} bonus this month")
        if self.cap_holds:
            notes.append(f"your cap of {self.cap:,}")
        if self.reserve_kept:
            notes.append(f"{self.reserve_kept:,} kept for people who write to you")
        return notes

    @property
    def note(self) -> str:
        return "; ".join(self.notes)


def quota_parts(
    *, workspace: Workspace, snapshot: UsageSnapshot | None = None,
    plan_and_subscription: tuple[Plan, Subscription | None] | None = None,
) -> QuotaParts:
    """This month's quota taken apart (see billing.quota): plan, packs, floor, bonuses, cap, reserve.

    One query of its own (the month's floor and bonuses); the cap and reserve are read from `workspace`.
    """
    snapshot = snapshot or usage(workspace)
    plan, subscription = plan_and_subscription or plan_of(workspace=workspace)
    packs = subscription.addon_packs if subscription else 0
    base = plan.monthly_activations + packs * plan.addon_pack_size
    bonuses = BonusGrant.objects.filter(workspace_id=OuterRef("workspace_id"), month=OuterRef("month")).order_by()
    row = (
        MonthlyUsage.objects.filter(workspace=workspace, month=snapshot.month)
        .annotate(bonus=Subquery(bonuses.values("workspace_id").annotate(total=Sum("amount")).values("total")))
        .values_list("kept_at", "kept_at_bonus", "bonus").first()
    )
    if row is None:
        kept_at, kept_at_bonus, bonus = 0, 0, bonus_total(workspace_id=workspace.pk, month=snapshot.month)
    else:
        kept_at, kept_at_bonus, bonus = row[0], row[1], row[2] or 0
    floor = kept_at - kept_at_bonus if kept_at else 0
    plan_quota = max(base, floor) + bonus
    cap, reserve = workspace.monthly_cap, workspace.activation_reserve
    cap_holds = cap is not None and snapshot.quota < plan_quota
    scheduled = None
    if subscription is not None and subscription.scheduled_for is not None and subscription.scheduled_plan_id:
        target = subscription.scheduled_plan
        target_packs = subscription.scheduled_addon_packs or 0
        scheduled = ScheduledChange(
            plan=target, addon_packs=target_packs, takes_effect_at=subscription.scheduled_for,
            monthly_activations=target.monthly_activations + target_packs * target.addon_pack_size,
        )
    return QuotaParts(
        plan_name=plan.name, plan_activations=plan.monthly_activations, addon_packs=packs,
        addon_pack_size=plan.addon_pack_size, addon_activations=packs * plan.addon_pack_size, bonus=bonus,
        kept_at=kept_at if floor > base else None, floor_added=max(floor - base, 0), plan_quota=plan_quota,
        cap=cap, cap_holds=cap_holds, quota=snapshot.quota, activated=snapshot.activated,
        remaining=snapshot.remaining, reserve=reserve, campaign_remaining=max(snapshot.remaining - reserve, 0),
        held_by="cap" if cap_holds else "floor" if floor > base else "plan", scheduled=scheduled,
    )


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
    parts: QuotaParts
    # Reservations of actions under way (rule 13): not activations (not charged, not in `activated`),
    # but they hold headroom until confirmed or released, so `remaining` leaves them out.
    in_flight: int = 0


def plan_of(*, workspace: Workspace) -> tuple[Plan, Subscription | None]:
    subscription = Subscription.objects.select_related("plan").filter(workspace=workspace).first()
    if subscription is None:
        return free_plan(), None
    return subscription.plan, subscription


def usage_forecast(*, snapshot: UsageSnapshot, now: datetime.datetime, plan: Plan | None = None) -> Forecast:
    start, end = month_start(snapshot.month), month_end(snapshot.month)
    elapsed_days = max((now - start).total_seconds() / 86400, 1 / 24)  # at least an hour of pace
    total_days = (end - start).total_seconds() / 86400
    rate = snapshot.activated / elapsed_days
    projected = max(math.ceil(rate * total_days), snapshot.activated)
    limit_date = None
    if snapshot.activated >= snapshot.quota:
        limit_date = None if snapshot.limit_reached_at is None else snapshot.limit_reached_at.astimezone(
            billing_zone()).date()
    elif rate > 0 and projected >= snapshot.quota:
        days_to_limit = snapshot.quota / rate
        limit_date = (start + datetime.timedelta(days=days_to_limit)).astimezone(billing_zone()).date()
    shortfall = max(projected - snapshot.quota, 0)
    pack_size = plan.addon_pack_size if plan is not None and not plan.is_free else 0
    packs = math.ceil(shortfall / pack_size) if pack_size and shortfall else 0
    return Forecast(
        projected_activations=projected,
        limit_date=limit_date,
        daily_rate=round(rate, 1),
        method="Activations so far divided by days elapsed, times the days in the month (not capped: at the "
               "quota, automations pause).",
        shortfall=shortfall,
        packs_needed=packs,
        packs_price_cents=packs * plan.addon_pack_price_cents if packs and plan is not None else 0,
        pack_size=pack_size,
    )


def usage_level(*, limit_reached: bool, percent: int, forecast: Forecast) -> str:
    """"limit" at the quota; "warning" from 80 % or when the pace reaches the quota this month; else "ok".

    The badge, the banner and the API's `level` all read this, so none says "on track" beside a
    forecast that runs out."""
    if limit_reached:
        return "limit"
    if percent >= ALERT_THRESHOLDS[0] or forecast.reaches_limit:
        return "warning"
    return "ok"


def usage_summary(*, workspace: Workspace, now: datetime.datetime | None = None) -> UsageSummary:
    now = now or timezone.now()
    snapshot = usage(workspace)
    plan, subscription = plan_of(workspace=workspace)
    parts = quota_parts(workspace=workspace, snapshot=snapshot, plan_and_subscription=(plan, subscription))
    percent = 100 if snapshot.quota == 0 else min(100, math.floor(100 * snapshot.activated / snapshot.quota))
    forecast = usage_forecast(snapshot=snapshot, now=now, plan=plan)
    level = usage_level(limit_reached=snapshot.limit_reached, percent=percent, forecast=forecast)
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
        forecast=forecast,
        parts=parts,
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


@dataclass(frozen=True, slots=True)
class StatusBadge:
    label: str  # "Active", "Ends on 23 December", "Past due", "Canceled"
    level: str  # CSS level: "ok" (green) only for a plan that goes on; "warning", "limit" or "" (neutral)


def subscription_badge(subscription: Subscription | None) -> StatusBadge:
    """The plan's status in words and colour: green only for a plan that renews."""
    if subscription is None or subscription.plan.is_free:
        return StatusBadge(label="Free", level="")
    status = subscription.status
    if status in (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE_EXPIRED):
        return StatusBadge(label=subscription.get_status_display(), level="")
    if status in (Subscription.Status.PAST_DUE, Subscription.Status.UNPAID):
        return StatusBadge(label=subscription.get_status_display(), level="limit")
    if status == Subscription.Status.INCOMPLETE:
        return StatusBadge(label="Payment incomplete", level="warning")
    if subscription.cancel_at_period_end:
        end = subscription.current_period_end
        if end is None:
            return StatusBadge(label="Ends at period end", level="warning")
        local_end = end.astimezone(billing_zone())
        return StatusBadge(label=f"Ends on {local_end.day} {local_end:%B}", level="warning")
    if status == Subscription.Status.TRIALING:
        return StatusBadge(label="Trial", level="info")
    return StatusBadge(label="Active", level="ok")


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
    parts: QuotaParts
    badge: StatusBadge
    quota_month_start: datetime.date
    quota_resets_at: datetime.datetime


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
        parts=quota_parts(workspace=workspace, snapshot=snapshot, plan_and_subscription=(plan, subscription)),
        badge=subscription_badge(subscription),
        quota_month_start=snapshot.month,
        quota_resets_at=month_end(snapshot.month),
    )


def activations_per_automation(*, workspace: Workspace, month: datetime.date | None = None,
                               limit: int = 8) -> list[tuple[str, str, int]]:
    """(kind, automation_ref, activations) of the month, most first: the top `limit` automations and
    the rest summed as ("", "", n).

    Read from the usage row's per-automation counters, which the gate moves with `activated` (one row
    read whatever the month's size); a row whose counters are not known yet is counted once from the
    ledger. The kind is the reference's prefix ("campaign:4" -> campaign)."""
    month = (month or month_of()).replace(day=1)
    row = MonthlyUsage.objects.filter(workspace=workspace, month=month).values_list("activated_by_ref", flat=True)
    found = list(row[:1])
    if not found:
        by_ref = usage_by_ref_from_records(workspace_id=workspace.pk, month=month)
    elif found[0] is None:
        by_ref = usage_by_ref_rebuild(workspace_id=workspace.pk, month=month)
    else:
        by_ref = found[0]
    kinds = {kind: kind for kind in AutomationKind.values} | {"segment": AutomationKind.SEGMENTATION.value}
    rows = sorted(((kinds.get(ref.split(":", 1)[0], ""), ref, int(n)) for ref, n in by_ref.items() if n),
                  key=lambda item: (-item[2], item[1]))
    top = rows[:limit]
    rest = sum(n for _, _, n in rows[limit:])
    return [*top, ("", "", rest)] if rest else top


def _event_links(payload: dict) -> tuple[str, str, str]:
    """(workspace id, subscription id, customer id) a Stripe event's object names, where present."""
    obj = ((payload or {}).get("data") or {}).get("object") or {}
    if not isinstance(obj, dict):
        return "", "", ""
    details = ((obj.get("parent") or {}).get("subscription_details")) or {}
    metadata = obj.get("metadata") or details.get("metadata") or {}
    workspace_id = str(metadata.get("workspace_id") or obj.get("client_reference_id") or "")
    kind = obj.get("object")

    def ref(value) -> str:
        return str(value.get("id") if isinstance(value, dict) else value or "")

    subscription_id = ref(obj.get("id")) if kind == "subscription" else ref(
        obj.get("subscription") or details.get("subscription"))
    customer_id = ref(obj.get("id")) if kind == "customer" else ref(obj.get("customer"))
    return workspace_id, subscription_id, customer_id


def stripe_event_workspaces(events: list) -> dict[int, Workspace]:
    """{event pk: workspace} for Stripe events (staff admin), from what each event's object names:
    the workspace in its metadata, its subscription or its customer. Two queries for any number."""
    links = {event.pk: _event_links(event.payload) for event in events}
    subscriptions = {sub for _, sub, _ in links.values() if sub}
    customers = {cus for _, _, cus in links.values() if cus}
    by_subscription, by_customer = {}, {}
    if subscriptions or customers:
        rows = Subscription.objects.select_related("workspace").filter(
            Q(stripe_subscription_id__in=subscriptions) | Q(stripe_customer_id__in=customers))
        for row in rows:
            if row.stripe_subscription_id:
                by_subscription[row.stripe_subscription_id] = row.workspace
            if row.stripe_customer_id:
                by_customer[row.stripe_customer_id] = row.workspace
    ids = {int(w) for w, _, _ in links.values() if w.isdigit() and len(w) < 12}
    by_id = {w.pk: w for w in Workspace.objects.filter(pk__in=ids)} if ids else {}
    found = {}
    for pk, (workspace_id, subscription_id, customer_id) in links.items():
        workspace = (by_subscription.get(subscription_id) or by_customer.get(customer_id)
                     or (by_id.get(int(workspace_id)) if workspace_id.isdigit() and len(workspace_id) < 12 else None))
        if workspace is not None:
            found[pk] = workspace
    return found


def contact_activations(*, workspace: Workspace, contact: Contact, months: int = 24) -> list[ActivationRecord]:
    """A contact's activations, newest month first: which automation engaged it, and when."""
    return list(
        ActivationRecord.objects.filter(workspace=workspace, contact=contact).order_by("-month")[:months]
    )
