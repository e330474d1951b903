"""The usage page (the customer's home page) and its CSV export.

Every figure comes from `billing.selectors`, the same reads as the API and the admin, so the numbers
never disagree; this module only shapes them for display (wording, chart geometry, pagination).
"""

import csv
import datetime
import math
from dataclasses import dataclass
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import Membership, Workspace
from automations import selectors as automation_selectors
from automations.names import automation_names
from billing import selectors, services
from billing.models import AutomationKind, Plan
from billing.months import billing_zone, month_end, month_of, month_start
from contacts.instagram_connection import sending_blocked
from inro.errors import ApplicationError
from web.account_views import render_workspace, workspace_view

PAGE_SIZE = 25
CHART_WIDTH, CHART_HEIGHT = 720, 200
CHART_LEFT, CHART_BOTTOM, CHART_TOP = 52, 28, 14


class ActivationSearchForm(forms.Form):
    q = forms.CharField(
        label="Search activated contacts", max_length=100, required=False,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Username or name", "autocomplete": "off"}),
    )


def reset_wording(*, resets_at: datetime.datetime, now: datetime.datetime) -> str:
    """The reset moment in the user's words: "resets in 5 days, on 1 December" (billing zone)."""
    zone = billing_zone()
    reset_local = resets_at.astimezone(zone)
    days = (reset_local.date() - now.astimezone(zone).date()).days
    on = f"on {reset_local.day} {reset_local:%B}"
    if days <= 0:
        return f"resets today at {reset_local:%H:%M}"
    if days == 1:
        return f"resets tomorrow, {on}"
    return f"resets in {days} days, {on}"


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: datetime.date
    count: int
    future: bool
    label: str  # day of month shown under the axis, or ""
    title: str  # "3 November: 5 activations" (tooltip), built here: template filters are slow in a loop
    day_label: str  # "Tue 3 November", for the table under the chart


@dataclass(frozen=True, slots=True)
class DayChart:
    bars: list[Bar]
    ticks: list[tuple[float, int]]  # (y, value) gridlines
    pace_y: float | None  # the daily pace that fits the quota, as a line
    pace: float
    width: int
    height: int
    left: int
    baseline: float
    total: int
    busiest: tuple[datetime.date, int] | None
    label_y: int


def _nice_ceiling(value: float) -> int:
    """1, 2, 5 x 10^n at or above value: round axis maxima."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return int(step * magnitude)
    return int(10 * magnitude)


def day_chart(*, days: list[tuple[datetime.date, int]], month: datetime.date, quota: int) -> DayChart:
    """Geometry of the activations-per-day bar chart for the whole month (days to come left empty).

    The bars have their own scale (the busiest day at the top): the quota is a monthly total and is
    drawn on the cumulative chart, where it means something."""
    start = month_start(month)
    days_in_month = round((month_end(month) - start).total_seconds() / 86400)
    counts = dict(days)
    pace = quota / days_in_month if days_in_month else 0
    top = _nice_ceiling(max([*counts.values(), 1]))
    plot_width = CHART_WIDTH - CHART_LEFT - 8
    plot_height = CHART_HEIGHT - CHART_BOTTOM - CHART_TOP
    baseline = CHART_TOP + plot_height
    slot = plot_width / days_in_month
    bars = []
    for index in range(days_in_month):
        day = month.replace(day=1) + datetime.timedelta(days=index)
        count = counts.get(day, 0)
        # Days to come get a 2-px stub so the month's shape shows.
        height = 2 if day not in counts else plot_height * count / top
        bars.append(Bar(
            x=round(CHART_LEFT + index * slot + slot * 0.15, 2), y=round(baseline - height, 2),
            width=round(slot * 0.7, 2), height=round(height, 2), day=day, count=count,
            future=day not in counts, label=str(day.day) if day.day in (1, 8, 15, 22, 29) else "",
            title=f"{day.day} {day:%B}: {count:,} activation{'' if count == 1 else 's'}",
            day_label=f"{day:%a} {day.day} {day:%B}",
        ))
    ticks = [(round(baseline - plot_height * value / top, 2), value) for value in (0, top // 2, top)]
    busiest = max(days, key=lambda item: item[1]) if days and max(n for _, n in days) > 0 else None
    return DayChart(bars=bars, ticks=ticks, pace_y=None, pace=round(pace, 1), width=CHART_WIDTH,
                    height=CHART_HEIGHT, left=CHART_LEFT, baseline=baseline, total=sum(counts.values()),
                    busiest=busiest, label_y=CHART_HEIGHT - 6)


@dataclass(frozen=True, slots=True)
class CumulativeChart:
    """Activations so far, added up day by day, against the quota line, with the pace carried on to
    the month's end: the answer to "will I run out?"."""

    actual: str  # SVG polyline points, day 0 to today
    forecast: str  # from today to the month's end at the current pace
    even: str  # the straight line that uses exactly the quota by the month's end
    quota_y: float
    quota: int
    ticks: list[tuple[float, int]]
    labels: list[tuple[float, str]]  # x, day of month
    limit_x: float | None  # where the pace crosses the quota
    today_x: float
    projected: int
    width: int
    height: int
    left: int
    baseline: float
    label_y: int
    summary: str  # the same in a sentence (for screen readers and the text under the chart)


