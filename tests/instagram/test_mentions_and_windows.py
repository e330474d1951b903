"""Mentions captured as `collaboration` (author looked up with the workspace's token), and the
messaging windows as Meta defines them: a comment alone no longer opens the 24-hour DM window."""

import datetime
import time
from importlib import import_module

import pytest
from django.apps import apps
from django.utils import timezone

from automations.models import CampaignRecipient
from automations.services.campaigns import campaign_create, campaign_launch
from contacts import mentions, windows
from contacts.fakemeta import account_id_for
from contacts.messaging import send_message
from contacts.models import CapturedEvent, Contact, PendingMention
from tests.factories import ContactFactory, MembershipFactory, WorkspaceFactory, connect_instagram

pytestmark = pytest.mark.django_db

NOW_MS = int(time.time() * 1000)


@pytest.fixture
def brand(fake_meta):
    workspace = WorkspaceFactory()
    connect_instagram(workspace, account_id=account_id_for("mentioned.brand"), username="mentioned.brand",
                      token=fake_meta.issue_token(username="mentioned.brand"))
    return workspace


def _change(account_id: str, field: str, value: dict) -> dict:
    return {"object": "instagram", "entry": [{"id": account_id, "time": NOW_MS // 1000,
                                              "changes": [{"field": field, "value": value}]}]}


def test_a_mention_in_a_comment_creates_a_collaboration_contact(brand, fake_meta, deliver, captured_events):
    fake_meta.mention_authors["17865799348089042"] = ("5551234", "collab.fan")

    deliver(_change(brand.instagram_account_id, "mentions",
                    {"media_id": "17887498072083523", "comment_id": "17865799348089042"}))

    contact = Contact.objects.get(workspace=brand)
    assert (contact.igsid, contact.username, contact.source) == ("5551234", "collab.fan", "collaboration")
    assert contact.last_inbound_at is None and contact.last_comment_at is not None
    assert CapturedEvent.objects.get().type == "mention"
    assert [(e.type, e.comment_id) for e in captured_events] == [("mention", "17865799348089042")]
    assert PendingMention.objects.get().status == "captured"


def test_a_mention_in_a_caption_resolves_to_the_media_owner(brand, fake_meta, deliver):
    fake_meta.mention_authors["17887498072089999"] = ("5554321", "caption.author")

    deliver(_change(brand.instagram_account_id, "mentions", {"media_id": "17887498072089999"}))

    contact = Contact.objects.get(workspace=brand)
    assert (contact.igsid, contact.username, contact.source) == ("5554321", "caption.author", "collaboration")


def test_a_failed_look_up_retries_later_and_never_blocks_intake(brand, fake_meta, deliver, settings,
                                                                django_capture_on_commit_callbacks):
    graph = settings.META_GRAPH_API_BASE
    settings.META_GRAPH_API_BASE = "http://127.0.0.1:9/v21.0"  # Meta unreachable
    payload = _change(brand.instagram_account_id, "mentions", {"media_id": "1", "comment_id": "17800000000000777"})

    response = deliver(payload)

    assert response.status_code == 200
    mention = PendingMention.objects.get()
    assert (mention.status, mention.attempts) == ("pending", 1)
    assert "Gave up" in mention.last_error or "ConnectionError" in mention.last_error
    assert not Contact.objects.exists()
    assert mentions.mentions_resolve_due() == 0  # not due yet: backoff

    settings.META_GRAPH_API_BASE = graph
    with django_capture_on_commit_callbacks(execute=True):
        assert mentions.mentions_resolve_due(now=timezone.now() + datetime.timedelta(minutes=5)) == 1
    assert Contact.objects.get().source == "collaboration"
    deliver(payload)  # redelivered: nothing twice
    assert Contact.objects.count() == 1 and CapturedEvent.objects.count() == 1


def test_a_look_up_gives_up_after_its_attempts(brand, settings):
    settings.META_GRAPH_API_BASE = "http://127.0.0.1:9/v21.0"
    mention = PendingMention.objects.create(workspace=brand, meta_id="c1", comment_id="c1",
                                            occurred_at=timezone.now(), attempts=mentions.MENTION_MAX_ATTEMPTS - 1)

    assert mentions.mention_resolve(mention_id=mention.pk) == "failed"


# --- windows ---------------------------------------------------------------------------------------------


