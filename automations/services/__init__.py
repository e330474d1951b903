"""Automation writes, one module per automation; import from here."""

from automations.services.alerts import usage_alert_send, usage_alerts_check
from automations.services.campaign_fanout import campaign_send
from automations.services.campaigns import (
    CampaignPreview,
    campaign_audience,
    campaign_cancel,
    campaign_create,
    campaign_launch,
    campaign_preview,
    campaigns_launch_due,
)
from automations.services.enrichment import enrichment_job_create, enrichment_job_for_segment, enrichment_job_run
from automations.services.integrations import integration_create, integration_push, integration_update
from automations.services.paused import paused_action_cancel, paused_actions_cancel, paused_actions_resume_queue
from automations.services.resume import ResumeResult, paused_actions_resume
from automations.services.scenarios import (
    inbound_event_handle,
    scenario_create,
    scenario_run_execute,
    scenario_set_enabled,
    scenario_start,
    scenario_update,
    scenario_webhook_fire,
)
from automations.services.segments import (
    segment_create,
    segment_run,
    segment_run_request,
    segment_schedule_set,
    segment_size,
    segment_update,
    segments_run_due,
)

__all__ = [
    "CampaignPreview", "ResumeResult", "campaign_audience", "campaign_cancel", "campaign_create", "campaign_launch",
    "campaign_preview", "campaign_send", "campaigns_launch_due", "enrichment_job_create", "enrichment_job_for_segment",
    "enrichment_job_run", "integration_update", "scenario_update", "segment_run_request", "segment_schedule_set",
    "segments_run_due",
    "inbound_event_handle", "integration_create", "integration_push", "paused_action_cancel",
    "paused_actions_cancel", "paused_actions_resume", "paused_actions_resume_queue", "scenario_create",
    "scenario_run_execute",
    "scenario_set_enabled", "scenario_start", "scenario_webhook_fire", "segment_create", "segment_run",
    "segment_size", "segment_update", "usage_alert_send", "usage_alerts_check",
]
