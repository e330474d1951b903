"""Campaigns: one message to an audience, engaged contacts first, each contact sent at most once.

Here: drafts (create, edit, delete), the audience and its preview, launching (at once or when
scheduled) and cancelling. Sending is automations.services.campaign_fanout.
"""

import datetime
import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone

from accounts.models import User, Workspace
from automations import enqueue
from automations.models import Campaign, CampaignRecipient, PausedAction, Scenario, Segment
from automations.services.paused import paused_actions_cancel
from automations.services.scenarios import scenario_create
from automations.services.segments import segment_contacts, segment_create
from billing.activation import usage
from billing.models import ActivationRecord
from billing.months import month_of
from contacts.messaging import DM_WINDOW
from contacts.models import Contact, Folder, FolderMembership, Tag
from inro.errors import ApplicationError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CampaignPreview:
    """What a launch now would do: the same order and headroom rules as the fan-out."""

    audience: int
    already_active: int
    would_activate: int
    would_be_limited: int
    outside_window: int  # not messaged (24-hour window closed), so never activated
    # Spending controls (rule 16): the reserve campaigns leave for conversations, and where this
    # campaign's paused contacts would stand when headroom returns.
    reserve: int = 0
    critical: bool = False
    waiting_now: int = 0  # paused actions of the workspace waiting now
    waiting_before_if_critical: int = 0  # of those, the ones that go first anyway (other critical campaigns)

    @property
    def waiting_before(self) -> int:
        """Paused actions that would resume before this campaign's paused contacts, as it is flagged."""
        return self.waiting_before_if_critical if self.critical else self.waiting_now

    @property
    def critical_words(self) -> str:
        """How the critical flag changes who is reached, for the launch page and the API."""
        if not self.would_be_limited:
            return "Everyone in the window fits in the headroom now: the critical flag changes nothing for this launch."
        first = "before any other paused action" if not self.waiting_before_if_critical else (
            f"after the {self.waiting_before_if_critical:,} of other critical campaigns")
        if self.critical:
            behind = self.waiting_now - self.waiting_before_if_critical
            return (f"Marked critical: its {self.would_be_limited:,} paused contacts resume first when headroom "
                    f"returns, {first}, ahead of the {behind:,} other paused actions waiting now.")
        return (f"Its {self.would_be_limited:,} paused contacts would resume after the {self.waiting_now:,} paused "
                f"actions waiting now, oldest first. Marked critical, they would resume {first}.")


def _clean_text(text: str) -> str:
    text = (text or "").strip()
    if not text or len(text) > 1000:
        raise ApplicationError("A campaign message needs 1 to 1000 characters.", code="invalid",
                               fields={"text": ["Enter 1 to 1000 characters."]})
    return text


def campaign_create(
    *, workspace: Workspace, name: str, text: str, audience: str = Campaign.Audience.ALL,
    segment: Segment | None = None, folder: Folder | None = None, scheduled_at: datetime.datetime | None = None,
) -> Campaign:
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ApplicationError("A campaign needs a name of 1 to 120 characters.", code="invalid",
                               fields={"name": ["Enter 1 to 120 characters."]})
    text = _clean_text(text)
    if audience not in Campaign.Audience.values:
        raise ApplicationError("Choose an audience: all contacts, a segment or a folder.", code="invalid",
                               fields={"audience": [f"One of {', '.join(Campaign.Audience.values)}."]})
    if audience == Campaign.Audience.SEGMENT and (segment is None or segment.workspace_id != workspace.pk):
        raise ApplicationError("Choose a segment of this workspace.", code="invalid", fields={"segment": ["Required."]})
    if audience == Campaign.Audience.FOLDER and (folder is None or folder.workspace_id != workspace.pk):
        raise ApplicationError("Choose a folder of this workspace.", code="invalid", fields={"folder": ["Required."]})
    if scheduled_at is not None and timezone.is_naive(scheduled_at):
        raise ApplicationError("The schedule needs a time zone.", code="invalid",
                               fields={"scheduled_at": ["Give a date and time with its time zone."]})
    return Campaign.objects.create(
        workspace=workspace, name=name, text=text, audience=audience,
        segment=segment if audience == Campaign.Audience.SEGMENT else None,
        folder=folder if audience == Campaign.Audience.FOLDER else None, scheduled_at=scheduled_at,
    )


def engaged_first(contacts: QuerySet[Contact]) -> QuerySet[Contact]:
    """Most recently engaged first (latest inbound message), never-engaged last, then oldest id."""
    return contacts.order_by(F("last_inbound_at").desc(nulls_last=True), "id")


