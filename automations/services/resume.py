"""Resuming paused actions (rule 5): oldest first, up to the headroom, each by the automation that paused it.

Paused messages of campaigns marked critical go first (rule 16), then every other action, oldest
first. The gate grants each resumed action a reservation (rule 13) that its outcome confirms or
releases here, or that it hands on (a scenario run, an integration delivery) to be settled there.

Resuming claims a chunk of waiting rows under a row lock (SKIP LOCKED, so two resumers never take
the same row), expires those whose messaging window has closed, asks the gate for the rest in the
order they were paused, and marks the allowed ones resumed in the same transaction. Only then, with
no transaction open, does it run them: a row is resumed once, so its action runs at most once, and
every action is itself idempotent (send-once keys, unique memberships) should a worker die mid-way.

This dispatcher sits above every automation (it calls each one's resume); the automations pause
through automations.services.paused, which imports none of them.
"""

import datetime
import logging
from dataclasses import dataclass
from itertools import groupby

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Workspace
from automations.models import Campaign, PausedAction
from automations.services import campaign_fanout, enrichment, integrations, scenarios, segments
from automations.services.alerts import usage_alerts_check
from automations.services.engagement import ENGAGED_OUTCOMES, outcome_settle
from automations.services.paused import MESSAGE_ACTIONS, workspaces_with_waiting_actions
from billing.activation import activate_many
from billing.models import AutomationKind, MonthlyUsage
from billing.months import month_of
from contacts.instagram_connection import DISCONNECTED_REASON, sending_blocked
from contacts.messaging import DISCONNECTED, window_is_open

logger = logging.getLogger(__name__)

RESUME_CHUNK = 500
WINDOW_CLOSED = "messaging_window_closed"


@dataclass(frozen=True, slots=True)
class ResumeResult:
    resumed: int
    expired: int
    waiting: int


def _window_closed(action: PausedAction, now: datetime.datetime) -> bool:
    if not action.payload.get("needs_window"):
        return False
    # The contact may have written again since the pause: the window is read from them now.
    return not window_is_open(action.contact, private_reply=bool(action.payload.get("private_reply")), now=now)


def critical_refs(*, workspace: Workspace) -> list[str]:
    """automation_ref of the workspace's campaigns marked critical (rule 16)."""
    return [f"campaign:{pk}" for pk in Campaign.objects.filter(workspace=workspace, critical=True)
            .values_list("pk", flat=True)]


def paused_actions_resume(*, workspace: Workspace, now: datetime.datetime | None = None) -> ResumeResult:
    """Run waiting actions up to the headroom; expire those whose window closed (rule 5).

    Paused messages of campaigns marked critical go first (rule 16), then every other action, oldest
    first.
    """
    now = now or timezone.now()
    workspace = Workspace.objects.get(pk=workspace.pk)  # the reserve as it is now
    refs = critical_refs(workspace=workspace)
    resumed = expired = 0
    selections = [Q(automation_ref__in=refs), ~Q(automation_ref__in=refs)] if refs else [Q()]
    for selection in selections:
        done = _resume_pass(workspace=workspace, selection=selection, now=now)
        resumed, expired = resumed + done[0], expired + done[1]
    waiting = PausedAction.objects.filter(workspace=workspace, status=PausedAction.Status.WAITING).count()
    if resumed:
        usage_alerts_check(workspace=workspace)
    logger.info("paused actions workspace=%s resumed=%s expired=%s waiting=%s", workspace.pk, resumed, expired, waiting)
    return ResumeResult(resumed=resumed, expired=expired, waiting=waiting)


