"""The customer web app's automation pages: campaigns, scenarios, segments and outgoing integrations.

Counters come from the automations selectors (the same as the API's); the launch preview is
`campaign_preview`, which uses the fan-out's own order and headroom rules, and a launch is a two-step
affair: the preview, then a confirmation page that repeats it. Building, editing, launching and
running automations is for owners and admins (403 for members, who read everything); outsiders get
404 from the tenancy guard. Every automated action the pages start goes through the gate as it does
from the API.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import Membership
from automations import selectors, services
from automations.models import Campaign, CampaignRecipient, Integration, Scenario, ScenarioRun, Segment
from automations.services.campaigns import (
    campaign_critical_set,
    campaign_follow_up_create,
    campaign_launch,
    campaign_preview,
    campaign_update,
)
from automations.services.scenarios import scenario_steps_clean, scenario_trigger_clean
from billing import selectors as billing_selectors
from billing.models import AutomationKind
from contacts.selectors import folder_list
from inro.errors import ApplicationError
from web.account_views import render_workspace, workspace_view
from web.automation_forms import (
    STEP_LABELS,
    STEP_SERVICE_FIELDS,
    STORY_EVENT_LABELS,
    WAIT_UNITS,
    CampaignForm,
    IntegrationForm,
    ScenarioForm,
    SegmentForm,
    StepFormSet,
    apply_service_error,
)
from web.usage_views import reset_wording

PAGE_SIZE = 25
PAUSED_SHOWN = 50
BLANK_STEP_ROWS = 3


def _require_manager(membership: Membership, what: str) -> None:
    if not membership.can_manage:
        raise PermissionDenied(f"Only owners and admins can {what}.")


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


# --- Campaigns ------------------------------------------------------------------------------------


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


def _campaign_form(membership: Membership, data=None, initial=None) -> CampaignForm:
    workspace = membership.workspace
    return CampaignForm(data, initial=initial, segments=list(Segment.objects.filter(workspace=workspace)),
                        folders=list(folder_list(workspace=workspace)))


@workspace_view
def campaign_new(request: HttpRequest, membership: Membership) -> HttpResponse:
    """A new draft: nothing is sent until it is launched (after the preview and a confirmation)."""
    _require_manager(membership, "create campaigns")
    form = _campaign_form(membership, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = services.campaign_create(workspace=membership.workspace, **form.service_values())
        except ApplicationError as error:
            apply_service_error(form, error)
        else:
            messages.success(request, f"“{campaign.name}” is saved as a draft. Check the preview, then launch it.")
            return redirect("campaign", workspace_id=membership.workspace_id, campaign_id=campaign.pk)
    return render_workspace(request, membership, "automations/campaign_form.html", {
        "section": "campaigns", "form": form, "campaign": None,
    }, status=400 if form.errors else 200)


@workspace_view
def campaign_edit(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    _require_manager(membership, "edit campaigns")
    campaign = _campaign_or_404(membership, campaign_id)
    if campaign.status != Campaign.Status.DRAFT:
        messages.error(request, f"This campaign is {campaign.get_status_display().lower()}: only drafts can be "
                                "edited.")
        return redirect("campaign", workspace_id=membership.workspace_id, campaign_id=campaign.pk)
    initial = {"name": campaign.name, "text": campaign.text, "audience": campaign.audience,
               "segment": campaign.segment_id, "folder": campaign.folder_id, "scheduled_at": campaign.scheduled_at}
    form = _campaign_form(membership, request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = campaign_update(campaign=campaign, **form.service_values())
        except ApplicationError as error:
            apply_service_error(form, error)
        else:
            messages.success(request, f"“{campaign.name}” is saved.")
            return redirect("campaign", workspace_id=membership.workspace_id, campaign_id=campaign.pk)
    return render_workspace(request, membership, "automations/campaign_form.html", {
        "section": "campaigns", "form": form, "campaign": campaign,
    }, status=400 if form.errors else 200)


def _campaign_context(membership: Membership, campaign: Campaign) -> dict:
    preview = campaign_preview(campaign=campaign) if campaign.status == Campaign.Status.DRAFT else None
    waiting = selectors.paused_action_list(workspace=membership.workspace).filter(automation_ref=campaign.ref)
    first_expiry = waiting.exclude(expires_at=None).order_by("expires_at").values_list("expires_at", flat=True).first()
    summary = billing_selectors.usage_summary(workspace=membership.workspace)
    # Every waiting message's window closes before the quota resets: the reset will not send them.
    expire_before_reset = bool(first_expiry) and summary.resets_at is not None and not waiting.filter(
        Q(expires_at=None) | Q(expires_at__gte=summary.resets_at)).exists()
    return {
        "section": "campaigns", "campaign": campaign, "preview": preview,
        "paused_for_campaign": waiting.count(), "first_expiry": first_expiry, "summary": summary,
        "expire_before_reset": expire_before_reset,
        "reset_words": reset_wording(resets_at=summary.resets_at, now=timezone.now()),
    }


@workspace_view
def campaign_page(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    campaign = _campaign_or_404(membership, campaign_id)
    return render_workspace(request, membership, "automations/campaign.html", _campaign_context(membership, campaign))


@workspace_view
def campaign_launch_view(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    """The confirmation step: the preview again, in full, and a button that launches. A POST without the
    confirmation (an old form, a double click on the campaign page) shows this page instead of launching.
    Owners and admins only. The fan-out runs after commit, in a task."""
    _require_manager(membership, "launch campaigns")
    campaign = _campaign_or_404(membership, campaign_id)
    if campaign.status != Campaign.Status.DRAFT:
        messages.error(request, f"This campaign is {campaign.get_status_display().lower()}: it cannot be launched.")
        return redirect("campaign", workspace_id=membership.workspace_id, campaign_id=campaign.pk)
    if request.method != "POST" or request.POST.get("confirm") != "yes":
        return render_workspace(request, membership, "automations/campaign_confirm.html",
                                _campaign_context(membership, campaign))
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
def campaign_cancel_view(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    _require_manager(membership, "cancel campaigns")
    campaign = _campaign_or_404(membership, campaign_id)
    try:
        services.campaign_cancel(campaign=campaign)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"“{campaign.name}” is cancelled: nothing more is sent, and its paused messages "
                                  "are cancelled.")
    return redirect("campaign", workspace_id=membership.workspace_id, campaign_id=campaign.pk)


@require_POST
@workspace_view
def campaign_critical_view(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    """Mark a campaign critical or not (rule 16): owners and admins, at any stage."""
    _require_manager(membership, "mark campaigns critical")
    campaign = _campaign_or_404(membership, campaign_id)
    critical = request.POST.get("critical") == "1"
    campaign_critical_set(campaign=campaign, critical=critical)
    messages.success(request, f"“{campaign.name}” is {'now' if critical else 'no longer'} critical: its paused "
                              f"messages resume {'before' if critical else 'with'} the other paused actions"
                              f"{'' if critical else ', oldest first'}.")
    return redirect("campaign", workspace_id=membership.workspace_id, campaign_id=campaign.pk)


RECIPIENT_STATUSES = {
    CampaignRecipient.Status.LIMITED: "Limited: paused at the quota",
    CampaignRecipient.Status.SKIPPED_WINDOW: "Skipped: messaging window closed",
    CampaignRecipient.Status.SENT: "Sent",
    CampaignRecipient.Status.FAILED: "Failed",
}


@workspace_view
def campaign_recipients_page(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    """The contacts a launched campaign reached, by final status (limited, skipped, sent, failed)."""
    campaign = _campaign_or_404(membership, campaign_id)
    status = request.GET.get("status", CampaignRecipient.Status.LIMITED)
    if status not in RECIPIENT_STATUSES:
        raise Http404("No such status.")
    rows = selectors.campaign_recipient_list(campaign=campaign, status=status).order_by("rank")
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    waiting = set(selectors.paused_action_list(workspace=membership.workspace).filter(
        automation_ref=campaign.ref, contact_id__in=[r.contact_id for r in page.object_list],
    ).values_list("contact_id", flat=True)) if status == CampaignRecipient.Status.LIMITED else set()
    return render_workspace(request, membership, "automations/campaign_recipients.html", {
        "section": "campaigns", "campaign": campaign, "page": page, "status": status,
        "status_label": RECIPIENT_STATUSES[status], "statuses": RECIPIENT_STATUSES, "waiting": waiting,
    })


@require_POST
@workspace_view
def campaign_follow_up_view(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    _require_manager(membership, "create scenarios")
    campaign = _campaign_or_404(membership, campaign_id)
    try:
        follow_up = campaign_follow_up_create(campaign=campaign)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("campaign", workspace_id=membership.workspace_id, campaign_id=campaign.pk)
    messages.success(request, f"“{follow_up.name}” is on: each of the {campaign.skipped_window_count:,} skipped "
                              "contacts gets the campaign's message when they next write (once each; a new "
                              "contact this month uses one activation). Turn it off here at any time.")
    return redirect("scenario", workspace_id=membership.workspace_id, scenario_id=follow_up.pk)


# --- Scenarios ------------------------------------------------------------------------------------


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


def _scenario_or_404(membership: Membership, scenario_id: int) -> Scenario:
    scenario = selectors.scenario_get(workspace=membership.workspace, scenario_id=scenario_id)
    if scenario is None:
        raise Http404("No such scenario.")
    return scenario


def _step_kwargs(membership: Membership) -> dict:
    workspace = membership.workspace
    return {"segments": list(Segment.objects.filter(workspace=workspace)),
            "integrations": list(selectors.integration_list(workspace=workspace))}


def _scenario_build(request: HttpRequest, membership: Membership, scenario: Scenario | None) -> HttpResponse:
    """The scenario form, new or edit: the trigger and its rows of steps, checked by the engine's rules."""
    workspace = membership.workspace
    segments = _step_kwargs(membership)["segments"]
    if request.method == "POST":
        form = ScenarioForm(request.POST, segments=segments)
        steps = StepFormSet(request.POST, prefix="steps", form_kwargs=_step_kwargs(membership))
    else:
        existing = list(scenario.steps) if scenario else []
        form = ScenarioForm(initial=ScenarioForm.initial_for(scenario) if scenario else None, segments=segments)
        steps = StepFormSet(prefix="steps", form_kwargs=_step_kwargs(membership),
                            initial=[StepFormSet.form.initial_for(step) for step in existing]
                            + [{} for _ in range(BLANK_STEP_ROWS if existing else BLANK_STEP_ROWS + 1)])
    if request.method == "POST" and form.is_valid() and steps.is_valid():
        rows = [(index, step_form.step()) for index, step_form in enumerate(steps.forms)]
        rows = [(index, step) for index, step in rows if step is not None]
        try:
            config = scenario_trigger_clean(form.cleaned_data["trigger_type"], form.trigger_config(),
                                            workspace=workspace)
        except ApplicationError as error:
            apply_service_error(form, error, ScenarioForm.SERVICE_FIELDS)
        try:
            clean_steps = scenario_steps_clean(workspace, [step for _, step in rows])
        except ApplicationError as error:
            _step_error(form, steps, rows, error)
        if not form.errors and not any(f.errors for f in steps.forms) and not steps.non_form_errors():
            data = form.cleaned_data
            if scenario is None:
                scenario = services.scenario_create(
                    workspace=workspace, name=data["name"], trigger_type=data["trigger_type"], trigger_config=config,
                    steps=clean_steps, enabled=data["enabled"])
                messages.success(request, f"“{scenario.name}” is saved and {'on' if scenario.enabled else 'off'}.")
            else:
                services.scenario_update(scenario=scenario, name=data["name"], trigger_type=data["trigger_type"],
                                         trigger_config=config, steps=clean_steps, enabled=data["enabled"])
                messages.success(request, f"“{scenario.name}” is saved. Runs under way go on from the step they "
                                          "are at.")
            return redirect("scenario", workspace_id=membership.workspace_id, scenario_id=scenario.pk)
    invalid = bool(form.errors or any(f.errors for f in steps.forms))
    return render_workspace(request, membership, "automations/scenario_form.html", {
        "section": "scenarios", "form": form, "steps": steps, "scenario": scenario,
    }, status=400 if invalid else 200)


