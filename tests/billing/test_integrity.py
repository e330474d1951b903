"""`manage.py usage_integrity`: reports drift, repairs it with --fix, and is quiet when all is well."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.activation import activate_many
from billing.models import ActivationRecord, MonthlyUsage
from billing.months import month_of
from contacts.models import Message
from tests.factories import ContactFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("usage_integrity", *args, stdout=out)
        return 0, out.getvalue()
    except SystemExit as exit_:
        return exit_.code, out.getvalue()


def test_no_drift_after_normal_activity():
    workspace = WorkspaceFactory()
    activate_many(workspace, ContactFactory.create_batch(12, workspace=workspace), kind="campaign")

    assert run() == (0, "No drift: every counter equals its activation records.\n")


def test_drift_is_reported_and_repaired_from_the_ledger():
    workspace = WorkspaceFactory()
    activate_many(workspace, ContactFactory.create_batch(12, workspace=workspace), kind="campaign")
    MonthlyUsage.objects.filter(workspace=workspace).update(activated=F("activated") - 2)  # simulated drift

    code, report = run()
    assert code == 1
    assert f"drift workspace={workspace.pk} month={month_of():%Y-%m} counter=10 records=12" in report

    code, report = run("--fix")
    assert code == 0 and "Repaired 1 usage rows" in report
    assert MonthlyUsage.objects.get(workspace=workspace).activated == 12
    assert run()[0] == 0


def test_bad_month_argument_is_refused():
    with pytest.raises(CommandError, match="2026-11"):
        call_command("usage_integrity", "--month", "November")


# --- The database's own rule: a ledger row's contact is a contact of its workspace -------------------

def _commit_checks():
    """Run the deferred constraint checks now, as COMMIT would (the test's transaction never commits)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.mark.parametrize("model", ["activation", "message"])
def test_the_database_refuses_a_row_naming_another_workspaces_contact(model):
    ours, theirs = WorkspaceFactory(), WorkspaceFactory()
    their_contact = ContactFactory(workspace=theirs)
    with pytest.raises(IntegrityError, match="contact_in_workspace"), transaction.atomic():
        if model == "activation":
            ActivationRecord.objects.create(workspace=ours, contact=their_contact, month=month_of(),
                                            activated_at=timezone.now(), kind="campaign")
        else:
            Message.objects.create(workspace=ours, contact=their_contact, direction="out", origin="automated",
                                   status="sent", text="hi")
        _commit_checks()
    assert not ActivationRecord.objects.exists() and not Message.objects.exists()


def test_a_deleted_contacts_activations_stay_counted_under_the_composite_key():
    workspace = WorkspaceFactory()
    contacts = ContactFactory.create_batch(3, workspace=workspace)
    activate_many(workspace, contacts, kind="campaign")
    contacts[0].delete()  # the record keeps its month's count, with no contact (SET_NULL)
    _commit_checks()

    assert ActivationRecord.objects.filter(workspace=workspace).count() == 3
    assert ActivationRecord.objects.filter(workspace=workspace, contact__isnull=True).count() == 1
    assert run()[0] == 0
