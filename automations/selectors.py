"""Automation reads for the usage page, the API and the admin (one source for every surface)."""

import datetime
from dataclasses import dataclass

from django.db.models import Count, Min, Q, QuerySet

from accounts.models import Workspace
from automations.models import (
    Campaign,
    CampaignBatch,
    CampaignRecipient,
    EnrichmentJob,
    Integration,
    PausedAction,
    Scenario,
    ScenarioRun,
    Segment,
    UsageAlert,
)
from automations.services.paused import MESSAGE_ACTIONS
from automations.services.segments import segment_size
from billing.months import month_of
from contacts.models import Contact


def campaign_list(*, workspace: Workspace) -> QuerySet[Campaign]:
    """Campaigns newest first; counters are columns kept exact by the fan-out."""
    return (Campaign.objects.filter(workspace=workspace).select_related("segment", "folder")
            .order_by("-created_at", "-id"))


def campaign_get(*, workspace: Workspace, campaign_id: int) -> Campaign | None:
    return Campaign.objects.filter(workspace=workspace, pk=campaign_id).first()


def campaign_recipient_list(*, campaign: Campaign, status: str | None = None) -> QuerySet[CampaignRecipient]:
    rows = campaign.recipients.select_related("contact")
    return rows.filter(status=status) if status else rows.order_by("rank")


def campaign_remaining(*, campaign: Campaign) -> int:
    """Contacts of the frozen audience still to be reached: in a batch not done, with no recipient row
    yet, and not deleted since the launch."""
    # Rows frozen pending by the release before automations 0007, not yet turned into batches.
    remaining = CampaignRecipient.objects.filter(campaign=campaign, status=CampaignRecipient.Status.PENDING).count()
    for contact_ids in CampaignBatch.objects.filter(campaign=campaign, done_at__isnull=True).values_list(
            "contact_ids", flat=True):
        reached = CampaignRecipient.objects.filter(campaign=campaign, contact_id__in=contact_ids)
        remaining += Contact.objects.filter(pk__in=contact_ids).exclude(
            pk__in=reached.values("contact_id")).count()
    return remaining


def scenario_list(*, workspace: Workspace) -> QuerySet[Scenario]:
    Status = ScenarioRun.Status
    return Scenario.objects.filter(workspace=workspace).annotate(
        runs_total=Count("runs"),
        runs_completed=Count("runs", filter=Q(runs__status=Status.COMPLETED)),
        runs_limited=Count("runs", filter=Q(runs__status=Status.LIMITED)),
        runs_waiting=Count("runs", filter=Q(runs__status__in=[Status.WAITING, Status.WAITING_ANSWER])),
    ).order_by("name", "id")


def scenario_run_list(*, scenario: Scenario) -> QuerySet[ScenarioRun]:
    return scenario.runs.select_related("contact").prefetch_related("step_logs").order_by("-started_at", "-id")


def paused_action_list(
    *, workspace: Workspace, status: str | None = PausedAction.Status.WAITING
) -> QuerySet[PausedAction]:
    actions = PausedAction.objects.filter(workspace=workspace).select_related("contact")
    if status:
        actions = actions.filter(status=status)
    return actions.order_by("created_at", "id")


def paused_actions_waiting_count(workspace: Workspace) -> int:
    return PausedAction.objects.filter(workspace=workspace, status=PausedAction.Status.WAITING).count()


def paused_actions_by_automation(*, workspace: Workspace) -> list[tuple[str, str, int]]:
    """(kind, automation_ref, waiting) per automation, most waiting first."""
    return list(
        PausedAction.objects.filter(workspace=workspace, status=PausedAction.Status.WAITING)
        .values_list("kind", "automation_ref")
        .annotate(n=Count("id"))
        .order_by("-n", "automation_ref")
    )


@dataclass(frozen=True, slots=True)
class PausedGroup:
    kind: str
    automation_ref: str
    waiting: int
    messages: int  # campaign messages and other sends, which wait for the Instagram connection
    expiring: int  # those whose messaging window closes before `before`: they expire unless room comes first
    next_expiry: datetime.datetime | None


def paused_actions_grouped(*, workspace: Workspace, before: datetime.datetime) -> list[PausedGroup]:
    """The waiting actions per automation, most waiting first, with how many expire before `before`
    (the quota's reset): one grouped query."""
    rows = (
        PausedAction.objects.filter(workspace=workspace, status=PausedAction.Status.WAITING)
        .values_list("kind", "automation_ref")
        .annotate(
            n=Count("id"),
            messages=Count("id", filter=Q(action_type__in=MESSAGE_ACTIONS)),
            expiring=Count("id", filter=Q(expires_at__lt=before)),
            next_expiry=Min("expires_at"),
        )
        .order_by("-n", "automation_ref")
    )
    return [PausedGroup(kind=kind, automation_ref=ref, waiting=n, messages=messages, expiring=expiring,
                        next_expiry=next_expiry) for kind, ref, n, messages, expiring, next_expiry in rows]


@dataclass(frozen=True, slots=True)
class SegmentSummary:
    segment: Segment
    size: int


def segment_list(*, workspace: Workspace) -> list[SegmentSummary]:
    """Segments with their size (a count per segment: rules differ; counting is free)."""
    return [SegmentSummary(segment=s, size=segment_size(segment=s))
            for s in Segment.objects.filter(workspace=workspace).order_by("name", "id")]


def usage_alerts_active(workspace: Workspace) -> list[UsageAlert]:
    """This month's alerts (80 and/or 100), for the usage page banner and the API."""
    return list(UsageAlert.objects.filter(workspace=workspace, month=month_of()).order_by("threshold"))


def segment_get(*, workspace: Workspace, segment_id: int) -> Segment | None:
    return Segment.objects.filter(workspace=workspace, pk=segment_id).first()


def scenario_get(*, workspace: Workspace, scenario_id: int) -> Scenario | None:
    """One scenario with the run counters of `scenario_list`."""
    return scenario_list(workspace=workspace).filter(pk=scenario_id).first()


def enrichment_job_list(*, workspace: Workspace) -> QuerySet[EnrichmentJob]:
    return EnrichmentJob.objects.filter(workspace=workspace).order_by("-created_at", "-id")


def integration_list(*, workspace: Workspace) -> QuerySet[Integration]:
    return Integration.objects.filter(workspace=workspace).order_by("name", "id")


def integration_get(*, workspace: Workspace, integration_id: int) -> Integration | None:
    return Integration.objects.filter(workspace=workspace, pk=integration_id).first()
