"""A campaign over the Graph API with several calls to Meta in flight at once (META_SEND_CONCURRENCY),
against the Send API stand-in: each contact gets one message, throttling backs the account off."""

import datetime

import pytest
from django.utils import timezone

from automations.services import campaign_create, campaign_launch
from billing.activation import usage
from billing.integrity import usage_drift
from contacts.fakemeta.send_api import SendApiStandIn
from contacts.models import Message
from tests.factories import ContactFactory, connect_instagram

pytestmark = pytest.mark.django_db


@pytest.fixture
def meta(settings, free_workspace):
    with SendApiStandIn(delay=0.05) as stand_in:
        settings.INSTAGRAM_SEND_BACKEND = "graph"
        settings.META_GRAPH_API_BASE = stand_in.base_url
        settings.META_GRAPH_RETRY_BASE_SECONDS = 0
        settings.META_SEND_CONCURRENCY = 8
        connect_instagram(free_workspace, account_id="17841400000000777")
        yield stand_in


def _campaign(workspace, n, callbacks):
    now = timezone.now()
    recent = now - datetime.timedelta(minutes=1)
    contacts = [ContactFactory(workspace=workspace, igsid=f"9{i:09d}", last_inbound_at=recent) for i in range(n)]
    campaign = campaign_create(workspace=workspace, name="Drop", text="New drop")
    with callbacks(execute=True):
        campaign_launch(campaign=campaign, launched_by=None)
    campaign.refresh_from_db()
    return campaign, contacts


def test_sends_overlap_up_to_the_pool_and_each_contact_gets_one_message(
        free_workspace, meta, django_capture_on_commit_callbacks):
    campaign, contacts = _campaign(free_workspace, 60, django_capture_on_commit_callbacks)

    assert (campaign.status, campaign.sent_count, campaign.failed_count) == ("done", 60, 0)
    assert meta.messages_per_recipient() == {c.igsid: 1 for c in contacts}
    assert 1 < meta.max_in_flight <= 8  # several calls in flight, never more than the pool
    assert {c.token for c in meta.calls} == {f"IGAAtest{free_workspace.pk}token"}
    sent = Message.objects.filter(workspace=free_workspace, direction="out", status="sent")
    assert sent.count() == 60 and not sent.filter(meta_mid="").exists()
    assert usage(free_workspace).activated == 60
    assert usage_drift() == []


def test_a_throttled_account_backs_off_and_then_everyone_gets_one_message(
        free_workspace, meta, settings, django_capture_on_commit_callbacks):
    settings.META_THROTTLE_BACKOFF_SECONDS = 0.2
    meta.throttle("17841400000000777", 3, code=613)

    campaign, contacts = _campaign(free_workspace, 30, django_capture_on_commit_callbacks)

    assert (campaign.status, campaign.sent_count, campaign.failed_count) == ("done", 30, 0)
    assert len(meta.calls) == 33  # three throttled calls, each sent again after the back-off
    assert meta.messages_per_recipient() == {c.igsid: 1 for c in contacts}
    assert usage(free_workspace).activated == 30


def test_a_token_rejected_mid_campaign_pauses_the_rest_for_the_reconnect(
        free_workspace, meta, django_capture_on_commit_callbacks):
    original = meta._answer
    answered = {"n": 0}

    def answer(path, authorization, raw, arrived):
        answered["n"] += 1
        if answered["n"] > 10:
            return 400, {"error": {"message": "Error validating access token", "code": 190}}
        return original(path, authorization, raw, arrived)

    meta._answer = answer
    campaign, contacts = _campaign(free_workspace, 40, django_capture_on_commit_callbacks)

    assert campaign.sent_count == 10
    assert campaign.limited_count == 30  # waiting for the reconnect, nothing charged for them
    assert usage(free_workspace).activated == 10
    assert usage(free_workspace).in_flight == 0
    assert usage_drift() == []
