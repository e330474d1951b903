"""Paused actions (rules 3 to 5): what the gate refused at the quota, kept whole to run later.

The low-level half every automation calls: keep refused actions, cancel them, list the workspaces
with some waiting. It imports no automation; resuming (which runs each automation's action) is
automations.services.resume, above them all.
"""

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from accounts.models import Workspace
from automations import enqueue
from automations.models import PausedAction
from contacts.instagram_connection import DISCONNECTED_REASON
from contacts.messaging import messaging_window_closes_at
from contacts.models import Contact

# Actions that send a message: they wait while the workspace's Instagram connection is broken.
MESSAGE_ACTIONS = (PausedAction.ActionType.CAMPAIGN_MESSAGE, PausedAction.ActionType.SCENARIO_RUN)


@dataclass(frozen=True, slots=True)
class PauseItem:
    contact: Contact
    dedupe_key: str
    payload: dict


def paused_actions_create(
    *,
    workspace: Workspace,
    kind: str,
    automation_ref: str,
    action_type: str,
    items: list[PauseItem],
    needs_window: bool,
    private_reply: bool = False,
    now: datetime.datetime | None = None,
    reason: str = "",
) -> int:
    """Keep refused actions (rule 4). The same action for the same contact is kept once.

    `reason` DISCONNECTED_REASON: kept because the workspace's Instagram connection is broken, not
    refused by the gate; an earlier row of the same action (resumed, then stopped by the break) waits
    again.
    """
    if not items:
        return 0
    now = now or timezone.now()
    if reason == DISCONNECTED_REASON:
        PausedAction.objects.filter(
            workspace=workspace, dedupe_key__in=[item.dedupe_key for item in items], status=PausedAction.Status.RESUMED
        ).update(status=PausedAction.Status.WAITING, resolved_at=None, reason=reason)
    rows = [
        PausedAction(
            workspace=workspace, contact=item.contact, kind=kind, automation_ref=automation_ref,
            action_type=action_type, dedupe_key=item.dedupe_key, created_at=now,
            payload={**item.payload, "needs_window": needs_window, "private_reply": private_reply},
            expires_at=messaging_window_closes_at(item.contact, private_reply=private_reply) if needs_window else None,
            reason=reason,
        )
        for item in items
    ]
    return len(PausedAction.objects.bulk_create(rows, ignore_conflicts=True))


def paused_action_cancel(*, paused_action: PausedAction, now: datetime.datetime | None = None) -> bool:
    """Cancel one waiting action; False if it had already resumed, expired or been cancelled."""
    return bool(
        PausedAction.objects.filter(pk=paused_action.pk, status=PausedAction.Status.WAITING).update(
            status=PausedAction.Status.CANCELLED, resolved_at=now or timezone.now(), reason="cancelled"
        )
    )


def paused_actions_cancel(
    *, workspace: Workspace, automation_ref: str | None = None, now: datetime.datetime | None = None
) -> int:
    """Cancel every waiting action of a workspace (or of one automation); returns how many."""
    actions = PausedAction.objects.filter(workspace=workspace, status=PausedAction.Status.WAITING)
    if automation_ref is not None:
        actions = actions.filter(automation_ref=automation_ref)
    return actions.update(status=PausedAction.Status.CANCELLED, resolved_at=now or timezone.now(), reason="cancelled")


def workspaces_with_waiting_actions() -> list[int]:
    return list(
        PausedAction.objects.filter(status=PausedAction.Status.WAITING)
        .values_list("workspace_id", flat=True)
        .distinct()
        .order_by("workspace_id")
    )


def paused_actions_resume_queue(*, workspace_ids: list[int]) -> int:
    """Queue the resume of these workspaces' waiting actions (after the caller's commit); never run
    here: a resume sends messages, which no request or webhook should wait for. Returns how many."""
    ids = sorted(set(workspace_ids))
    for workspace_id in ids:
        transaction.on_commit(lambda workspace_id=workspace_id: enqueue.paused_actions_resume(workspace_id))
    return len(ids)
