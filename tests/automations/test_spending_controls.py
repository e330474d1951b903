"""Spending controls (rule 16) from the API and the web: the monthly cap, the reserve for conversations
and critical campaigns, with what each surface says about them."""

import pytest
from django.test import Client

from accounts.models import Membership, Workspace
from automations.models import Campaign, PausedAction
from automations.services import campaign_create, campaign_launch, paused_actions_resume
from billing.activation import activate_many, usage
from billing.services import bonus_grant
from tests.api.conftest import client_for, ws_url
from tests.factories import ContactFactory, FolderFactory, MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(free_workspace):
    return free_workspace.memberships.get().user


@pytest.fixture
def api(owner):
    return client_for(owner)


@pytest.fixture
def web(owner):
    client = Client()
    client.force_login(owner)
    return client


def launch(workspace, name, contacts, callbacks):
    """Launch a campaign to `contacts` (a folder of them), or to every contact when None."""
    folder = None
    if contacts is not None:
        folder = FolderFactory(workspace=workspace)
        folder.contacts.add(*contacts)
    campaign = campaign_create(workspace=workspace, name=name, text="Hi", audience="folder" if folder else "all",
                               folder=folder)
    with callbacks(execute=True):
        campaign_launch(campaign=campaign, launched_by=None)
    campaign.refresh_from_db()
    return campaign


def waiting(campaign) -> int:
    return PausedAction.objects.filter(automation_ref=campaign.ref, status=PausedAction.Status.WAITING).count()


def test_cap_from_the_api_pauses_at_the_cap_and_raising_or_clearing_it_resumes(
        free_workspace, api, web, django_capture_on_commit_callbacks):
    workspace = free_workspace
    ContactFactory.create_batch(30, workspace=workspace)

    response = api.patch(ws_url(workspace, "usage/settings/"), {"monthly_cap": 10}, format="json")

    assert response.status_code == 200
    assert response.json() == {"monthly_cap": 10, "conversation_reserve": 0, "quota": 10, "plan_quota": 100,
                               "activated": 0, "remaining": 10, "campaign_remaining": 10,
                               "note": "your cap of 10"}
    campaign = launch(workspace, "Spring", None, django_capture_on_commit_callbacks)
    assert (campaign.sent_count, campaign.limited_count, usage(workspace).activated) == (10, 20, 10)
    page = web.get(f"/w/{workspace.pk}/").content.decode()
    assert "You've reached your cap of 10 activated contacts" in page
    assert "Your plan allows 100: they resume by themselves when you raise or clear your cap" in page
    assert "when you raise or clear your cap of 10" in page  # the paused banner
    body = api.get(ws_url(workspace, "usage/")).json()
    assert (body["quota"], body["limit_reached"], body["quota_breakdown"]["held_by"],
            body["quota_breakdown"]["monthly_cap"], body["quota_breakdown"]["plan_quota"]) == (10, True, "cap", 10, 100)

    with django_capture_on_commit_callbacks(execute=True):
        raised = api.patch(ws_url(workspace, "usage/settings/"), {"monthly_cap": 25}, format="json")

    assert raised.json()["quota"] == 25
    assert (usage(workspace).activated, waiting(campaign)) == (25, 5)

    with django_capture_on_commit_callbacks(execute=True):
        cleared = api.patch(ws_url(workspace, "usage/settings/"), {"monthly_cap": None}, format="json")

    assert (cleared.json()["monthly_cap"], cleared.json()["quota"]) == (None, 100)
    campaign.refresh_from_db()
    assert (usage(workspace).activated, waiting(campaign), campaign.sent_count) == (30, 0, 30)


