"""Contacts, conversations and manual DMs over the API: manual actions, never counted (rule 6)."""

import datetime
import threading

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import IdempotencyKey
from billing.activation import activate_many, usage
from billing.models import ActivationRecord
from contacts.models import Contact, Message
from tests.api.conftest import client_for, ws_url
from tests.factories import ContactFactory, FolderFactory, MembershipFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def ids(response):
    return [row["id"] for row in response.json()["results"]]


def test_contact_list_newest_first_with_tags_and_folders(api, workspace):
    old = ContactFactory(workspace=workspace, captured_at=timezone.now() - datetime.timedelta(days=2))
    new = ContactFactory(workspace=workspace, username="ana.bakes")
    ContactFactory(workspace=WorkspaceFactory())  # someone else's lead
    folder = FolderFactory(workspace=workspace)
    folder.memberships.create(contact=new)
    new.tags.create(workspace=workspace, name="vip")

    response = api.get(ws_url(workspace, "contacts/"))

    assert response.status_code == 200
    assert ids(response) == [new.pk, old.pk]
    first = response.json()["results"][0]
    assert (first["username"], first["tags"], first["folders"], first["source"]) == (
        "ana.bakes", ["vip"], [folder.pk], "dm")


def test_contact_filters(api, workspace):
    ana = ContactFactory(workspace=workspace, username="ana.bakes", source=Contact.Source.STORY)
    bob = ContactFactory(workspace=workspace, username="bob", source=Contact.Source.PAID_AD)
    folder = FolderFactory(workspace=workspace)
    folder.memberships.create(contact=bob)
    ana.tags.create(workspace=workspace, name="vip")
    activate_many(workspace, [bob], kind="campaign")

    def found(query):
        return ids(api.get(ws_url(workspace, f"contacts/?{query}")))

    assert found("search=@ana") == [ana.pk]
    assert found("source=paid_ad") == [bob.pk]
    assert found(f"folder={folder.pk}") == [bob.pk]
    assert found("tag=vip") == [ana.pk]
    assert found("activated=true") == [bob.pk]
    assert found("activated=false") == [ana.pk]
    assert sorted(found("")) == sorted([ana.pk, bob.pk])


@pytest.mark.parametrize("query, field", [
    ("source=tiktok", "source"), ("folder=abc", "folder"), ("activated=maybe", "activated"),
    ("search=" + "x" * 101, "search"), ("folder=99999999999999999999", "folder"),
])
def test_contact_filters_are_validated(api, workspace, query, field):
    response = api.get(ws_url(workspace, f"contacts/?{query}"))

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_a_folder_of_another_workspace_filters_to_nothing(api, workspace):
    other = FolderFactory(workspace=WorkspaceFactory())
    other.memberships.create(contact=ContactFactory(workspace=other.workspace))
    ContactFactory(workspace=workspace)

    response = api.get(ws_url(workspace, f"contacts/?folder={other.pk}"))

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_contact_detail_and_hand_edit_create_no_activation(api, workspace):
    contact = ContactFactory(workspace=workspace)

    assert api.get(ws_url(workspace, f"contacts/{contact.pk}/")).json()["id"] == contact.pk
    response = api.patch(ws_url(workspace, f"contacts/{contact.pk}/"),
                         {"email": "ana@shop.test", "tags": ["Wholesale", "vip"]}, format="json")

    assert response.status_code == 200
    assert (response.json()["email"], response.json()["tags"]) == ("ana@shop.test", ["vip", "wholesale"])
    contact.refresh_from_db()
    assert contact.email == "ana@shop.test"
    assert ActivationRecord.objects.count() == 0


