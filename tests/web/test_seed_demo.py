"""The demo data includes automations, made once: a second seed changes nothing."""

import pytest
from django.core.management import call_command

from accounts.models import Workspace
from automations.models import Campaign, PausedAction, Scenario, ScenarioRun, Segment
from billing.activation import usage
from contacts.fakemeta.views import fake
from contacts.models import InstagramConnection
from contacts.tokens import token_decrypt


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


@pytest.mark.django_db
def test_the_demo_workspaces_come_connected_to_the_local_meta_stand_in(settings):
    settings.FAKE_META_ENABLED = True
    call_command("seed_demo", contacts=300)
    call_command("seed_demo", contacts=300)

    connections = {c.workspace.slug: c for c in InstagramConnection.objects.select_related("workspace")}
    assert sorted(connections) == ["corner-coffee", "sunny-skincare"]
    sunny = connections["sunny-skincare"]
    assert (sunny.account_id, sunny.username, sunny.status) == ("17841400000000001", "sunny.skincare", "active")
    assert sunny.workspace.instagram_account_id == sunny.account_id
    # The stand-in `make run` serves accepts the token for this account.
    assert fake().token_account(token_decrypt(sunny.token_encrypted), kind="long")["a"] == sunny.account_id


@pytest.mark.django_db
def test_without_the_stand_in_the_demo_is_not_connected():
    call_command("seed_demo", contacts=300)
    assert not InstagramConnection.objects.exists()