def cumulative_chart(*, days: list[tuple[datetime.date, int]], month: datetime.date, quota: int,
                     forecast: selectors.Forecast, now: datetime.datetime) -> CumulativeChart:
    start = month_start(month)
    days_in_month = round((month_end(month) - start).total_seconds() / 86400)
    elapsed = min(max((now - start).total_seconds() / 86400, 0), days_in_month)
    running, points = 0, [(0.0, 0)]
    for index, (_, count) in enumerate(days):
        running += count
        points.append((min(index + 1, elapsed), running))
    projected = max(forecast.projected_activations, running)
    top = _nice_ceiling(max(quota, projected, 1) * 1.05)
    plot_width = CHART_WIDTH - CHART_LEFT - 8
    plot_height = CHART_HEIGHT - CHART_BOTTOM - CHART_TOP
    baseline = CHART_TOP + plot_height

    def x(day: float) -> float:
        return round(CHART_LEFT + plot_width * day / days_in_month, 2)

    def y(value: float) -> float:
        return round(baseline - plot_height * value / top, 2)

    actual = " ".join(f"{x(d)},{y(v)}" for d, v in points)
    forecast_points = f"{x(elapsed)},{y(running)} {x(days_in_month)},{y(projected)}"
    limit_x = None
    if forecast.limit_date is not None and running < quota and projected > running:
        crossing = elapsed + (days_in_month - elapsed) * (quota - running) / (projected - running)
        limit_x = x(min(crossing, days_in_month))
    ticks = [(y(value), value) for value in (0, top // 2, top)]
    labels = [(x(d - 1), str(d)) for d in (1, 8, 15, 22, 29) if d <= days_in_month]
    last_day = (month_end(month) - datetime.timedelta(seconds=1)).astimezone(billing_zone()).date()
    if forecast.limit_date is not None and running >= quota:
        summary = f"The quota of {quota:,} was reached on {forecast.limit_date.day} {forecast.limit_date:%B}."
    elif forecast.limit_date is not None:
        summary = (f"{running:,} so far; at this pace {projected:,} by {last_day.day} {last_day:%B}, past the quota "
                   f"of {quota:,} on {forecast.limit_date.day} {forecast.limit_date:%B}.")
    else:
        summary = (f"{running:,} so far; at this pace {projected:,} by {last_day.day} {last_day:%B}, within the "
                   f"quota of {quota:,}.")
    return CumulativeChart(
        actual=actual, forecast=forecast_points, even=f"{x(0)},{y(0)} {x(days_in_month)},{y(quota)}",
        quota_y=y(quota), quota=quota, ticks=ticks, labels=labels, limit_x=limit_x, today_x=x(elapsed),
        projected=projected, width=CHART_WIDTH, height=CHART_HEIGHT, left=CHART_LEFT, baseline=baseline,
        label_y=CHART_HEIGHT - 6, summary=summary,
    )


def automation_state(*, workspace: Workspace, resets_at: datetime.datetime) -> dict:
    """Paused actions waiting (per automation, and how many expire before the quota resets) and this
    month's usage alerts (rule 10).

    Read through the automations selectors, imported here because billing does not depend on
    automations (the web page is an interface over both)."""

    groups = automation_selectors.paused_actions_grouped(workspace=workspace, before=resets_at)
    waiting = sum(group.waiting for group in groups)
    messages_waiting = sum(group.messages for group in groups)
    blocked = bool(messages_waiting) and sending_blocked(workspace_id=workspace.pk)
    return {
        "paused_waiting": waiting,
        "paused_campaign_messages": sum(g.waiting for g in groups if g.kind == AutomationKind.CAMPAIGN),
        "paused_expiring": sum(group.expiring for group in groups),
        "paused_blocked": messages_waiting if blocked else 0,
        "paused_groups": groups[:6],
        "usage_alerts": automation_selectors.usage_alerts_active(workspace),
    }


def _plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def resume_wording(*, parts: selectors.QuotaParts, waiting: int, campaign_messages: int, reset_words: str,
                   expiring: int = 0, blocked: int = 0) -> str:
    """What happens to the paused actions now, true to what the resume job will do (rules 5, 16).

    The job runs every minute and resumes, oldest first (critical campaigns' messages before), as
    many as there is room for: campaign messages never use the reserve for conversations, other
    actions may; messages wait for a broken Instagram connection whatever the room; a message whose
    24-hour window closes first expires instead.
    """
    rises = (f"when you raise or clear your cap of {parts.cap:,}, or when your quota {reset_words}"
             if parts.cap_holds else
             f"at once when you upgrade or add packs, otherwise when your quota {reset_words}")
    order = "paused messages of critical campaigns first, then oldest first"
    sentences = []
    if blocked:
        sentences.append(f"{_plural(blocked, 'of them is a message: it waits', 'of them are messages: they wait')} "
                         "for your Instagram account to be reconnected, whatever the quota.")
    # What may move now: blocked messages are campaign messages first (a safe under-estimate of room).
    campaigns = max(campaign_messages - blocked, 0)
    others = max(waiting - campaign_messages - max(blocked - campaign_messages, 0), 0)
    movable = campaigns + others
    if movable == 0:
        pass
    elif parts.remaining == 0:
        sentences.append(f"They resume by themselves, {order}, as soon as there is room: {rises}.")
    elif campaigns and parts.campaign_remaining == 0:
        kept = (f"the {parts.remaining:,} activation{'' if parts.remaining == 1 else 's'} left "
                f"{'is' if parts.remaining == 1 else 'are'} kept for people who write to you")
        held = (f"The {campaigns:,} paused campaign message{'' if campaigns == 1 else 's'} "
                f"{'does' if campaigns == 1 else 'do'} not resume: {kept}. They resume {rises}, "
                "or when you lower the reserve.")
        if others and others <= parts.remaining:
            sentences.append(f"The other {others:,} resume by themselves within a minute, oldest first. {held}")
        elif others:
            sentences.append(f"Up to {parts.remaining:,} of the other {others:,} resume by themselves within a "
                             f"minute, oldest first; the rest wait: they resume {rises}. {held}")
        else:
            sentences.append(held)
    else:
        room = min(others + min(campaigns, parts.campaign_remaining), parts.remaining)
        if room >= movable:
            sentences.append(f"There is room for {'it' if movable == 1 else 'all of them'}: "
                             f"{'it resumes' if movable == 1 else 'they resume'} by themselves within a minute, "
                             f"{order}.")
        else:
            reserve = ", or when you lower the reserve" if campaigns > parts.campaign_remaining else ""
            sentences.append(f"There is room for {room:,} of them: they resume by themselves within a minute, "
                             f"{order}; the other {movable - room:,} wait: they resume {rises}{reserve}.")
    if expiring:
        sentences.append(
            f"{_plural(expiring, 'of them is a message that can', 'of them are messages that can')} only be sent "
            f"inside the contact's 24-hour window, which closes before your quota {reset_words}: "
            f"{'it expires' if expiring == 1 else 'they expire'} then, not sent, unless there is room sooner."
        )
    return " ".join(sentences)


class SpendingControlsForm(forms.Form):
    monthly_cap = forms.IntegerField(
        label="Monthly cap", required=False, min_value=0, max_value=10_000_000,
        help_text="Automations pause at this many activated contacts a month. Empty: no cap.",
        widget=forms.NumberInput(attrs={"inputmode": "numeric", "placeholder": "No cap"}),
    )
    conversation_reserve = forms.IntegerField(
        label="Kept for people who write to you", min_value=0, max_value=10_000_000,
        help_text="Activations campaigns may not use, so replies to new people never wait behind a broadcast.",
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )


def _pro_plan() -> Plan | None:
    return Plan.objects.filter(code=Plan.PRO, is_public=True).first()


@workspace_view
def usage_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    workspace = membership.workspace
    now = timezone.now()
    summary = selectors.usage_summary(workspace=workspace, now=now)
    form = ActivationSearchForm(request.GET or None)
    search = form.cleaned_data["q"] if form.is_bound and form.is_valid() else ""

    records = selectors.activation_list(workspace=workspace, month=summary.month, search=search or None)
    paginator = Paginator(records, PAGE_SIZE)
    if not search:
        # Rule 2: the month's counter equals its records, so the unfiltered list needs no COUNT(*).
        paginator.count = summary.activated
    page = paginator.get_page(request.GET.get("page"))

    database_total = selectors.database_contact_count(workspace=workspace)
    breakdown = selectors.usage_breakdown(workspace=workspace, month=summary.month)
    kinds = selectors.activations_per_kind(workspace=workspace, month=summary.month, breakdown=breakdown)
    per_automation = selectors.activations_per_automation(workspace=workspace, month=summary.month)
    history = selectors.usage_history(workspace=workspace, months=12)
    days = selectors.activations_per_day(workspace=workspace, month=summary.month, breakdown=breakdown)
    chart = day_chart(days=days, month=summary.month, quota=summary.quota)
    not_activated = max(database_total - summary.activated, 0)
    billing_alerts = selectors.billing_alerts(workspace)
    quota_packs = summary.addon_packs * summary.plan.addon_pack_size
    reset_words = reset_wording(resets_at=summary.resets_at, now=now)
    automations = automation_state(workspace=workspace, resets_at=summary.resets_at)
    rows = list(page.object_list)
    # Every reference the page shows, named in one query.
    names = automation_names(
        [r.automation_ref for r in rows] + [g.automation_ref for g in automations["paused_groups"]]
        + [ref for _, ref, _ in per_automation], workspace_id=workspace.pk,
    )
    controls_form = SpendingControlsForm(initial={
        "monthly_cap": workspace.monthly_cap, "conversation_reserve": workspace.activation_reserve,
    })
    pro_plan = _pro_plan() if summary.plan.is_free else None
    context = {
        "section": "usage",
        "summary": summary,
        "parts": summary.parts,
        "controls_form": controls_form,
        "resume_words": resume_wording(parts=summary.parts, waiting=automations["paused_waiting"],
                                       campaign_messages=automations["paused_campaign_messages"],
                                       reset_words=reset_words, expiring=automations["paused_expiring"],
                                       blocked=automations["paused_blocked"]),
        "reset_words": reset_words,
        "reset_zone": billing_zone().key,
        "billing_alerts": billing_alerts,
        "past_due": any(alert.code == "past_due" for alert in billing_alerts),
        "plan_badge": selectors.subscription_badge(summary.subscription),
        **automations,
        "names": names,
        "chart": chart,
        "cumulative": cumulative_chart(days=days, month=summary.month, quota=summary.quota,
                                       forecast=summary.forecast, now=now),
        "kinds": kinds,
        "kind_max": max([n for _, _, n in kinds] + [1]),
        "per_automation": [(kind, ref, n, names.get(ref)) for kind, ref, n in per_automation],
        "automation_max": max([n for _, _, n in per_automation] + [1]),
        "history": history,
        "database_total": database_total,
        "not_activated": not_activated,
        "activated_share": (100 * summary.activated // database_total) if database_total else 0,
        "form": form,
        "search": search,
        "page": page,
        "rows": rows,
        "csv_query": "?" + urlencode({"q": search}) if search else "",
        "upgrade_packs": summary.addon_packs + max(summary.forecast.packs_needed, 1) if not summary.plan.is_free else 0,
        "pro_plan": pro_plan,
        "pro_covers": bool(pro_plan and summary.forecast.projected_activations <= pro_plan.monthly_activations),
        "quota_packs": quota_packs,
        "month_last_day": (summary.resets_at - datetime.timedelta(seconds=1)).astimezone(billing_zone()).date(),
    }
    return render_workspace(request, membership, "usage/usage.html", context)


@require_POST
@workspace_view
def usage_settings(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The spending controls form of the usage page (rule 16): owners and admins only."""
    if not membership.can_manage:
        raise PermissionDenied("Only owners and admins can change the spending controls.")
    form = SpendingControlsForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else field
            messages.error(request, f"{label}: {' '.join(errors)}")
        return redirect(reverse("usage", args=[membership.workspace_id]) + "#controls")
    try:
        workspace = services.spending_controls_update(
            workspace=membership.workspace, monthly_cap=form.cleaned_data["monthly_cap"],
            conversation_reserve=form.cleaned_data["conversation_reserve"],
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        cap = "no cap" if workspace.monthly_cap is None else f"a cap of {workspace.monthly_cap:,}"
        messages.success(request, f"Saved: {cap}, {workspace.activation_reserve:,} kept for people who write "
                                  "to you.")
    return redirect(reverse("usage", args=[membership.workspace_id]) + "#controls")


# Spreadsheet apps run cells starting with these as formulas; names come from Instagram users.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(records, *, workspace_id: int) -> object:
    writer = csv.writer(_Echo())
    yield writer.writerow(["activated_at", "contact_id", "instagram_id", "username", "name", "source",
                           "automation_kind", "automation", "automation_name"])
    # The workspace's automation names, once: one query, whatever the number of rows.
    refs = records.order_by().values_list("automation_ref", flat=True).distinct()
    names = automation_names(list(refs[:5000]), workspace_id=workspace_id)
    for record in records.iterator(chunk_size=2000):
        contact = record.contact
        name = names.get(record.automation_ref)
        yield writer.writerow([
            record.activated_at.astimezone(datetime.UTC).isoformat(),
            record.contact_id or "",
            _cell(contact.igsid if contact else ""),
            _cell(contact.username if contact else ""),
            _cell(contact.name if contact else "(erased contact)"),
            contact.source if contact else "",
            record.kind,
            _cell(record.automation_ref),
            _cell(name.name if name is not None else ""),
        ])


@workspace_view
def activations_csv(request: HttpRequest, membership: Membership) -> HttpResponse:
    """This month's activations as CSV, filtered by the same search as the page."""
    workspace = membership.workspace
    form = ActivationSearchForm(request.GET)
    if not form.is_valid():
        return HttpResponse("The search must be at most 100 characters.", status=400, content_type="text/plain")
    summary_month = month_of()
    records = selectors.activation_list(
        workspace=workspace, month=summary_month, search=form.cleaned_data["q"] or None
    )
    response = StreamingHttpResponse(_csv_rows(records, workspace_id=workspace.pk),
                                     content_type="text/csv; charset=utf-8")
    filename = f"activations-{workspace.slug}-{summary_month:%Y-%m}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response

