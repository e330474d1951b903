"""The hook point billing fires when a workspace gains headroom (upgrade, packs, bonus, new month).

Dependencies point automations -> billing, so billing cannot import automations. Instead automations
registers a listener here at start-up (AutomationsConfig.ready) and billing calls `headroom_raised`
inside its transaction; listeners run after commit, so they see the new quota and a rolled-back
change never resumes anything. A listener gets keyword arguments workspace_id and month.
"""

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

logger = logging.getLogger(__name__)

HeadroomListener = Callable[..., None]
_headroom_listeners: list[HeadroomListener] = []


def on_headroom_raised(listener: HeadroomListener) -> HeadroomListener:
    """Register a listener (usable as a decorator). Registering twice is a no-op."""
    if listener not in _headroom_listeners:
        _headroom_listeners.append(listener)
    return listener


def headroom_raised(*, workspace_id: int, month: datetime.date) -> None:
    """Tell listeners, after the current transaction commits, that `workspace_id` may activate more."""

    def notify() -> None:
        for listener in list(_headroom_listeners):
            listener(workspace_id=workspace_id, month=month)

    # robust: a listener failing (broker down) is logged, never undoes or fails the committed change;
    # the every-minute catch-up (automations.services.paused_actions_resume_due) does its work later.
    transaction.on_commit(notify, robust=True)


MonthListener = Callable[..., None]
_month_listeners: list[MonthListener] = []


def on_month_opened(listener: MonthListener) -> MonthListener:
    """Register a listener for a new billing month (keyword argument: month)."""
    if listener not in _month_listeners:
        _month_listeners.append(listener)
    return listener


def month_opened(*, month: datetime.date) -> None:
    """Tell listeners, after commit, that the rollover opened `month`: every workspace has headroom."""

    def notify() -> None:
        for listener in list(_month_listeners):
            listener(month=month)

    transaction.on_commit(notify)


# --- Engagement probes: how the settle job learns what became of a reservation left in flight -------

ENGAGED = "engaged"
NOT_ENGAGED = "not_engaged"
IN_PROGRESS = "in_progress"


@dataclass(frozen=True, slots=True)
class Reservation:
    """A reservation in flight, as the settle job hands it to the probes."""

    workspace_id: int
    contact_id: int
    month: datetime.date
    kind: str
    automation_ref: str
    reserved_at: datetime.datetime


EngagementProbe = Callable[..., dict]
_engagement_probes: list[EngagementProbe] = []


def on_engagement_probe(probe: EngagementProbe) -> EngagementProbe:
    """Register a probe: `probe(reservations=[Reservation, ...])` returns {(workspace_id, contact_id):
    ENGAGED | NOT_ENGAGED | IN_PROGRESS} for the reservations it knows about (others left out).
    Billing cannot import automations, which know where an engagement is recorded."""
    if probe not in _engagement_probes:
        _engagement_probes.append(probe)
    return probe


def engagement_verdicts(*, reservations: list[Reservation]) -> dict[tuple[int, int], str]:
    """What the probes say of each reservation: in progress if any probe says so, else engaged if
    any saw the engagement recorded, else not engaged."""
    rank = {NOT_ENGAGED: 0, ENGAGED: 1, IN_PROGRESS: 2}
    verdicts = {(r.workspace_id, r.contact_id): NOT_ENGAGED for r in reservations}
    for probe in list(_engagement_probes):
        for key, verdict in probe(reservations=reservations).items():
            if key in verdicts and rank.get(verdict, 0) > rank[verdicts[key]]:
                verdicts[key] = verdict
    return verdicts
