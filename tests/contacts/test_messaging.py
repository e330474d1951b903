"""The outbound adapter: window rules and send-once."""

import datetime

import pytest
from django.utils import timezone

from contacts.messaging import send_message
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
    contact = ContactFactory(workspace=workspace, last_inbound_at=timezone.now() - datetime.timedelta(days=6))

    reply = send_message(workspace=workspace, contact=contact, text="Check your DMs", origin="automated",
                         reply_to_comment_id="17890000000000001")
    dm = send_message(workspace=workspace, contact=contact, text="Promo", origin="automated")

    assert (reply.status, dm.status) == ("sent", "skipped_window")