def campaign_audience(*, campaign: Campaign) -> QuerySet[Contact]:
    if campaign.audience == Campaign.Audience.SEGMENT:
        contacts = segment_contacts(segment=campaign.segment)
    elif campaign.audience == Campaign.Audience.FOLDER:
        contacts = Contact.objects.filter(workspace_id=campaign.workspace_id).filter(
            Exists(FolderMembership.objects.filter(folder_id=campaign.folder_id, contact_id=OuterRef("pk")))
        )
    else:
        contacts = Contact.objects.filter(workspace_id=campaign.workspace_id)
    return engaged_first(contacts)


def _window_cutoff(now: datetime.datetime) -> datetime.datetime:
    # Same rule as contacts.messaging.window_is_open: open while now < last_inbound_at + 24 h.
    return now - DM_WINDOW


def campaign_preview(*, campaign: Campaign, now: datetime.datetime | None = None) -> CampaignPreview:
    """How a launch now would split the audience (all SQL counts; engages nobody)."""
    now = now or timezone.now()
    workspace = Workspace.objects.get(pk=campaign.workspace_id)
    contacts = campaign_audience(campaign=campaign)
    total = contacts.count()
    in_window = contacts.filter(last_inbound_at__gt=_window_cutoff(now))
    reachable = in_window.count()
    # Contacts reserved by an action in flight are joined by the launch, not charged again (rule 13).
    active = in_window.filter(Exists(ActivationRecord.all_states.filter(
        workspace_id=workspace.pk, month=month_of(now), contact_id=OuterRef("pk")
    ))).count()
    snapshot = usage(workspace)
    headroom = max(snapshot.remaining - workspace.activation_reserve, 0)
    candidates = reachable - active
    would_activate = min(headroom, candidates)
    waiting = PausedAction.objects.filter(workspace=workspace, status=PausedAction.Status.WAITING).exclude(
        automation_ref=campaign.ref)
    others_critical = [f"campaign:{pk}" for pk in Campaign.objects.filter(workspace=workspace, critical=True)
                       .exclude(pk=campaign.pk).values_list("pk", flat=True)]
    return CampaignPreview(
        audience=total, already_active=active, would_activate=would_activate,
        would_be_limited=candidates - would_activate, outside_window=total - reachable,
        reserve=workspace.activation_reserve, critical=campaign.critical, waiting_now=waiting.count(),
        waiting_before_if_critical=waiting.filter(automation_ref__in=others_critical).count() if others_critical else 0,
    )


def campaign_critical_set(*, campaign: Campaign, critical: bool) -> Campaign:
    """Mark a campaign critical or not (rule 16), at any stage: when headroom is short its paused
    messages resume before other paused actions (automations.services.resume). Callers check the role."""
    Campaign.objects.filter(pk=campaign.pk).update(critical=bool(critical))
    campaign.refresh_from_db(fields=["critical"])
    return campaign