def test_contact_edit_validates_and_changes_nothing(api, workspace):
    contact = ContactFactory(workspace=workspace, email="")

    response = api.patch(ws_url(workspace, f"contacts/{contact.pk}/"), {"email": "nope"}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["email"]
    contact.refresh_from_db()
    assert contact.email == ""


def test_message_history_newest_first(api, workspace):
    contact = ContactFactory(workspace=workspace)
    first = Message.objects.create(workspace=workspace, contact=contact, direction="in", origin="contact",
                                   status="received", text="hi",
                                   created_at=timezone.now() - datetime.timedelta(minutes=5))
    second = Message.objects.create(workspace=workspace, contact=contact, direction="out", origin="manual",
                                    status="sent", text="hello!")

    response = api.get(ws_url(workspace, f"contacts/{contact.pk}/messages/"))

    assert ids(response) == [second.pk, first.pk]


def test_manual_dm_at_the_limit_is_sent_and_creates_no_activation(api, owner, workspace, make_contacts):
    activate_many(workspace, make_contacts(workspace, 100), kind="campaign")
    # Wrote 3 days ago: the automated window is closed, a member's reply goes out as a human agent's.
    newcomer = ContactFactory(workspace=workspace, last_inbound_at=timezone.now() - datetime.timedelta(days=3))

    response = api.post(ws_url(workspace, f"contacts/{newcomer.pk}/messages/"), {"text": "Hi Ana!"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["text"], body["origin"], body["status"], body["sent_by"], body["tag"]) == (
        "Hi Ana!", "manual", "sent", owner.pk, "HUMAN_AGENT")
    assert not ActivationRecord.objects.filter(contact=newcomer).exists()
    assert usage(workspace).activated == 100


def test_manual_dm_needs_text(api, workspace):
    contact = ContactFactory(workspace=workspace)

    response = api.post(ws_url(workspace, f"contacts/{contact.pk}/messages/"), {"text": ""}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["text"]
    assert Message.objects.count() == 0


def test_manual_dm_with_an_idempotency_key_is_sent_once(api, workspace):
    contact = ContactFactory(workspace=workspace)
    url = ws_url(workspace, f"contacts/{contact.pk}/messages/")

    first = api.post(url, {"text": "Your order shipped"}, format="json", HTTP_IDEMPOTENCY_KEY="k-123")
    again = api.post(url, {"text": "Your order shipped"}, format="json", HTTP_IDEMPOTENCY_KEY="k-123")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Message.objects.count() == 1


def test_an_idempotency_key_reused_with_another_body_is_a_conflict(api, workspace):
    contact = ContactFactory(workspace=workspace)
    url = ws_url(workspace, f"contacts/{contact.pk}/messages/")
    api.post(url, {"text": "one"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    response = api.post(url, {"text": "two"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert list(Message.objects.values_list("text", flat=True)) == ["one"]


def test_an_idempotency_key_is_per_user_and_expires_after_24_hours(api, workspace):
    contact = ContactFactory(workspace=workspace)
    url = ws_url(workspace, f"contacts/{contact.pk}/messages/")
    api.post(url, {"text": "hello"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    colleague = client_for(MembershipFactory(workspace=workspace, role="member").user)

    assert colleague.post(url, {"text": "hello"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1").status_code == 201
    assert Message.objects.count() == 2

    IdempotencyKey.objects.update(created_at=timezone.now() - datetime.timedelta(hours=24, seconds=1))
    assert api.post(url, {"text": "hello"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1").status_code == 201
    assert Message.objects.count() == 3


def test_a_failed_first_request_frees_its_idempotency_key(api, workspace):
    contact = ContactFactory(workspace=workspace)
    url = ws_url(workspace, f"contacts/{contact.pk}/messages/")

    assert api.post(url, {"text": ""}, format="json", HTTP_IDEMPOTENCY_KEY="k-1").status_code == 400
    assert api.post(url, {"text": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1").status_code == 201
    assert IdempotencyKey.objects.get().response_status == 201


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "é"])
def test_a_malformed_idempotency_key_is_refused(api, workspace, key):
    contact = ContactFactory(workspace=workspace)

    response = api.post(ws_url(workspace, f"contacts/{contact.pk}/messages/"), {"text": "hi"}, format="json",
                        HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert Message.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_with_one_key_send_once(workspace, owner):
    contact = ContactFactory(workspace=workspace)
    url = ws_url(workspace, f"contacts/{contact.pk}/messages/")
    clients = [client_for(owner) for _ in range(2)]
    # Both requests use the same user's key, from two devices at the same moment.
    for c in clients[1:]:
        c.credentials(HTTP_AUTHORIZATION=f"Token {clients[0].token_key}")
    barrier = threading.Barrier(4)
    statuses = []

    def post(client):
        try:
            barrier.wait()
            statuses.append(client.post(url, {"text": "once"}, format="json",
                                        HTTP_IDEMPOTENCY_KEY="same").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(clients[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Message.objects.filter(text="once").count() == 1
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    assert IdempotencyKey.objects.count() == 1
