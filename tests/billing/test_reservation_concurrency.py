"""Reserve, then confirm or release (rule 13) under real concurrency: threads, each on its own
PostgreSQL connection."""

import pytest

from billing.activation import activate, activation_confirm, activation_release, usage
from billing.integrity import usage_drift
from billing.models import ActivationEvent, ActivationRecord, MonthlyUsage
from tests.concurrency import run_in_parallel
from tests.factories import ContactFactory, WorkspaceFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def _settle(workspace, contact, month, *, engaged: bool, ref: str) -> None:
    if engaged:
        activation_confirm(workspace_id=workspace.pk, month=month, contact_ids=[contact.pk], kind="campaign",
                           ref=ref, reason="sent")
    else:
        activation_release(workspace_id=workspace.pk, month=month, contact_ids=[contact.pk], ref=ref,
                           reason="failed")


def test_confirm_and_release_racing_new_activations_of_the_same_contacts_charge_each_engaged_once():
    workspace = WorkspaceFactory()
    contacts = ContactFactory.create_batch(60, workspace=workspace)
    month = usage(workspace).month
    MonthlyUsage.objects.filter(workspace=workspace).update(quota=1000)
    # Action A holds a reservation of every contact; B and C arrive for the same contacts while A
    # settles: A engaged the even ones, B every third, C every fifth; the others they let go of.
    for contact in contacts:
        assert activate(workspace, contact, kind="campaign", ref="a", confirm=False).held
    engages = {
        "a": lambda i: i % 2 == 0,
        "b": lambda i: i % 3 == 0,
        "c": lambda i: i % 5 == 0,
    }

    def job(worker):
        ref = "abc"[worker]
        for i, contact in enumerate(contacts):
            if ref != "a":
                result = activate(workspace, contact, kind="scenario", ref=ref, confirm=False)
                assert result.allowed
                if not result.held:
                    continue  # confirmed already by another: included, nothing to settle
            _settle(workspace, contact, month, engaged=engages[ref](i), ref=ref)

    run_in_parallel(3, job)

    expected = {c.pk for i, c in enumerate(contacts) if any(rule(i) for rule in engages.values())}
    charged = list(ActivationRecord.objects.filter(workspace=workspace).values_list("contact_id", flat=True))
    assert sorted(charged) == sorted(expected)  # each engaged contact once, nobody else
    row = MonthlyUsage.objects.get(workspace=workspace)
    assert (row.activated, row.reserved) == (len(expected), 0)
    assert not ActivationRecord.all_states.filter(workspace=workspace, state="reserved").exists()
    assert usage_drift() == []
    # The history tells each contact's story: one confirmation per charged contact.
    confirmations = ActivationEvent.objects.filter(workspace=workspace, action="confirmed")
    assert sorted(confirmations.values_list("contact_id", flat=True)) == sorted(expected)


def test_eight_workers_at_the_quota_edge_with_failed_sends_charge_only_the_engaged():
    workspace = WorkspaceFactory()
    quota = 40
    contacts = ContactFactory.create_batch(120, workspace=workspace)
    month = usage(workspace).month
    MonthlyUsage.objects.filter(workspace=workspace).update(quota=quota)
    shares = [contacts[i::8] for i in range(8)]

    def fails_for_good(contact) -> bool:  # 30 % of sends are refused by Meta for good
        return contact.pk % 10 < 3

    def job(worker):
        engaged: list[int] = []
        waiting = list(shares[worker])
        for _pass in range(10_000):
            if not waiting:
                break
            still = []
            for contact in waiting:
                result = activate(workspace, contact, kind="campaign", ref=f"w{worker}", confirm=False)
                if not result.allowed:
                    still.append(contact)  # paused: waits for headroom
                    continue
                assert result.held
                if fails_for_good(contact):
                    _settle(workspace, contact, month, engaged=False, ref=f"w{worker}")
                else:
                    _settle(workspace, contact, month, engaged=True, ref=f"w{worker}")
                    engaged.append(contact.pk)
            waiting = still
            if waiting and MonthlyUsage.objects.get(workspace=workspace).activated >= quota:
                break  # the quota is full of confirmed activations: the rest keeps waiting
        return engaged

    engaged = [pk for share in run_in_parallel(8, job) for pk in share]

    charged = sorted(ActivationRecord.objects.filter(workspace=workspace).values_list("contact_id", flat=True))
    assert charged == sorted(engaged)
    # Headroom the failed sends freed went to waiting contacts: the quota ends full of engaged contacts.
    assert len(charged) == quota
    row = MonthlyUsage.objects.get(workspace=workspace)
    assert (row.activated, row.reserved) == (quota, 0)
    assert ActivationEvent.objects.filter(workspace=workspace, action="released").count() > 0
    assert not any(fails_for_good(c) for c in contacts if c.pk in set(charged))
    assert usage_drift() == []
