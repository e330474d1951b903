"""Segments: rules over contact fields compiled to SQL, and segmentation runs (an automated action).

Counting a segment is free (reading is not engaging anyone). Placing contacts into a segment by a
run is the automated action `segmentation`: it goes through the gate, and refused contacts are
paused (rule 4).
"""

import datetime
import re

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.deletion import ProtectedError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Workspace
from automations import enqueue
from automations.models import Campaign, PausedAction, Segment, SegmentMembership
from automations.services.alerts import usage_alerts_check
from automations.services.engagement import reservation_settle
from automations.services.paused import PauseItem, paused_actions_create
from billing.activation import activate_many
from billing.models import ActivationRecord, AutomationKind
from billing.months import month_of
from contacts.models import Contact
from inro.errors import ApplicationError

SEGMENT_RUN_BATCH = 1000
_CUSTOM_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_DATE_RULES = ("captured_after", "captured_before", "last_inbound_after", "last_inbound_before")
_TAG_RULES = ("tags_any", "tags_all", "tags_none")
RULE_KEYS = frozenset({"sources", *_TAG_RULES, *_DATE_RULES, "custom_fields", "activated_this_month"})


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(f"The segment rule {field!r} is invalid: {message}", code="invalid",
                            fields={f"rules.{field}": [message]})


def segment_rules_clean(rules: object) -> dict:
    """Validate rules from outside (form, API, JSON); returns them normalized or raises a 400."""
    if rules is None:
        return {}
    if not isinstance(rules, dict):
        raise ApplicationError("Segment rules must be an object.", code="invalid", fields={"rules": ["Not an object."]})
    unknown = set(rules) - RULE_KEYS
    if unknown:
        raise ApplicationError(f"Unknown segment rules: {', '.join(sorted(unknown))}.", code="invalid",
                               fields={"rules": [f"Allowed: {', '.join(sorted(RULE_KEYS))}."]})
    clean: dict = {}
    if "sources" in rules:
        sources = rules["sources"]
        valid = set(Contact.Source.values)
        if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s in valid for s in sources):
            raise _invalid("sources", f"Give a list of sources among {', '.join(sorted(valid))}.")
        clean["sources"] = sorted(set(sources))
    for key in _TAG_RULES:
        if key in rules:
            tags = rules[key]
            if (not isinstance(tags, list) or not tags
                    or not all(isinstance(t, str) and 0 < len(t.strip()) <= 64 for t in tags)):
                raise _invalid(key, "Give a list of tag names (1 to 64 characters).")
            clean[key] = sorted({t.strip().lower() for t in tags})
    for key in _DATE_RULES:
        if key in rules:
            value = rules[key]
            try:
                parsed = parse_datetime(value) if isinstance(value, str) else None
            except ValueError:  # well formed but impossible, e.g. 2026-02-30T25:00:00Z
                parsed = None
            if parsed is None or timezone.is_naive(parsed):
                raise _invalid(key, "Give an ISO 8601 date and time with its time zone.")
            clean[key] = _in_utc(parsed).isoformat()
    if "custom_fields" in rules:
        fields = rules["custom_fields"]
        if (not isinstance(fields, dict) or not fields
                or not all(isinstance(k, str) and _CUSTOM_KEY.fullmatch(k) for k in fields)
                or not all(isinstance(v, str | int | float | bool) for v in fields.values())):
            raise _invalid("custom_fields", "Give field names (letters, digits, _) and plain values.")
        clean["custom_fields"] = dict(fields)
    if "activated_this_month" in rules:
        if not isinstance(rules["activated_this_month"], bool):
            raise _invalid("activated_this_month", "Give true or false.")
        clean["activated_this_month"] = rules["activated_this_month"]
    return clean


def _in_utc(moment: datetime.datetime) -> datetime.datetime:
    """The moment in UTC: PostgreSQL refuses offsets beyond 15:59 that ISO 8601 allows (+19:16). At the
    ends of the calendar the conversion overflows: such a moment is before or after everything."""
    try:
        return moment.astimezone(datetime.UTC)
    except OverflowError:
        if moment.year > 1:
            return datetime.datetime.max.replace(tzinfo=datetime.UTC)
        return datetime.datetime.min.replace(tzinfo=datetime.UTC)


