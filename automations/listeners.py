"""Listeners automations registers on billing's and contacts' hook points (see AutomationsConfig.ready).

They run after the caller's transaction has committed, so they only queue work.
"""

import datetime
import logging

from automations import enqueue
from automations.models import PausedAction
from automations.services.paused import workspaces_with_waiting_actions
from automations.services.scenarios import inbound_event_handle
from contacts.hooks import InboundEvent

logger = logging.getLogger(__name__)

RESUME_FANOUT_CHUNK = 200


def headroom_raised(*, workspace_id: int, month: datetime.date) -> None:
    """Quota rose (upgrade, pack, bonus): resume this workspace's paused actions at once (rule 5)."""
    if PausedAction.objects.filter(workspace_id=workspace_id, status=PausedAction.Status.WAITING).exists():
        enqueue.paused_actions_resume(workspace_id)


def month_opened(*, month: datetime.date) -> None:
    """A new month: every workspace with waiting actions has headroom again (rules 5, 11)."""
    ids = workspaces_with_waiting_actions()
    for start in range(0, len(ids), RESUME_FANOUT_CHUNK):
        enqueue.paused_actions_resume_many(ids[start : start + RESUME_FANOUT_CHUNK])


def inbound_event(event: InboundEvent) -> None:
    """An Instagram event was captured: answer open questions, start matching scenarios."""
    try:
        inbound_event_handle(event)
    except Exception:
        # The event is already captured (after commit); a scenario bug must not fail intake's task.
        logger.exception("scenarios for event %s of contact %s failed", event.meta_id, event.contact_id)


def instagram_connected(*, workspace_id: int) -> None:
    """The workspace (re)connected its Instagram account: messages paused as "Instagram disconnected"
    resume at once (window permitting, through the gate as any paused action)."""
    if PausedAction.objects.filter(workspace_id=workspace_id, status=PausedAction.Status.WAITING).exists():
        enqueue.paused_actions_resume(workspace_id)
