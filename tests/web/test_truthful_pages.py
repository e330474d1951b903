"""Every sentence matches its number: the usage page, the API, the CSV and the contact page say what
the figures beside them mean (reserve, cap, forecast, paused actions that expire) and name the
automations instead of showing their references."""

import csv
import datetime
import html
import io
import re
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from automations.models import PausedAction, Scenario
from automations.services.campaigns import campaign_create
from automations.services.scenarios import scenario_create
from billing.activation import activate_many
from billing.months import month_end, month_of, month_start
from billing.services import quota_refresh
from tests.api.conftest import client_for
from tests.factories import ContactFactory, pro_subscription
from web import usage_views

pytestmark = pytest.mark.django_db


def api_usage(owner, workspace) -> dict:
    """The API's usage answer (checked against the OpenAPI schema by the client)."""
    return client_for(owner).get(f"/api/v1/workspaces/{workspace.pk}/usage/").json()


def usage_url(workspace):
    return reverse("usage", kwargs={"workspace_id": workspace.pk})


@pytest.fixture
def at(monkeypatch):
    """Read the usage page as if it were `moment` (the page's clock only: records keep theirs)."""

    def set_moment(moment):
        monkeypatch.setattr(usage_views, "timezone", SimpleNamespace(now=lambda: moment))
        monkeypatch.setattr("billing.selectors.timezone", SimpleNamespace(now=lambda: moment))
        return moment

    return set_moment


def paused(workspace, contact, *, ref, kind="campaign", action_type="campaign_message", expires_in=None):
    return PausedAction.objects.create(
        workspace=workspace, contact=contact, kind=kind, automation_ref=ref, action_type=action_type,
        dedupe_key=f"{ref}:contact:{contact.pk}",
        expires_at=timezone.now() + expires_in if expires_in is not None else None,
        payload={"needs_window": expires_in is not None},
    )


def test_the_badge_and_the_api_level_follow_the_forecast(owner_client, owner, workspace, make_contacts, at):
    activate_many(workspace, make_contacts(workspace, 50), kind="campaign")
    at(month_start(month_of()) + datetime.timedelta(days=5))  # 10 a day: the quota of 100 goes on day 10

    page = owner_client.get(usage_url(workspace)).content.decode()
    api = api_usage(owner, workspace)

    limit_day = month_start(month_of()).date() + datetime.timedelta(days=10)
    words = f"{limit_day.day} {limit_day:%B}"
    assert f'data-testid="level-badge">Limit on {words} at this pace</span>' in page
    assert "On track" not in page
    assert f"At this pace you reach the limit on {words}" in page  # the banner says the same
    assert (api["level"], api["forecast"]["limit_date"]) == ("warning", limit_day.isoformat())


def test_on_track_only_when_the_pace_fits(owner_client, owner, workspace, make_contacts, at):
    activate_many(workspace, make_contacts(workspace, 30), kind="campaign")
    at(month_end(month_of()) - datetime.timedelta(hours=2))

    page = owner_client.get(usage_url(workspace)).content.decode()

    assert 'data-testid="level-badge">On track</span>' in page
    assert api_usage(owner, workspace)["level"] == "ok"


