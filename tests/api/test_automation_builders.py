"""Building automations over the API: scenarios (create, edit), segmentation runs (now and on a schedule),
enrichment jobs on a segment and outgoing integrations; each automated action counts through the gate."""

import datetime

import pytest
from django.utils import timezone

from automations.models import EnrichmentJob, Integration, PausedAction, Scenario, Segment, SegmentMembership
from automations.services import segment_create, segments_run_due
from billing.activation import activate_many, usage
from billing.models import ActivationRecord
from contacts.models import Contact
from tests.api.conftest import ws_url
from tests.factories import ContactFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

EVERY_STEP = [
    {"type": "send_message", "text": "Thanks for writing!"},
    {"type": "ask_question", "text": "Your email?", "field": "email", "retry_text": "That is not an email."},
    {"type": "ask_question", "text": "Your size?", "field": "custom:size"},
    {"type": "add_tag", "tag": "Lead"},
    {"type": "wait", "seconds": 3600},
]


@pytest.mark.parametrize("trigger", [
    {"type": "dm_keyword", "keywords": ["price", "how much"], "match": "any", "exact": False},
    {"type": "comment", "keywords": ["info"], "media_id": "17900001"},
    {"type": "story", "events": ["story_reply", "mention"]},
    {"type": "ad_referral", "ad_id": "2385"},
    {"type": "new_contact"},
    {"type": "webhook"},
    {"type": "next_message"},
])
def test_owners_create_a_scenario_with_any_trigger_and_every_step(api, workspace, trigger):
    segment = segment_create(workspace=workspace, name="Leads")
    if trigger["type"] == "next_message":
        trigger = {**trigger, "segment_id": segment.pk}
    integration = Integration.objects.create(workspace=workspace, name="CRM", url="http://127.0.0.1:9/hook")
    steps = [*EVERY_STEP, {"type": "add_to_segment", "segment_id": segment.pk},
             {"type": "call_integration", "integration_id": integration.pk}]

    response = api.post(ws_url(workspace, "scenarios/"), {"name": "Welcome", "trigger": trigger, "steps": steps},
                        format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["enabled"], body["trigger_type"], body["runs_total"]) == (
        "Welcome", True, trigger["type"], 0)
    assert [s["type"] for s in body["steps"]] == [s["type"] for s in steps]
    assert body["steps"][1]["answer_type"] == "email"  # stored in email: an email answer
    assert body["steps"][3]["tag"] == "lead"
    assert Scenario.objects.get(pk=body["id"]).trigger_type == trigger["type"]