def test_a_comment_alone_no_longer_opens_the_dm_window(brand, deliver, django_capture_on_commit_callbacks):
    owner = MembershipFactory(workspace=brand).user
    deliver(_change(brand.instagram_account_id, "comments", {
        "id": "17865799348089039", "from": {"id": "7788990011223344", "username": "maya.designs"},
        "text": "PRICE please", "media": {"id": "17887498072083520", "media_product_type": "FEED"}}))
    commenter = Contact.objects.get(workspace=brand)
    assert commenter.last_inbound_at is None

    with django_capture_on_commit_callbacks(execute=True):
        campaign = campaign_create(workspace=brand, name="Promo", text="20% off")
        campaign_launch(campaign=campaign, launched_by=owner)
    assert CampaignRecipient.objects.get(campaign=campaign).status == "skipped_window"

    # The comment allows one private reply, to that comment, within 7 days.
    first = send_message(workspace=brand, contact=commenter, text="Sent you the prices", origin="automated",
                         reply_to_comment_id="17865799348089039")
    second = send_message(workspace=brand, contact=commenter, text="Again", origin="automated",
                          reply_to_comment_id="17865799348089039")
    dm = send_message(workspace=brand, contact=commenter, text="Promo", origin="automated")
    assert (first.status, second.status, dm.status) == ("sent", "skipped_window", "skipped_window")

    # When the person writes, the 24-hour window opens.
    deliver({"object": "instagram", "entry": [{"id": brand.instagram_account_id, "time": NOW_MS // 1000,
             "messaging": [{"sender": {"id": "7788990011223344"}, "recipient": {"id": brand.instagram_account_id},
                            "timestamp": NOW_MS, "message": {"mid": "mid.dm.1", "text": "thanks!"}}]}]})
    commenter.refresh_from_db()
    assert send_message(workspace=brand, contact=commenter, text="Promo", origin="automated").status == "sent"


def test_the_window_function_follows_meta(brand):
    now = timezone.now()
    messaged = ContactFactory(workspace=brand, last_inbound_at=now - datetime.timedelta(hours=23),
                              last_comment_at=None)
    commented = ContactFactory(workspace=brand, last_inbound_at=None, last_comment_at=now - datetime.timedelta(days=6))
    stale = ContactFactory(workspace=brand, last_inbound_at=now - datetime.timedelta(hours=25),
                           last_comment_at=now - datetime.timedelta(days=8))

    assert windows.messaging_window(messaged, now=now).is_open
    assert not windows.messaging_window(messaged, private_reply=True, now=now).is_open
    assert not windows.messaging_window(commented, now=now).is_open
    assert windows.messaging_window(commented, private_reply=True, now=now).is_open
    seven_days = datetime.timedelta(days=7)
    assert windows.window_closes_at(commented, private_reply=True) == commented.last_comment_at + seven_days
    assert not windows.messaging_window(stale, now=now).is_open
    assert not windows.messaging_window(stale, private_reply=True, now=now).is_open


def test_the_migration_moves_comment_times_out_of_the_dm_window(brand):
    migration = import_module("contacts.migrations.0010_instagram_connections")
    at = timezone.now() - datetime.timedelta(hours=2)
    earlier = at - datetime.timedelta(hours=5)
    # As the old intake left them: every inbound event moved last_inbound_at.
    commenter = ContactFactory(workspace=brand, last_inbound_at=at, last_comment_at=None)
    writer = ContactFactory(workspace=brand, last_inbound_at=at, last_comment_at=None)
    imported = ContactFactory(workspace=brand, last_inbound_at=at, last_comment_at=None)
    CapturedEvent.objects.create(workspace=brand, contact=commenter, meta_id="c.1", type="comment", occurred_at=at)
    CapturedEvent.objects.create(workspace=brand, contact=writer, meta_id="m.1", type="message", occurred_at=earlier)
    CapturedEvent.objects.create(workspace=brand, contact=writer, meta_id="c.2", type="mention", occurred_at=at)

    migration.split_windows(apps, None)

    for contact in (commenter, writer, imported):
        contact.refresh_from_db()
    assert (commenter.last_inbound_at, commenter.last_comment_at) == (None, at)
    assert (writer.last_inbound_at, writer.last_comment_at) == (earlier, at)
    assert (imported.last_inbound_at, imported.last_comment_at) == (at, None)
