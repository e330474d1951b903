"""Charge only what really engaged (docs/product.md rules 13 and 14), end to end.

Meta is a local HTTP server standing in for the Graph API (the real GraphBackend and GraphClient
talk to it); nothing else is patched.
"""

import datetime

import pytest
from django.utils import timezone

from automations.models import PausedAction, ScenarioRun, ScenarioStepLog
from automations.services import campaign_create, campaign_launch, scenario_create
from billing.activation import activate, activations_settle, usage
from billing.integrity import usage_drift
from billing.models import ActivationEvent, ActivationRecord, MonthlyUsage
from contacts.models import Message
from tests.contacts.test_graph_backend import FakeGraph
from tests.factories import ContactFactory, connect_instagram

pytestmark = pytest.mark.django_db

REFUSED = (400, {"error": {"message": "The user cannot receive this message", "code": 551}})


@pytest.fixture
def meta(settings, free_workspace):
    fake = FakeGraph()
    fake.thread.start()
    settings.INSTAGRAM_SEND_BACKEND = "graph"
    settings.META_GRAPH_API_BASE = fake.base_url
    connect_instagram(free_workspace)  # every call to Meta uses the workspace's own token (rule 15)
    settings.META_GRAPH_MAX_ATTEMPTS = 3
    settings.META_GRAPH_RETRY_BASE_SECONDS = 0
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _in_window(workspace, n):
    now = timezone.now()
    return [ContactFactory(workspace=workspace, last_inbound_at=now - datetime.timedelta(minutes=i + 1))
            for i in range(n)]


def _launch(campaign, callbacks):
    with callbacks(execute=True):
        campaign_launch(campaign=campaign, launched_by=None)
    campaign.refresh_from_db()
    return campaign


def test_a_campaign_where_meta_refuses_four_for_good_charges_the_six_sent(
    free_workspace, meta, django_capture_on_commit_callbacks
):
    contacts = _in_window(free_workspace, 10)
    for position in range(10):  # engaged-first order: every other one of the first eight is refused
        meta.queue(*REFUSED) if position in (1, 3, 5, 7) else meta.queue(200, {"message_id": f"m.{position}"})
    campaign = campaign_create(workspace=free_workspace, name="Launch", text="New drop")

    campaign = _launch(campaign, django_capture_on_commit_callbacks)

    assert (campaign.status, campaign.sent_count, campaign.failed_count) == ("done", 6, 4)
    snapshot = usage(free_workspace)
    assert (snapshot.activated, snapshot.in_flight, snapshot.remaining) == (6, 0, 94)
    refused = {contacts[i].pk for i in (1, 3, 5, 7)}
    charged = set(ActivationRecord.objects.filter(workspace=free_workspace).values_list("contact_id", flat=True))
    assert charged == {c.pk for c in contacts} - refused
    assert set(ActivationEvent.objects.filter(action="released").values_list("contact_id", flat=True)) == refused
    assert usage_drift() == []


def test_headroom_a_refusal_frees_goes_to_the_contacts_waiting(
    free_workspace, meta, django_capture_on_commit_callbacks
):
    contacts = _in_window(free_workspace, 14)
    usage(free_workspace)
    MonthlyUsage.objects.filter(workspace=free_workspace).update(quota=10)
    for position in range(10):
        meta.queue(*REFUSED) if position < 4 else meta.queue(200, {"message_id": f"m.{position}"})
    campaign = campaign_create(workspace=free_workspace, name="Launch", text="New drop")

    campaign = _launch(campaign, django_capture_on_commit_callbacks)

    # Ten reserved, four waiting at the quota; Meta refused four of the ten for good: their units went
    # to the four waiting, which were sent in turn (rule 13: released headroom resumes paused actions).
    assert not PausedAction.objects.filter(status=PausedAction.Status.WAITING).exists()
    assert PausedAction.objects.filter(status=PausedAction.Status.RESUMED, reason="sent").count() == 4
    assert (campaign.sent_count, campaign.failed_count, campaign.limited_count) == (10, 4, 0)
    snapshot = usage(free_workspace)
    assert (snapshot.activated, snapshot.in_flight, snapshot.quota) == (10, 0, 10)
    assert not ActivationRecord.objects.filter(contact__in=contacts[:4]).exists()


