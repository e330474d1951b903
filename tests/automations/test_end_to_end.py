"""End to end: a signed Meta webhook captures a contact and fires a keyword scenario through the gate."""

import json
import time

import pytest

from automations.models import ScenarioRun
from automations.services import scenario_create
from billing.activation import activate_many, usage
from billing.models import ActivationRecord
from contacts.models import Contact, Message, WebhookDelivery
from tests.contacts.conftest import IG_ACCOUNT_ID, meta_fixture, sign
from tests.factories import ContactFactory, MembershipFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ig_workspace(db):
    workspace = WorkspaceFactory(instagram_account_id=IG_ACCOUNT_ID)
    MembershipFactory(workspace=workspace)
    return workspace


@pytest.fixture
def meta_post(client, django_capture_on_commit_callbacks):
    def post(payload, *, signature=None):
        body = json.dumps(payload).encode()
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/webhooks/instagram/", data=body, content_type="application/json",
                               HTTP_X_HUB_SIGNATURE_256=signature or sign(body))

    return post


def fresh(name):
    """A Meta fixture stamped now, so the contact is inside the 24-hour messaging window."""
    payload = meta_fixture(name)
    now_ms = int(time.time() * 1000)
    for entry in payload["entry"]:
        entry["time"] = now_ms
        for item in entry.get("messaging", []):
            item["timestamp"] = now_ms
    return payload


def price_scenario(workspace):
    return scenario_create(
        workspace=workspace, name="Price", trigger_type="dm_keyword", trigger_config={"keywords": ["price"]},
        steps=[{"type": "send_message", "text": "It is still 20, here is the link."}],
    )


def test_signed_webhook_creates_contact_fires_scenario_once(ig_workspace, meta_post):
    scenario = price_scenario(ig_workspace)
    payload = fresh("message_text")

    first = meta_post(payload)
    again = meta_post(payload)

    assert (first.status_code, again.status_code) == (200, 200)
    contact = Contact.objects.get(workspace=ig_workspace)
    assert (contact.igsid, contact.source) == ("1122334455667788", "dm")
    assert list(ActivationRecord.objects.values_list("contact_id", "kind", "automation_ref")) == [
        (contact.pk, "scenario", f"scenario:{scenario.pk}")]
    outbound = Message.objects.filter(workspace=ig_workspace, direction="out")
    assert list(outbound.values_list("text", "status", "origin")) == [
        ("It is still 20, here is the link.", "sent", "automated")]
    assert ScenarioRun.objects.count() == 1
    assert usage(ig_workspace).activated == 1


def test_bad_signature_stores_and_fires_nothing(ig_workspace, meta_post):
    price_scenario(ig_workspace)

    response = meta_post(fresh("message_text"), signature="sha256=" + "0" * 64)

    assert response.status_code == 403
    assert not WebhookDelivery.objects.exists() and not Contact.objects.exists()
    assert not ActivationRecord.objects.exists() and not Message.objects.exists()


def test_comment_webhook_gets_a_private_reply(ig_workspace, meta_post):
    scenario_create(workspace=ig_workspace, name="Comment price", trigger_type="comment",
                    trigger_config={"keywords": ["price"], "media_id": "17887498072083520"},
                    steps=[{"type": "send_message", "text": "Sent you the price in DM"}])

    meta_post(fresh("comments"))

    reply = Message.objects.get(direction="out")
    assert (reply.reply_to_comment_id, reply.status, reply.contact.username) == (
        "17865799348089039", "sent", "maya.designs")
    assert ActivationRecord.objects.get().kind == "scenario"


def test_at_the_limit_the_webhook_still_captures_and_the_reply_waits(ig_workspace, meta_post):
    price_scenario(ig_workspace)
    activate_many(ig_workspace, ContactFactory.create_batch(100, workspace=ig_workspace), kind="campaign")

    meta_post(fresh("message_text"))

    contact = Contact.objects.get(igsid="1122334455667788")
    assert ScenarioRun.objects.get().status == "limited"
    assert contact.paused_actions.get().status == "waiting"
    assert not Message.objects.filter(contact=contact, direction="out").exists()
    assert usage(ig_workspace).activated == 100
