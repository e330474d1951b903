"""The usage page's per-day chart and per-kind split come from counters the gate keeps on the month's
usage row: they must always say what the ledger says, in the billing zone's days."""

import datetime
import io
import zoneinfo

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import selectors
from billing.activation import activate, activate_many
from billing.integrity import usage_breakdown_from_records
from billing.models import ActivationRecord, MonthlyUsage
from billing.months import month_of
from contacts.services import contact_delete
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    """Set "now" for the gate and the selectors (both read django.utils.timezone.now)."""

    def set_now(moment: datetime.datetime) -> None:
        monkeypatch.setattr(timezone, "now", lambda: moment)

    return set_now


def this_month_at(day: int, hour: int, zone: str = "UTC") -> datetime.datetime:
    month = month_of()
    return datetime.datetime(month.year, month.month, day, hour, tzinfo=zoneinfo.ZoneInfo(zone))


def chart(workspace) -> dict[int, int]:
    return {day.day: n for day, n in selectors.activations_per_day(workspace=workspace) if n}


def kinds(workspace) -> dict[str, int]:
    return {kind: n for kind, _, n in selectors.activations_per_kind(workspace=workspace) if n}


def test_chart_and_kinds_follow_single_and_batch_activations_by_day(workspace, make_contacts, clock):
    contacts = make_contacts(workspace, 9)
    clock(this_month_at(2, 10))
    activate_many(workspace, contacts[:4], kind="campaign")
    activate(workspace, contacts[4], kind="scenario")
    clock(this_month_at(5, 23))
    activate_many(workspace, contacts[:6], kind="campaign")  # 4 already active: only 5 is new
    activate(workspace, contacts[6], kind="enrichment")
    activate(workspace, contacts[6], kind="enrichment")  # repeated engagement counts once

    assert chart(workspace) == {2: 5, 5: 2}
    assert kinds(workspace) == {"campaign": 5, "scenario": 1, "enrichment": 1}
    assert usage_breakdown_from_records(workspace_id=workspace.pk, month=month_of()) == (
        {"2": 5, "5": 2}, {"campaign": 5, "scenario": 1, "enrichment": 1}
    )


def test_days_are_the_billing_zones_days(workspace, make_contacts, clock, settings):
    settings.BILLING_TIME_ZONE = "America/New_York"
    contacts = make_contacts(workspace, 2)
    clock(this_month_at(4, 2, "UTC"))  # 22:00 or 21:00 on the 3rd in New York
    activate(workspace, contacts[0], kind="scenario")
    clock(this_month_at(4, 18, "UTC"))
    activate_many(workspace, contacts[1:], kind="integration")

    assert chart(workspace) == {3: 1, 4: 1}
    by_day, _ = usage_breakdown_from_records(workspace_id=workspace.pk, month=month_of())
    assert by_day == {"3": 1, "4": 1}  # the ledger, counted in the same zone, agrees


def test_a_breakdown_not_known_is_rebuilt_from_the_ledger_once_then_moves_with_the_gate(
    workspace, make_contacts, clock
):
    contacts = make_contacts(workspace, 5)
    clock(this_month_at(3, 9))
    activate_many(workspace, contacts[:3], kind="segmentation")
    # As after the migration that added the counters, or a counter repair.
    MonthlyUsage.objects.filter(workspace=workspace).update(activated_by_day=None, activated_by_kind=None)

    assert chart(workspace) == {3: 3} and kinds(workspace) == {"segmentation": 3}
    row = MonthlyUsage.objects.get(workspace=workspace)
    assert (row.activated_by_day, row.activated_by_kind) == ({"3": 3}, {"segmentation": 3})

    clock(this_month_at(6, 9))
    activate(workspace, contacts[3], kind="campaign")
    assert chart(workspace) == {3: 3, 6: 1} and kinds(workspace) == {"segmentation": 3, "campaign": 1}


def test_deleting_a_contact_keeps_its_activation_in_the_chart(workspace, make_contacts, clock):
    contacts = make_contacts(workspace, 2)
    clock(this_month_at(1, 12))
    activate_many(workspace, contacts, kind="campaign")
    contact_delete(contact=contacts[0])

    assert chart(workspace) == {1: 2} and kinds(workspace) == {"campaign": 2}


def test_integrity_reports_and_repairs_a_breakdown_that_differs_from_the_ledger(workspace, make_contacts, clock):
    clock(this_month_at(2, 8))
    activate_many(workspace, make_contacts(workspace, 4), kind="campaign")
    MonthlyUsage.objects.filter(workspace=workspace).update(activated_by_kind={"campaign": 3, "scenario": 1})
    out = io.StringIO()

    with pytest.raises(SystemExit):
        call_command("usage_integrity", stdout=out)
    assert f"drift workspace={workspace.pk} month={month_of():%Y-%m} per-day or per-kind" in out.getvalue()

    call_command("usage_integrity", "--fix", stdout=io.StringIO())
    assert kinds(workspace) == {"campaign": 4}
    call_command("usage_integrity", stdout=io.StringIO())  # quiet again: no SystemExit


def test_the_usage_page_reads_the_ledger_only_for_its_list(client, workspace, make_contacts):
    """The chart, the split and the contact count come from counters: no query scans the month."""
    user = MembershipFactory(workspace=workspace).user
    client.force_login(user)
    activate_many(workspace, make_contacts(workspace, 30), kind="campaign")

    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/w/{workspace.pk}/")

    assert response.status_code == 200
    ledger = [q["sql"] for q in queries if ActivationRecord._meta.db_table in q["sql"]]
    assert len(ledger) == 1 and "LIMIT" in ledger[0], ledger
    assert not [q["sql"] for q in queries if 'COUNT(*)' in q["sql"] and "contacts_contact" in q["sql"]]
    assert response.context["database_total"] == 30
