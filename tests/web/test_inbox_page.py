"""The inbox page: conversations with unread counts, opening one reads it for that member only, the live
fragment with its ETag, and replies within Meta's window that never count."""

import datetime

import pytest
from django.test import Client
from django.utils import timezone

from billing.activation import activate_many, usage
from billing.models import ActivationRecord
from contacts.models import Contact, Message
from tests.factories import ContactFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def inbound(contact, text="hi", ago=datetime.timedelta(minutes=1)):
    at = timezone.now() - ago
    Contact.objects.filter(pk=contact.pk).update(last_inbound_at=at)
    return Message.objects.create(workspace_id=contact.workspace_id, contact=contact, direction="in",
                                  origin="contact", status="received", text=text, created_at=at)


def inbox_url(workspace, query=""):
    return f"/w/{workspace.pk}/inbox/{query}"


def test_the_inbox_lists_conversations_with_their_unread_count(owner_client, workspace):
    ana = ContactFactory(workspace=workspace, username="ana_lisbon")
    inbound(ana, "Do you ship to Lisbon?")
    inbound(ana, "Hello?")
    ContactFactory(workspace=workspace, username="silent_sam")  # no messages: not a conversation

    page = owner_client.get(inbox_url(workspace)).content.decode()

    assert "@ana_lisbon" in page and "Hello?" in page
    assert "2 unread" in page and "Waiting" in page
    assert "silent_sam" not in page
    assert f'href="/w/{workspace.pk}/inbox/"' in page  # the nav link


def test_opening_a_conversation_reads_it_for_that_member_only(owner_client, workspace):
    colleague = MembershipFactory(workspace=workspace, role="member").user
    colleague_client = Client()
    colleague_client.force_login(colleague)
    ana = ContactFactory(workspace=workspace, username="ana_lisbon")
    inbound(ana, "Do you ship to Lisbon?")

    opened = owner_client.get(inbox_url(workspace, f"?c={ana.pk}")).content.decode()

    assert "Do you ship to Lisbon?" in opened and 'data-testid="reply-form"' in opened
    assert "1 unread" not in owner_client.get(inbox_url(workspace)).content.decode()
    assert "1 unread" in colleague_client.get(inbox_url(workspace)).content.decode()


def test_the_live_fragment_answers_304_until_something_changes(owner_client, workspace):
    ana = ContactFactory(workspace=workspace, username="ana_lisbon")
    inbound(ana)
    live = inbox_url(workspace, "live/")

    first = owner_client.get(live)
    assert first.status_code == 200 and "@ana_lisbon" in first.content.decode()
    unchanged = owner_client.get(live, HTTP_IF_NONE_MATCH=first["ETag"])
    assert (unchanged.status_code, unchanged.content) == (304, b"")

    inbound(ContactFactory(workspace=workspace, username="new_person"), "I just wrote")

    changed = owner_client.get(live, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200
    assert "@new_person" in changed.content.decode() and changed["ETag"] != first["ETag"]


def test_filters_on_the_page(owner_client, workspace, owner):
    waiting = ContactFactory(workspace=workspace, username="waiting_wendy", source="paid_ad")
    inbound(waiting)
    answered = ContactFactory(workspace=workspace, username="answered_andy")
    inbound(answered)
    owner_client.post(inbox_url(workspace, f"{answered.pk}/reply/"), {"text": "Done!"})
    owner_client.get(inbox_url(workspace))  # shows (and uses up) the "Reply sent" notice

    waiting_page = owner_client.get(inbox_url(workspace, "?show=waiting")).content.decode()
    assert "@waiting_wendy" in waiting_page and "@answered_andy" not in waiting_page
    by_source = owner_client.get(inbox_url(workspace, "?source=paid_ad")).content.decode()
    assert "@waiting_wendy" in by_source and "@answered_andy" not in by_source


@pytest.mark.parametrize("at_limit", [False, True])
def test_replies_from_the_inbox_follow_the_window_and_never_count(owner_client, workspace, owner, make_contacts,
                                                                  at_limit):
    if at_limit:
        activate_many(workspace, make_contacts(workspace, 100), kind="campaign")
        assert usage(workspace).limit_reached
    before = ActivationRecord.objects.count()
    recent = ContactFactory(workspace=workspace)
    inbound(recent, ago=datetime.timedelta(hours=1))
    quiet = ContactFactory(workspace=workspace)
    inbound(quiet, ago=datetime.timedelta(days=3))
    gone = ContactFactory(workspace=workspace)
    inbound(gone, ago=datetime.timedelta(days=8))

    sent = owner_client.post(inbox_url(workspace, f"{recent.pk}/reply/"), {"text": "Sure!"})
    tagged = owner_client.post(inbox_url(workspace, f"{quiet.pk}/reply/"), {"text": "Sorry for the wait"})
    refused = owner_client.post(inbox_url(workspace, f"{gone.pk}/reply/"), {"text": "Still there?"})

    assert sent.status_code == 302 and sent["Location"] == inbox_url(workspace, f"?c={recent.pk}")
    assert tagged.status_code == 302
    assert refused.status_code == 409
    assert "Replies are closed since" in refused.content.decode()
    out = {m.contact_id: m.tag for m in Message.objects.filter(direction="out")}
    assert out == {recent.pk: "", quiet.pk: "HUMAN_AGENT"}
    assert ActivationRecord.objects.count() == before


def test_the_open_conversation_shows_its_reply_window(owner_client, workspace):
    quiet = ContactFactory(workspace=workspace)
    inbound(quiet, ago=datetime.timedelta(days=3))
    gone = ContactFactory(workspace=workspace)
    inbound(gone, ago=datetime.timedelta(days=8))

    assert "as a human agent" in owner_client.get(inbox_url(workspace, f"?c={quiet.pk}")).content.decode()
    closed = owner_client.get(inbox_url(workspace, f"?c={gone.pk}")).content.decode()
    assert "Replies are closed since" in closed and 'data-testid="reply-form"' not in closed


def test_a_member_uses_the_inbox_and_an_outsider_gets_404(member_client, workspace):
    ana = ContactFactory(workspace=workspace)
    inbound(ana)

    assert member_client.get(inbox_url(workspace, f"?c={ana.pk}")).status_code == 200
    assert member_client.post(inbox_url(workspace, f"{ana.pk}/reply/"), {"text": "Hi"}).status_code == 302


@pytest.mark.parametrize("path", ["", "live/", "?c={contact}"])
def test_outsiders_get_404(outsider_client, workspace, path):
    contact = ContactFactory(workspace=workspace)
    inbound(contact)

    assert outsider_client.get(inbox_url(workspace, path.format(contact=contact.pk))).status_code == 404
    assert outsider_client.post(inbox_url(workspace, f"{contact.pk}/reply/"), {"text": "x"}).status_code == 404
    assert not Message.objects.filter(direction="out").exists()