def test_the_projection_is_not_capped_and_says_which_packs_cover_it(owner_client, owner, workspace, make_contacts,
                                                                   at):
    pro_subscription(workspace)
    quota_refresh(workspace=workspace)
    activate_many(workspace, make_contacts(workspace, 600), kind="campaign")
    at(month_start(month_of()) + datetime.timedelta(days=6))  # 100 a day: about 3,000 by the month's end

    response = owner_client.get(usage_url(workspace))

    forecast = response.context["summary"].forecast
    page = response.content.decode()
    assert forecast.projected_activations > 2900  # not 1,000, the quota
    assert f'data-testid="forecast-projected">{forecast.projected_activations:,}</div>' in page
    packs = -(-(forecast.projected_activations - 1000) // 1000)
    assert forecast.packs_needed == packs
    assert (f"To cover this pace: {packs} more add-on packs of 1,000 (${29 * packs} a month)") in page
    api = api_usage(owner, workspace)["forecast"]
    assert (api["projected_activations"], api["packs_needed"], api["packs_price_cents"]) == (
        forecast.projected_activations, packs, 2900 * packs)


def test_free_projection_points_at_pro(owner_client, workspace, make_contacts, at):
    activate_many(workspace, make_contacts(workspace, 60), kind="campaign")
    at(month_start(month_of()) + datetime.timedelta(days=3))

    page = owner_client.get(usage_url(workspace)).content.decode()

    assert "Pro (1,000 a month, $49) covers this pace." in page


def test_with_the_reserve_left_paused_campaign_messages_are_not_promised_to_resume(owner_client, workspace,
                                                                                  make_contacts):
    workspace.activation_reserve = 8
    workspace.save(update_fields=["activation_reserve"])
    contacts = make_contacts(workspace, 104)
    activate_many(workspace, contacts[:92], kind="campaign")
    campaign = campaign_create(workspace=workspace, name="Loyalty card", text="10th coffee on us")
    for contact in contacts[92:]:
        paused(workspace, contact, ref=campaign.ref)

    page = owner_client.get(usage_url(workspace)).content.decode()

    assert '<strong class="num" data-testid="remaining">8</strong> remaining' in page
    assert "of which 8 kept for people who write to you: campaigns may use 0" in page
    words = re.search(r'data-testid="resume-words">(.*?)</p>', page, re.S).group(1)
    assert "The 12 paused campaign messages do not resume" in words
    assert "resuming" not in words and "There is room" not in words
    assert 'title="Campaign “Loyalty card”">Loyalty card: 12</span>' in page  # the chip names it
    # The campaigns page's paused list says the same, right now.
    campaigns = owner_client.get(reverse("campaigns", kwargs={"workspace_id": workspace.pk})).content.decode()
    now = re.search(r'data-testid="paused-now"><strong>Right now:</strong> (.*?)</p>', campaigns, re.S).group(1)
    assert words.startswith(now) and "do not resume" in now


def test_room_for_some_says_how_many(owner_client, workspace, make_contacts):
    contacts = make_contacts(workspace, 110)
    activate_many(workspace, contacts[:95], kind="scenario")
    scenario = scenario_create(workspace=workspace, name="Price reply", trigger_type="dm_keyword",
                               trigger_config={"keywords": ["price"]},
                               steps=[{"type": "send_message", "text": "Prices: example.com"}])
    for contact in contacts[95:]:
        paused(workspace, contact, ref=scenario.ref, kind="scenario", action_type="scenario_run")

    page = owner_client.get(usage_url(workspace)).content.decode()

    words = re.search(r'data-testid="resume-words">(.*?)</p>', page, re.S).group(1)
    assert "There is room for 5 of them: they resume by themselves within a minute" in words
    assert "the other 10 wait" in words


def test_paused_messages_whose_window_closes_first_are_said_to_expire(owner_client, workspace, make_contacts):
    contacts = make_contacts(workspace, 103)
    activate_many(workspace, contacts[:100], kind="campaign")
    campaign = campaign_create(workspace=workspace, name="Winter sale", text="-30%")
    for contact in contacts[100:]:
        paused(workspace, contact, ref=campaign.ref, expires_in=datetime.timedelta(hours=20))

    page = html.unescape(owner_client.get(usage_url(workspace)).content.decode())
    campaigns = html.unescape(
        owner_client.get(reverse("campaigns", kwargs={"workspace_id": workspace.pk})).content.decode())

    assert "3 of them are messages that can only be sent inside the contact's 24-hour window" in page
    assert "they expire then, not sent, unless there is room sooner" in page
    assert "Winter sale: 3 (3 expire from" in page
    # Each paused row says its fate: it expires before the reset, not "when your quota resets".
    fates = re.findall(r'data-testid="paused-fate">(.*?)</td>', campaigns, re.S)
    assert len(fates) == 3 and all("Expires" in fate and "It is not sent after that" in fate for fate in fates)
    assert campaigns.count('data-testid="paused-automation">Winter sale</span>') == 3


def test_names_not_references_on_the_page_the_csv_and_the_contact(owner_client, workspace):
    contact = ContactFactory(workspace=workspace, username="mia")
    campaign = campaign_create(workspace=workspace, name="Autumn launch", text="Our serum is here")
    scenario = scenario_create(workspace=workspace, name="Welcome", trigger_type="new_contact",
                               steps=[{"type": "send_message", "text": "Hi"}])
    other = ContactFactory(workspace=workspace, username="leo")
    activate_many(workspace, [contact], kind="campaign", ref=campaign.ref)
    activate_many(workspace, [other], kind="scenario", ref=scenario.ref)

    page = owner_client.get(usage_url(workspace)).content.decode()
    rows = list(csv.reader(io.StringIO(b"".join(owner_client.get(
        reverse("activations_csv", kwargs={"workspace_id": workspace.pk})).streaming_content).decode())))
    detail = owner_client.get(reverse("contact", kwargs={"workspace_id": workspace.pk,
                                                         "contact_id": contact.pk})).content.decode()

    assert f'<span title="{campaign.ref}">Autumn launch</span>' in page
    assert f'<span title="{scenario.ref}">Welcome</span>' in page
    assert f"<code class=\"small\">{campaign.ref}</code>" not in page
    assert {(row[7], row[8]) for row in rows[1:]} == {(campaign.ref, "Autumn launch"), (scenario.ref, "Welcome")}
    assert 'data-testid="activation-automation">Autumn launch</span>' in detail


def test_names_take_one_query_whatever_the_number_of_automations(owner_client, workspace):
    def page_queries():
        with CaptureQueriesContext(connection) as captured:
            owner_client.get(usage_url(workspace))
        return len(captured.captured_queries)

    first = ContactFactory(workspace=workspace)
    activate_many(workspace, [first], kind="campaign",
                  ref=campaign_create(workspace=workspace, name="C0", text="x").ref)
    owner_client.get(usage_url(workspace))
    one = page_queries()
    for index in range(1, 6):
        ref = (campaign_create(workspace=workspace, name=f"C{index}", text="x").ref if index % 2 else
               scenario_create(workspace=workspace, name=f"S{index}", trigger_type="new_contact",
                               steps=[{"type": "send_message", "text": "Hi"}]).ref)
        activate_many(workspace, [ContactFactory(workspace=workspace)], kind=ref.split(":")[0], ref=ref)
    assert page_queries() == one


def test_the_chart_adds_up_against_the_quota_and_the_bars_have_their_own_scale(owner_client, workspace,
                                                                             make_contacts, at):
    activate_many(workspace, make_contacts(workspace, 12), kind="campaign")
    at(month_start(month_of()) + datetime.timedelta(days=2))  # 6 a day: 180 or so by the month's end

    response = owner_client.get(usage_url(workspace))

    cumulative, bars = response.context["cumulative"], response.context["chart"]
    page = response.content.decode()
    assert cumulative.quota == 100 and cumulative.projected > 100
    assert cumulative.limit_x is not None  # the pace crosses the quota line this month
    assert 'class="quota-line"' in page and 'class="forecast-line"' in page and 'class="actual-line"' in page
    assert "12 so far; at this pace" in cumulative.summary and "past the quota of 100" in cumulative.summary
    # Daily bars: the busiest day at the top of their own scale (12 -> 20), not the quota's 100.
    assert bars.ticks[-1][1] == 20


def test_the_breakdown_names_each_automation(owner_client, workspace, make_contacts):
    contacts = make_contacts(workspace, 9)
    campaign = campaign_create(workspace=workspace, name="Autumn launch", text="x")
    scenario = scenario_create(workspace=workspace, name="Welcome", trigger_type="new_contact",
                               steps=[{"type": "send_message", "text": "Hi"}])
    activate_many(workspace, contacts[:6], kind="campaign", ref=campaign.ref)
    activate_many(workspace, contacts[6:], kind="scenario", ref=scenario.ref)

    response = owner_client.get(usage_url(workspace))

    assert [(ref, n, str(name)) for _, ref, n, name in response.context["per_automation"]] == [
        (campaign.ref, 6, "Autumn launch"), (scenario.ref, 3, "Welcome")]
    page = response.content.decode()
    assert 'Autumn launch <span class="muted small">Campaign</span></span><strong class="num">6</strong>' in page
    assert Scenario.objects.filter(pk=scenario.pk).exists()


def test_a_cancelled_at_period_end_plan_is_not_a_green_active(owner_client, workspace):
    subscription = pro_subscription(workspace)
    end = timezone.now() + datetime.timedelta(days=9)
    type(subscription).objects.filter(pk=subscription.pk).update(cancel_at_period_end=True, current_period_end=end)

    page = owner_client.get(usage_url(workspace)).content.decode()

    local = end.astimezone(datetime.UTC)
    assert f'<span class="badge warning" data-testid="plan-badge">Ends on {local.day} {local:%B}</span>' in page
