"""Each contact's last activity (what the inbox sorts on) follows every message in and out, whatever
path wrote it: intake, a single send, a bulk send in SQL; a message skipped for a closed window is none."""

import datetime

import pytest
from django.utils import timezone

from contacts.messaging import send_message, send_messages_bulk
from contacts.models import Contact, Conversation, Message
from tests.contacts.conftest import IG_ACCOUNT_ID
from tests.factories import ContactFactory
from tests.instagram.helpers import dm_payload

pytestmark = pytest.mark.django_db


def activity(contact):
    conversation = Conversation.objects.filter(contact_id=contact.pk).first()
    return (conversation.last_activity_at, conversation.last_message_id) if conversation else (None, None)


def test_an_inbound_dm_sets_the_last_activity(ig_workspace, deliver):
    deliver(dm_payload(IG_ACCOUNT_ID, "9990001", "mid.activity.1", "hello"))

    contact = Contact.objects.get(igsid="9990001")
    message = Message.objects.get(contact=contact)
    assert activity(contact) == (message.created_at, message.pk)
    assert Conversation.objects.get(contact=contact).workspace_id == ig_workspace.pk


def test_sends_move_it_forward_and_an_older_message_does_not_move_it_back(workspace, owner):
    contact = ContactFactory(workspace=workspace)
    reply = send_message(workspace=workspace, contact=contact, text="hi", origin="manual", sent_by=owner).message
    assert activity(contact) == (reply.created_at, reply.pk)

    late = Message.objects.create(workspace=workspace, contact=contact, direction="in", origin="contact",
                                  status="received", text="sent earlier, delivered late",
                                  created_at=timezone.now() - datetime.timedelta(minutes=5))
    assert activity(contact) == (reply.created_at, reply.pk)
    assert late.pk > reply.pk

    [result] = send_messages_bulk(workspace=workspace, items=[(contact.pk, "k:activity")], text="Sale")
    assert activity(contact)[1] == result.message_id


def test_a_skipped_automated_message_is_no_activity(workspace):
    silent = ContactFactory(workspace=workspace, last_inbound_at=None)

    single = send_message(workspace=workspace, contact=silent, text="promo", origin="automated")
    assert single.status == "skipped_window"
    [result] = send_messages_bulk(workspace=workspace, items=[(silent.pk, "k:skip")], text="Sale")

    assert result.status == "skipped_window"
    assert activity(silent) == (None, None)