def _resume_pass(*, workspace: Workspace, selection: Q, now: datetime.datetime) -> tuple[int, int]:
    """One pass over the waiting actions `selection` keeps, oldest first; returns (resumed, expired)."""
    # Messages wait for the Instagram account to be reconnected, before the gate (rule 15).
    blocked = sending_blocked(workspace_id=workspace.pk)
    resumed = expired = 0
    cursor: tuple[datetime.datetime, int] | None = None
    while True:
        with transaction.atomic():
            rows = PausedAction.objects.select_for_update(skip_locked=True, of=("self",)).select_related(
                "contact"
            ).filter(selection, workspace=workspace, status=PausedAction.Status.WAITING)
            if blocked:
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
                result = activate_many(workspace, [a.contact_id for a in group], kind=kind, ref=ref, reserve=reserve,
                                       confirm=False)
                allowed, held = set(result.allowed), set(result.held)
                releasable = set(held)
                for action in group:
                    if action.contact_id in allowed:
                        # The reservation the action settles by its outcome (rule 13), or hands on. A
                        # contact listed twice holds it once: either action may confirm it, only the
                        # first lets go of it.
                        action.held_month = result.month if action.contact_id in held else None
                        action.may_release = action.contact_id in releasable
                        releasable.discard(action.contact_id)
                        claimed.append(action)
            if claimed:
                PausedAction.objects.filter(
                    pk__in=[a.pk for a in claimed], status=PausedAction.Status.WAITING
                ).update(status=PausedAction.Status.RESUMED, resolved_at=now)
        # The actions run after the claim has committed, with no transaction held across a send.
        for action in claimed:
            outcome = _run(action, now=now)
            _settle(action, outcome)
            if outcome == DISCONNECTED:
                # Meta rejected the token while this ran: its reservation is released (nothing engaged
                # the contact) and it waits for the reconnect again.
                PausedAction.objects.filter(pk=action.pk).update(
                    status=PausedAction.Status.WAITING, resolved_at=None, reason=DISCONNECTED_REASON
                )
                continue
            PausedAction.objects.filter(pk=action.pk).update(reason=outcome[:64])
        resumed += len(claimed)
    return resumed, expired


# Outcomes whose runner handed the reservation on: the scenario run or the integration delivery it
# queued settles it when it engages the contact, or not.
HANDED_ON = frozenset({"run_queued", "queued"})


def _settle(action: PausedAction, outcome: str) -> None:
    """Confirm the resumed action's reservation if it engaged the contact, release it if not."""
    month = getattr(action, "held_month", None)
    if month is None or outcome in HANDED_ON:
        return
    if outcome in ENGAGED_OUTCOMES or getattr(action, "may_release", False):
        outcome_settle(workspace_id=action.workspace_id, month=month, kind=action.kind, ref=action.automation_ref,
                       contact_id=action.contact_id, outcome=outcome)


def _on_expired(actions: list[PausedAction], *, now: datetime.datetime) -> None:
    """Let the automation that paused them record the end (recipient skipped, run expired)."""
    by_type = {t: [a for a in actions if a.action_type == t] for t in PausedAction.ActionType.values}
    if by_type[PausedAction.ActionType.CAMPAIGN_MESSAGE]:
        campaign_fanout.campaign_recipients_expired(actions=by_type[PausedAction.ActionType.CAMPAIGN_MESSAGE], now=now)
    if by_type[PausedAction.ActionType.SCENARIO_RUN]:
        scenarios.scenario_runs_expired(actions=by_type[PausedAction.ActionType.SCENARIO_RUN], now=now)


def _run(action: PausedAction, *, now: datetime.datetime) -> str:
    runners = {
        PausedAction.ActionType.CAMPAIGN_MESSAGE: campaign_fanout.campaign_recipient_resume,
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


def paused_actions_resume_due() -> int:
    """Every minute: resume waiting actions of workspaces that have headroom this month.

    The hook resumes them at once after an upgrade, a pack or a bonus; this catches the cases where
    that task never ran (broker down when the webhook came in, worker killed). Cheap: only workspaces
    with waiting actions and a usage row below its quota are touched.
    """
    waiting = workspaces_with_waiting_actions()
    with_headroom = MonthlyUsage.objects.filter(
        workspace_id__in=waiting, month=month_of(), quota__gt=F("activated") + F("reserved")
    ).values_list("workspace_id", flat=True)
    resumed = 0
    for workspace in Workspace.objects.filter(pk__in=list(with_headroom), deleted_at__isnull=True).order_by("pk"):
        resumed += paused_actions_resume(workspace=workspace).resumed
    return resumed
