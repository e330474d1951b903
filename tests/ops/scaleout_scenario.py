"""What tests/ops/scaleout.py seeds, drives and checks (imports Django only after set-up)."""

import dataclasses
import json


@dataclasses.dataclass
class Plan:
    workspace_ids: list[int]
    contacts_per_workspace: int


def seed() -> Plan:
    from tests.factories import ContactFactory, WorkspaceFactory

    workspaces = WorkspaceFactory.create_batch(6)
    for workspace in workspaces:
        ContactFactory.create_batch(150, workspace=workspace)
    return Plan(workspace_ids=[w.pk for w in workspaces], contacts_per_workspace=150)


def actions(plan: Plan, *, http, meta_signature, stripe_signature) -> list:
    def health(port, rng):
        return http("GET", port, "/healthz")[0]

    def ready(port, rng):
        return http("GET", port, "/readyz")[0]

    def metrics(port, rng):
        return http("GET", port, "/metrics", headers={"Authorization": "Bearer scaleout-metrics"})[0]

    return [("healthz", 2, health), ("readyz", 1, ready), ("metrics", 1, metrics)]


def settle(plan: Plan) -> None:
    """After the load: let time-based work finish (nothing yet)."""


def check(plan: Plan) -> list[tuple[str, bool, str]]:
    from django.db.models import Count, F

    from billing.models import ActivationRecord, MonthlyUsage

    results = []
    over = MonthlyUsage.objects.filter(activated__gt=F("quota")).count()
    results.append(("activations never above quota", over == 0, f"{over} usage rows over quota"))
    records = {
        (w, m): n for w, m, n in ActivationRecord.objects.values("workspace_id", "month")
        .annotate(n=Count("id")).values_list("workspace_id", "month", "n")
    }
    drift = [
        (u.workspace_id, u.month, u.activated, records.get((u.workspace_id, u.month), 0))
        for u in MonthlyUsage.objects.all() if u.activated != records.get((u.workspace_id, u.month), 0)
    ]
    total = sum(records.values())
    detail = f"{total} activations, drift {json.dumps(drift, default=str)}"
    results.append(("counters equal records", not drift, detail))
    return results
