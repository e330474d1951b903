"""The inbox API: conversations newest first with a per-member unread count, filters, cheap polling
(ETag, 304, `since`), and a page whose query count does not grow with the workspace."""

import datetime
import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Membership
from automations.models import PausedAction
from billing.activation import activate_many
from contacts.messaging import send_message
from contacts.models import Contact, Message
from tests.api.conftest import client_for, ws_url
from tests.contacts.conftest import sign
from tests.factories import ContactFactory, MembershipFactory, WorkspaceFactory
from tests.instagram.helpers import dm_payload

pytestmark = pytest.mark.django_db
IG_ACCOUNT = "17841400000000777"


def inbound(contact, text="hi", ago=datetime.timedelta(minutes=1)):
    at = timezone.now() - ago
    Contact.objects.filter(pk=contact.pk).update(last_inbound_at=at)
    return Message.objects.create(workspace_id=contact.workspace_id, contact=contact, direction="in",
                                  origin="contact", status="received", text=text, created_at=at)


def conversations(client, workspace, query="", **headers):
    return client.get(ws_url(workspace, f"conversations/{query}"), **headers)


def rows(response):
    return [(row["contact"]["id"], row["unread"]) for row in response.json()["results"]]


def test_a_signed_meta_dm_shows_with_one_unread_and_reading_clears_it_for_that_member_only(
        workspace, owner, django_capture_on_commit_callbacks):
    workspace.instagram_account_id = IG_ACCOUNT
    workspace.save()
    owner_api = client_for(owner)
    colleague = MembershipFactory(workspace=workspace, role=Membership.Role.MEMBER).user
    colleague_api = client_for(colleague)
    body = json.dumps(dm_payload(IG_ACCOUNT, "5551234", "mid.inbox.1", "Do you ship to Lisbon?")).encode()

    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post("/webhooks/instagram/", data=body, content_type="application/json",
                                 HTTP_X_HUB_SIGNATURE_256=sign(body))
    assert response.status_code == 200

    contact = Contact.objects.get(workspace=workspace, igsid="5551234")
    listed = conversations(owner_api, workspace).json()["results"]
    assert len(listed) == 1
    row = listed[0]
    assert (row["contact"]["id"], row["unread"], row["waiting"], row["limited"]) == (contact.pk, 1, True, False)
    assert (row["last_message"]["sender"], row["last_message"]["text"]) == ("person", "Do you ship to Lisbon?")
    assert row["reply_window"]["state"] == "open"
    assert row["contact"]["activated_this_month"] is False

    read = colleague_api.post(ws_url(workspace, f"conversations/{contact.pk}/read/"))
    assert read.status_code == 200
    assert read.json()["unread"] == 0

    assert rows(conversations(colleague_api, workspace)) == [(contact.pk, 0)]
    assert rows(conversations(owner_api, workspace)) == [(contact.pk, 1)]  # the owner has not read it


def test_newest_activity_first_and_a_reply_moves_a_conversation_up(api, workspace, owner):
    old, new = ContactFactory(workspace=workspace), ContactFactory(workspace=workspace)
    inbound(old, ago=datetime.timedelta(hours=2))
    inbound(new, ago=datetime.timedelta(hours=1))
    ContactFactory(workspace=workspace)  # no messages: no conversation

    assert [c for c, _ in rows(conversations(api, workspace))] == [new.pk, old.pk]

    send_message(workspace=workspace, contact=Contact.objects.get(pk=old.pk), text="Thanks!", origin="manual",
                 sent_by=owner)

    listed = conversations(api, workspace).json()["results"]
    assert [row["contact"]["id"] for row in listed] == [old.pk, new.pk]
    assert (listed[0]["last_message"]["sender"], listed[0]["last_message"]["sent_by"]) == ("member", owner.pk)
    assert listed[0]["waiting"] is False


