"""The monthly rollover (rule 11): close past months, open the current one for every workspace."""

import datetime
import logging

from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from accounts.models import Workspace
from billing import hooks
from billing.models import ActivationRecord, BonusGrant, MonthlyUsage, MonthRollover, Subscription
from billing.months import month_of, months_between, next_month
from billing.quota import base_quota, free_plan, quota_compute

logger = logging.getLogger(__name__)

ROLLOVER_BATCH_SIZE = 1000


def _open_month_for_all(month: datetime.date, *, closed_at: datetime.datetime | None) -> int:
    """Open `month`'s usage rows for every live workspace, in batches; returns how many were new."""
    free = free_plan()
    opened = 0
    last_id = 0
    while True:
        workspace_ids = list(
            Workspace.objects.filter(deleted_at__isnull=True, pk__gt=last_id)
            .exclude(monthly_usage__month=month)
            .order_by("pk")
            .values_list("pk", flat=True)[:ROLLOVER_BATCH_SIZE]
        )
        if not workspace_ids:
            return opened
        last_id = workspace_ids[-1]
        subscriptions = {
            s.workspace_id: s
            for s in Subscription.objects.select_related("plan").filter(workspace_id__in=workspace_ids)
        }
        bonuses = dict(
            BonusGrant.objects.filter(workspace_id__in=workspace_ids, month=month)
            .values("workspace_id")
            .annotate(total=Sum("amount"))
            .values_list("workspace_id", "total")
        )
        caps = dict(
            Workspace.objects.filter(pk__in=workspace_ids, monthly_cap__isnull=False).values_list("pk", "monthly_cap")
        )
        recorded: dict[int, int] = {}
        if closed_at is not None:
            recorded = dict(
                ActivationRecord.objects.filter(workspace_id__in=workspace_ids, month=month)
                .values_list("workspace_id")
                .annotate(n=Count("id"))
                .values_list("workspace_id", "n")
            )
        rows = []
        for ws in workspace_ids:
            activated = recorded.get(ws, 0)
            quota, kept_at, kept_at_bonus = quota_compute(
                base=base_quota(subscription=subscriptions.get(ws), free=free), bonus=bonuses.get(ws, 0),
                activated=activated, cap=caps.get(ws),
            )
            unknown = ({"activated_by_day": None, "activated_by_kind": None, "activated_by_ref": None}
                       if activated else {})
            rows.append(MonthlyUsage(
                workspace_id=ws, month=month, quota=quota, activated=activated, kept_at=kept_at,
                kept_at_bonus=kept_at_bonus, closed_at=closed_at, **unknown,
            ))
        created = MonthlyUsage.objects.bulk_create(rows, ignore_conflicts=True)
        opened += len(created)


def month_roll_over_as_needed(*, now: datetime.datetime) -> list[datetime.date]:
    """Close past months and open the current one for every workspace (rule 11).

    Idempotent and catching up: each month from the last completed rollover to `now`'s month is
    handled once. Activation never depends on this having run (rows open lazily); this makes the
    figures complete, resets what is per month, and resumes paused actions. Returns the months opened.
    """
    current = month_of(now)
    last_done = (
        MonthRollover.objects.filter(completed_at__isnull=False)
        .order_by("-month")
        .values_list("month", flat=True)
        .first()
    )
    first = next_month(last_done) if last_done else current
    pending = months_between(first, current) if first <= current else []
    # Close every earlier month still open (figures frozen; the rows keep matching their records).
    MonthlyUsage.objects.filter(month__lt=current, closed_at__isnull=True).update(closed_at=now)
    done = []
    for month in pending:
        # Two beats by accident: the month's row is claimed under a row lock; a second run
        # waits for the first to commit, finds the month completed and leaves it (hooks fire once).
        with transaction.atomic():
            MonthRollover.objects.get_or_create(month=month)
            rollover = MonthRollover.objects.select_for_update().get(month=month)
            if rollover.completed_at is not None:
                continue
            opened = _open_month_for_all(month, closed_at=now if month < current else None)
            MonthRollover.objects.filter(pk=rollover.pk).update(
                completed_at=timezone.now(), workspaces_opened=rollover.workspaces_opened + opened
            )
        done.append(month)
        logger.info("month rollover %s: %s usage rows opened", month, opened)
    if done:
        hooks.month_opened(month=current)
    return done
