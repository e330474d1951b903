"""The usage figures every surface shows come from these selectors."""

import datetime

import pytest

from billing import selectors
from billing.activation import activate, activate_many
from billing.months import month_end, month_of, month_start
from contacts.selectors import contact_list
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_summary_levels_follow_80_and_100_percent(workspace, make_contacts):
    contacts = make_contacts(workspace, 100)
    activate_many(workspace, contacts[:79], kind="campaign")
    late = month_end(month_of()) - datetime.timedelta(hours=1)  # the pace stays below the quota
    assert selectors.usage_summary(workspace=workspace, now=late).level == "ok"
    activate(workspace, contacts[79], kind="scenario")
    summary = selectors.usage_summary(workspace=workspace, now=late)
    assert (summary.level, summary.percent, summary.remaining) == ("warning", 80, 20)
    activate_many(workspace, contacts[80:], kind="campaign")
    summary = selectors.usage_summary(workspace=workspace)
    assert (summary.level, summary.limit_reached, summary.plan.code) == ("limit", True, "free")


def test_forecast_projects_the_pace_to_month_end(workspace, make_contacts):
    activate_many(workspace, make_contacts(workspace, 20), kind="campaign")
    snapshot = selectors.usage(workspace)
    ten_days_in = month_start(snapshot.month) + datetime.timedelta(days=10)

    forecast = selectors.usage_forecast(snapshot=snapshot, now=ten_days_in)

    # 2 a day: 60 in a 30-day month or 62 in a 31-day one; below the quota, so no limit day.
    assert forecast.daily_rate == 2.0
    assert forecast.projected_activations in (56, 58, 60, 62)
    assert forecast.limit_date is None


def test_forecast_names_the_day_the_limit_would_be_reached(workspace, make_contacts):
    activate_many(workspace, make_contacts(workspace, 50), kind="campaign")
    snapshot = selectors.usage(workspace)
    five_days_in = month_start(snapshot.month) + datetime.timedelta(days=5)

    forecast = selectors.usage_forecast(snapshot=snapshot, now=five_days_in)

    assert forecast.daily_rate == 10.0
    assert forecast.limit_date == (month_start(snapshot.month) + datetime.timedelta(days=10)).date()
    # Not capped at the quota: the pace asks for about 300, so nobody is led to think 100 is enough.
    assert forecast.projected_activations in (280, 290, 300, 310)
    assert forecast.shortfall == forecast.projected_activations - 100
    assert forecast.packs_needed == 0  # Free has no packs: the page offers Pro instead


def test_per_kind_and_per_day_add_up_to_the_count(workspace, make_contacts):
    contacts = make_contacts(workspace, 7)
    activate_many(workspace, contacts[:4], kind="campaign")
    activate_many(workspace, contacts[4:], kind="enrichment")

    kinds = {kind: n for kind, _, n in selectors.activations_per_kind(workspace=workspace)}
    days = selectors.activations_per_day(workspace=workspace)

    assert kinds == {"campaign": 4, "scenario": 0, "segmentation": 0, "enrichment": 3, "integration": 0}
    assert days[0][0] == month_of()
    assert sum(n for _, n in days) == 7


def test_database_versus_activated_split(workspace, make_contacts):
    contacts = make_contacts(workspace, 10)
    activate_many(workspace, contacts[:3], kind="campaign")
    everyone = contact_list(workspace=workspace)

    active = selectors.contacts_filter_activated(everyone, workspace=workspace, activated=True)
    inactive = selectors.contacts_filter_activated(everyone, workspace=workspace, activated=False)

    assert selectors.database_contact_count(workspace=workspace) == 10
    assert set(active) == set(contacts[:3]) and inactive.count() == 7


def test_activation_list_searches_by_username(workspace):
    ava = ContactFactory(workspace=workspace, username="ava.sun")
    ContactFactory(workspace=workspace, username="leo.moon")
    activate_many(workspace, list(workspace.contacts.all()), kind="campaign")

    assert [r.contact for r in selectors.activation_list(workspace=workspace, search="@ava")] == [ava]
