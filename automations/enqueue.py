"""Automations' Celery tasks by name: services and listeners queue work here, never through
automations.tasks (which calls the services). automations.tasks registers under these names."""

from inro.enqueue import registered_task

PAUSED_ACTIONS_RESUME = "automations.tasks.paused_actions_resume"
PAUSED_ACTIONS_RESUME_MANY = "automations.tasks.paused_actions_resume_many"
CAMPAIGN_SEND = "automations.tasks.campaign_send"
CAMPAIGNS_LAUNCH_DUE = "automations.tasks.campaigns_launch_due"
SCENARIO_RUN_EXECUTE = "automations.tasks.scenario_run_execute"
SCENARIO_RUN_CONTINUE = "automations.tasks.scenario_run_continue"
ENRICHMENT_JOB_RUN = "automations.tasks.enrichment_job_run"
INTEGRATION_DELIVER = "automations.tasks.integration_deliver"
USAGE_ALERT_SEND = "automations.tasks.usage_alert_send"
USAGE_ALERTS_RETRY = "automations.tasks.usage_alerts_retry"
SEGMENT_RUN = "automations.tasks.segment_run"
SEGMENTS_RUN_DUE = "automations.tasks.segments_run_due"


def paused_actions_resume(workspace_id: int) -> None:
    registered_task(PAUSED_ACTIONS_RESUME).delay(workspace_id)


def paused_actions_resume_many(workspace_ids: list[int]) -> None:
    registered_task(PAUSED_ACTIONS_RESUME_MANY).delay(workspace_ids)


def campaign_send(campaign_id: int) -> None:
    registered_task(CAMPAIGN_SEND).delay(campaign_id)


def scenario_run_execute(run_id: int) -> None:
    registered_task(SCENARIO_RUN_EXECUTE).delay(run_id)


def scenario_run_continue(run_id: int, step: int, *, countdown: float) -> None:
    registered_task(SCENARIO_RUN_CONTINUE).apply_async(args=[run_id, step], countdown=countdown)


def enrichment_job_run(job_id: int) -> None:
    registered_task(ENRICHMENT_JOB_RUN).delay(job_id)


def integration_deliver(delivery_id: int) -> None:
    registered_task(INTEGRATION_DELIVER).delay(delivery_id)


def usage_alert_send(alert_id: int) -> None:
    registered_task(USAGE_ALERT_SEND).delay(alert_id)


def segment_run(segment_id: int) -> None:
    registered_task(SEGMENT_RUN).delay(segment_id)
