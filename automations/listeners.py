"""Listeners automations registers on billing's and contacts' hook points (see AutomationsConfig.ready).

They run after the caller's transaction has committed, so they only queue work.
"""

import datetime
import logging

from automations.models import PausedAction
from contacts.hooks import InboundEvent

logger = logging.getLogger(__name__)

RESUME_FANOUT_CHUNK = 200


def headroom_raised(*, workspace_id: int, month: datetime.date) -> None:
    """Quota rose (upgrade, pack, bonus): resume this workspace's paused actions at once (rule 5)."""
    from automations import tasks  # noqa: PLC0415

    if PausedAction.objects.filter(workspace_id=workspace_id, status=PausedAction.Status.WAITING).exists():
        tasks.paused_actions_resume.delay(workspace_id)


def month_opened(*, month: datetime.date) -> None:
    """A new month: every workspace with waiting actions has headroom again (rules 5, 11)."""
    from automations import tasks  # noqa: PLC0415
    from automations.services.paused import workspaces_with_waiting_actions  # noqa: PLC0415

    ids = workspaces_with_waiting_actions()
    for start in range(0, len(ids), RESUME_FANOUT_CHUNK):
        tasks.paused_actions_resume_many.delay(ids[start : start + RESUME_FANOUT_CHUNK])


def inbound_event(event: InboundEvent) -> None:
    """An Instagram event was captured: answer open questions, start matching scenarios."""
    from automations.services.scenarios import inbound_event_handle  # noqa: PLC0415

    try:
        inbound_event_handle(event)
    except Exception:
        # The event is already captured (after commit); a scenario bug must not fail intake's task.
        logger.exception("scenarios for event %s of contact %s failed", event.meta_id, event.contact_id)


def instagram_connected(*, workspace_id: int) -> None:
    """The workspace (re)connected its Instagram account: messages paused as "Instagram disconnected"
    resume at once (window permitting, through the gate as any paused action)."""
    from automations import tasks  # noqa: PLC0415

    if PausedAction.objects.filter(workspace_id=workspace_id, status=PausedAction.Status.WAITING).exists():
        tasks.paused_actions_resume.delay(workspace_id)
