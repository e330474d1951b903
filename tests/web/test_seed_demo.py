"""The demo data includes automations, made once: a second seed changes nothing."""

import pytest
from django.core.management import call_command

from accounts.models import Workspace
from automations.models import Campaign, PausedAction, Scenario, ScenarioRun, Segment
from billing.activation import usage


@pytest.mark.django_db
def test_seed_demo_adds_automations_once():
    call_command("seed_demo", contacts=300)
    counts = [m.objects.count() for m in (Campaign, Scenario, ScenarioRun, Segment, PausedAction)]
    call_command("seed_demo", contacts=300)

    assert [m.objects.count() for m in (Campaign, Scenario, ScenarioRun, Segment, PausedAction)] == counts
    near = Workspace.objects.get(slug="corner-coffee")
    loyalty = Campaign.objects.get(workspace=near, name="Loyalty card")
    assert loyalty.status == "done" and loyalty.limited_count > 0
    assert PausedAction.objects.filter(workspace=near, status="waiting").count() == loyalty.limited_count
    assert (usage(near).activated, near.activation_reserve) == (92, 8)
    assert Campaign.objects.filter(status="scheduled").count() == 1
    assert Segment.objects.count() == 4 and Scenario.objects.count() == 5
