"""Drift detection between the usage counters and the activation ledger (rules 2, 13).

What is proven, for every usage row: `activated` = its confirmed records (what is charged and shown),
and `reserved` = its reservations in flight (records in state reserved); the CHECK constraint keeps
activated + reserved <= quota. The counters and the records move in one transaction, so drift
"cannot happen"; this is how we know. A repair rewrites the counters from the ledger (the ledger is
the truth) and never touches records.
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, ExtractDay

from billing.models import ActivationRecord, MonthlyUsage
from billing.months import billing_zone


@dataclass(frozen=True, slots=True)
class Drift:
    workspace_id: int
    month: datetime.date
    counter: int
    records: int
    quota: int
    # "counter": `activated` differs from the confirmed records; "reserved": `reserved` differs from the
    # reservations in flight (then counter/records are those); "breakdown": the per-day or per-kind
    # counters differ.
    what: str = "counter"


Breakdown = tuple[dict[str, int], dict[str, int]]


def _breakdowns_from_records(*, month: datetime.date, workspace_id: int | None = None) -> dict[int, Breakdown]:
    """{workspace id: (by day, by kind)} of a month, counted from the ledger (two grouped queries)."""
    records = ActivationRecord.objects.filter(month=month).order_by()
    if workspace_id is not None:
        records = records.filter(workspace_id=workspace_id)
    result: dict[int, Breakdown] = defaultdict(lambda: ({}, {}))
    per_day = (
        records.annotate(day=ExtractDay("activated_at", tzinfo=billing_zone()))
        .values_list("workspace_id", "day").annotate(n=Count("id"))
    )
    for ws, day, n in per_day:
        result[ws][0][str(day)] = n
    for ws, kind, n in records.values_list("workspace_id", "kind").annotate(n=Count("id")):
        result[ws][1][kind] = n
    return result


def usage_breakdown_from_records(*, workspace_id: int, month: datetime.date) -> Breakdown:
    """A month's per-day and per-kind activations counted from the ledger; writes nothing."""
    return _breakdowns_from_records(month=month, workspace_id=workspace_id).get(workspace_id, ({}, {}))


def usage_breakdown_rebuild(*, workspace_id: int, month: datetime.date) -> Breakdown:
    """Count a month's per-day and per-kind activations from the ledger and store them on its usage row.

    Under the row's lock: a gate call waiting on it moves the rebuilt counters afterwards, so nothing
    is counted twice or lost. Returns the breakdown (also when the month has no usage row).
    """
    with transaction.atomic():
        row = MonthlyUsage.objects.select_for_update().filter(workspace_id=workspace_id, month=month).first()
        by_day, by_kind = usage_breakdown_from_records(workspace_id=workspace_id, month=month)
        if row is not None:
            MonthlyUsage.objects.filter(pk=row.pk).update(
                activated_by_day=by_day, activated_by_kind=by_kind,
                activated_by_ref=usage_by_ref_from_records(workspace_id=workspace_id, month=month),
            )
    return by_day, by_kind


def usage_by_ref_from_records(*, workspace_id: int, month: datetime.date) -> dict[str, int]:
    """A month's activations per automation reference, counted from the ledger; writes nothing."""
    return dict(
        ActivationRecord.objects.filter(workspace_id=workspace_id, month=month).order_by()
        .values_list("automation_ref").annotate(n=Count("id")).values_list("automation_ref", "n")
    )


def usage_by_ref_rebuild(*, workspace_id: int, month: datetime.date) -> dict[str, int]:
    """Count a month's activations per automation from the ledger and store them on its usage row,
    under the row's lock (as usage_breakdown_rebuild)."""
    with transaction.atomic():
        row = MonthlyUsage.objects.select_for_update().filter(workspace_id=workspace_id, month=month).first()
        by_ref = usage_by_ref_from_records(workspace_id=workspace_id, month=month)
        if row is not None:
            MonthlyUsage.objects.filter(pk=row.pk).update(activated_by_ref=by_ref)
    return by_ref


def _breakdown_drift(month: datetime.date | None) -> list[Drift]:
    """Usage rows whose known breakdown differs from the ledger's, one month at a time."""
    rows = MonthlyUsage.objects.exclude(activated_by_day=None).exclude(activated_by_kind=None)
    months = [month] if month is not None else sorted(set(rows.values_list("month", flat=True)))
    drift = []
    for each in months:
        truth = _breakdowns_from_records(month=each)
        for row in rows.filter(month=each).order_by("workspace_id").iterator(chunk_size=2000):
            by_day, by_kind = truth.get(row.workspace_id, ({}, {}))
            stored_day = {day: n for day, n in row.activated_by_day.items() if n}
            stored_kind = {kind: n for kind, n in row.activated_by_kind.items() if n}
            if stored_day != by_day or stored_kind != by_kind:
                drift.append(Drift(row.workspace_id, row.month, row.activated, sum(by_kind.values()), row.quota,
                                   what="breakdown"))
    return drift


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
    counted = {(item.workspace_id, item.month) for item in drift}
    drift += [item for item in _reserved_drift(month) if (item.workspace_id, item.month) not in counted]
    counted = {(item.workspace_id, item.month) for item in drift}
    drift += [item for item in _breakdown_drift(month) if (item.workspace_id, item.month) not in counted]
    return drift


def _reservations(workspace_id=None, month=None):
    rows = ActivationRecord.all_states.filter(state=ActivationRecord.State.RESERVED)
    if workspace_id is not None:
        rows = rows.filter(workspace_id=workspace_id)
    if month is not None:
        rows = rows.filter(month=month)
    return rows


def _reserved_drift(month: datetime.date | None) -> list[Drift]:
    """Usage rows whose `reserved` differs from their reservations in flight."""
    reservations = (
        _reservations().filter(workspace_id=OuterRef("workspace_id"), month=OuterRef("month"))
        .order_by().values("workspace_id").annotate(n=Count("id")).values("n")
    )
    rows = MonthlyUsage.objects.annotate(in_flight=Coalesce(Subquery(reservations), Value(0)))
    if month is not None:
        rows = rows.filter(month=month)
    return [
        Drift(row.workspace_id, row.month, row.reserved, row.in_flight, row.quota, what="reserved")
        for row in rows.exclude(reserved=F("in_flight")).order_by("month", "workspace_id")
    ]


def usage_drift_repair(*, drift: list[Drift]) -> int:
    """Set each drifting counter to its record count (`activated` to the confirmed records, `reserved`
    to the reservations in flight; quota raised to match if needed) and rebuild its per-day and
    per-kind breakdown from the ledger."""
    repaired = 0
    for item in drift:
        if item.what == "breakdown":
            usage_breakdown_rebuild(workspace_id=item.workspace_id, month=item.month)
            repaired += 1
            continue
        with transaction.atomic():
            row = MonthlyUsage.objects.select_for_update().filter(
                workspace_id=item.workspace_id, month=item.month
            ).first()
            records = ActivationRecord.objects.filter(workspace_id=item.workspace_id, month=item.month).count()
            in_flight = _reservations(item.workspace_id, item.month).count()
            if row is None:
                MonthlyUsage.objects.create(
                    workspace_id=item.workspace_id, month=item.month, quota=records + in_flight, activated=records,
                    reserved=in_flight,
                )
            else:
                MonthlyUsage.objects.filter(pk=row.pk).update(
                    activated=records, reserved=in_flight, quota=max(row.quota, records + in_flight)
                )
            usage_breakdown_rebuild(workspace_id=item.workspace_id, month=item.month)
            repaired += 1
    return repaired