def _step_error(form: ScenarioForm, steps, rows: list[tuple[int, dict]], error: ApplicationError) -> None:
    """The engine names a step by its place among the non-empty rows (steps.2.text): put the message
    under that row's input."""
    for key, messages_ in (error.fields or {}).items():
        parts = key.split(".")
        if parts[0] != "steps":
            continue
        if len(parts) == 1:  # about the list itself, e.g. no step at all
            form.add_error(None, " ".join(messages_))
            return
        position = int(parts[1])
        row = steps.forms[rows[position][0]] if position < len(rows) else None
        if row is None:
            form.add_error(None, error.message)
            return
        name = STEP_SERVICE_FIELDS.get(parts[2], "type") if len(parts) > 2 else "type"
        for message in messages_:
            row.add_error(name, message)
        return
    form.add_error(None, error.message)


@workspace_view
def scenario_new(request: HttpRequest, membership: Membership) -> HttpResponse:
    _require_manager(membership, "create scenarios")
    return _scenario_build(request, membership, None)


@workspace_view
def scenario_edit(request: HttpRequest, membership: Membership, scenario_id: int) -> HttpResponse:
    _require_manager(membership, "edit scenarios")
    return _scenario_build(request, membership, _scenario_or_404(membership, scenario_id))


def _step_words(step: dict, segments: dict[int, str], integrations: dict[int, str]) -> tuple[str, str]:
    """A step as a person reads it: what it does, and with what."""
    kind = step["type"]
    if kind == "send_message":
        return STEP_LABELS[kind], step["text"]
    if kind == "ask_question":
        field = step["field"].removeprefix("custom:")
        return STEP_LABELS[kind], f"{step['text']} (answer: {step['answer_type']}, stored in {field})"
    if kind == "add_tag":
        return STEP_LABELS[kind], step["tag"]
    if kind == "add_to_segment":
        return STEP_LABELS[kind], segments.get(step["segment_id"], "a deleted segment")
    if kind == "wait":
        seconds = step["seconds"]
        unit = next((u for u in ("days", "hours", "minutes") if seconds % WAIT_UNITS[u] == 0), None)
        amount = seconds // WAIT_UNITS[unit] if unit else seconds
        unit = unit or "seconds"
        return STEP_LABELS[kind], f"{amount} {unit if amount != 1 else unit[:-1]}"
    return STEP_LABELS[kind], integrations.get(step["integration_id"], "a deleted integration")


