"""Paused actions (rules 3 to 5): what the gate refused at the quota, kept whole, resumed oldest first.

Resuming claims a chunk of waiting rows under a row lock (SKIP LOCKED, so two resumers never take
the same row), expires those whose messaging window has closed, asks the gate for the rest in the
order they were paused, and marks the allowed ones resumed in the same transaction. Only then, with
no transaction open, does it run them: a row is resumed once, so its action runs at most once, and
every action is itself idempotent (send-once keys, unique memberships) should a worker die mid-way.
"""

import datetime
import logging
from dataclasses import dataclass
from itertools import groupby

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Workspace
from automations.models import PausedAction
from billing.activation import activate_many
from billing.models import AutomationKind
from contacts.instagram import DISCONNECTED_REASON, sending_blocked
from contacts.messaging import DISCONNECTED, messaging_window_closes_at, window_is_open
from contacts.models import Contact

logger = logging.getLogger(__name__)

RESUME_CHUNK = 500
WINDOW_CLOSED = "messaging_window_closed"
# Actions that send a message: they wait while the workspace's Instagram connection is broken.
MESSAGE_ACTIONS = (PausedAction.ActionType.CAMPAIGN_MESSAGE, PausedAction.ActionType.SCENARIO_RUN)


@dataclass(frozen=True, slots=True)
class PauseItem:
    contact: Contact
    dedupe_key: str
    payload: dict


@dataclass(frozen=True, slots=True)
class ResumeResult:
    resumed: int
    expired: int
    waiting: int


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


def _window_closed(action: PausedAction, now: datetime.datetime) -> bool:
    if not action.payload.get("needs_window"):
        return False
    # The contact may have written again since the pause: the window is read from them now.
    return not window_is_open(action.contact, private_reply=bool(action.payload.get("private_reply")), now=now)


def paused_actions_resume(*, workspace: Workspace, now: datetime.datetime | None = None) -> ResumeResult:
    """Run waiting actions, oldest first, up to the headroom; expire those whose window closed (rule 5)."""
    from automations.services.alerts import usage_alerts_check  # noqa: PLC0415

    now = now or timezone.now()
    workspace = Workspace.objects.get(pk=workspace.pk)  # the reserve as it is now
    blocked = sending_blocked(workspace_id=workspace.pk)
    resumed = expired = 0
    cursor: tuple[datetime.datetime, int] | None = None
    while True:
        with transaction.atomic():
            rows = PausedAction.objects.select_for_update(skip_locked=True, of=("self",)).select_related(
                "contact"
            ).filter(workspace=workspace, status=PausedAction.Status.WAITING)
            if blocked:
                # Messages wait for the Instagram account to be reconnected, before the gate.
                rows = rows.exclude(action_type__in=MESSAGE_ACTIONS)
            if cursor is not None:
                rows = rows.filter(Q(created_at__gt=cursor[0]) | Q(created_at=cursor[0], id__gt=cursor[1]))
            chunk = list(rows.order_by("created_at", "id")[:RESUME_CHUNK])
            if not chunk:
                break
            cursor = (chunk[-1].created_at, chunk[-1].pk)
            closed = [a.pk for a in chunk if _window_closed(a, now)]
            if closed:
                expired += PausedAction.objects.filter(pk__in=closed, status=PausedAction.Status.WAITING).update(
                    status=PausedAction.Status.EXPIRED, resolved_at=now, reason=WINDOW_CLOSED
                )
                _on_expired([a for a in chunk if a.pk in set(closed)], now=now)
            closed_set = set(closed)
            live = [a for a in chunk if a.pk not in closed_set]
            claimed: list[PausedAction] = []
            # Consecutive actions of one automation go to the gate together, keeping the oldest-first order.
            for (kind, ref), group in groupby(live, key=lambda a: (a.kind, a.automation_ref)):
                group = list(group)
                reserve = workspace.activation_reserve if kind == AutomationKind.CAMPAIGN else 0
                result = activate_many(workspace, [a.contact_id for a in group], kind=kind, ref=ref, reserve=reserve)
                allowed = set(result.allowed)
                claimed.extend(a for a in group if a.contact_id in allowed)
            if claimed:
                PausedAction.objects.filter(
                    pk__in=[a.pk for a in claimed], status=PausedAction.Status.WAITING
                ).update(status=PausedAction.Status.RESUMED, resolved_at=now)
        # The actions run after the claim has committed, with no transaction held across a send.
        for action in claimed:
            outcome = _run(action, now=now)
            if outcome == DISCONNECTED:
                # Meta rejected the token while this ran: it waits for the reconnect again.
                PausedAction.objects.filter(pk=action.pk).update(
                    status=PausedAction.Status.WAITING, resolved_at=None, reason=DISCONNECTED_REASON
                )
                continue
            PausedAction.objects.filter(pk=action.pk).update(reason=outcome[:64])
        resumed += len(claimed)
    waiting = PausedAction.objects.filter(workspace=workspace, status=PausedAction.Status.WAITING).count()
    if resumed:
        usage_alerts_check(workspace=workspace)
    logger.info("paused actions workspace=%s resumed=%s expired=%s waiting=%s", workspace.pk, resumed, expired, waiting)
    return ResumeResult(resumed=resumed, expired=expired, waiting=waiting)


