"""Reserve, then confirm or release (docs/product.md rule 13), at the gate."""

import datetime

import pytest
from django.utils import timezone

from billing.activation import (
    activate,
    activate_many,
    activation_confirm,
    activation_release,
    activations_settle,
    usage,
)
from billing.integrity import usage_drift
from billing.models import ActivationEvent, ActivationRecord, MonthlyUsage
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def events(workspace, contact):
    return list(ActivationEvent.objects.filter(workspace=workspace, contact=contact).order_by("id")
                .values_list("action", "by", "reason"))


def test_a_reservation_holds_headroom_but_is_not_an_activation_until_confirmed(workspace):
    contact = ContactFactory(workspace=workspace)

    result = activate(workspace, contact, kind="campaign", ref="campaign:7", confirm=False)

    assert (result.allowed, result.newly_activated, result.held) == (True, True, True)
    snapshot = usage(workspace)
    assert (snapshot.activated, snapshot.in_flight, snapshot.remaining) == (0, 1, 99)
    assert not ActivationRecord.objects.filter(workspace=workspace).exists()
    assert usage_drift() == []

    confirmed = activation_confirm(workspace_id=workspace.pk, month=result.month, contact_ids=[contact.pk],
                                   kind="campaign", ref="campaign:7", reason="sent")

    assert confirmed == [contact.pk]
    snapshot = usage(workspace)
    assert (snapshot.activated, snapshot.in_flight, snapshot.remaining) == (1, 0, 99)
    record = ActivationRecord.objects.get(workspace=workspace, contact=contact)
    assert (record.kind, record.automation_ref) == ("campaign", "campaign:7")
    row = MonthlyUsage.objects.get(workspace=workspace)
    assert row.activated_by_kind == {"campaign": 1}
    assert events(workspace, contact) == [("reserved", "campaign:7", ""), ("confirmed", "campaign:7", "sent")]
    assert usage_drift() == []
    # Confirming again, or releasing, changes nothing: it is activated once.
    assert activation_confirm(workspace_id=workspace.pk, month=result.month, contact_ids=[contact.pk],
                              kind="campaign", ref="campaign:7") == []
    assert activation_release(workspace_id=workspace.pk, month=result.month, contact_ids=[contact.pk],
                              ref="campaign:7", reason="failed") == []
    assert usage(workspace).activated == 1


def test_a_release_frees_the_headroom_and_fires_the_hook(workspace, headroom_calls,
                                                         django_capture_on_commit_callbacks):
    contact = ContactFactory(workspace=workspace)
    result = activate(workspace, contact, kind="scenario", ref="scenario:3", confirm=False)

    with django_capture_on_commit_callbacks(execute=True):
        released = activation_release(workspace_id=workspace.pk, month=result.month, contact_ids=[contact.pk],
                                      ref="scenario:3", reason="window_closed")

    assert released == [contact.pk]
    snapshot = usage(workspace)
    assert (snapshot.activated, snapshot.in_flight, snapshot.remaining) == (0, 0, 100)
    assert not ActivationRecord.all_states.filter(workspace=workspace).exists()
    assert headroom_calls == [{"workspace_id": workspace.pk, "month": result.month}]
    assert events(workspace, contact) == [("reserved", "scenario:3", ""), ("released", "scenario:3", "window_closed")]


def test_a_released_unit_goes_to_the_next_contact_at_the_quota(workspace):
    MonthlyUsage.objects.filter(workspace=workspace).delete()
    first, second = ContactFactory.create_batch(2, workspace=workspace)
    usage(workspace)
    MonthlyUsage.objects.filter(workspace=workspace).update(quota=1)

    held = activate(workspace, first, kind="campaign", confirm=False)
    refused = activate(workspace, second, kind="campaign", confirm=False)
    assert (held.allowed, refused.allowed, refused.reason) == (True, False, "quota_exhausted")
    assert usage(workspace).limit_reached

    activation_release(workspace_id=workspace.pk, month=held.month, contact_ids=[first.pk], reason="failed")

    assert not usage(workspace).limit_reached
    assert activate(workspace, second, kind="campaign", confirm=False).allowed


