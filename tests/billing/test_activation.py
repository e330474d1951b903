"""The activation gate: docs/product.md rules 1 to 4, for single contacts and batches."""

import datetime

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import activation
from billing.activation import activate, activate_many, usage
from billing.models import ActivationRecord, MonthlyUsage
from billing.months import month_of
from billing.services import bonus_grant
from tests.factories import ContactFactory, WorkspaceFactory, pro_subscription

pytestmark = pytest.mark.django_db


def records(workspace):
    return ActivationRecord.objects.filter(workspace=workspace, month=month_of()).count()


def test_first_automated_action_activates_the_contact(workspace):
    contact = ContactFactory(workspace=workspace)

    result = activate(workspace, contact, kind="campaign", ref="campaign:7")

    assert (result.allowed, result.newly_activated, result.reason) == (True, True, "activated")
    record = ActivationRecord.objects.get(workspace=workspace, contact=contact)
    assert (record.kind, record.automation_ref, record.month) == ("campaign", "campaign:7", month_of())
    snapshot = usage(workspace)
    assert (snapshot.activated, snapshot.quota, snapshot.remaining, snapshot.limit_reached) == (1, 100, 99, False)


def test_second_action_on_same_contact_is_free(workspace):
    contact = ContactFactory(workspace=workspace)
    activate(workspace, contact, kind="campaign")

    result = activate(workspace, contact, kind="scenario")

    assert (result.allowed, result.newly_activated, result.reason) == (True, False, "already_active")
    assert records(workspace) == 1
    assert usage(workspace).activated == 1


def test_free_plan_refuses_the_101st_new_contact_and_marks_the_limit(workspace, make_contacts):
    contacts = make_contacts(workspace, 101)
    results = [activate(workspace, c, kind="scenario") for c in contacts]

    assert [r.reason for r in results].count("activated") == 100
    assert results[-1] == activation.ActivationResult(False, False, "quota_exhausted", month_of())
    assert records(workspace) == 100
    snapshot = usage(workspace)
    assert (snapshot.activated, snapshot.remaining, snapshot.limit_reached) == (100, 0, True)
    assert MonthlyUsage.objects.get(workspace=workspace).limit_reached_at is not None


def test_already_active_contact_is_allowed_at_the_limit(workspace, make_contacts):
    contacts = make_contacts(workspace, 100)
    activate_many(workspace, contacts, kind="campaign")
    assert usage(workspace).limit_reached

    result = activate(workspace, contacts[0], kind="scenario")

    assert (result.allowed, result.reason) == (True, "already_active")
    assert records(workspace) == 100


def test_quota_counts_plan_packs_and_bonuses(workspace, owner):
    pro_subscription(workspace, addon_packs=2)
    bonus_grant(workspace=workspace, amount=50, reason="Launch week", granted_by=owner)

    assert usage(workspace).quota == 1000 + 2 * 1000 + 50


def test_reserve_keeps_room_for_conversations(workspace, make_contacts):
    contacts = make_contacts(workspace, 100)

    batch = activate_many(workspace, contacts[:95], kind="campaign", reserve=10)
    assert len(batch.newly_activated) == 90 and len(batch.refused) == 5
    # A scenario (no reserve) may still use the reserved room.
    assert activate(workspace, contacts[99], kind="scenario").reason == "activated"
    assert usage(workspace).activated == 91


@pytest.mark.parametrize("kind", ["manual", "inbox_dm", "", "CAMPAIGN"])
def test_unknown_kind_is_refused_and_writes_nothing(workspace, kind):
    contact = ContactFactory(workspace=workspace)

    with pytest.raises(ValueError, match="not an automated action kind"):
        activate(workspace, contact, kind=kind)
    with pytest.raises(ValueError, match="not an automated action kind"):
        activate_many(workspace, [contact], kind=kind)
    assert ActivationRecord.objects.count() == 0


def test_contact_of_another_workspace_is_refused(workspace):
    stranger = ContactFactory(workspace=WorkspaceFactory())

    with pytest.raises(activation.ActivationInputError, match="does not belong"):
        activate(workspace, stranger, kind="campaign")
    with pytest.raises(activation.ActivationInputError, match="does not belong"):
        activate_many(workspace, [stranger.pk], kind="campaign")
    with pytest.raises(activation.ActivationInputError, match="does not belong"):
        activate_many(workspace, [stranger], kind="campaign")
    assert ActivationRecord.objects.count() == 0
    assert MonthlyUsage.objects.filter(activated__gt=0).count() == 0