def _trigger_words(scenario: Scenario) -> str:
    config = scenario.trigger_config or {}
    keywords = ", ".join(f"“{k}”" for k in config.get("keywords", []))
    how = "the whole message is " if config.get("exact") else ("all of " if config.get("match") == "all" else "any of ")
    if scenario.trigger_type == Scenario.Trigger.DM_KEYWORD:
        return f"A direct message where {how}{keywords}."
    if scenario.trigger_type == Scenario.Trigger.COMMENT:
        where = f"post {config['media_id']}" if config.get("media_id") else "any post"
        return f"A comment on {where}" + (f" with {how}{keywords}." if keywords else ".")
    if scenario.trigger_type == Scenario.Trigger.STORY:
        events = config.get("events") or ["story_reply", "story_mention"]
        return "; ".join(STORY_EVENT_LABELS[e] for e in events) + "."
    if scenario.trigger_type == Scenario.Trigger.AD_REFERRAL:
        return f"A click on ad {config['ad_id']}." if config.get("ad_id") else "A click on any click-to-DM ad."
    if scenario.trigger_type == Scenario.Trigger.NEW_CONTACT:
        return "A contact's first message, comment or mention."
    if scenario.trigger_type == Scenario.Trigger.NEXT_MESSAGE:
        segment = Segment.objects.filter(pk=config.get("segment_id"), workspace_id=scenario.workspace_id).first()
        return (f"The next message of each contact in the segment “{segment.name if segment else 'deleted'}” "
                "(once per contact).")
    return "An outside system posting to this scenario's hook with its secret."


