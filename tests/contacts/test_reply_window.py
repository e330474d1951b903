"""A member's reply follows Meta's rules: a standard reply within 24 hours of the person's last message,
one tagged HUMAN_AGENT up to 7 days, refused after that (saying why and since when). Never counted, never
blocked by the quota (rule 6). Asserted on the wire, at the Meta stand-in."""

import datetime

import pytest
from django.utils import timezone

from billing.activation import activate_many, usage
from billing.models import ActivationRecord
from contacts import services, windows
from contacts.models import Contact, Message
from inro.errors import ApplicationError
from tests.api.conftest import client_for, ws_url
from tests.factories import ContactFactory, WorkspaceFactory
from tests.instagram.helpers import connect, owner_client

pytestmark = pytest.mark.django_db

HOUR, DAY = datetime.timedelta(hours=1), datetime.timedelta(days=1)


@pytest.fixture
def connected(fake_meta, settings, make_contacts):
    """A workspace connected to the Meta stand-in through the real flow, sending through the Graph API."""
    settings.INSTAGRAM_SEND_BACKEND = "graph"
    workspace = WorkspaceFactory()
    client, user = owner_client(workspace)
    assert connect(client, workspace.pk, username="inbox.brand").status_code == 200
    return workspace, user


def at_quota_state(workspace, state, make_contacts):
    if state == "at the limit":
        activate_many(workspace, make_contacts(workspace, 100), kind="campaign")
        assert usage(workspace).limit_reached
    elif state == "with headroom":
        activate_many(workspace, make_contacts(workspace, 10), kind="campaign")
        assert not usage(workspace).limit_reached


@pytest.mark.parametrize("state", ["fresh", "with headroom", "at the limit"])
def test_replies_at_1_hour_3_days_and_8_days(connected, fake_meta, make_contacts, state):
    workspace, member = connected
    at_quota_state(workspace, state, make_contacts)
    records_before, activated_before = ActivationRecord.objects.count(), usage(workspace).activated
    now = timezone.now()
    recent = ContactFactory(workspace=workspace, igsid="700001", last_inbound_at=now - HOUR)
    quiet = ContactFactory(workspace=workspace, igsid="700002", last_inbound_at=now - 3 * DAY)
    gone = ContactFactory(workspace=workspace, igsid="700003", last_inbound_at=now - 8 * DAY)

    standard = services.message_send_manual(contact=recent, text="Hi! It ships tomorrow.", sent_by=member)
    tagged = services.message_send_manual(contact=quiet, text="Sorry for the wait", sent_by=member)
    with pytest.raises(ApplicationError) as refused:
        services.message_send_manual(contact=gone, text="Still there?", sent_by=member)

    assert (standard.status, standard.message.tag) == ("sent", "")
    assert (tagged.status, tagged.message.tag) == ("sent", "HUMAN_AGENT")
    on_the_wire = {sent["recipient"]["id"]: sent["body"] for sent in fake_meta.sent}
    assert set(on_the_wire) == {"700001", "700002"}  # nothing left for the 8-day-old conversation
    assert on_the_wire["700001"] == {"recipient": {"id": "700001"}, "message": {"text": "Hi! It ships tomorrow."}}
    assert on_the_wire["700002"] == {"recipient": {"id": "700002"}, "message": {"text": "Sorry for the wait"},
                                     "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    assert (refused.value.code, refused.value.status) == ("reply_window_closed", 409)
    closed_since = gone.last_inbound_at + 7 * DAY
    assert "within 7 days" in refused.value.message
    assert f"closed since {closed_since:%-d %b %Y, %H:%M} UTC" in refused.value.message
    assert not Message.objects.filter(contact=gone).exists()
    # Never counted, whatever the quota state.
    assert ActivationRecord.objects.count() == records_before
    assert usage(workspace).activated == activated_before


def test_with_the_human_agent_tag_off_a_3_day_reply_is_refused_too(connected, fake_meta, settings):
    settings.META_HUMAN_AGENT_TAG = False
    workspace, member = connected
    quiet = ContactFactory(workspace=workspace, last_inbound_at=timezone.now() - 3 * DAY)

    with pytest.raises(ApplicationError) as refused:
        services.message_send_manual(contact=quiet, text="Hello?", sent_by=member)

    assert refused.value.code == "reply_window_closed"
    assert "within 24 hours" in refused.value.message and "not enabled" in refused.value.message
    assert fake_meta.sent == []
    assert not Message.objects.filter(contact=quiet).exists()


def test_someone_who_never_wrote_cannot_be_messaged_first(workspace, owner):
    commenter = ContactFactory(workspace=workspace, last_inbound_at=None, source=Contact.Source.ORGANIC_POST)

    with pytest.raises(ApplicationError) as refused:
        services.message_send_manual(contact=commenter, text="Hi", sent_by=owner)

    assert "never messaged" in refused.value.message
    assert not Message.objects.exists()


def test_the_reply_window_boundaries():
    last = timezone.now() - 10 * DAY
    window = windows.reply_window

    assert window(last, now=last + 24 * HOUR - datetime.timedelta(seconds=1)).state == "open"
    at_24 = window(last, now=last + 24 * HOUR)
    assert (at_24.state, at_24.tag, at_24.closes_at) == ("human_agent", "HUMAN_AGENT", last + 7 * DAY)
    assert window(last, now=last + 7 * DAY).state == "closed"
    assert window(last, now=last + 7 * DAY).closed_since == last + 7 * DAY
    assert window(last, now=last + 2 * DAY, human_agent=False).closed_since == last + DAY


def test_the_api_refuses_an_8_day_reply_with_the_reason_and_writes_nothing(workspace, owner):
    gone = ContactFactory(workspace=workspace, last_inbound_at=timezone.now() - 8 * DAY)

    response = client_for(owner).post(ws_url(workspace, f"contacts/{gone.pk}/messages/"), {"text": "Hi"},
                                      format="json")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "reply_window_closed" and "closed since" in error["message"]
    assert not Message.objects.exists()


def test_the_contact_page_says_why_an_8_day_reply_was_refused(client, workspace, owner):
    gone = ContactFactory(workspace=workspace, last_inbound_at=timezone.now() - 8 * DAY)
    client.force_login(owner)

    response = client.post(f"/w/{workspace.pk}/contacts/{gone.pk}/message/", {"text": "Hi"})

    assert response.status_code == 409
    assert "closed since" in response.content.decode()
    assert not Message.objects.exists()
