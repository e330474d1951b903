"""Segments, campaigns, scenarios and paused actions over the API; who may start automated actions."""

import pytest

from automations.models import Campaign, PausedAction, Scenario, Segment
from automations.selectors import campaign_list, paused_actions_waiting_count
from automations.services import campaign_create, campaign_launch, campaign_preview, scenario_create, segment_create
from billing.activation import activate_many, usage
from contacts.models import Contact, Message
from tests.api.conftest import ws_url
from tests.factories import ContactFactory, FolderFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario(workspace):
    return scenario_create(workspace=workspace, name="Price reply", trigger_type="dm_keyword",
                           trigger_config={"keywords": ["price"]},
                           steps=[{"type": "send_message", "text": "Our prices: ..."}])


# --- segments ---


def test_segment_crud_with_live_size(api, workspace):
    ContactFactory.create_batch(3, workspace=workspace, source=Contact.Source.STORY)
    ContactFactory(workspace=workspace, source=Contact.Source.DM)

    created = api.post(ws_url(workspace, "segments/"), {"name": "Story fans", "rules": {"sources": ["story"]}},
                       format="json")
    assert created.status_code == 201
    segment_id = created.json()["id"]
    assert (created.json()["size"], created.json()["rules"]) == (3, {"sources": ["story"]})

    ContactFactory(workspace=workspace, source=Contact.Source.STORY)
    assert api.get(ws_url(workspace, f"segments/{segment_id}/")).json()["size"] == 4
    assert [(s["name"], s["size"]) for s in api.get(ws_url(workspace, "segments/")).json()["results"]] == [
        ("Story fans", 4)]

    patched = api.patch(ws_url(workspace, f"segments/{segment_id}/"), {"rules": {"sources": ["dm"]}}, format="json")
    assert (patched.json()["name"], patched.json()["size"]) == ("Story fans", 1)

    assert api.delete(ws_url(workspace, f"segments/{segment_id}/")).status_code == 204
    assert not Segment.objects.exists()


