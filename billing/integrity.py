"""Drift detection between the usage counters and the activation ledger (rule 2).

The counter and the records move in one transaction, so drift "cannot happen"; this is how we know.
A repair rewrites the counter from the ledger (the ledger is the truth) and never touches records.
"""

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from billing.models import ActivationRecord, MonthlyUsage


@dataclass(frozen=True, slots=True)
class Drift:
    workspace_id: int
    month: datetime.date
    counter: int
    records: int
    quota: int


def usage_drift(*, month: datetime.date | None = None) -> list[Drift]:
    """Every usage row whose counter differs from its records, plus records with no usage row."""
    records = (
        ActivationRecord.objects.filter(workspace_id=OuterRef("workspace_id"), month=OuterRef("month"))
        .order_by()
        .values("workspace_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    rows = MonthlyUsage.objects.annotate(records=Coalesce(Subquery(records), Value(0)))
    if month is not None:
        rows = rows.filter(month=month)
    drift = [
        Drift(row.workspace_id, row.month, row.activated, row.records, row.quota)
        for row in rows.exclude(activated=Coalesce(Subquery(records), Value(0))).order_by("month", "workspace_id")
    ]
    orphans = ActivationRecord.objects.all()
    if month is not None:
        orphans = orphans.filter(month=month)
    orphans = (
        orphans.exclude(
            month__in=Subquery(MonthlyUsage.objects.filter(workspace_id=OuterRef("workspace_id")).values("month"))
        )
        .values("workspace_id", "month")
        .annotate(n=Count("id"))
        .order_by("month", "workspace_id")
    )
    drift += [Drift(o["workspace_id"], o["month"], 0, o["n"], 0) for o in orphans]
    return drift


def usage_drift_repair(*, drift: list[Drift]) -> int:
    """Set each drifting counter to its record count (quota raised to match if needed)."""
    repaired = 0
    for item in drift:
        with transaction.atomic():
            records = ActivationRecord.objects.filter(workspace_id=item.workspace_id, month=item.month).count()
            row = MonthlyUsage.objects.select_for_update().filter(
                workspace_id=item.workspace_id, month=item.month
            ).first()
            if row is None:
                MonthlyUsage.objects.create(
                    workspace_id=item.workspace_id, month=item.month, quota=records, activated=records
                )
            else:
                MonthlyUsage.objects.filter(pk=row.pk).update(activated=records, quota=max(row.quota, records))
            repaired += 1
    return repaired