def _on_expired(actions: list[PausedAction], *, now: datetime.datetime) -> None:
    """Let the automation that paused them record the end (recipient skipped, run expired)."""
    from automations.services import campaigns, scenarios  # noqa: PLC0415

    by_type = {t: [a for a in actions if a.action_type == t] for t in PausedAction.ActionType.values}
    if by_type[PausedAction.ActionType.CAMPAIGN_MESSAGE]:
        campaigns.campaign_recipients_expired(actions=by_type[PausedAction.ActionType.CAMPAIGN_MESSAGE], now=now)
    if by_type[PausedAction.ActionType.SCENARIO_RUN]:
        scenarios.scenario_runs_expired(actions=by_type[PausedAction.ActionType.SCENARIO_RUN], now=now)


def _run(action: PausedAction, *, now: datetime.datetime) -> str:
    from automations.services import campaigns, enrichment, integrations, scenarios, segments  # noqa: PLC0415

    runners = {
        PausedAction.ActionType.CAMPAIGN_MESSAGE: campaigns.campaign_recipient_resume,
        PausedAction.ActionType.SCENARIO_RUN: scenarios.scenario_run_resume,
        PausedAction.ActionType.SEGMENT_ADD: segments.segment_member_resume,
        PausedAction.ActionType.ENRICHMENT: enrichment.enrichment_contact_resume,
        PausedAction.ActionType.INTEGRATION_PUSH: integrations.integration_push_resume,
    }
    try:
        return runners[action.action_type](action=action, now=now)
    except Exception as error:  # one broken action must not stop the others
        logger.exception("paused action %s failed on resume", action.pk)
        return f"failed: {error}"


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


def paused_actions_resume_due() -> int:
    """Every minute: resume waiting actions of workspaces that have headroom this month.

    The hook resumes them at once after an upgrade, a pack or a bonus; this catches the cases where
    that task never ran (broker down when the webhook came in, worker killed). Cheap: only workspaces
    with waiting actions and a usage row below its quota are touched.
    """
    from billing.models import MonthlyUsage  # noqa: PLC0415
    from billing.months import month_of  # noqa: PLC0415

    waiting = workspaces_with_waiting_actions()
    with_headroom = MonthlyUsage.objects.filter(
        workspace_id__in=waiting, month=month_of(), activated__lt=F("quota")
    ).values_list("workspace_id", flat=True)
    resumed = 0
    for workspace in Workspace.objects.filter(pk__in=list(with_headroom), deleted_at__isnull=True).order_by("pk"):
        resumed += paused_actions_resume(workspace=workspace).resumed
    return resumed