def test_segment_rules_are_validated(api, workspace):
    response = api.post(ws_url(workspace, "segments/"), {"name": "Bad", "rules": {"sources": ["tiktok"]}},
                        format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["rules.sources"]
    assert not Segment.objects.exists()


def test_a_segment_a_campaign_targets_cannot_be_deleted(api, workspace):
    segment = segment_create(workspace=workspace, name="VIP", rules={"sources": ["dm"]})
    campaign_create(workspace=workspace, name="Promo", text="Hi", audience="segment", segment=segment)

    response = api.delete(ws_url(workspace, f"segments/{segment.pk}/"))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "segment_in_use"
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_a_folder_a_campaign_targets_cannot_be_deleted(api, workspace):
    folder = FolderFactory(workspace=workspace)
    campaign_create(workspace=workspace, name="Promo", text="Hi", audience="folder", folder=folder)

    response = api.delete(ws_url(workspace, f"folders/{folder.pk}/"))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "folder_in_use"
    assert folder.__class__.objects.filter(pk=folder.pk).exists()


# --- campaigns ---


def test_campaign_crud_of_drafts(api, workspace):
    folder = FolderFactory(workspace=workspace)
    created = api.post(ws_url(workspace, "campaigns/"),
                       {"name": "Black Friday", "text": "-30% today", "audience": "folder", "folder": folder.pk},
                       format="json")
    assert created.status_code == 201
    body = created.json()
    assert (body["status"], body["audience"], body["folder"], body["segment"]) == ("draft", "folder", folder.pk, None)

    patched = api.patch(ws_url(workspace, f"campaigns/{body['id']}/"), {"text": "-40% today", "audience": "all"},
                        format="json")
    assert (patched.json()["text"], patched.json()["audience"], patched.json()["folder"]) == ("-40% today", "all", None)
    assert ids(api.get(ws_url(workspace, "campaigns/"))) == [body["id"]]
    assert api.get(ws_url(workspace, f"campaigns/{body['id']}/")).json()["name"] == "Black Friday"

    assert api.delete(ws_url(workspace, f"campaigns/{body['id']}/")).status_code == 204
    assert not Campaign.objects.exists()


def ids(response):
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.parametrize("body, field", [
    ({"name": "X", "text": ""}, "text"),
    ({"name": "X", "text": "Hi", "audience": "segment"}, "segment"),
    ({"name": "X", "text": "Hi", "audience": "everyone"}, "audience"),
    ({"name": "X", "text": "Hi", "scheduled_at": "tomorrow"}, "scheduled_at"),
])
def test_campaign_input_is_validated(api, workspace, body, field):
    response = api.post(ws_url(workspace, "campaigns/"), body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Campaign.objects.exists()


@pytest.mark.parametrize("folder", ["foreign", 999999])
def test_a_folder_missing_here_cannot_be_a_campaign_audience(api, workspace, folder):
    # A well-formed body naming something that is not in this workspace: 404, as for an id in the path.
    folder_id = FolderFactory(workspace=WorkspaceFactory()).pk if folder == "foreign" else folder

    response = api.post(ws_url(workspace, "campaigns/"),
                        {"name": "X", "text": "Hi", "audience": "folder", "folder": folder_id}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["fields"] == {"folder": ["No such folder in this workspace."]}
    assert not Campaign.objects.exists()


def test_preview_launch_and_counters(api, owner, workspace, django_capture_on_commit_callbacks):
    ContactFactory.create_batch(3, workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Promo", text="Hi")

    preview = api.get(ws_url(workspace, f"campaigns/{campaign.pk}/preview/"))
    assert preview.json() == {"audience": 3, "already_active": 0, "would_activate": 3, "would_be_limited": 0,
                              "outside_window": 0}
    assert preview.json()["would_activate"] == campaign_preview(campaign=campaign).would_activate

    with django_capture_on_commit_callbacks(execute=True):
        launched = api.post(ws_url(workspace, f"campaigns/{campaign.pk}/launch/"))

    assert launched.status_code == 200
    assert (launched.json()["status"], launched.json()["launched_by"]) == ("sending", owner.pk)
    detail = api.get(ws_url(workspace, f"campaigns/{campaign.pk}/")).json()
    assert (detail["status"], detail["sent_count"], detail["recipients_count"]) == ("done", 3, 3)
    assert usage(workspace).activated == 3
    assert Message.objects.filter(origin="automated").count() == 3


def test_launching_twice_is_a_conflict(api, workspace):
    campaign = campaign_create(workspace=workspace, name="Promo", text="Hi")
    api.post(ws_url(workspace, f"campaigns/{campaign.pk}/launch/"))

    again = api.post(ws_url(workspace, f"campaigns/{campaign.pk}/launch/"))

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "campaign_not_draft"
    edit = api.patch(ws_url(workspace, f"campaigns/{campaign.pk}/"), {"text": "changed"}, format="json")
    assert edit.status_code == 409
    assert api.delete(ws_url(workspace, f"campaigns/{campaign.pk}/")).status_code == 409


def test_launch_with_an_idempotency_key_launches_once_and_replays(api, workspace, django_capture_on_commit_callbacks):
    ContactFactory.create_batch(2, workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Promo", text="Hi")
    url = ws_url(workspace, f"campaigns/{campaign.pk}/launch/")

    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(url, HTTP_IDEMPOTENCY_KEY="launch-1")
    with django_capture_on_commit_callbacks(execute=True):
        again = api.post(url, HTTP_IDEMPOTENCY_KEY="launch-1")

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Message.objects.filter(origin="automated").count() == 2


def test_cancel_stops_a_campaign_and_cancels_its_paused_messages(api, workspace, make_contacts,
                                                                  django_capture_on_commit_callbacks):
    activate_many(workspace, make_contacts(workspace, 100), kind="scenario")
    ContactFactory.create_batch(2, workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Promo", text="Hi")
    with django_capture_on_commit_callbacks(execute=True):
        campaign_launch(campaign=campaign, launched_by=None)
    campaign.refresh_from_db()
    assert paused_actions_waiting_count(workspace) == campaign.limited_count > 0
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENDING)

    response = api.post(ws_url(workspace, f"campaigns/{campaign.pk}/cancel/"))

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert paused_actions_waiting_count(workspace) == 0
    assert api.post(ws_url(workspace, f"campaigns/{campaign.pk}/cancel/")).status_code == 409


# --- usage and paused actions ---


def test_paused_actions_list_and_the_usage_count_agree(api, workspace, make_contacts,
                                                       django_capture_on_commit_callbacks):
    activate_many(workspace, make_contacts(workspace, 100), kind="scenario")
    late = ContactFactory.create_batch(3, workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Promo", text="Hi")
    with django_capture_on_commit_callbacks(execute=True):
        campaign_launch(campaign=campaign, launched_by=None)

    usage_body = api.get(ws_url(workspace, "usage/")).json()
    page = api.get(ws_url(workspace, "paused-actions/?page_size=2")).json()
    rest = api.get(page["next"]).json()

    waiting = page["results"] + rest["results"]
    assert usage_body["paused_actions"] == paused_actions_waiting_count(workspace) == len(waiting) == 3
    assert {row["contact"]["id"] for row in waiting} == {c.pk for c in late}
    assert {(row["kind"], row["automation_ref"], row["status"]) for row in waiting} == {
        ("campaign", campaign.ref, "waiting")}
    assert api.get(ws_url(workspace, "paused-actions/?status=resumed")).json()["results"] == []
    bad = api.get(ws_url(workspace, "paused-actions/?status=sleeping"))
    assert bad.status_code == 400
    assert PausedAction.objects.count() == 3


# --- scenarios ---


def test_scenarios_list_detail_and_toggle(api, workspace, scenario):
    listed = api.get(ws_url(workspace, "scenarios/")).json()["results"]
    assert [(s["id"], s["enabled"], s["runs_total"]) for s in listed] == [(scenario.pk, True, 0)]
    detail = api.get(ws_url(workspace, f"scenarios/{scenario.pk}/")).json()
    assert detail["trigger_type"] == "dm_keyword"
    assert "webhook_secret" not in detail

    assert api.post(ws_url(workspace, f"scenarios/{scenario.pk}/disable/")).json()["enabled"] is False
    assert Scenario.objects.get(pk=scenario.pk).enabled is False
    assert api.post(ws_url(workspace, f"scenarios/{scenario.pk}/enable/")).json()["enabled"] is True
    assert Scenario.objects.get(pk=scenario.pk).enabled is True


# --- roles: members may edit and stop, not start ---


def test_a_member_cannot_launch_a_campaign(member_api, workspace):
    ContactFactory.create_batch(2, workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Promo", text="Hi")

    response = member_api.post(ws_url(workspace, f"campaigns/{campaign.pk}/launch/"), HTTP_IDEMPOTENCY_KEY="m-1")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert campaign_list(workspace=workspace).get().status == "draft"
    assert Message.objects.count() == 0


def test_a_member_can_turn_a_scenario_neither_on_nor_off(member_api, workspace, scenario):
    enabled = Scenario.objects.get(pk=scenario.pk).enabled

    assert member_api.post(ws_url(workspace, f"scenarios/{scenario.pk}/disable/")).status_code == 403
    assert member_api.post(ws_url(workspace, f"scenarios/{scenario.pk}/enable/")).status_code == 403
    assert Scenario.objects.get(pk=scenario.pk).enabled is enabled


def test_a_member_may_preview_but_neither_draft_nor_cancel(member_api, workspace):
    campaign = campaign_create(workspace=workspace, name="Promo", text="Hi")

    assert member_api.post(ws_url(workspace, "campaigns/"), {"name": "Draft", "text": "Hi"},
                           format="json").status_code == 403
    assert member_api.get(ws_url(workspace, f"campaigns/{campaign.pk}/preview/")).status_code == 200
    assert member_api.post(ws_url(workspace, f"campaigns/{campaign.pk}/cancel/")).status_code == 403
    assert campaign_list(workspace=workspace).get().status == "draft"
