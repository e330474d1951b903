"""Data enrichment jobs (an automated action, kind enrichment): fill profile fields for contacts."""

import datetime
import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User, Workspace
from automations import enqueue
from automations import enrichment as adapter
from automations.models import EnrichmentJob, PausedAction, Segment
from automations.services.alerts import usage_alerts_check
from automations.services.engagement import reservation_settle
from automations.services.paused import PauseItem, paused_actions_create
from automations.services.segments import segment_contacts
from billing.activation import activate_many
from billing.models import AutomationKind
from contacts.models import Contact
from inro.errors import ApplicationError

logger = logging.getLogger(__name__)

MAX_CONTACTS_PER_JOB = 10_000
SETTLE_EVERY = 100


def enrichment_job_create(
    *, workspace: Workspace, contact_ids: list[int], requested_by: User | None = None, segment: Segment | None = None,
) -> EnrichmentJob:
    """Queue enrichment for contacts of the workspace; the job runs in a task after commit."""
    if (not isinstance(contact_ids, list) or not contact_ids or len(contact_ids) > MAX_CONTACTS_PER_JOB
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in contact_ids)):
        raise ApplicationError(f"Give 1 to {MAX_CONTACTS_PER_JOB} contact ids.", code="invalid",
                               fields={"contact_ids": ["A list of contact ids."]})
    wanted = list(dict.fromkeys(contact_ids))
    found = set(Contact.objects.filter(workspace=workspace, pk__in=wanted).values_list("pk", flat=True))
    if len(found) != len(wanted):
        raise ApplicationError("Some of these contacts do not exist in this workspace.", code="not_found", status=404,
                               fields={"contact_ids": sorted(set(wanted) - found)})
    with transaction.atomic():
        job = EnrichmentJob.objects.create(workspace=workspace, contact_ids=wanted, requested_by=requested_by,
                                           segment=segment)
        transaction.on_commit(lambda: _queue(job.pk))
    return job


def enrichment_job_for_segment(*, segment: Segment, requested_by: User | None = None) -> EnrichmentJob:
    """Enrich the segment's contacts as it stands now (most recently engaged first, at most
    MAX_CONTACTS_PER_JOB); each contact goes through the gate as the job runs (kind enrichment)."""
    ids = list(segment_contacts(segment=segment).order_by(F("last_inbound_at").desc(nulls_last=True), "id")
               .values_list("id", flat=True)[:MAX_CONTACTS_PER_JOB])
    if not ids:
        raise ApplicationError("This segment has no contacts to enrich.", code="segment_empty", status=409)
    return enrichment_job_create(workspace=segment.workspace, contact_ids=ids, requested_by=requested_by,
                                 segment=segment)


def _queue(job_id: int) -> None:
    enqueue.enrichment_job_run(job_id)


def _enrich(contact: Contact) -> bool:
    # The provider call happens outside any transaction; the write after it is one UPDATE.
    try:
        profile = adapter.backend().fetch(contact)
    except adapter.EnrichmentError as error:
        logger.warning("enrichment of contact %s failed: %s", contact.pk, error)
        return False
    Contact.objects.filter(pk=contact.pk).update(
        follower_count=profile.follower_count, biography=profile.biography[:5000], enriched_at=timezone.now()
    )
    return True


def enrichment_job_run(*, job: EnrichmentJob) -> EnrichmentJob:
    """Ask the gate for the job's contacts, enrich the allowed ones, pause the refused ones."""
    if not EnrichmentJob.objects.filter(pk=job.pk, status=EnrichmentJob.Status.RUNNING).exists():
        return job
    workspace = job.workspace
    contacts = {c.pk: c for c in Contact.objects.filter(workspace=workspace, pk__in=job.contact_ids)}
    ordered = [contacts[i] for i in job.contact_ids if i in contacts]
    result = activate_many(workspace, ordered, kind=AutomationKind.ENRICHMENT, ref=job.ref, confirm=False)
    with transaction.atomic():
        paused_actions_create(
            workspace=workspace, kind=AutomationKind.ENRICHMENT, automation_ref=job.ref,
            action_type=PausedAction.ActionType.ENRICHMENT, needs_window=False,
            items=[PauseItem(c, f"{job.ref}:contact:{c.pk}", {"job_id": job.pk}) for c in result.refused],
        )
    enriched = failed = 0
    held = {c.pk for c in result.held}
    engaged: list[int] = []
    not_engaged: list[int] = []
    for position, contact in enumerate(result.allowed, start=1):
        if _enrich(contact):
            enriched += 1
            engaged.append(contact.pk)
        else:
            failed += 1
            not_engaged.append(contact.pk)
        if position % SETTLE_EVERY == 0 or position == len(result.allowed):
            # Data returned: engaged; no data: released (rule 13). Settled as the job goes, so a long
            # job never holds its reservations longer than a few provider calls.
            reservation_settle(workspace_id=workspace.pk, month=result.month, kind=AutomationKind.ENRICHMENT,
                               ref=job.ref, engaged=[i for i in engaged if i in held],
                               not_engaged=[i for i in not_engaged if i in held], reason="")
            engaged, not_engaged = [], []
    EnrichmentJob.objects.filter(pk=job.pk).update(
        status=EnrichmentJob.Status.DONE, finished_at=timezone.now(), enriched_count=enriched,
        limited_count=len(result.refused), failed_count=failed,
    )
    usage_alerts_check(workspace=workspace)
    job.refresh_from_db()
    return job


def enrichment_contact_resume(*, action: PausedAction, now: datetime.datetime) -> str:
    ok = _enrich(action.contact)
    EnrichmentJob.objects.filter(pk=action.payload.get("job_id")).update(
        limited_count=F("limited_count") - 1,
        **({"enriched_count": F("enriched_count") + 1} if ok else {"failed_count": F("failed_count") + 1}),
    )
    return "enriched" if ok else "failed"
