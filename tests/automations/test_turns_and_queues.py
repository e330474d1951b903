"""Replies before broadcasts: conversational tasks have a queue of their own, and a campaign over the
network sends for its turn, then lets the other workspaces' broadcasts have the workers."""

import pytest

from automations.models import Campaign, CampaignRecipient
from automations.services import campaign_create
from automations.services.campaign_fanout import campaign_send, campaign_turn_seconds
from inro.celery import app
from inro.enqueue import registered_task
from inro.settings import base
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_intake_and_scenario_tasks_go_to_the_conversation_queue_and_broadcasts_do_not():
    routes = base.CELERY_TASK_ROUTES
    assert base.CELERY_CONVERSATION_QUEUE == "conversation"
    for name in base.CONVERSATION_TASKS:
        assert registered_task(name).name == name  # a real task, not a typo
        assert routes[name] == {"queue": "conversation"}
    for name in ("automations.tasks.campaign_send", "automations.tasks.paused_actions_resume"):
        assert name in app.tasks and name not in routes


def test_a_campaign_over_the_network_sends_a_chunk_per_turn_until_it_is_done(
        free_workspace, settings):
    settings.INSTAGRAM_SEND_BACKEND = "tests.automations.test_campaigns.OneByOneOutbox"
    settings.CAMPAIGN_NETWORK_BATCH_SIZE = 25
    settings.META_SEND_CONCURRENCY = 10  # a chunk: what the gate is asked for at once
    ContactFactory.create_batch(35, workspace=free_workspace)
    campaign = campaign_create(workspace=free_workspace, name="Drop", text="Hi")
    campaign.status = Campaign.Status.SENDING
    campaign.save(update_fields=["status"])
    written = []

    for _ in range(10):
        result = campaign_send(campaign_id=campaign.pk, turn_seconds=1e-9)  # each turn ends at once
        written.append(CampaignRecipient.objects.filter(campaign=campaign).count())
        if result.status != Campaign.Status.SENDING:
            break

    # One chunk per turn (a turn that ends mid-batch leaves the rest of the batch for the next one).
    assert written == [10, 20, 25, 35]
    assert (result.status, result.sent_count) == ("done", 35)


def test_a_workspaces_turn_is_shared_by_its_sending_campaigns(free_workspace, settings):
    settings.INSTAGRAM_SEND_BACKEND = "tests.automations.test_campaigns.OneByOneOutbox"
    settings.CAMPAIGN_TURN_SECONDS = 12
    first, second, third = (campaign_create(workspace=free_workspace, name=f"C{n}", text="Hi") for n in range(3))
    Campaign.objects.filter(pk=first.pk).update(status=Campaign.Status.SENDING)
    assert campaign_turn_seconds(campaign_id=first.pk) is None  # nobody else waits: no turns

    Campaign.objects.filter(pk=second.pk).update(status=Campaign.Status.SENDING)
    assert campaign_turn_seconds(campaign_id=first.pk) == 6  # two of its campaigns are sending

    settings.INSTAGRAM_SEND_BACKEND = "outbox"  # storing is not calling Meta: no turns
    assert campaign_turn_seconds(campaign_id=first.pk) is None
    assert third.status == Campaign.Status.DRAFT