def test_filters_unread_waiting_limited_and_source(api, workspace, owner):
    unread = ContactFactory(workspace=workspace, source="paid_ad")
    inbound(unread, ago=datetime.timedelta(minutes=5))
    answered = ContactFactory(workspace=workspace)
    inbound(answered, ago=datetime.timedelta(minutes=10))
    send_message(workspace=workspace, contact=Contact.objects.get(pk=answered.pk), text="Sure", origin="manual",
                 sent_by=owner)
    api.post(ws_url(workspace, f"conversations/{answered.pk}/read/"))
    paused = ContactFactory(workspace=workspace)
    inbound(paused, ago=datetime.timedelta(minutes=20))
    api.post(ws_url(workspace, f"conversations/{paused.pk}/read/"))
    PausedAction.objects.create(workspace=workspace, contact=paused, kind="campaign", automation_ref="campaign:1",
                                action_type="campaign_message", dedupe_key="campaign:1:contact:x")

    def ids(query):
        return [c for c, _ in rows(conversations(api, workspace, query))]

    assert ids("") == [answered.pk, unread.pk, paused.pk]
    assert ids("?unread=true") == [unread.pk]
    assert ids("?unread=false") == [answered.pk, paused.pk]
    assert ids("?waiting=true") == [unread.pk, paused.pk]
    assert ids("?waiting=false") == [answered.pk]
    assert ids("?limited=true") == [paused.pk]
    assert ids("?source=paid_ad") == [unread.pk]
    assert ids("?unread=true&source=dm") == []


@pytest.mark.parametrize("query", ["?unread=maybe", "?source=fax", "?since=yesterday", "?page_size=0"])
def test_bad_filters_are_400_in_the_error_shape(api, workspace, query):
    response = conversations(api, workspace, query)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_activated_this_month_is_shown(api, workspace):
    contact = ContactFactory(workspace=workspace)
    inbound(contact)
    activate_many(workspace, [contact.pk], kind="campaign")

    assert conversations(api, workspace).json()["results"][0]["contact"]["activated_this_month"] is True


def test_etag_304_and_since_let_the_app_poll_cheaply(api, workspace):
    first = ContactFactory(workspace=workspace)
    inbound(first)
    response = conversations(api, workspace)
    etag, since = response["ETag"], response.json()["since"]
    assert etag and since

    again = conversations(api, workspace, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    nothing_new = conversations(api, workspace, f"?since={since}")
    assert nothing_new.json()["results"] == []
    assert nothing_new.json()["since"] == since

    second = ContactFactory(workspace=workspace)
    inbound(second, text="new one")

    changed = conversations(api, workspace, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    newer = conversations(api, workspace, f"?since={since}").json()
    assert [row["contact"]["id"] for row in newer["results"]] == [second.pk]
    assert newer["since"] != since

    # Reading changes what the list shows (the unread count): a new ETag too.
    api.post(ws_url(workspace, f"conversations/{second.pk}/read/"))
    assert conversations(api, workspace, HTTP_IF_NONE_MATCH=changed["ETag"]).status_code == 200


def test_the_query_count_does_not_grow_with_the_workspace(api, workspace):
    def count_queries():
        with CaptureQueriesContext(connection) as queries:
            assert conversations(api, workspace).status_code == 200
        return len(queries)

    for _ in range(3):
        inbound(ContactFactory(workspace=workspace))
    count_queries()  # the token's first use of the day writes its last_used_at
    few = count_queries()
    for _ in range(40):
        contact = ContactFactory(workspace=workspace)
        inbound(contact)
        Message.objects.create(workspace=workspace, contact=contact, direction="out", origin="automated",
                               status="sent", text="auto")
    assert count_queries() == few


def test_a_member_reads_and_replies(member_api, workspace):
    contact = ContactFactory(workspace=workspace)
    inbound(contact, ago=datetime.timedelta(hours=1))

    assert rows(conversations(member_api, workspace)) == [(contact.pk, 1)]
    assert member_api.post(ws_url(workspace, f"conversations/{contact.pk}/read/")).status_code == 200
    reply = member_api.post(ws_url(workspace, f"contacts/{contact.pk}/messages/"), {"text": "On its way"},
                            format="json")
    assert reply.status_code == 201
    assert rows(conversations(member_api, workspace)) == [(contact.pk, 0)]


def test_reading_another_workspaces_contact_is_404(api, workspace):
    stranger = ContactFactory(workspace=WorkspaceFactory())
    inbound(stranger)

    assert api.post(ws_url(workspace, f"conversations/{stranger.pk}/read/")).status_code == 404
    assert conversations(api, workspace).json()["results"] == []
