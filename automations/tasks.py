"""Automations' Celery tasks: take ids, call one service, safe to run twice."""

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from accounts.models import Workspace
from automations import enqueue, services
from automations.models import Campaign, EnrichmentJob, Segment
from automations.services import alerts, integrations, scenarios, segments
from automations.services.campaign_fanout import CampaignBusy, campaign_turn_seconds, campaigns_resume_stalled
from automations.services.resume import paused_actions_resume_due

logger = logging.getLogger(__name__)

INTEGRATION_MAX_RETRIES = 6


@shared_task(name=enqueue.PAUSED_ACTIONS_RESUME)
def paused_actions_resume(workspace_id: int) -> int:
    workspace = Workspace.objects.filter(pk=workspace_id, deleted_at__isnull=True).first()
    if workspace is None:
        return 0
    return services.paused_actions_resume(workspace=workspace).resumed


@shared_task(name=enqueue.PAUSED_ACTIONS_RESUME_MANY)
def paused_actions_resume_many(workspace_ids: list[int]) -> int:
    """The new month: every workspace with waiting actions, one after the other."""
    resumed = 0
    for workspace in Workspace.objects.filter(pk__in=workspace_ids, deleted_at__isnull=True).order_by("pk"):
        try:
            resumed += services.paused_actions_resume(workspace=workspace).resumed
        except Exception:  # one workspace's failure must not hold back the others
            logger.exception("resuming paused actions of workspace %s failed", workspace.pk)
    return resumed


CAMPAIGN_DB_RETRIES = 8


@shared_task(bind=True, name=enqueue.CAMPAIGN_SEND, max_retries=None)
def campaign_send(self, campaign_id: int) -> None:
    # Inline (eager), the campaign is sent whole; on a worker it sends for its turn, then goes to the
    # back of the queue while batches are left, so many workspaces' broadcasts take turns.
    turn = None if self.request.is_eager else campaign_turn_seconds(campaign_id=campaign_id)
    try:
        campaign = services.campaign_send(campaign_id=campaign_id, turn_seconds=turn)
    except CampaignBusy:
        if self.request.is_eager:
            return  # inline: the worker holding the campaign finishes it
        # A redelivery while the first worker still sends: come back when it is done (or dead).
        raise self.retry(countdown=60) from None
    except (OperationalError, InterfaceError) as error:
        # The database went away mid-fan-out (restart, failover): retry with backoff; the fan-out picks
        # up the batches not done and finds earlier sends by their idempotency keys.
        if self.request.retries >= CAMPAIGN_DB_RETRIES:
            raise
        raise self.retry(exc=error, countdown=min(2 ** (self.request.retries + 1), 300)) from None
    if turn is not None and campaign.status == Campaign.Status.SENDING:
        enqueue.campaign_send(campaign_id)  # its next turn, behind the work queued meanwhile


@shared_task(name=enqueue.CAMPAIGNS_LAUNCH_DUE)
def campaigns_launch_due() -> list[int]:
    """Every minute: start due scheduled campaigns, and restart the ones a dead worker left stalled."""
    campaigns_resume_stalled()
    paused_actions_resume_due()
    return services.campaigns_launch_due()


@shared_task(bind=True, name=enqueue.SCENARIO_RUN_EXECUTE, max_retries=None)
def scenario_run_execute(self, run_id: int) -> None:
    try:
        scenarios.scenario_run_execute(run_id=run_id)
    except scenarios.ScenarioRunBusy:
        if self.request.is_eager:
            return  # inline: the caller holding the run finishes it
        raise self.retry(countdown=60) from None


@shared_task(name=enqueue.SCENARIO_RUN_CONTINUE)
def scenario_run_continue(run_id: int, step: int) -> None:
    scenarios.scenario_run_continue(run_id=run_id, step=step)


@shared_task(name=enqueue.ENRICHMENT_JOB_RUN)
def enrichment_job_run(job_id: int) -> None:
    job = EnrichmentJob.objects.select_related("workspace").get(pk=job_id)
    services.enrichment_job_run(job=job)


@shared_task(bind=True, name=enqueue.INTEGRATION_DELIVER, max_retries=INTEGRATION_MAX_RETRIES)
def integration_deliver(self, delivery_id: int) -> str:
    outcome = integrations.integration_delivery_attempt(delivery_id=delivery_id)
    if outcome != "retry":
        return outcome
    if self.request.retries >= self.max_retries:
        integrations.integration_delivery_give_up(delivery_id=delivery_id)
        return "failed"
    if self.request.is_eager:
        # Inline (tests, CELERY_TASK_ALWAYS_EAGER): eager-propagate would surface Retry as an error;
        # run the next attempt in place, as Celery's eager apply itself does without propagation.
        return integration_deliver.apply(args=[delivery_id], retries=self.request.retries + 1).result
    # Exponential backoff: 30 s, 1 min, 2 min, ... capped at an hour.
    raise self.retry(countdown=min(30 * 2**self.request.retries, 3600))


@shared_task(name=enqueue.USAGE_ALERT_SEND)
def usage_alert_send(alert_id: int) -> bool:
    return alerts.usage_alert_send(alert_id=alert_id)


@shared_task(name=enqueue.USAGE_ALERTS_RETRY)
def usage_alerts_retry() -> int:
    """Periodic: send again the alert emails that failed (sent_at still empty)."""
    return sum(alerts.usage_alert_send(alert_id=alert_id) for alert_id in alerts.usage_alerts_unsent_ids())


@shared_task(name=enqueue.SEGMENT_RUN)
def segment_run(segment_id: int) -> list[int]:
    """One segmentation run: place the contacts the rules select, through the gate."""
    segment = Segment.objects.select_related("workspace").filter(
        pk=segment_id, workspace__deleted_at__isnull=True).first()
    if segment is None:
        return [0, 0]
    return list(segments.segment_run(segment=segment))


@shared_task(name=enqueue.SEGMENTS_RUN_DUE)
def segments_run_due() -> list[int]:
    """Every minute: start the segmentation runs whose schedule has come."""
    return segments.segments_run_due()