@pytest.mark.parametrize(("body", "field"), [
    ({"trigger": {"type": "dm_keyword"}}, "trigger"),
    ({"trigger": {"type": "dm_keyword", "keywords": ["!!"]}}, "trigger.keywords.0"),
    ({"trigger": {"type": "story", "events": ["live"]}}, "trigger.events.0"),
    ({"steps": []}, "steps"),
    ({"steps": [{"type": "send_message", "text": "   "}]}, "steps.0.text"),
    ({"steps": [{"type": "ask_question", "text": "Email?", "field": "email", "answer_type": "phone"}]},
     "steps.0.answer_type"),
    ({"steps": [{"type": "wait", "seconds": 0}]}, "steps.0.seconds"),
    ({"steps": [{"type": "teleport"}]}, "steps.0.type"),
])
def test_scenario_definitions_are_refused_with_the_place_and_the_reason(api, workspace, body, field):
    data = {"name": "Bad", "trigger": {"type": "new_contact"}, "steps": [{"type": "send_message", "text": "Hi"}],
            **body}

    response = api.post(ws_url(workspace, "scenarios/"), data, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert list(error["fields"]) == [field], error
    assert error["message"]
    assert not Scenario.objects.exists()


def test_a_step_naming_a_segment_of_another_workspace_is_not_found(api, workspace):
    elsewhere = segment_create(workspace=WorkspaceFactory(), name="Theirs")

    response = api.post(ws_url(workspace, "scenarios/"), {
        "name": "Sneaky", "trigger": {"type": "new_contact"},
        "steps": [{"type": "add_to_segment", "segment_id": elsewhere.pk}]}, format="json")

    assert response.status_code == 404
    assert list(response.json()["error"]["fields"]) == ["steps.0.segment_id"]
    assert not Scenario.objects.exists()


def test_owners_edit_a_scenario_and_members_cannot(api, member_api, workspace):
    created = api.post(ws_url(workspace, "scenarios/"), {
        "name": "Price", "trigger": {"type": "dm_keyword", "keywords": ["price"]},
        "steps": [{"type": "send_message", "text": "Our prices"}]}, format="json").json()
    url = ws_url(workspace, f"scenarios/{created['id']}/")

    assert member_api.patch(url, {"name": "Mine now"}, format="json").status_code == 403
    patched = api.patch(url, {"name": "Prices", "enabled": False, "trigger": {"type": "comment"},
                              "steps": [{"type": "add_tag", "tag": "asked"}]}, format="json")

    assert patched.status_code == 200
    scenario = Scenario.objects.get(pk=created["id"])
    assert (scenario.name, scenario.enabled, scenario.trigger_type, scenario.steps) == (
        "Prices", False, "comment", [{"type": "add_tag", "tag": "asked"}])
    assert patched.json()["trigger_config"] == {"media_id": ""}


def test_a_segmentation_run_charges_through_the_gate_and_pauses_at_the_quota(api, workspace,
                                                                             django_capture_on_commit_callbacks):
    activate_many(workspace, ContactFactory.create_batch(98, workspace=workspace, source=Contact.Source.DM),
                  kind="campaign")
    stories = ContactFactory.create_batch(5, workspace=workspace, source=Contact.Source.STORY)
    segment = segment_create(workspace=workspace, name="Story fans", rules={"sources": ["story"]})

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(ws_url(workspace, f"segments/{segment.pk}/run/"))

    assert response.status_code == 202
    segment.refresh_from_db()
    assert (segment.last_run_added, segment.last_run_limited) == (2, 3)
    assert SegmentMembership.objects.filter(segment=segment).count() == 2
    assert usage(workspace).activated == 100
    assert set(ActivationRecord.objects.filter(kind="segmentation").values_list("contact_id", flat=True)) <= {
        c.pk for c in stories}
    assert PausedAction.objects.filter(kind="segmentation", status="waiting").count() == 3
    detail = api.get(ws_url(workspace, f"segments/{segment.pk}/")).json()
    assert (detail["last_run_added"], detail["last_run_limited"]) == (2, 3)


def test_a_scheduled_segment_runs_when_due_and_once(api, workspace, django_capture_on_commit_callbacks):
    ContactFactory.create_batch(3, workspace=workspace, source=Contact.Source.STORY)
    segment = segment_create(workspace=workspace, name="Story fans", rules={"sources": ["story"]})

    patched = api.patch(ws_url(workspace, f"segments/{segment.pk}/"), {"run_every": "day"}, format="json").json()
    assert patched["run_every"] == "day" and patched["next_run_at"] is not None

    assert segments_run_due() == []  # not yet
    later = timezone.now() + datetime.timedelta(days=1, minutes=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert segments_run_due(now=later) == [segment.pk]
    assert segments_run_due(now=later) == []  # claimed: the next one is a day on
    segment.refresh_from_db()
    assert segment.last_run_added == 3
    assert segment.next_run_at > later
    assert usage(workspace).activated == 3

    api.patch(ws_url(workspace, f"segments/{segment.pk}/"), {"run_every": "never"}, format="json")
    assert Segment.objects.get(pk=segment.pk).next_run_at is None


def test_an_enrichment_job_on_a_segment_charges_through_the_gate(api, workspace, django_capture_on_commit_callbacks):
    activate_many(workspace, ContactFactory.create_batch(99, workspace=workspace, source=Contact.Source.DM),
                  kind="campaign")
    ContactFactory.create_batch(3, workspace=workspace, source=Contact.Source.STORY)
    segment = segment_create(workspace=workspace, name="Story fans", rules={"sources": ["story"]})

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(ws_url(workspace, f"segments/{segment.pk}/enrichment-jobs/"))

    assert response.status_code == 201
    job = EnrichmentJob.objects.get(pk=response.json()["id"])
    assert (job.segment_id, len(job.contact_ids), job.status) == (segment.pk, 3, "done")
    assert (job.enriched_count, job.limited_count) == (1, 2)
    assert usage(workspace).activated == 100
    assert ActivationRecord.objects.filter(kind="enrichment").count() == 1
    listed = api.get(ws_url(workspace, "enrichment-jobs/")).json()["results"]
    assert [(j["id"], j["enriched_count"], j["limited_count"]) for j in listed] == [(job.pk, 1, 2)]


def test_an_empty_segment_has_nothing_to_enrich(api, workspace):
    segment = segment_create(workspace=workspace, name="Nobody", rules={"sources": ["story"]})

    response = api.post(ws_url(workspace, f"segments/{segment.pk}/enrichment-jobs/"))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "segment_empty"
    assert not EnrichmentJob.objects.exists()


def test_integrations_are_configured_by_admins_and_refused_urls_say_why(api, member_api, workspace, settings):
    created = api.post(ws_url(workspace, "integrations/"), {"name": "CRM", "url": "http://127.0.0.1:9/hook"},
                       format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["secret"] and body["enabled"] is True
    url = ws_url(workspace, f"integrations/{body['id']}/")
    assert member_api.get(url).json()["secret"] is None  # members read it, not its secret
    assert member_api.post(ws_url(workspace, "integrations/"), {"name": "X", "url": "http://127.0.0.1:9/"},
                           format="json").status_code == 403

    rotated = api.patch(url, {"new_secret": True, "enabled": False}, format="json").json()
    assert rotated["secret"] != body["secret"] and rotated["enabled"] is False

    settings.OUTBOUND_ALLOWED_NETWORKS = []
    refused = api.post(ws_url(workspace, "integrations/"), {"name": "Metadata", "url": "http://169.254.169.254/"},
                       format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unsafe_url"
    assert "link-local" in refused.json()["error"]["fields"]["url"][0]
    moved = api.patch(url, {"url": "http://127.0.0.1:9/elsewhere"}, format="json")
    assert moved.status_code == 400
    assert Integration.objects.get(pk=body["id"]).url == "http://127.0.0.1:9/hook"


def test_an_audience_without_its_target_is_refused_in_the_request_or_in_conflict_with_the_campaign(api, workspace):
    created = api.post(ws_url(workspace, "campaigns/"), {"name": "Promo", "text": "Hi", "audience": "folder"},
                       format="json")
    assert created.status_code == 400 and list(created.json()["error"]["fields"]) == ["folder"]
    campaign = api.post(ws_url(workspace, "campaigns/"), {"name": "Promo", "text": "Hi"}, format="json").json()

    edited = api.patch(ws_url(workspace, f"campaigns/{campaign['id']}/"), {"audience": "folder"}, format="json")

    assert edited.status_code == 409  # the campaign has no folder to keep: give one with the audience
    assert edited.json()["error"]["code"] == "campaign_has_no_folder"
    nulled = api.patch(ws_url(workspace, f"campaigns/{campaign['id']}/"), {"audience": "folder", "folder": None},
                       format="json")
    assert nulled.status_code == 400


def test_whole_numbers_written_with_a_decimal_point_are_whole_numbers(api, workspace):
    segment = segment_create(workspace=workspace, name="Leads")

    response = api.post(ws_url(workspace, "scenarios/"), {
        "name": "Later", "trigger": {"type": "next_message", "segment_id": float(segment.pk)},
        "steps": [{"type": "wait", "seconds": 3600.0}, {"type": "add_to_segment", "segment_id": float(segment.pk)}]},
        format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["steps"] == [{"type": "wait", "seconds": 3600},
                                        {"type": "add_to_segment", "segment_id": segment.pk}]