def test_a_batch_with_room_for_all_refuses_strangers_among_its_ids_and_writes_nothing(workspace, make_contacts):
    ours = [c.pk for c in make_contacts(workspace, 5)]
    activate_many(workspace, ours[:2], kind="campaign")
    stranger = ContactFactory(workspace=WorkspaceFactory()).pk
    missing = max(ours + [stranger]) + 1000  # no such contact at all

    with pytest.raises(activation.ActivationInputError, match="2 of the contacts given does not belong"):
        activate_many(workspace, [*ours, stranger, missing], kind="campaign")
    assert records(workspace) == 2 == usage(workspace).activated


def test_a_refused_batch_leaves_the_callers_transaction_usable(workspace, make_contacts):
    ours = [c.pk for c in make_contacts(workspace, 3)]
    stranger = ContactFactory(workspace=WorkspaceFactory()).pk
    with transaction.atomic():
        with pytest.raises(activation.ActivationInputError):
            activate_many(workspace, [ours[0], stranger], kind="campaign")
        result = activate_many(workspace, ours, kind="campaign")

    assert list(result.newly_activated) == ours
    assert records(workspace) == 3 == usage(workspace).activated


def test_a_batch_with_room_for_all_splits_new_and_already_active(workspace, make_contacts):
    ids = [c.pk for c in make_contacts(workspace, 6)]
    activate_many(workspace, ids[::2], kind="scenario")  # 0, 2, 4 active this month

    result = activate_many(workspace, ids, kind="campaign")

    assert list(result.newly_activated) == ids[1::2]
    assert list(result.already_active) == ids[::2]
    assert not result.refused and not result.limit_reached
    assert records(workspace) == 6 == usage(workspace).activated
    assert sorted(ActivationRecord.objects.filter(workspace=workspace, kind="campaign")
                  .values_list("contact_id", flat=True)) == ids[1::2]


def test_deleted_workspace_is_refused(workspace):
    contact = ContactFactory(workspace=workspace)
    workspace.deleted_at = timezone.now()
    workspace.save()

    with pytest.raises(activation.ActivationInputError, match="deleted"):
        activate(workspace, contact, kind="campaign")
    with pytest.raises(activation.ActivationInputError, match="deleted"):
        activate_many(workspace, [contact], kind="campaign")
    assert ActivationRecord.objects.count() == 0


def test_batch_keeps_given_order_and_splits_allowed_and_refused(workspace, make_contacts):
    early = make_contacts(workspace, 30)
    activate_many(workspace, early, kind="scenario")
    fresh = make_contacts(workspace, 90)
    batch_input = fresh[:40] + early[:10] + fresh[40:]

    result = activate_many(workspace, batch_input, kind="campaign", ref="campaign:1")

    # 70 slots left: the first 70 new contacts in the order given, plus the 10 already active.
    assert list(result.newly_activated) == fresh[:70]
    assert list(result.already_active) == early[:10]
    assert list(result.allowed) == fresh[:40] + early[:10] + fresh[40:70]
    assert list(result.refused) == fresh[70:]
    assert result.limit_reached
    assert records(workspace) == 100 == usage(workspace).activated


def test_batch_accepts_ids_and_duplicates(workspace, make_contacts):
    contacts = make_contacts(workspace, 3)
    ids = [c.pk for c in contacts]

    result = activate_many(workspace, ids + ids[:1], kind="segmentation")

    assert list(result.newly_activated) == ids
    assert list(result.already_active) == ids[:1]
    assert records(workspace) == 3


def test_batch_uses_a_fixed_number_of_queries(workspace, make_contacts):
    small, large = make_contacts(workspace, 5), make_contacts(workspace, 80)
    activate_many(workspace, make_contacts(workspace, 1), kind="campaign")  # opens the month

    with CaptureQueriesContext(connection) as small_run:
        activate_many(workspace, small, kind="campaign")
    with CaptureQueriesContext(connection) as large_run:
        activate_many(workspace, large, kind="campaign")
    assert len(large_run) == len(small_run) <= 8


def test_usage_of_a_past_month_reads_its_row(workspace):
    last_month = (month_of() - datetime.timedelta(days=1)).replace(day=1)
    MonthlyUsage.objects.create(workspace=workspace, month=last_month, quota=100, activated=42)

    snapshot = usage(workspace, last_month)

    assert (snapshot.activated, snapshot.quota, snapshot.remaining) == (42, 100, 58)


def test_month_comes_from_the_server_clock(workspace, monkeypatch):
    contact = ContactFactory(workspace=workspace)
    frozen = datetime.datetime(2027, 3, 31, 23, 59, 59, 999999, tzinfo=datetime.UTC)
    monkeypatch.setattr(activation.timezone, "now", lambda: frozen)

    result = activate(workspace, contact, kind="campaign")

    assert result.month == datetime.date(2027, 3, 1)
    assert ActivationRecord.objects.get().month == datetime.date(2027, 3, 1)
