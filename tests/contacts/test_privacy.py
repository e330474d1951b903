"""Privacy: Meta's data deletion callback, its status page, export and delete of a contact."""

import base64
import hashlib
import hmac
import json

import pytest
from django.conf import settings as django_settings

from billing.activation import activate, usage
from billing.models import ActivationRecord
from contacts import services
from contacts.models import Contact, DataDeletionRequest, Message, WebhookDelivery
from tests.contacts.conftest import meta_fixture
from tests.factories import ContactFactory, FolderFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

IGSID = "1122334455667788"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed_request(payload: dict, secret: str | None = None) -> str:
    secret = secret if secret is not None else django_settings.META_APP_SECRET
    encoded = _b64(json.dumps(payload).encode())
    signature = hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest()
    return f"{_b64(signature)}.{encoded}"


def _request(client, value):
    return client.post("/webhooks/instagram/data-deletion/", {"signed_request": value})


@pytest.fixture
def known_person():
    """The same person in two workspaces, activated in one, with messages and personal fields."""
    first, second = WorkspaceFactory(), WorkspaceFactory()
    contacts = [
        ContactFactory(workspace=w, igsid=IGSID, username="maya.designs", name="Maya Durand",
                       email="maya@example.test", phone="+33 6 12 34 56 78", custom_fields={"size": "M"},
                       biography="Designer in Lyon", follower_count=1200)
        for w in (first, second)
    ]
    for contact in contacts:
        Message.objects.create(workspace=contact.workspace, contact=contact, direction="in", origin="contact",
                               status="received", text="My address is 3 rue Foch", meta_mid=f"mid-{contact.pk}")
    activate(first, contacts[0], kind="scenario")
    bystander = ContactFactory(workspace=first, igsid="999", username="someone.else", email="else@example.test")
    return first, contacts, bystander


def test_data_deletion_erases_the_person_everywhere_and_keeps_the_count(client, known_person, settings):
    settings.SITE_URL = "https://app.inro.example"
    first, contacts, bystander = known_person
    body = json.dumps(meta_fixture("message_text")).encode()
    WebhookDelivery.objects.create(body=body.decode(), body_sha256=hashlib.sha256(body).hexdigest(),
                                   status="processed")
    before = usage(first).activated

    response = _request(client, signed_request({"algorithm": "HMAC-SHA256", "issued_at": 1764158400,
                                                "user_id": IGSID}))

    assert response.status_code == 200
    deletion = DataDeletionRequest.objects.get()
    assert response.json() == {
        "url": f"https://app.inro.example/webhooks/instagram/data-deletion/{deletion.confirmation_code}/",
        "confirmation_code": deletion.confirmation_code,
    }
    assert (deletion.status, deletion.contacts_erased) == ("completed", 2)
    assert deletion.user_id_sha256 == hashlib.sha256(IGSID.encode()).hexdigest()
    for contact in contacts:
        contact.refresh_from_db()
        assert (contact.username, contact.name, contact.email, contact.phone, contact.custom_fields,
                contact.biography, contact.follower_count) == ("", "", "", "", {}, "", None)
        assert contact.erased_at is not None
    assert Contact.objects.filter(igsid=IGSID).count() == 2
    assert set(Message.objects.filter(contact__igsid=IGSID).values_list("text", flat=True)) == {""}
    assert "Hi! Is the PRICE" not in WebhookDelivery.objects.get().body
    assert ActivationRecord.objects.filter(workspace=first, contact=contacts[0]).count() == 1
    assert usage(first).activated == before == 1
    bystander.refresh_from_db()
    assert (bystander.username, bystander.email) == ("someone.else", "else@example.test")


def test_the_status_page_shows_the_request(client, known_person):
    code = _request(client, signed_request({"algorithm": "HMAC-SHA256", "user_id": IGSID})).json()[
        "confirmation_code"]

    page = client.get(f"/webhooks/instagram/data-deletion/{code}/")

    assert page.status_code == 200
    text = page.content.decode()
    assert code in text and "Completed" in text and "2 business accounts" in text
    assert IGSID not in text
    assert client.get("/webhooks/instagram/data-deletion/not-a-code/").status_code == 404


def test_a_person_nobody_holds_still_gets_a_confirmation(client, db):
    response = _request(client, signed_request({"algorithm": "HMAC-SHA256", "user_id": "4242"}))

    assert response.status_code == 200
    assert DataDeletionRequest.objects.get().contacts_erased == 0


@pytest.mark.parametrize("value", [
    signed_request({"algorithm": "HMAC-SHA256", "user_id": IGSID}, secret="not-our-secret"),
    signed_request({"algorithm": "HMAC-SHA1", "user_id": IGSID}),
])
def test_a_bad_signature_erases_nothing(client, known_person, value):
    response = _request(client, value)

    assert response.status_code == 403
    assert DataDeletionRequest.objects.count() == 0
    assert set(Contact.objects.filter(igsid=IGSID).values_list("email", flat=True)) == {"maya@example.test"}


@pytest.mark.parametrize("value", ["", "no-dot", "abc.def", "." + _b64(b"{}"),
                                   signed_request({"algorithm": "HMAC-SHA256"}),
                                   signed_request({"algorithm": "HMAC-SHA256", "user_id": ""})])
def test_a_malformed_request_is_a_400_and_erases_nothing(client, known_person, value):
    response = _request(client, value)

    assert response.status_code == 400
    assert DataDeletionRequest.objects.count() == 0
    assert set(Contact.objects.filter(igsid=IGSID).values_list("email", flat=True)) == {"maya@example.test"}


def test_the_callback_only_accepts_post(client, db):
    assert client.get("/webhooks/instagram/data-deletion/").status_code == 405


def test_export_holds_everything_about_the_contact(workspace, owner):
    contact = ContactFactory(workspace=workspace, igsid=IGSID, username="maya.designs", email="maya@example.test",
                             custom_fields={"size": "M"})
    services.contact_set_tags(contact=contact, names=["vip"])
    services.folder_add_contacts(folder=FolderFactory(workspace=workspace, name="Lyon"), contact_ids=[contact.pk],
                                 added_by=owner)
    services.message_send_manual(contact=contact, text="Your order shipped", sent_by=owner)

    data = services.contact_export(contact=contact)

    assert (data["igsid"], data["username"], data["email"], data["custom_fields"]) == (
        IGSID, "maya.designs", "maya@example.test", {"size": "M"})
    assert (data["tags"], data["folders"]) == (["vip"], ["Lyon"])
    assert [(m["direction"], m["origin"], m["text"]) for m in data["messages"]] == [
        ("out", "manual", "Your order shipped")]
    json.dumps(data)  # ready to serve as JSON


def test_deleting_a_contact_never_changes_the_months_count(workspace):
    contact = ContactFactory(workspace=workspace)
    other = ContactFactory(workspace=workspace)
    activate(workspace, contact, kind="campaign")
    activate(workspace, other, kind="campaign")
    assert usage(workspace).activated == 2

    services.contact_delete(contact=contact)

    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert usage(workspace).activated == 2
    assert ActivationRecord.objects.filter(workspace=workspace).count() == 2
    assert ActivationRecord.objects.filter(workspace=workspace, contact__isnull=True).count() == 1