def test_a_scenario_whose_message_is_skipped_for_the_window_charges_nothing(free_workspace, fire):
    scenario_create(
        workspace=free_workspace, name="Giveaway", trigger_type="comment",
        steps=[{"type": "send_message", "text": "Check your DMs!"}],
    )
    # A comment 8 days old: past the 7 days of its private reply.
    eight_days_ago = timezone.now() - datetime.timedelta(days=8)
    contact = ContactFactory(workspace=free_workspace, source="organic_post", last_inbound_at=eight_days_ago)

    fire(contact, type="comment", text="me!", meta_id="c.1", comment_id="c.1", occurred_at=eight_days_ago)

    run = ScenarioRun.objects.get(contact=contact)
    assert run.status == ScenarioRun.Status.COMPLETED
    assert list(ScenarioStepLog.objects.filter(run=run).values_list("outcome", flat=True)) == ["skipped_window"]
    snapshot = usage(free_workspace)
    assert (snapshot.activated, snapshot.in_flight) == (0, 0)
    # Nothing outside the window reached the gate: not even a reservation.
    assert not ActivationRecord.all_states.filter(contact=contact).exists()
    assert not ActivationEvent.objects.filter(contact=contact).exists()
    assert not Message.objects.filter(contact=contact, direction="out").exists()


def test_a_scenario_message_meta_refuses_for_good_is_not_charged(free_workspace, fire, meta):
    scenario_create(workspace=free_workspace, name="Price", trigger_type="dm_keyword",
                    trigger_config={"keywords": ["price"]}, steps=[{"type": "send_message", "text": "Prices"}])
    contact = ContactFactory(workspace=free_workspace)
    meta.queue(*REFUSED)

    fire(contact, text="price?", meta_id="mid.1")

    assert Message.objects.get(contact=contact, direction="out").status == "failed"
    assert (usage(free_workspace).activated, usage(free_workspace).in_flight) == (0, 0)
    # Transient failures are retried with the reservation held; a later message that goes through is charged.
    meta.queue(503, {"error": {"message": "busy"}})
    fire(contact, text="price again", meta_id="mid.2")
    assert usage(free_workspace).activated == 1
    assert usage_drift() == []


def test_the_settle_job_settles_what_a_dead_worker_left(free_workspace, settings):
    settings.ACTIVATION_SETTLE_SECONDS = 600
    engaged, idle, young = ContactFactory.create_batch(3, workspace=free_workspace)
    for contact in (engaged, idle, young):
        activate(free_workspace, contact, kind="campaign", ref="campaign:999", confirm=False)
    # The dead worker had sent to one of them before dying (the message is recorded).
    Message.objects.create(workspace=free_workspace, contact=engaged, direction="out", origin="automated",
                           status="sent", text="hi", automation_ref="campaign:999")
    later = timezone.now() + datetime.timedelta(seconds=601)
    ActivationRecord.all_states.filter(contact=young).update(activated_at=later - datetime.timedelta(seconds=5))

    result = activations_settle(now=later)

    assert (result.confirmed, result.released, result.kept) == (1, 1, 0)
    snapshot = usage(free_workspace)
    assert (snapshot.activated, snapshot.in_flight) == (1, 1)  # the young one is left to its worker
    assert ActivationRecord.objects.get(workspace=free_workspace).contact_id == engaged.pk
    assert set(ActivationEvent.objects.filter(by="settle-job").values_list("contact_id", "action")) == {
        (engaged.pk, "confirmed"), (idle.pk, "released")}
    assert activations_settle(now=later) == type(result)(0, 0, 0)  # twice changes nothing
    assert usage_drift() == []