def test_cap_from_the_usage_page_form(free_workspace, web, django_capture_on_commit_callbacks):
    workspace = free_workspace
    activate_many(workspace, ContactFactory.create_batch(12, workspace=workspace), kind="scenario")

    response = web.post(f"/w/{workspace.pk}/usage/settings/", {"monthly_cap": "12", "conversation_reserve": "0"})

    assert response.status_code == 302 and response.url.endswith("#controls")
    assert (usage(workspace).quota, usage(workspace).remaining) == (12, 0)
    page = web.get(f"/w/{workspace.pk}/").content.decode()
    assert "Your cap: 12 activated contacts a month, below your plan's 100" in page
    assert 'value="12"' in page

    bad = web.post(f"/w/{workspace.pk}/usage/settings/", {"monthly_cap": "-3", "conversation_reserve": "x"},
                   follow=True)
    assert "Monthly cap: Ensure this value is greater than or equal to 0." in bad.content.decode()
    assert Workspace.objects.get(pk=workspace.pk).monthly_cap == 12


def test_members_cannot_change_controls_and_bad_input_writes_nothing(free_workspace, api):
    workspace = free_workspace
    member = MembershipFactory(workspace=workspace, role=Membership.Role.MEMBER).user
    member_api = client_for(member)
    member_web = Client()
    member_web.force_login(member)
    campaign = campaign_create(workspace=workspace, name="Promo", text="Hi")

    assert member_api.get(ws_url(workspace, "usage/settings/")).status_code == 200
    denied = member_api.patch(ws_url(workspace, "usage/settings/"), {"monthly_cap": 5}, format="json")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"
    assert member_api.patch(ws_url(workspace, f"campaigns/{campaign.pk}/"), {"critical": True},
                            format="json").status_code == 403
    assert member_web.post(f"/w/{workspace.pk}/usage/settings/", {"monthly_cap": "5",
                                                                   "conversation_reserve": "0"}).status_code == 403
    assert member_web.post(f"/w/{workspace.pk}/campaigns/{campaign.pk}/critical/",
                           {"critical": "1"}).status_code == 403
    assert "Only owners and admins can change the spending controls." in member_web.get(
        f"/w/{workspace.pk}/").content.decode()

    for body, field in [({"monthly_cap": -1}, "monthly_cap"), ({"monthly_cap": "lots"}, "monthly_cap"),
                        ({"conversation_reserve": None}, "conversation_reserve"),
                        ({"monthly_cap": 10_000_001}, "monthly_cap"), ({"cap": 5}, "cap")]:
        response = api.patch(ws_url(workspace, "usage/settings/"), body, format="json")
        assert response.status_code == 400, body
        assert field in response.json()["error"]["fields"]
    workspace.refresh_from_db()
    campaign.refresh_from_db()
    assert (workspace.monthly_cap, workspace.activation_reserve, campaign.critical) == (None, 0, False)
    assert usage(workspace).quota == 100


def test_reserve_is_shown_with_the_headroom_and_campaigns_do_not_resume_into_it(
        free_workspace, api, web, django_capture_on_commit_callbacks):
    workspace = free_workspace
    ContactFactory.create_batch(20, workspace=workspace)
    activate_many(workspace, ContactFactory.create_batch(90, workspace=workspace, last_inbound_at=None),
                  kind="scenario")
    campaign = launch(workspace, "Flash sale", None, django_capture_on_commit_callbacks)
    assert (campaign.sent_count, waiting(campaign)) == (10, 10)
    # Two contacts of the campaign's audience wrote in and were answered: two activations, not the campaign's.
    bonus_grant(workspace=workspace, amount=8, reason="Support", granted_by=None)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(ws_url(workspace, "usage/settings/"), {"conversation_reserve": 8}, format="json")

    assert response.json()["campaign_remaining"] == 0
    assert response.json()["note"] == "+8 bonus this month; 8 kept for people who write to you"
    assert (usage(workspace).remaining, waiting(campaign)) == (8, 10)  # nothing resumed into the reserve
    assert paused_actions_resume(workspace=workspace).resumed == 0
    page = web.get(f"/w/{workspace.pk}/").content.decode()
    assert ('<span data-testid="reserve-note">, of which 8 kept for people who write to you: campaigns may use '
            "0</span>") in page
    assert ("The 10 paused campaign messages do not resume: the 8 activations left are kept for people who write "
            "to you.") in page
    assert "they are resuming by themselves" not in page
    billing_page = web.get(f"/w/{workspace.pk}/billing/").content.decode()
    assert "8 kept for people who write to you" in billing_page
    assert api.get(ws_url(workspace, "usage/")).json()["quota_breakdown"]["campaign_remaining"] == 0

    with django_capture_on_commit_callbacks(execute=True):
        api.patch(ws_url(workspace, "usage/settings/"), {"conversation_reserve": 3}, format="json")

    assert (usage(workspace).remaining, waiting(campaign)) == (3, 5)  # lowering the reserve resumed 5