@workspace_view
def scenario_page(request: HttpRequest, membership: Membership, scenario_id: int) -> HttpResponse:
    scenario = _scenario_or_404(membership, scenario_id)
    runs = Paginator(selectors.scenario_run_list(scenario=scenario), PAGE_SIZE).get_page(request.GET.get("page"))
    segments = dict(Segment.objects.filter(workspace=membership.workspace).values_list("pk", "name"))
    integrations = dict(Integration.objects.filter(workspace=membership.workspace).values_list("pk", "name"))
    return render_workspace(request, membership, "automations/scenario.html", {
        "section": "scenarios", "scenario": scenario, "runs": runs, "trigger_words": _trigger_words(scenario),
        "steps": [_step_words(step, segments, integrations) for step in scenario.steps or []],
        "hook_url": request.build_absolute_uri(reverse("scenario_webhook", kwargs={"scenario_id": scenario.pk})),
    })


@require_POST
@workspace_view
def scenario_toggle(request: HttpRequest, membership: Membership, scenario_id: int) -> HttpResponse:
    _require_manager(membership, "turn scenarios on and off")
    scenario = _scenario_or_404(membership, scenario_id)
    enabled = request.POST.get("enabled") == "1"
    services.scenario_set_enabled(scenario=scenario, enabled=enabled)
    messages.success(request, f"“{scenario.name}” is {'on: it starts runs' if enabled else 'off: it starts no run'}"
                              f"{'' if enabled else ' (runs under way go on)'}.")
    return redirect(request.POST.get("next") == "list" and reverse("scenarios", kwargs={
        "workspace_id": membership.workspace_id}) or reverse("scenario", kwargs={
            "workspace_id": membership.workspace_id, "scenario_id": scenario.pk}))