def test_two_actions_in_flight_share_one_reservation(workspace):
    contact = ContactFactory(workspace=workspace)
    first = activate(workspace, contact, kind="campaign", ref="campaign:1", confirm=False)
    second = activate(workspace, contact, kind="scenario", ref="scenario:2", confirm=False)

    assert (second.allowed, second.newly_activated, second.held) == (True, False, True)
    assert usage(workspace).in_flight == 1
    # The first lets go (its send failed): the second still holds the contact.
    assert activation_release(workspace_id=workspace.pk, month=first.month, contact_ids=[contact.pk],
                              ref="campaign:1", reason="failed") == []
    assert usage(workspace).in_flight == 1
    # The second engaged it: charged once, recorded as the scenario's.
    activation_confirm(workspace_id=workspace.pk, month=first.month, contact_ids=[contact.pk], kind="scenario",
                       ref="scenario:2", reason="sent")
    snapshot = usage(workspace)
    assert (snapshot.activated, snapshot.in_flight) == (1, 0)
    assert ActivationRecord.objects.get(contact=contact).automation_ref == "scenario:2"
    assert [a for a, _, _ in events(workspace, contact)] == ["reserved", "joined", "let_go", "confirmed"]


def test_an_action_engaged_at_once_confirms_a_reservation_in_flight(workspace):
    contact = ContactFactory(workspace=workspace)
    activate(workspace, contact, kind="campaign", confirm=False)

    result = activate(workspace, contact, kind="segmentation", ref="segment:4")

    assert (result.allowed, result.newly_activated) == (True, True)
    snapshot = usage(workspace)
    assert (snapshot.activated, snapshot.in_flight) == (1, 0)


def test_a_batch_reserves_joins_and_settles(workspace):
    contacts = ContactFactory.create_batch(6, workspace=workspace)
    activate(workspace, contacts[0], kind="scenario", confirm=False)  # in flight elsewhere
    activate(workspace, contacts[1], kind="scenario")  # confirmed already

    result = activate_many(workspace, contacts, kind="campaign", ref="campaign:9", confirm=False)

    assert len(result.allowed) == 6
    assert set(result.held) == {contacts[0], *contacts[2:]}
    assert set(result.newly_activated) == set(contacts[2:])
    assert usage(workspace).in_flight == 5
    ids = [c.pk for c in contacts]
    assert sorted(activation_confirm(workspace_id=workspace.pk, month=result.month, contact_ids=ids[:4],
                                     kind="campaign", ref="campaign:9", reason="sent")) == sorted([ids[0], *ids[2:4]])
    released = activation_release(workspace_id=workspace.pk, month=result.month, contact_ids=ids[4:],
                                  ref="campaign:9", reason="failed")
    assert sorted(released) == ids[4:]
    snapshot = usage(workspace)
    assert (snapshot.activated, snapshot.in_flight) == (4, 0)
    assert usage_drift() == []


def test_a_batch_at_the_edge_counts_reservations_against_the_quota(workspace):
    contacts = ContactFactory.create_batch(5, workspace=workspace)
    usage(workspace)
    MonthlyUsage.objects.filter(workspace=workspace).update(quota=3)
    activate(workspace, contacts[0], kind="scenario", confirm=False)

    result = activate_many(workspace, contacts[1:], kind="campaign", confirm=False)

    assert len(result.allowed) == 2 and len(result.refused) == 2 and result.limit_reached
    row = MonthlyUsage.objects.get(workspace=workspace)
    assert (row.activated, row.reserved) == (0, 3)


def test_a_reservation_whose_contact_was_erased_in_flight_is_released_by_the_settle_job(workspace, settings):
    settings.ACTIVATION_SETTLE_SECONDS = 600
    contact = ContactFactory(workspace=workspace)
    activate(workspace, contact, kind="campaign", confirm=False)
    ActivationRecord.all_states.filter(contact=contact).update(contact=None)  # what erasure leaves

    result = activations_settle(now=timezone.now() + datetime.timedelta(seconds=601))

    assert result.released == 1
    assert (usage(workspace).in_flight, usage(workspace).remaining) == (0, 100)
    assert usage_drift() == []
