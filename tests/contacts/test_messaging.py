"""The outbound adapter: window rules and send-once."""

import datetime

import pytest
from django.utils import timezone

from contacts.messaging import send_message, send_messages_bulk
from contacts.models import Message
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_automated_message_inside_the_window_is_sent_once(workspace):
    contact = ContactFactory(workspace=workspace, last_inbound_at=timezone.now() - datetime.timedelta(hours=2))

    first = send_message(workspace=workspace, contact=contact, text="Hi!", origin="automated",
                         idempotency_key=f"campaign:1:contact:{contact.pk}")
    again = send_message(workspace=workspace, contact=contact, text="Hi!", origin="automated",
                         idempotency_key=f"campaign:1:contact:{contact.pk}")

    assert (first.status, again.status, again.duplicate) == ("sent", "sent", True)
    assert Message.objects.filter(contact=contact, direction="out").count() == 1


def test_automated_message_outside_the_window_is_skipped_but_manual_goes(workspace):
    contact = ContactFactory(workspace=workspace, last_inbound_at=timezone.now() - datetime.timedelta(hours=25))

    automated = send_message(workspace=workspace, contact=contact, text="Promo", origin="automated")
    manual = send_message(workspace=workspace, contact=contact, text="Hello from Dana", origin="manual")

    assert automated.status == "skipped_window" and automated.message.sent_at is None
    assert manual.status == "sent"


def test_private_reply_window_is_seven_days(workspace):
    contact = ContactFactory(workspace=workspace, last_inbound_at=None,
                             last_comment_at=timezone.now() - datetime.timedelta(days=6))

    reply = send_message(workspace=workspace, contact=contact, text="Check your DMs", origin="automated",
                         reply_to_comment_id="17890000000000001")
    dm = send_message(workspace=workspace, contact=contact, text="Promo", origin="automated")

    assert (reply.status, dm.status) == ("sent", "skipped_window")


# --- Bulk sends (the outbox backend: a campaign's batch in a fixed number of statements) -------------


def test_bulk_send_stores_each_message_once_as_sent_and_respects_the_window(workspace):
    now = timezone.now()
    hour_ago = now - datetime.timedelta(hours=1)
    recent, fading = ContactFactory.create_batch(2, workspace=workspace, last_inbound_at=hour_ago)
    closed = ContactFactory(workspace=workspace, last_inbound_at=now - datetime.timedelta(hours=25))
    items = [(closed.pk, "k:closed"), (recent.pk, "k:recent"), (fading.pk, "k:fading")]

    first = send_messages_bulk(workspace=workspace, items=items, text="Sale", automation_ref="campaign:9")
    again = send_messages_bulk(workspace=workspace, items=items[::-1], text="Sale", automation_ref="campaign:9")

    assert [(r.contact_id, r.status, r.duplicate) for r in first] == [
        (closed.pk, "skipped_window", False), (recent.pk, "sent", False), (fading.pk, "sent", False)]
    assert [(r.contact_id, r.status, r.duplicate) for r in again] == [
        (fading.pk, "sent", True), (recent.pk, "sent", True), (closed.pk, "skipped_window", True)]
    assert {r.message_id for r in first} == {r.message_id for r in again}
    stored = {m.idempotency_key: m for m in Message.objects.filter(workspace=workspace, direction="out")}
    assert len(stored) == 3
    assert (stored["k:recent"].meta_mid, stored["k:recent"].text, stored["k:recent"].automation_ref) == (
        f"outbox.{stored['k:recent'].pk}", "Sale", "campaign:9")
    assert stored["k:recent"].sent_at is not None and stored["k:recent"].origin == "automated"
    assert (stored["k:closed"].meta_mid, stored["k:closed"].sent_at) == ("", None)


def test_bulk_send_refuses_another_workspaces_contact_and_writes_nothing(workspace):
    mine = ContactFactory(workspace=workspace)
    stranger = ContactFactory()

    with pytest.raises(ValueError, match="another workspace"):
        send_messages_bulk(workspace=workspace, items=[(mine.pk, "k:1"), (stranger.pk, "k:2")], text="Hi")

    assert not Message.objects.filter(direction="out").exists()


def test_bulk_send_finishes_a_message_left_queued_like_send_message(workspace):
    contact = ContactFactory(workspace=workspace)
    left = Message.objects.create(workspace=workspace, contact=contact, direction="out", origin="automated",
                                  status="queued", text="Hi", idempotency_key="k:left")

    [result] = send_messages_bulk(workspace=workspace, items=[(contact.pk, "k:left")], text="Hi")

    left.refresh_from_db()
    assert (result.status, result.duplicate, result.message_id) == ("sent", True, left.pk)
    assert (left.status, left.meta_mid) == ("sent", f"outbox.{left.pk}")
    assert Message.objects.filter(direction="out").count() == 1


def test_bulk_send_is_only_for_a_backend_that_delivers_by_storing(workspace, settings):
    settings.INSTAGRAM_SEND_BACKEND = "graph"
    contact = ContactFactory(workspace=workspace)

    with pytest.raises(ValueError, match="one message at a time"):
        send_messages_bulk(workspace=workspace, items=[(contact.pk, "k:1")], text="Hi")
    assert not Message.objects.filter(direction="out").exists()