def campaign_launch(*, campaign: Campaign, launched_by: User | None, now: datetime.datetime | None = None) -> Campaign:
    """Launch now, or at `scheduled_at` if it is still ahead. The fan-out runs in a task after commit."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != Campaign.Status.DRAFT:
            raise ApplicationError(f"This campaign is {locked.get_status_display().lower()}: it cannot be launched.",
                                   code="campaign_not_draft", status=409)
        locked.launched_by = launched_by
        if locked.scheduled_at is not None and locked.scheduled_at > now:
            locked.status = Campaign.Status.SCHEDULED
            locked.save(update_fields=["status", "launched_by"])
        else:
            locked.status = Campaign.Status.SENDING
            locked.launched_at = now
            locked.save(update_fields=["status", "launched_by", "launched_at"])
            transaction.on_commit(lambda: _queue_send(locked.pk))
    return locked


def _queue_send(campaign_id: int) -> None:
    enqueue.campaign_send(campaign_id)


def campaigns_launch_due(*, now: datetime.datetime | None = None) -> list[int]:
    """Start scheduled campaigns whose time has come (beat, every minute). Safe to run twice."""
    now = now or timezone.now()
    started = []
    due = Campaign.objects.filter(status=Campaign.Status.SCHEDULED, scheduled_at__lte=now).values_list("pk", flat=True)
    for campaign_id in list(due[:500]):
        with transaction.atomic():
            # The conditional update is the claim: a second beat run finds nothing left to start.
            if Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SCHEDULED).update(
                status=Campaign.Status.SENDING, launched_at=now
            ):
                started.append(campaign_id)
                transaction.on_commit(lambda campaign_id=campaign_id: _queue_send(campaign_id))
    return started


def campaign_cancel(*, campaign: Campaign, now: datetime.datetime | None = None) -> Campaign:
    """Stop a campaign: nothing more is sent, its paused messages are cancelled."""
    now = now or timezone.now()
    with transaction.atomic():
        updated = Campaign.objects.filter(
            pk=campaign.pk,
            status__in=[Campaign.Status.DRAFT, Campaign.Status.SCHEDULED, Campaign.Status.SENDING],
        ).update(status=Campaign.Status.CANCELLED, finished_at=now)
        if not updated:
            raise ApplicationError("This campaign has already finished.", code="campaign_finished", status=409)
        paused_actions_cancel(workspace=campaign.workspace, automation_ref=campaign.ref, now=now)
    campaign.refresh_from_db()
    return campaign


# --- Editing and deleting drafts ------------------------------------------------------------------

_EDITABLE = ("name", "text", "audience", "segment", "folder", "scheduled_at")


def campaign_update(*, campaign: Campaign, **changes) -> Campaign:
    """Edit a draft (409 once launched), with the checks of `campaign_create`.

    `changes` may hold name, text, audience, segment, folder, scheduled_at; the others stay as they are.
    """
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise ApplicationError(f"These fields cannot be edited: {', '.join(sorted(unknown))}.", code="invalid")
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != Campaign.Status.DRAFT:
            raise ApplicationError(f"This campaign is {locked.get_status_display().lower()}: only drafts can be "
                                   "edited.", code="campaign_not_draft", status=409)
        values = {field: changes[field] if field in changes else getattr(locked, field) for field in _EDITABLE}
        name = (values["name"] or "").strip()
        if not name or len(name) > 120:
            raise ApplicationError("A campaign needs a name of 1 to 120 characters.", code="invalid",
                                   fields={"name": ["Enter 1 to 120 characters."]})
        audience, segment, folder = values["audience"], values["segment"], values["folder"]
        if audience not in Campaign.Audience.values:
            raise ApplicationError("Choose an audience: all contacts, a segment or a folder.", code="invalid",
                                   fields={"audience": [f"One of {', '.join(Campaign.Audience.values)}."]})
        for target, chosen in (("segment", segment), ("folder", folder)):
            if audience == target and (chosen is None or chosen.workspace_id != locked.workspace_id):
                # Asked for in this very edit: a 400. Left to the campaign, which has none: a conflict
                # with its present state (409), e.g. the audience changed to a folder, but no folder given.
                asked = "audience" in changes and target in changes
                raise ApplicationError(f"Choose a {target} of this workspace.", code="invalid" if asked else
                                       f"campaign_has_no_{target}", status=400 if asked else 409,
                                       fields={target: ["Required."]})
        if values["scheduled_at"] is not None and timezone.is_naive(values["scheduled_at"]):
            raise ApplicationError("The schedule needs a time zone.", code="invalid",
                                   fields={"scheduled_at": ["Give a date and time with its time zone."]})
        locked.name, locked.text, locked.audience = name, _clean_text(values["text"]), audience
        locked.segment = segment if audience == Campaign.Audience.SEGMENT else None
        locked.folder = folder if audience == Campaign.Audience.FOLDER else None
        locked.scheduled_at = values["scheduled_at"]
        locked.save(update_fields=list(_EDITABLE))
    return locked


def campaign_delete(*, campaign: Campaign) -> None:
    """Delete a draft; a launched campaign is kept (its recipients are the send-once ledger)."""
    deleted, _ = Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.DRAFT).delete()
    if not deleted:
        raise ApplicationError("Only drafts can be deleted; cancel a launched campaign instead.",
                               code="campaign_not_draft", status=409)


# --- After a campaign: a follow-up for the contacts it could not message -----------------------------


def campaign_follow_up_create(*, campaign: Campaign) -> Scenario:
    """A follow-up for the contacts this campaign skipped because their 24-hour window was closed: they
    get a tag (by hand, free), a segment holds the tagged contacts, and a scenario sends them the
    campaign's message when they next write (once each, through the gate like any scenario run).
    Owners and admins; callers check the role."""
    skipped = list(CampaignRecipient.objects.filter(campaign=campaign, status=CampaignRecipient.Status.SKIPPED_WINDOW)
                   .values_list("contact_id", flat=True))
    if not skipped:
        raise ApplicationError("This campaign skipped nobody: there is no one to follow up.",
                               code="nothing_to_follow_up", status=409)
    workspace = campaign.workspace
    with transaction.atomic():
        tag, _ = Tag.objects.get_or_create(workspace=workspace, name=f"skipped by campaign {campaign.pk}")
        tag.contacts.add(*skipped)
        taken = set(Segment.objects.filter(workspace=workspace).values_list("name", flat=True))
        base = f"Skipped by {campaign.name}"[:110]
        name = next(c for c in (base, *(f"{base} ({n})" for n in range(2, 1000))) if c not in taken)
        segment = segment_create(workspace=workspace, name=name, rules={"tags_any": [tag.name]})
        return scenario_create(workspace=workspace, name=f"Follow-up: {campaign.name}"[:120],
                               trigger_type=Scenario.Trigger.NEXT_MESSAGE, trigger_config={"segment_id": segment.pk},
                               steps=[{"type": "send_message", "text": campaign.text}])
