"""Building automations from the web pages: campaigns, scenarios, segments (runs, enrichment) and
integrations; owners and admins only, refusals explained under the input they are about, and each
automated action counted through the gate."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from automations.models import (
    Campaign,
    CampaignRecipient,
    EnrichmentJob,
    Integration,
    PausedAction,
    Scenario,
    ScenarioRun,
    Segment,
    SegmentMembership,
)
from automations.services import campaign_create, inbound_event_handle, segment_create
from automations.services.segments import segment_contacts
from billing.activation import activate_many, usage
from contacts.hooks import InboundEvent
from contacts.models import Contact, Message
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def url(name, workspace, **kwargs):
    return reverse(name, kwargs={"workspace_id": workspace.pk, **kwargs})


def step_rows(*steps, blank=1):
    """The POST data of the scenario form's step rows (a Django formset)."""
    rows = [*steps, *({} for _ in range(blank))]
    data = {"steps-TOTAL_FORMS": str(len(rows)), "steps-INITIAL_FORMS": "0"}
    for index, row in enumerate(rows):
        data.update({f"steps-{index}-{key}": value for key, value in row.items()})
    return data


def test_owners_create_a_campaign_as_a_draft_and_edit_it(owner_client, workspace):
    segment = segment_create(workspace=workspace, name="Story fans", rules={"sources": ["story"]})

    missing = owner_client.post(url("campaign_new", workspace), {"name": "Restock", "text": "Back!",
                                                                  "audience": "segment"})
    assert missing.status_code == 400
    assert "Choose the segment to send to." in missing.content.decode()
    response = owner_client.post(url("campaign_new", workspace), {
        "name": "Restock", "text": "The serum is back!", "audience": "segment", "segment": str(segment.pk),
        "scheduled_at": (timezone.now() + datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")})

    campaign = Campaign.objects.get()
    assert response.status_code == 302 and response.url == url("campaign", workspace, campaign_id=campaign.pk)
    assert (campaign.status, campaign.segment, campaign.scheduled_at is not None) == ("draft", segment, True)
    owner_client.post(url("campaign_edit", workspace, campaign_id=campaign.pk), {
        "name": "Restock", "text": "Back in stock!", "audience": "all"})
    campaign.refresh_from_db()
    assert (campaign.text, campaign.audience, campaign.segment, campaign.scheduled_at) == (
        "Back in stock!", "all", None, None)


def test_members_cannot_build_or_run_automations(member_client, workspace):
    segment = segment_create(workspace=workspace, name="All")
    campaign = campaign_create(workspace=workspace, name="Promo", text="Hi")
    for name, kwargs in [("campaign_new", {}), ("scenario_new", {}), ("segment_new", {}),
                         ("campaign_edit", {"campaign_id": campaign.pk}), ("segment_run", {"segment_id": segment.pk}),
                         ("segment_enrich", {"segment_id": segment.pk}), ("integrations", {}),
                         ("campaign_cancel", {"campaign_id": campaign.pk})]:
        assert member_client.post(url(name, workspace, **kwargs), {"name": "x", "url": "http://127.0.0.1/"}
                                  ).status_code == 403, name
    assert member_client.get(url("segments", workspace)).status_code == 200  # members read
    assert not Integration.objects.exists() and Campaign.objects.get().status == "draft"


def test_a_finished_campaign_links_to_its_limited_and_skipped_contacts_and_offers_a_follow_up(
        owner_client, workspace, django_capture_on_commit_callbacks):
    contacts = ContactFactory.create_batch(5, workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Black Friday", text="20% off today")
    statuses = ["sent", "limited", "limited", "skipped_window", "skipped_window"]
    CampaignRecipient.objects.bulk_create([CampaignRecipient(campaign=campaign, contact=c, rank=i, status=s)
                                           for i, (c, s) in enumerate(zip(contacts, statuses, strict=True))])
    Campaign.objects.filter(pk=campaign.pk).update(status="done", recipients_count=5, sent_count=1, limited_count=2,
                                                   skipped_window_count=2, launched_at=timezone.now())
    PausedAction.objects.create(workspace=workspace, contact=contacts[1], kind="campaign", automation_ref=campaign.ref,
                                action_type="campaign_message", dedupe_key=f"{campaign.ref}:contact:{contacts[1].pk}",
                                expires_at=timezone.now() + datetime.timedelta(hours=5))

    page = owner_client.get(url("campaign", workspace, campaign_id=campaign.pk)).content.decode()
    limited = owner_client.get(url("campaign_recipients", workspace, campaign_id=campaign.pk) + "?status=limited")

    assert "2 limited at your quota" in page and "2 skipped: their window was closed" in page
    assert "1 still waits" in page and "Raise the limit" not in page
    assert [r.contact for r in limited.context["page"].object_list] == contacts[1:3]
    assert limited.context["waiting"] == {contacts[1].pk}
    response = owner_client.post(url("campaign_follow_up", workspace, campaign_id=campaign.pk))
    follow_up = Scenario.objects.get()
    assert response.url == url("scenario", workspace, scenario_id=follow_up.pk)
    assert (follow_up.trigger_type, follow_up.enabled, follow_up.steps) == (
        "next_message", True, [{"type": "send_message", "text": "20% off today"}])
    segment = Segment.objects.get(pk=follow_up.trigger_config["segment_id"])
    assert set(segment_contacts(segment=segment).values_list("pk", flat=True)) == {contacts[3].pk, contacts[4].pk}

    # When a skipped contact next writes, the follow-up sends them the message: once, whatever they write next.
    with django_capture_on_commit_callbacks(execute=True):
        for text, contact in (("hello?", contacts[3]), ("still there?", contacts[3]), ("hi", contacts[0])):
            inbound_event_handle(InboundEvent(workspace_id=workspace.pk, contact_id=contact.pk, type="message",
                                              occurred_at=timezone.now(), text=text, meta_id=f"mid.{text}"))
    run = ScenarioRun.objects.get(scenario=follow_up)
    assert (run.contact, run.status) == (contacts[3], "completed")
    assert Message.objects.filter(contact=contacts[3], direction="out", text="20% off today").count() == 1
    assert "The next message of each contact in the segment" in owner_client.get(response.url).content.decode()


def test_owners_build_a_scenario_with_its_steps_and_see_refusals_under_the_row(owner_client, workspace):
    segment = segment_create(workspace=workspace, name="Leads")
    base = {"name": "Price reply", "enabled": "on", "trigger_type": "dm_keyword", "keywords": "price, how much",
            "match": "any"}

    refused = owner_client.post(url("scenario_new", workspace), {**base, **step_rows(
        {"type": "send_message", "text": "Our prices are on the site."},
        {"type": "ask_question", "text": "Your size?", "field": "nickname"})})
    assert refused.status_code == 400
    row = refused.context["steps"].forms[1]
    assert row.errors["field"] == ["Store the answer in email, phone or custom:<name>."]
    no_keyword = owner_client.post(url("scenario_new", workspace), {**base, "keywords": "", **step_rows(
        {"type": "send_message", "text": "Hi"})})
    assert "keywords" in no_keyword.context["form"].errors
    assert not Scenario.objects.exists()

    response = owner_client.post(url("scenario_new", workspace), {**base, **step_rows(
        {"type": "send_message", "text": "Our prices are on the site."},
        {"type": "ask_question", "text": "Your email?", "field": "email"},
        {"type": "add_tag", "tag": "Asked price"},
        {"type": "wait", "wait": "2", "unit": "hours"},
        {"type": "add_to_segment", "segment": str(segment.pk)}, blank=2)})

    scenario = Scenario.objects.get()
    assert response.url == url("scenario", workspace, scenario_id=scenario.pk)
    assert scenario.trigger_config == {"keywords": ["price", "how much"], "match": "any", "exact": False}
    assert scenario.steps == [
        {"type": "send_message", "text": "Our prices are on the site."},
        {"type": "ask_question", "text": "Your email?", "field": "email", "answer_type": "email", "retry_text": ""},
        {"type": "add_tag", "tag": "asked price"}, {"type": "wait", "seconds": 7200},
        {"type": "add_to_segment", "segment_id": segment.pk}]
    detail = owner_client.get(response.url).content.decode()
    assert "A direct message where any of “price”, “how much”." in detail and "Wait</strong>: 2 hours" in detail
    edit = owner_client.get(url("scenario_edit", workspace, scenario_id=scenario.pk))
    assert edit.context["steps"].forms[3].initial == {**edit.context["steps"].forms[3].initial, "wait": 2,
                                                       "unit": "hours"}
    owner_client.post(url("scenario_toggle", workspace, scenario_id=scenario.pk), {"enabled": "0"})
    assert Scenario.objects.get().enabled is False


def test_a_segment_built_on_the_page_runs_and_enriches_through_the_gate(owner_client, workspace,
                                                                       django_capture_on_commit_callbacks):
    activate_many(workspace, ContactFactory.create_batch(97, workspace=workspace), kind="campaign")
    ContactFactory.create_batch(4, workspace=workspace, source=Contact.Source.STORY)

    response = owner_client.post(url("segment_new", workspace), {"name": "Story fans", "sources": ["story"],
                                                                 "run_every": "day"})
    segment = Segment.objects.get()
    assert response.url == url("segment", workspace, segment_id=segment.pk)
    assert (segment.rules, segment.run_every, segment.next_run_at is not None) == ({"sources": ["story"]}, "day", True)

    with django_capture_on_commit_callbacks(execute=True):  # the run's task, inline in tests
        owner_client.post(url("segment_run", workspace, segment_id=segment.pk))
    segment.refresh_from_db()
    assert (segment.last_run_added, segment.last_run_limited) == (3, 1)
    assert SegmentMembership.objects.filter(segment=segment).count() == 3
    assert usage(workspace).activated == 100
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(url("segment_enrich", workspace, segment_id=segment.pk))
    job = EnrichmentJob.objects.get()
    assert (job.segment, len(job.contact_ids), job.enriched_count, job.limited_count) == (segment, 4, 3, 1)
    page = owner_client.get(url("segment", workspace, segment_id=segment.pk)).content.decode()
    assert "3 placed, 1 limited" in page


def test_integrations_added_on_the_page_explain_a_refused_url(owner_client, workspace, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    refused = owner_client.post(url("integrations", workspace), {"name": "CRM", "url": "http://10.0.0.8/hook",
                                                                  "enabled": "on"})
    assert refused.status_code == 400
    assert "10.0.0.8 is a private address; the server only calls public internet addresses." in (
        refused.content.decode())
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    response = owner_client.post(url("integrations", workspace), {"name": "CRM", "url": "http://127.0.0.1:9/hook",
                                                                  "enabled": "on"})
    integration = Integration.objects.get()
    assert response.url == url("integration", workspace, integration_id=integration.pk)
    secret = integration.secret
    assert secret in owner_client.get(response.url).content.decode()
    owner_client.post(url("integration_secret", workspace, integration_id=integration.pk))
    integration.refresh_from_db()
    assert integration.secret != secret
