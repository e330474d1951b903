"""`manage.py usage_integrity`: reports drift, repairs it with --fix, and is quiet when all is well."""

import io

import pytest
from django.core.management import call_command
from django.db.models import F

from billing.activation import activate_many
from billing.models import MonthlyUsage
from billing.months import month_of
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
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="2026-11"):
        call_command("usage_integrity", "--month", "November")