def segment_rules_q(*, workspace_id: int, rules: dict, month: datetime.date | None = None) -> Q:
    """The rules as one SQL condition on Contact (rules already cleaned)."""
    q = Q()
    if "sources" in rules:
        q &= Q(source__in=rules["sources"])
    tag_links = Contact.tags.through.objects.filter(contact_id=OuterRef("pk"), tag__workspace_id=workspace_id)
    if "tags_any" in rules:
        q &= Q(Exists(tag_links.filter(tag__name__in=rules["tags_any"])))
    for name in rules.get("tags_all", []):
        q &= Q(Exists(tag_links.filter(tag__name=name)))
    if "tags_none" in rules:
        q &= ~Q(Exists(tag_links.filter(tag__name__in=rules["tags_none"])))
    for key, lookup in (("captured_after", "captured_at__gte"), ("captured_before", "captured_at__lt"),
                        ("last_inbound_after", "last_inbound_at__gte"), ("last_inbound_before", "last_inbound_at__lt")):
        if key in rules:
            q &= Q(**{lookup: parse_datetime(rules[key])})
    for name, value in rules.get("custom_fields", {}).items():
        # Containment (custom_fields @> {name: value}), not a key lookup: a key spelled like a lookup
        # ("a__contains", "has_key") is matched as the key it is.
        q &= Q(custom_fields__contains={name: value})
    if "activated_this_month" in rules:
        active = Exists(ActivationRecord.objects.filter(
            workspace_id=workspace_id, month=month or month_of(), contact_id=OuterRef("pk")
        ))
        q &= Q(active) if rules["activated_this_month"] else ~Q(active)
    return q


def segment_matches(*, segment: Segment) -> QuerySet[Contact]:
    """Contacts the rules select now (what a segmentation run would place)."""
    return Contact.objects.filter(workspace_id=segment.workspace_id).filter(
        segment_rules_q(workspace_id=segment.workspace_id, rules=segment.rules)
    )


def segment_contacts(*, segment: Segment) -> QuerySet[Contact]:
    """The segment as an audience: contacts matching its rules plus those placed in it."""
    member = Exists(SegmentMembership.objects.filter(segment_id=segment.pk, contact_id=OuterRef("pk")))
    return Contact.objects.filter(workspace_id=segment.workspace_id).filter(
        segment_rules_q(workspace_id=segment.workspace_id, rules=segment.rules) | Q(member)
    )


def segment_size(*, segment: Segment) -> int:
    """Free: counting engages nobody."""
    return segment_contacts(segment=segment).count()


def segment_create(*, workspace: Workspace, name: str, rules: object = None) -> Segment:
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ApplicationError("A segment needs a name of 1 to 120 characters.", code="invalid",
                               fields={"name": ["Enter 1 to 120 characters."]})
    clean = segment_rules_clean(rules)
    try:
        with transaction.atomic():
            return Segment.objects.create(workspace=workspace, name=name, rules=clean)
    except IntegrityError:
        raise ApplicationError(f"A segment named {name!r} already exists.", code="conflict", status=409,
                               fields={"name": ["This name is taken."]}) from None


def segment_update(*, segment: Segment, name: str | None = None, rules: object = None) -> Segment:
    if name is not None:
        name = name.strip()
        if not name or len(name) > 120:
            raise ApplicationError("A segment needs a name of 1 to 120 characters.", code="invalid",
                                   fields={"name": ["Enter 1 to 120 characters."]})
        segment.name = name
    if rules is not None:
        segment.rules = segment_rules_clean(rules)
    try:
        with transaction.atomic():
            segment.save(update_fields=["name", "rules"])
    except IntegrityError:
        raise ApplicationError("A segment with this name already exists.", code="conflict", status=409) from None
    return segment


def _engaged_first(contacts: QuerySet[Contact]) -> QuerySet[Contact]:
    return contacts.order_by(F("last_inbound_at").desc(nulls_last=True), "id")


def segment_add_contacts(*, segment: Segment, contact_ids: list[int], ref: str) -> int:
    """Place contacts the gate allowed into the segment; returns how many were new."""
    created = SegmentMembership.objects.bulk_create(
        [SegmentMembership(segment=segment, contact_id=cid, automation_ref=ref) for cid in contact_ids],
        ignore_conflicts=True,
    )
    return len(created)


