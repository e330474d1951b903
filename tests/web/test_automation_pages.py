"""Campaigns and scenarios pages: counters, the launch preview, launching (owners/admins), paused actions."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from automations.models import Campaign, PausedAction, Scenario, ScenarioRun, UsageAlert
from automations.services.campaigns import campaign_create
from billing.activation import activate_many
from billing.months import month_of
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def url(name, workspace, **kwargs):
    return reverse(name, kwargs={"workspace_id": workspace.pk, **kwargs})


def _paused(workspace, contact, ref="campaign:1", kind="campaign", action_type="campaign_message"):
    return PausedAction.objects.create(
        workspace=workspace, contact=contact, kind=kind, automation_ref=ref, action_type=action_type,
        dedupe_key=f"{ref}:contact:{contact.pk}", expires_at=timezone.now() + datetime.timedelta(hours=20),
    )


def test_campaigns_list_shows_the_counters(owner_client, workspace):
    campaign = campaign_create(workspace=workspace, name="Black Friday", text="20% off today")
    Campaign.objects.filter(pk=campaign.pk).update(
        status="done", recipients_count=1200, sent_count=1000, limited_count=150, skipped_window_count=40,
        failed_count=10, launched_at=timezone.now(),
    )

    page = owner_client.get(url("campaigns", workspace)).content.decode()

    assert "Black Friday" in page
    limited = url("campaign_recipients", workspace, campaign_id=campaign.pk)
    for figure in ('data-label="Recipients">1,200</td>', 'data-label="Sent">1,000</td>',
                   f'<a class="badge warning" href="{limited}?status=limited">150</a>',
                   f'<a href="{limited}?status=skipped_window">40</a>', '<span class="badge limit">10</span>'):
        assert figure in page


def test_the_launch_preview_splits_the_audience_before_anything_goes_out(owner_client, workspace):
    active = ContactFactory.create_batch(98, workspace=workspace)
    activate_many(workspace, active, kind="scenario")
    ContactFactory.create_batch(5, workspace=workspace)  # wrote in today: reachable, not yet active
    ContactFactory.create_batch(2, workspace=workspace, last_inbound_at=None)  # never wrote: outside the window
    campaign = campaign_create(workspace=workspace, name="Restock", text="It's back!")

    response = owner_client.get(url("campaign", workspace, campaign_id=campaign.pk))

    preview = response.context["preview"]
    assert (preview.audience, preview.outside_window, preview.already_active, preview.would_activate,
            preview.would_be_limited) == (105, 2, 98, 2, 3)
    page = response.content.decode()
    assert '<span data-testid="preview-activate">2</span>' in page
    assert "3 contacts would wait" in page
    assert "Review and launch: 100 reached now, 3 paused, 2 outside the window" in page
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"


def test_owners_launch_after_the_preview_and_a_confirmation(owner_client, owner, workspace):
    campaign = campaign_create(workspace=workspace, name="Restock", text="It's back!")
    launch = url("campaign_launch", workspace, campaign_id=campaign.pk)

    confirm = owner_client.get(launch)
    unconfirmed = owner_client.post(launch)  # one click is not enough: the confirmation page again
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"
    response = owner_client.post(launch, {"confirm": "yes"})

    assert 'data-testid="launch-confirm"' in confirm.content.decode()
    assert 'data-testid="launch-confirm"' in unconfirmed.content.decode()
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.status, campaign.launched_by) == ("sending", owner)
    again = owner_client.post(launch, {"confirm": "yes"}, follow=True)
    assert "This campaign is sending: it cannot be launched." in again.content.decode()


def test_members_see_the_preview_but_cannot_launch(member_client, workspace):
    campaign = campaign_create(workspace=workspace, name="Restock", text="It's back!")

    page = member_client.get(url("campaign", workspace, campaign_id=campaign.pk)).content.decode()
    response = member_client.post(url("campaign_launch", workspace, campaign_id=campaign.pk), {"confirm": "yes"})

    assert "Only owners and admins can launch campaigns." in page and "Review and launch" not in page
    assert response.status_code == 403
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"


@pytest.mark.parametrize("name", ["campaigns", "scenarios", "segments", "integrations", "campaign_new",
                                  "scenario_new", "segment_new"])
def test_outsiders_get_404(outsider_client, workspace, name):
    assert outsider_client.get(url(name, workspace)).status_code == 404


def test_outsiders_cannot_see_or_launch_a_campaign(outsider_client, workspace):
    campaign = campaign_create(workspace=workspace, name="Restock", text="It's back!")
    assert outsider_client.get(url("campaign", workspace, campaign_id=campaign.pk)).status_code == 404
    assert outsider_client.post(url("campaign_launch", workspace, campaign_id=campaign.pk),
                                {"confirm": "yes"}).status_code == 404
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"


def test_scenarios_list_shows_run_counters(owner_client, workspace):
    scenario = Scenario.objects.create(workspace=workspace, name="Price keyword", trigger_type="dm_keyword")
    contacts = ContactFactory.create_batch(8, workspace=workspace)
    for index, status in enumerate(["completed", "completed", "completed", "limited", "waiting", "failed",
                                    "failed", "expired"]):
        ScenarioRun.objects.create(scenario=scenario, workspace=workspace, contact=contacts[index],
                                   trigger_key=f"mid.{index}", status=status)

    response = owner_client.get(url("scenarios", workspace))

    row = response.context["scenarios"][0]
    assert (row.runs_total, row.runs_completed, row.runs_waiting, row.runs_limited, row.runs_expired,
            row.runs_failed) == (8, 3, 1, 1, 1, 2)
    page = response.content.decode()
    assert "Price keyword" in page and "DM keyword" in page
    assert 'data-label="Runs">8</td>' in page and '<span class="badge limit">2</span>' in page


def test_paused_actions_are_listed_oldest_first_with_what_resumes_them(owner_client, workspace):
    first, second = ContactFactory(workspace=workspace, username="first"), ContactFactory(workspace=workspace,
                                                                                         username="second")
    _paused(workspace, first, ref="campaign:4")
    _paused(workspace, second, ref="campaign:4")
    _paused(workspace, second, ref="scenario:2", kind="scenario", action_type="scenario_run")

    response = owner_client.get(url("campaigns", workspace))

    assert [a.contact.username for a in response.context["paused"]] == ["first", "second"]
    assert response.context["paused_total"] == 2
    assert ("resume by themselves, paused messages of critical campaigns first, then oldest first, when you "
            "upgrade or add packs") in response.content.decode()
    usage_page = owner_client.get(url("usage", workspace)).content.decode()
    assert '<span data-testid="paused-waiting">3</span> paused actions waiting' in usage_page
    assert "Campaign #4 (deleted): 2" in usage_page and "Scenario #2 (deleted): 1" in usage_page


def test_usage_alerts_say_when_owners_were_emailed(owner_client, workspace):
    activate_many(workspace, ContactFactory.create_batch(85, workspace=workspace), kind="campaign")
    UsageAlert.objects.create(workspace=workspace, month=month_of(), threshold=80,
                              sent_at=datetime.datetime(2026, 11, 20, 9, 30, tzinfo=datetime.UTC))

    page = owner_client.get(url("usage", workspace)).content.decode()

    assert "You've used 85% of this month's activated contacts" in page
    assert "Owners were emailed on 20 November, 09:30." in page


def test_the_campaigns_page_takes_a_fixed_number_of_queries(owner_client, workspace, django_assert_num_queries):
    for index in range(3):
        campaign_create(workspace=workspace, name=f"Campaign {index}", text="Hello")
    owner_client.get(url("campaigns", workspace))
    with CaptureQueriesContext(connection) as few:
        owner_client.get(url("campaigns", workspace))
    for index in range(3, 40):
        campaign_create(workspace=workspace, name=f"Campaign {index}", text="Hello")
    with django_assert_num_queries(len(few.captured_queries)):
        owner_client.get(url("campaigns", workspace))
