"""Rules 1 to 3 under real concurrency: parallel threads, each with its own PostgreSQL connection."""


import pytest

from billing.activation import activate, activate_many, usage
from billing.integrity import usage_breakdown_from_records
from billing.models import ActivationRecord, MonthlyUsage
from tests.concurrency import run_in_parallel
from tests.factories import ContactFactory, WorkspaceFactory

pytestmark = [pytest.mark.django_db(transaction=True)]




def test_sixteen_workers_activating_one_contact_make_one_record():
    workspace = WorkspaceFactory()
    contact = ContactFactory(workspace=workspace)

    results = run_in_parallel(16, lambda i: activate(workspace, contact, kind="scenario"))

    assert all(r.allowed for r in results)
    assert sum(r.newly_activated for r in results) == 1
    assert ActivationRecord.objects.filter(workspace=workspace, contact=contact).count() == 1
    assert usage(workspace).activated == 1


def test_eight_workers_racing_past_the_quota_stop_exactly_at_it():
    workspace = WorkspaceFactory()
    quota = usage(workspace).quota
    contacts = ContactFactory.create_batch(2 * quota, workspace=workspace)
    shares = [contacts[i::8] for i in range(8)]

    results = run_in_parallel(8, lambda i: [activate(workspace, c, kind="campaign") for c in shares[i]])

    outcomes = [r for share in results for r in share]
    assert sum(r.newly_activated for r in outcomes) == quota
    assert sum(r.reason == "quota_exhausted" for r in outcomes) == quota
    records = ActivationRecord.objects.filter(workspace=workspace).count()
    assert records == quota
    row = MonthlyUsage.objects.get(workspace=workspace)
    assert row.activated == records and row.limit_reached_at is not None


def test_batches_and_singles_racing_never_exceed_the_quota_nor_deadlock():
    workspace = WorkspaceFactory()
    quota = usage(workspace).quota
    contacts = ContactFactory.create_batch(3 * quota, workspace=workspace)

    def job(i):
        if i % 2:
            # Overlapping batches in opposite orders: the usage lock orders them, no deadlock.
            batch = contacts if i % 4 == 1 else list(reversed(contacts))
            return len(activate_many(workspace, batch, kind="campaign").newly_activated)
        return sum(activate(workspace, c, kind="scenario").newly_activated for c in contacts[i::8])

    newly = sum(run_in_parallel(8, job))

    records = ActivationRecord.objects.filter(workspace=workspace).count()
    row = MonthlyUsage.objects.get(workspace=workspace)
    assert newly == records == quota == row.activated
    # The per-day and per-kind counters moved in the same statements: they still match the ledger.
    by_day, by_kind = usage_breakdown_from_records(workspace_id=workspace.pk, month=row.month)
    assert (row.activated_by_day, row.activated_by_kind) == (by_day, by_kind)
    assert sum(by_kind.values()) == quota


def test_already_activated_contacts_stay_allowed_while_others_race_at_the_limit():
    workspace = WorkspaceFactory()
    quota = usage(workspace).quota
    active = ContactFactory.create_batch(10, workspace=workspace)
    activate_many(workspace, active, kind="campaign")
    newcomers = ContactFactory.create_batch(quota, workspace=workspace)

    def job(i):
        if i < 4:
            return [activate(workspace, c, kind="scenario") for c in newcomers[i::4]]
        return [activate(workspace, c, kind="scenario") for c in active]

    results = run_in_parallel(8, job)

    for share in results[4:]:
        assert all(r.allowed and r.reason == "already_active" for r in share)
    assert ActivationRecord.objects.filter(workspace=workspace).count() == quota
