"""The per-automation counters of a usage row move with `activated`, in the gate's own statements, and
always equal the ledger grouped by automation (the usage page reads them instead of the ledger)."""

import pytest
from django.db.models import Count

from billing import selectors
from billing.activation import activate, activate_many, activation_confirm, activation_release
from billing.integrity import usage_breakdown_rebuild
from billing.models import ActivationRecord, MonthlyUsage
from billing.months import month_of

pytestmark = pytest.mark.django_db


def ledger_by_ref(workspace) -> dict[str, int]:
    return dict(ActivationRecord.objects.filter(workspace=workspace, month=month_of()).order_by()
                .values_list("automation_ref").annotate(n=Count("id")).values_list("automation_ref", "n"))


def stored_by_ref(workspace) -> dict[str, int]:
    row = MonthlyUsage.objects.get(workspace=workspace, month=month_of())
    return {ref: n for ref, n in row.activated_by_ref.items() if n}


def test_every_way_through_the_gate_moves_the_counter(workspace, make_contacts):
    contacts = make_contacts(workspace, 12)
    activate(workspace, contacts[0], kind="scenario", ref="scenario:3")
    activate_many(workspace, contacts[1:5], kind="campaign", ref="campaign:7")
    activate_many(workspace, contacts[1:3], kind="scenario", ref="scenario:3")  # already active: not counted
    held = activate_many(workspace, contacts[5:9], kind="segmentation", ref="segment:2", confirm=False)
    month = held.month
    activation_confirm(workspace_id=workspace.pk, month=month, contact_ids=[c.pk for c in contacts[5:7]],
                       kind="segmentation", ref="segment:2")
    activation_release(workspace_id=workspace.pk, month=month, contact_ids=[c.pk for c in contacts[7:9]],
                       ref="segment:2", reason="not_sent")
    activate(workspace, contacts[9], kind="enrichment", ref="enrichment:1", confirm=False)
    activation_confirm(workspace_id=workspace.pk, month=month, contact_ids=[contacts[9].pk], kind="enrichment",
                       ref="enrichment:1")

    assert stored_by_ref(workspace) == ledger_by_ref(workspace) == {
        "scenario:3": 1, "campaign:7": 4, "segment:2": 2, "enrichment:1": 1}
    assert selectors.activations_per_automation(workspace=workspace) == [
        ("campaign", "campaign:7", 4), ("segmentation", "segment:2", 2), ("enrichment", "enrichment:1", 1),
        ("scenario", "scenario:3", 1)]


def test_unknown_counters_are_counted_once_from_the_ledger(workspace, make_contacts, django_assert_num_queries):
    activate_many(workspace, make_contacts(workspace, 3), kind="campaign", ref="campaign:1")
    MonthlyUsage.objects.filter(workspace=workspace).update(activated_by_ref=None)

    assert selectors.activations_per_automation(workspace=workspace) == [("campaign", "campaign:1", 3)]
    assert stored_by_ref(workspace) == {"campaign:1": 3}
    with django_assert_num_queries(1):  # known again: one row read
        selectors.activations_per_automation(workspace=workspace)
    MonthlyUsage.objects.filter(workspace=workspace).update(activated_by_ref={})
    usage_breakdown_rebuild(workspace_id=workspace.pk, month=month_of())
    assert stored_by_ref(workspace) == {"campaign:1": 3}


def test_the_rest_is_summed_beyond_the_top(workspace, make_contacts):
    contacts = make_contacts(workspace, 10)
    for index, contact in enumerate(contacts):
        activate(workspace, contact, kind="campaign", ref=f"campaign:{index % 5}")
    rows = selectors.activations_per_automation(workspace=workspace, limit=3)
    assert len(rows) == 4 and rows[-1] == ("", "", 4)