def segment_run(*, segment: Segment) -> tuple[int, int]:
    """Place every contact the rules select into the segment (kind segmentation).

    Engaged contacts first; returns (added, limited). Refused contacts are paused and join when
    headroom appears.
    """
    workspace = segment.workspace
    ref = f"segment:{segment.pk}"
    not_member = ~Q(Exists(SegmentMembership.objects.filter(segment_id=segment.pk, contact_id=OuterRef("pk"))))
    not_paused = ~Q(Exists(PausedAction.objects.filter(
        workspace_id=workspace.pk, status=PausedAction.Status.WAITING, automation_ref=ref, contact_id=OuterRef("pk")
    )))
    ids = list(_engaged_first(segment_matches(segment=segment).filter(not_member, not_paused)).values_list(
        "id", flat=True))
    added = limited = 0
    for start in range(0, len(ids), SEGMENT_RUN_BATCH):
        batch = ids[start : start + SEGMENT_RUN_BATCH]
        result = activate_many(workspace, batch, kind=AutomationKind.SEGMENTATION, ref=ref, confirm=False)
        with transaction.atomic():
            added += segment_add_contacts(segment=segment, contact_ids=list(result.allowed), ref=ref)
            # Placed in the segment: engaged (rule 13), confirmed with the memberships.
            reservation_settle(workspace_id=workspace.pk, month=result.month, kind=AutomationKind.SEGMENTATION,
                               ref=ref, engaged=result.held, reason="added")
            if result.refused:
                contacts = Contact.objects.filter(pk__in=result.refused).order_by(
                    F("last_inbound_at").desc(nulls_last=True), "id")
                paused_actions_create(
                    workspace=workspace, kind=AutomationKind.SEGMENTATION, automation_ref=ref,
                    action_type=PausedAction.ActionType.SEGMENT_ADD, needs_window=False,
                    items=[PauseItem(c, f"{ref}:contact:{c.pk}", {"segment_id": segment.pk}) for c in contacts],
                )
                limited += len(result.refused)
    usage_alerts_check(workspace=workspace)
    Segment.objects.filter(pk=segment.pk).update(last_run_at=timezone.now(), last_run_added=added,
                                                 last_run_limited=limited)
    return added, limited


# --- Running segments: by hand and on a schedule ---------------------------------------------------

RUN_INTERVALS = {
    Segment.RunEvery.HOUR: datetime.timedelta(hours=1),
    Segment.RunEvery.DAY: datetime.timedelta(days=1),
    Segment.RunEvery.WEEK: datetime.timedelta(weeks=1),
}


def _queue_run(segment_id: int) -> None:
    enqueue.segment_run(segment_id)


def segment_run_request(*, segment: Segment) -> Segment:
    """Start a segmentation run now, in a task after commit (owners and admins; callers check the role)."""
    transaction.on_commit(lambda: _queue_run(segment.pk))
    return segment


def segment_schedule_set(*, segment: Segment, run_every: str, now: datetime.datetime | None = None) -> Segment:
    """How often the segment runs by itself ("never", "hour", "day", "week"); the first scheduled run is
    one interval from now."""
    if run_every not in Segment.RunEvery.values:
        raise ApplicationError("Choose how often the segment runs: never, every hour, day or week.", code="invalid",
                               fields={"run_every": [f"One of {', '.join(Segment.RunEvery.values)}."]})
    now = now or timezone.now()
    segment.run_every = run_every
    segment.next_run_at = now + RUN_INTERVALS[run_every] if run_every in RUN_INTERVALS else None
    Segment.objects.filter(pk=segment.pk).update(run_every=segment.run_every, next_run_at=segment.next_run_at)
    return segment


def segments_run_due(*, now: datetime.datetime | None = None) -> list[int]:
    """Run the segments whose time has come (beat, every minute). The conditional update that moves
    next_run_at on is the claim, so a second beat run, or a second worker, starts nothing twice."""
    now = now or timezone.now()
    started = []
    due = Segment.objects.filter(next_run_at__lte=now, workspace__deleted_at__isnull=True).exclude(
        run_every=Segment.RunEvery.NEVER)
    for segment_id, every, next_run_at in list(due.values_list("pk", "run_every", "next_run_at")[:200]):
        following = max(next_run_at + RUN_INTERVALS[every], now + datetime.timedelta(minutes=1))
        if Segment.objects.filter(pk=segment_id, next_run_at=next_run_at).update(next_run_at=following):
            started.append(segment_id)
            transaction.on_commit(lambda segment_id=segment_id: _queue_run(segment_id))
    return started


def segment_member_resume(*, action: PausedAction, now: datetime.datetime) -> str:
    segment = Segment.objects.filter(pk=action.payload.get("segment_id"), workspace_id=action.workspace_id).first()
    if segment is None:
        return "segment_deleted"
    segment_add_contacts(segment=segment, contact_ids=[action.contact_id], ref=action.automation_ref)
    return "added"


def segment_delete(*, segment: Segment) -> None:
    """Delete a segment (from the API); 409 while a campaign targets it (its audience would vanish)."""
    if Campaign.objects.filter(segment=segment).exists():
        raise ApplicationError("A campaign targets this segment: delete or retarget the campaign first.",
                               code="segment_in_use", status=409)
    try:
        with transaction.atomic():
            segment.delete()
    except ProtectedError:  # a campaign took it in between
        raise ApplicationError("A campaign targets this segment: delete or retarget the campaign first.",
                               code="segment_in_use", status=409) from None
