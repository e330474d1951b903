"""The customer web app's campaigns and scenarios pages, on the automations selectors and services.

Counters come from the campaign and scenario selectors (the same as the API's); the launch preview is
`campaign_preview`, which uses the fan-out's own order and headroom rules. Launching is for owners and
admins (403 for members); outsiders get 404 from the tenancy guard.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import Membership
from automations import selectors
from automations.models import Campaign, ScenarioRun
from automations.services.campaigns import campaign_critical_set, campaign_launch, campaign_preview
from billing import selectors as billing_selectors
from billing.models import AutomationKind
from inro.errors import ApplicationError
from web.account_views import render_workspace, workspace_view
from web.usage_views import reset_wording

PAGE_SIZE = 25
PAUSED_SHOWN = 50


def _paused(membership: Membership, kinds: tuple[str, ...]) -> dict:
    """The paused actions of these automation kinds, oldest first (the order they resume in)."""
    workspace = membership.workspace
    waiting = selectors.paused_action_list(workspace=workspace).filter(kind__in=kinds)
    summary = billing_selectors.usage_summary(workspace=workspace)
    return {
        "paused": list(waiting[:PAUSED_SHOWN]),
        "paused_total": waiting.count(),
        "summary": summary,
        "reset_words": reset_wording(resets_at=summary.resets_at, now=timezone.now()),
    }


@workspace_view
def campaigns_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    page = Paginator(selectors.campaign_list(workspace=membership.workspace), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render_workspace(request, membership, "automations/campaigns.html", {
        "section": "campaigns", "page": page, **_paused(membership, (AutomationKind.CAMPAIGN,)),
    })


def _campaign_or_404(membership: Membership, campaign_id: int) -> Campaign:
    campaign = selectors.campaign_get(workspace=membership.workspace, campaign_id=campaign_id)
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


@workspace_view
def campaign_page(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    campaign = _campaign_or_404(membership, campaign_id)
    preview = campaign_preview(campaign=campaign) if campaign.status == Campaign.Status.DRAFT else None
    waiting = selectors.paused_action_list(workspace=membership.workspace).filter(automation_ref=campaign.ref)
    return render_workspace(request, membership, "automations/campaign.html", {
        "section": "campaigns", "campaign": campaign, "preview": preview,
        "paused_for_campaign": waiting.count(),
        "summary": billing_selectors.usage_summary(workspace=membership.workspace),
    })


@require_POST
@workspace_view
def campaign_launch_view(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    """Launch after the preview: owners and admins only. The fan-out runs after commit, in a task."""
    if not membership.can_manage:
        raise PermissionDenied("Only owners and admins can launch campaigns.")
    campaign = _campaign_or_404(membership, campaign_id)
    try:
        launched = campaign_launch(campaign=campaign, launched_by=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        if launched.status == Campaign.Status.SCHEDULED:
            messages.success(request, f"“{launched.name}” is scheduled for {launched.scheduled_at:%d %B, %H:%M} UTC.")
        else:
            messages.success(request, f"“{launched.name}” is going out now.")
    return redirect("campaign", workspace_id=membership.workspace_id, campaign_id=campaign.pk)


@require_POST
@workspace_view
def campaign_critical_view(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    """Mark a campaign critical or not (rule 16): owners and admins, at any stage."""
    if not membership.can_manage:
        raise PermissionDenied("Only owners and admins can mark campaigns critical.")
    campaign = _campaign_or_404(membership, campaign_id)
    critical = request.POST.get("critical") == "1"
    campaign_critical_set(campaign=campaign, critical=critical)
    messages.success(request, f"“{campaign.name}” is {'now' if critical else 'no longer'} critical: its paused "
                              f"messages resume {'before' if critical else 'with'} the other paused actions"
                              f"{'' if critical else ', oldest first'}.")
    return redirect("campaign", workspace_id=membership.workspace_id, campaign_id=campaign.pk)


@workspace_view
def scenarios_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    # The selector's run counters, plus failed and expired runs (the same join, two more filtered counts).
    scenarios = list(selectors.scenario_list(workspace=membership.workspace).annotate(
        runs_failed=Count("runs", filter=Q(runs__status=ScenarioRun.Status.FAILED)),
        runs_expired=Count("runs", filter=Q(runs__status=ScenarioRun.Status.EXPIRED)),
    ))
    return render_workspace(request, membership, "automations/scenarios.html", {
        "section": "scenarios", "scenarios": scenarios,
        **_paused(membership, (AutomationKind.SCENARIO,)),
    })

