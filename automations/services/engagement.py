"""What became of an activation reservation (docs/product.md rule 13), as automations know it.

Every automated action asks the gate for a *reservation* (`confirm=False`) before it touches a
contact, then settles it here by what happened: `reservation_settle` confirms it when the action
engaged the contact (Meta accepted the message or the outbox stored it, the contact was placed in a
segment, enrichment returned data, the integration's receiver answered 2xx) and releases it
otherwise (a permanent send failure, a closed window, a cancelled campaign...).

`engagement_probe` is registered on billing's hook: the settle job asks it what became of a
reservation whose worker died, so it can confirm where the engagement is recorded and release
where it is not, and keep those whose action is still under way.
"""

import datetime
from collections.abc import Iterable

from django.db.models import Q
from django.utils import timezone

from automations.models import (
    Campaign,
    EnrichmentJob,
    IntegrationDelivery,
    ScenarioRun,
    ScenarioStepLog,
    SegmentMembership,
)
from billing.activation import activation_confirm, activation_release
from billing.hooks import ENGAGED, IN_PROGRESS, Reservation
from billing.months import month_start
from contacts.models import Contact, Message

# Outcomes of an action that engaged the contact: a message Meta accepted (or the outbox stored), a
# question sent, a tag or segment placed, a contact enriched.
ENGAGED_OUTCOMES = frozenset({"sent", "waiting_answer", "tagged", "added", "enriched", "delivered"})


def reservation_settle(
    *, workspace_id: int, month: datetime.date, kind: str, ref: str, engaged: Iterable[int] = (),
    not_engaged: Iterable[int] = (), reason: str = "",
) -> None:
    """Confirm the reservations of the contacts `engaged`, release those `not_engaged`. Each holder
    settles its hold once (a release lets go of one hold)."""
    engaged, not_engaged = list(engaged), list(not_engaged)
    if engaged:
        activation_confirm(workspace_id=workspace_id, month=month, contact_ids=engaged, kind=kind, ref=ref,
                           reason=reason or "engaged")
    if not_engaged:
        activation_release(workspace_id=workspace_id, month=month, contact_ids=not_engaged, ref=ref,
                           reason=reason or "not_engaged")


def outcome_settle(*, workspace_id: int, month: datetime.date, kind: str, ref: str, contact_id: int,
                   outcome: str) -> bool:
    """Settle one contact's reservation by its action's outcome; True if it engaged the contact."""
    engaged = outcome in ENGAGED_OUTCOMES
    reservation_settle(workspace_id=workspace_id, month=month, kind=kind, ref=ref,
                       engaged=[contact_id] if engaged else [], not_engaged=[] if engaged else [contact_id],
                       reason=outcome[:64])
    return engaged


def engagement_probe(*, reservations: list[Reservation]) -> dict[tuple[int, int], str]:
    """For the settle job: which of these reservations' contacts were engaged this month by an
    automation (recorded), and which are still being worked on; the others are not engaged."""
    now = timezone.now()
    verdicts: dict[tuple[int, int], str] = {}
    for r in reservations:
        key = (r.workspace_id, r.contact_id)
        start = month_start(r.month)
        in_progress = (
            IntegrationDelivery.objects.filter(contact_id=r.contact_id, held_month=r.month,
                                               status=IntegrationDelivery.Status.PENDING).exists()
            or ScenarioRun.objects.filter(contact_id=r.contact_id, held_month=r.month,
                                          executing_until__gt=now).exists()
            or EnrichmentJob.objects.filter(workspace_id=r.workspace_id, status=EnrichmentJob.Status.RUNNING,
                                            contact_ids__contains=[r.contact_id]).exists()
            or (r.automation_ref.startswith("campaign:") and Campaign.objects.filter(
                workspace_id=r.workspace_id, pk=_ref_id(r.automation_ref), status=Campaign.Status.SENDING,
                fanout_lease_until__gt=now).exists())
        )
        if in_progress:
            verdicts[key] = IN_PROGRESS
            continue
        engaged = (
            Message.objects.filter(contact_id=r.contact_id, direction=Message.Direction.OUTBOUND,
                                   origin=Message.Origin.AUTOMATED, status=Message.Status.SENT,
                                   created_at__gte=start).exists()
            or SegmentMembership.objects.filter(contact_id=r.contact_id, added_at__gte=start)
            .exclude(automation_ref="").exists()
            or Contact.objects.filter(pk=r.contact_id, enriched_at__gte=start).exists()
            or IntegrationDelivery.objects.filter(contact_id=r.contact_id, status=IntegrationDelivery.Status.DELIVERED,
                                                  delivered_at__gte=start).exists()
            or ScenarioStepLog.objects.filter(run__contact_id=r.contact_id, created_at__gte=start)
            .filter(Q(outcome="tagged") | Q(outcome="added")).exists()
        )
        if engaged:
            verdicts[key] = ENGAGED
    return verdicts


def _ref_id(ref: str) -> int:
    try:
        return int(ref.split(":", 1)[1])
    except (IndexError, ValueError):
        return 0