def test_critical_campaigns_resume_first_then_the_rest_oldest_first(
        free_workspace, api, web, django_capture_on_commit_callbacks):
    workspace = free_workspace
    activate_many(workspace, ContactFactory.create_batch(100, workspace=workspace, last_inbound_at=None),
                  kind="scenario")
    older = launch(workspace, "Older", ContactFactory.create_batch(4, workspace=workspace),
                   django_capture_on_commit_callbacks)
    leads = FolderFactory(workspace=workspace)
    leads.contacts.add(*ContactFactory.create_batch(4, workspace=workspace))
    newer = campaign_create(workspace=workspace, name="Leads", text="Hi", audience="folder", folder=leads)
    preview = api.get(ws_url(workspace, f"campaigns/{newer.pk}/preview/")).json()
    assert (preview["would_be_limited"], preview["waiting_before"], preview["waiting_before_if_critical"]) == (
        4, 4, 0)
    assert preview["critical_words"] == ("Its 4 paused contacts would resume after the 4 paused actions waiting "
                                         "now, oldest first. Marked critical, they would resume before any other "
                                         "paused action.")

    marked = api.patch(ws_url(workspace, f"campaigns/{newer.pk}/"), {"critical": True}, format="json")
    assert marked.status_code == 200 and marked.json()["critical"] is True
    page = web.get(f"/w/{workspace.pk}/campaigns/{newer.pk}/").content.decode()
    assert ("Marked critical: its 4 paused contacts resume first when headroom returns, before any other paused "
            "action, ahead of the 4 other paused actions waiting now.") in page
    newer = launch_existing(newer, django_capture_on_commit_callbacks)
    assert (waiting(older), waiting(newer)) == (4, 4)
    assert older.launched_at < newer.launched_at

    with django_capture_on_commit_callbacks(execute=True):
        bonus_grant(workspace=workspace, amount=5, reason="Short on headroom", granted_by=None)

    # The critical campaign's four go first, then the oldest of the rest with the one left.
    assert (waiting(newer), waiting(older)) == (0, 3)
    newer.refresh_from_db()
    assert newer.sent_count == 4

    # Launched campaigns can still be marked (or unmarked) critical, from the page too.
    response = web.post(f"/w/{workspace.pk}/campaigns/{older.pk}/critical/", {"critical": "1"})
    assert response.status_code == 302
    assert Campaign.objects.get(pk=older.pk).critical is True


def launch_existing(campaign, callbacks):
    with callbacks(execute=True):
        campaign_launch(campaign=campaign, launched_by=None)
    campaign.refresh_from_db()
    return campaign


def test_reserve_from_the_usage_page_form_and_the_admin_shows_the_controls(free_workspace, web, admin_client):
    workspace = free_workspace

    web.post(f"/w/{workspace.pk}/usage/settings/", {"monthly_cap": "80", "conversation_reserve": "8"})

    workspace.refresh_from_db()
    assert (workspace.monthly_cap, workspace.activation_reserve) == (80, 8)
    page = web.get(f"/w/{workspace.pk}/").content.decode()
    assert "8 activations kept for people who write to you: campaigns stop before using them (72 left for " \
           "campaigns)." in page
    assert ('<span data-testid="reserve-note">, of which 8 kept for people who write to you: campaigns may use '
            "72</span>") in page
    admin_page = admin_client.get(f"/admin/accounts/workspace/{workspace.pk}/change/").content.decode()
    assert "Spending controls: cap 80 (below the plan's 100) · 8 kept for conversations" in admin_page
    assert "your cap of 80; 8 kept for people who write to you" in admin_page