# --- Segments -------------------------------------------------------------------------------------


@workspace_view
def segments_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    return render_workspace(request, membership, "automations/segments.html", {
        "section": "segments", "segments": selectors.segment_list(workspace=membership.workspace),
        **_paused(membership, (AutomationKind.SEGMENTATION, AutomationKind.ENRICHMENT)),
    })


def _segment_or_404(membership: Membership, segment_id: int) -> Segment:
    segment = selectors.segment_get(workspace=membership.workspace, segment_id=segment_id)
    if segment is None:
        raise Http404("No such segment.")
    return segment


def _segment_save(request: HttpRequest, membership: Membership, segment: Segment | None, form: SegmentForm):
    data = form.cleaned_data
    try:
        if segment is None:
            segment = services.segment_create(workspace=membership.workspace, name=data["name"], rules=form.rules())
        else:
            segment = services.segment_update(segment=segment, name=data["name"], rules=form.rules())
        if segment.run_every != data["run_every"]:
            services.segment_schedule_set(segment=segment, run_every=data["run_every"])
    except ApplicationError as error:
        apply_service_error(form, error, SegmentForm.SERVICE_FIELDS)
        return None
    return segment


@workspace_view
def segment_new(request: HttpRequest, membership: Membership) -> HttpResponse:
    _require_manager(membership, "create segments")
    form = SegmentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        segment = _segment_save(request, membership, None, form)
        if segment is not None:
            messages.success(request, f"“{segment.name}” is saved: {services.segment_size(segment=segment):,} "
                                      "contacts match now. Counting is free; a run places them, through your quota.")
            return redirect("segment", workspace_id=membership.workspace_id, segment_id=segment.pk)
    return render_workspace(request, membership, "automations/segment_form.html", {
        "section": "segments", "form": form, "segment": None,
    }, status=400 if form.errors else 200)


@workspace_view
def segment_page(request: HttpRequest, membership: Membership, segment_id: int) -> HttpResponse:
    """A segment: its rules and schedule (editable by owners and admins), a run now, enrichment jobs."""
    segment = _segment_or_404(membership, segment_id)
    form = SegmentForm(request.POST or None, initial=SegmentForm.initial_for(segment))
    if request.method == "POST":
        _require_manager(membership, "edit segments")
        if form.is_valid() and _segment_save(request, membership, segment, form) is not None:
            messages.success(request, f"“{segment.name}” is saved.")
            return redirect("segment", workspace_id=membership.workspace_id, segment_id=segment.pk)
    return render_workspace(request, membership, "automations/segment.html", {
        "section": "segments", "segment": segment, "form": form, "size": services.segment_size(segment=segment),
        "members": segment.memberships.count(),
        "jobs": list(selectors.enrichment_job_list(workspace=membership.workspace).filter(segment=segment)[:10]),
        "summary": billing_selectors.usage_summary(workspace=membership.workspace),
    }, status=400 if form.errors else 200)


