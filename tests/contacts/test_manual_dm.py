"""A member's DM from the inbox: a manual action (rule 6), never counted, never blocked."""

import datetime

import pytest
from django.utils import timezone

import billing.activation
from billing.activation import activate_many, usage
from billing.models import ActivationRecord
from contacts import services
from contacts.models import Message
from inro.errors import ApplicationError
from tests.factories import ContactFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_manual_dm_at_the_quota_limit_is_sent_and_creates_no_activation(workspace, owner, make_contacts):
    activate_many(workspace, make_contacts(workspace, 100), kind="campaign")
    assert usage(workspace).limit_reached
    newcomer = ContactFactory(workspace=workspace, last_inbound_at=timezone.now() - datetime.timedelta(days=3))

    result = services.message_send_manual(contact=newcomer, text="  Hi Maya, your order shipped!  ", sent_by=owner)

    assert result.status == "sent"
    message = Message.objects.get(contact=newcomer)
    assert (message.direction, message.origin, message.status, message.text, message.sent_by) == (
        "out", "manual", "sent", "Hi Maya, your order shipped!", owner,
    )
    assert not ActivationRecord.objects.filter(contact=newcomer).exists()
    assert ActivationRecord.objects.filter(workspace=workspace).count() == 100
    assert usage(workspace).activated == 100


def test_a_manual_dm_never_calls_the_gate(workspace, owner, monkeypatch):
    def gate(*args, **kwargs):
        raise AssertionError("the gate was called for a manual action")

    monkeypatch.setattr(billing.activation, "activate", gate)
    monkeypatch.setattr(billing.activation, "activate_many", gate)

    result = services.message_send_manual(contact=ContactFactory(workspace=workspace), text="Hello", sent_by=owner)

    assert result.status == "sent"


@pytest.mark.parametrize("text", ["", "   ", "x" * 1001, None])
def test_text_must_be_1_to_1000_characters_and_nothing_is_sent(workspace, owner, text):
    contact = ContactFactory(workspace=workspace)

    with pytest.raises(ApplicationError) as error:
        services.message_send_manual(contact=contact, text=text, sent_by=owner)

    assert (error.value.code, list(error.value.fields)) == ("invalid", ["text"])
    assert Message.objects.count() == 0


def test_exactly_1000_characters_is_fine(workspace, owner):
    result = services.message_send_manual(contact=ContactFactory(workspace=workspace), text="y" * 1000, sent_by=owner)

    assert (result.status, len(result.message.text)) == ("sent", 1000)


def test_an_outsider_cannot_message_the_contact(workspace):
    contact = ContactFactory(workspace=workspace)

    with pytest.raises(ApplicationError) as error:
        services.message_send_manual(contact=contact, text="Hello", sent_by=UserFactory())

    assert error.value.status == 403
    assert Message.objects.count() == 0