@require_POST
@workspace_view
def segment_run_view(request: HttpRequest, membership: Membership, segment_id: int) -> HttpResponse:
    _require_manager(membership, "run segments")
    segment = services.segment_run_request(segment=_segment_or_404(membership, segment_id))
    messages.success(request, f"A segmentation run of “{segment.name}” has started: each contact it places uses "
                              "an activation unless already counted this month; those over your quota wait.")
    return redirect("segment", workspace_id=membership.workspace_id, segment_id=segment.pk)


@require_POST
@workspace_view
def segment_enrich_view(request: HttpRequest, membership: Membership, segment_id: int) -> HttpResponse:
    _require_manager(membership, "start enrichment jobs")
    segment = _segment_or_404(membership, segment_id)
    try:
        job = services.enrichment_job_for_segment(segment=segment, requested_by=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"An enrichment job on {len(job.contact_ids):,} contacts of “{segment.name}” has "
                                  "started: each contact enriched uses an activation unless already counted this "
                                  "month; those over your quota wait.")
    return redirect("segment", workspace_id=membership.workspace_id, segment_id=segment.pk)


# --- Integrations ---------------------------------------------------------------------------------


@workspace_view
def integrations_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = IntegrationForm(request.POST or None)
    if request.method == "POST":
        _require_manager(membership, "add integrations")
        if form.is_valid():
            try:
                integration = services.integration_create(workspace=membership.workspace,
                                                          name=form.cleaned_data["name"], url=form.cleaned_data["url"])
            except ApplicationError as error:
                apply_service_error(form, error)
            else:
                if not form.cleaned_data["enabled"]:
                    services.integration_update(integration=integration, enabled=False)
                messages.success(request, f"“{integration.name}” is added. Give its secret to the receiver so it "
                                          "can check each push's signature.")
                return redirect("integration", workspace_id=membership.workspace_id, integration_id=integration.pk)
    integrations = selectors.integration_list(workspace=membership.workspace).annotate(
        delivered=Count("deliveries", filter=Q(deliveries__status="delivered")),
        failed=Count("deliveries", filter=Q(deliveries__status="failed")),
    )
    return render_workspace(request, membership, "automations/integrations.html", {
        "section": "integrations", "integrations": integrations, "form": form,
        **_paused(membership, (AutomationKind.INTEGRATION,)),
    }, status=400 if form.errors else 200)


def _integration_or_404(membership: Membership, integration_id: int) -> Integration:
    integration = selectors.integration_get(workspace=membership.workspace, integration_id=integration_id)
    if integration is None:
        raise Http404("No such integration.")
    return integration


@workspace_view
def integration_page(request: HttpRequest, membership: Membership, integration_id: int) -> HttpResponse:
    integration = _integration_or_404(membership, integration_id)
    form = IntegrationForm(request.POST or None, initial={"name": integration.name, "url": integration.url,
                                                          "enabled": integration.enabled})
    if request.method == "POST":
        _require_manager(membership, "edit integrations")
        if form.is_valid():
            try:
                services.integration_update(integration=integration, **form.cleaned_data)
            except ApplicationError as error:
                apply_service_error(form, error)
            else:
                messages.success(request, f"“{integration.name}” is saved.")
                return redirect("integration", workspace_id=membership.workspace_id, integration_id=integration.pk)
    return render_workspace(request, membership, "automations/integration.html", {
        "section": "integrations", "integration": integration, "form": form,
        "deliveries": list(integration.deliveries.select_related("contact")[:20]),
    }, status=400 if form.errors else 200)


@require_POST
@workspace_view
def integration_secret_view(request: HttpRequest, membership: Membership, integration_id: int) -> HttpResponse:
    _require_manager(membership, "change integration secrets")
    integration = services.integration_update(integration=_integration_or_404(membership, integration_id),
                                              new_secret=True)
    messages.success(request, f"“{integration.name}” has a new secret: pushes are signed with it from now on.")
    return redirect("integration", workspace_id=membership.workspace_id, integration_id=integration.pk)
