"""The contacts pages: filters validated by a form, the contact page, manual actions at any quota."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.activation import activate_many, usage
from billing.models import ActivationRecord
from contacts.models import Contact, Folder, FolderMembership, Message, Tag
from tests.factories import ContactFactory, FolderFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def list_url(workspace):
    return reverse("contacts", kwargs={"workspace_id": workspace.pk})


def contact_url(contact, suffix=""):
    return reverse("contact", kwargs={"workspace_id": contact.workspace_id, "contact_id": contact.pk}) + suffix


def listed(response):
    return [contact.username for contact, _ in response.context["rows"]]


def test_filters_by_source_activation_folder_tag_and_search(owner_client, workspace, owner):
    ava = ContactFactory(workspace=workspace, username="ava", name="Ava Sun", source=Contact.Source.PAID_AD)
    leo = ContactFactory(workspace=workspace, username="leo", name="Leo Moon", source=Contact.Source.STORY)
    mia = ContactFactory(workspace=workspace, username="mia", name="Mia Rain", source=Contact.Source.PAID_AD)
    activate_many(workspace, [ava], kind="campaign")
    vip = FolderFactory(workspace=workspace, name="VIP")
    FolderMembership.objects.create(folder=vip, contact=leo)
    Tag.objects.create(workspace=workspace, name="wholesale").contacts.add(mia)

    assert listed(owner_client.get(list_url(workspace), {"source": "paid_ad"})) == ["mia", "ava"]
    assert listed(owner_client.get(list_url(workspace), {"activated": "yes"})) == ["ava"]
    assert listed(owner_client.get(list_url(workspace), {"activated": "no"})) == ["mia", "leo"]
    assert listed(owner_client.get(list_url(workspace), {"folder": vip.pk})) == ["leo"]
    assert listed(owner_client.get(list_url(workspace), {"tag": "wholesale"})) == ["mia"]
    assert listed(owner_client.get(list_url(workspace), {"q": "@le"})) == ["leo"]
    assert listed(owner_client.get(list_url(workspace), {"source": "paid_ad", "activated": "no"})) == ["mia"]
    everyone = owner_client.get(list_url(workspace))
    assert [activated for _, activated in everyone.context["rows"]] == [False, False, True]


def test_bad_filter_input_shows_the_error_next_to_the_field_and_filters_nothing(owner_client, workspace):
    ContactFactory.create_batch(3, workspace=workspace)
    foreign_folder = FolderFactory(workspace=WorkspaceFactory())

    response = owner_client.get(list_url(workspace), {"source": "carrier-pigeon", "folder": foreign_folder.pk})

    assert response.status_code == 400
    page = response.content.decode()
    assert '<p class="field-error" id="id_source_error">Choose a source from the list.</p>' in page
    assert '<p class="field-error" id="id_folder_error">Choose one of this workspace&#x27;s folders.</p>' in page
    assert 'aria-invalid="true"' in page
    assert len(response.context["rows"]) == 3


def test_contacts_page_is_paginated_with_a_fixed_number_of_queries(owner_client, workspace, make_contacts,
                                                                    django_assert_num_queries):
    make_contacts(workspace, 5)
    owner_client.get(list_url(workspace))
    with CaptureQueriesContext(connection) as few:
        owner_client.get(list_url(workspace), {"activated": "no"})
    make_contacts(workspace, 495)
    with django_assert_num_queries(len(few.captured_queries)):
        response = owner_client.get(list_url(workspace), {"activated": "no"})
    assert response.context["page"].paginator.count == 500
    assert len(response.context["rows"]) == 50
    assert "Page 1 of 10" in response.content.decode()


def test_contact_page_shows_activations_and_messages(owner_client, workspace, owner):
    contact = ContactFactory(workspace=workspace, username="ava")
    activate_many(workspace, [contact], kind="campaign", ref="campaign:12")
    Message.objects.create(workspace=workspace, contact=contact, direction="in", origin="contact",
                           status="received", text="Do you ship to Lisbon?")

    response = owner_client.get(contact_url(contact))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Do you ship to Lisbon?" in page
    assert "campaign:12" in page and "Activated in" in page


def test_a_contact_of_another_workspace_is_404(owner_client, workspace):
    stranger = ContactFactory(workspace=WorkspaceFactory())
    url = reverse("contact", kwargs={"workspace_id": workspace.pk, "contact_id": stranger.pk})
    assert owner_client.get(url).status_code == 404
    assert owner_client.post(url + "message/", {"text": "hi"}).status_code == 404
    assert not Message.objects.exists()


def _at_the_limit(workspace, make_contacts):
    activate_many(workspace, make_contacts(workspace, 100), kind="campaign")
    assert usage(workspace).limit_reached


def test_a_manual_dm_is_sent_at_the_limit_without_an_activation(owner_client, workspace, owner, make_contacts):
    _at_the_limit(workspace, make_contacts)
    # Wrote 2 days ago: past the 24-hour window, a member's reply goes out as a human agent's.
    contact = ContactFactory(workspace=workspace, username="newcomer",
                             last_inbound_at=timezone.now() - datetime.timedelta(days=2))

    response = owner_client.post(contact_url(contact, "message/"), {"text": "Hi! Your order is ready."})

    assert response.status_code == 302 and response["Location"] == contact_url(contact) + "#conversation"
    message = Message.objects.get(contact=contact)
    assert (message.text, message.origin, message.status, message.sent_by, message.tag) == (
        "Hi! Your order is ready.", "manual", "sent", owner, "HUMAN_AGENT")
    assert not ActivationRecord.objects.filter(contact=contact).exists()
    assert usage(workspace).activated == 100
    assert "Message sent to @newcomer." in owner_client.get(contact_url(contact)).content.decode()


def test_an_empty_dm_shows_the_error_and_sends_nothing(owner_client, workspace):
    contact = ContactFactory(workspace=workspace)
    response = owner_client.post(contact_url(contact, "message/"), {"text": "   "})
    assert response.status_code == 400
    assert '<p class="field-error" id="id_text_error">Write a message before sending.</p>' in response.content.decode()
    assert not Message.objects.exists()


def test_adding_to_a_folder_works_at_the_limit_without_an_activation(owner_client, workspace, owner, make_contacts):
    _at_the_limit(workspace, make_contacts)
    contact = ContactFactory(workspace=workspace, username="newcomer")
    vip = FolderFactory(workspace=workspace, name="VIP")

    response = owner_client.post(contact_url(contact, "folders/"), {"folder": vip.pk})

    assert response.status_code == 302
    membership = FolderMembership.objects.get(contact=contact)
    assert (membership.folder, membership.added_by) == (vip, owner)
    assert not ActivationRecord.objects.filter(contact=contact).exists()
    assert usage(workspace).activated == 100


def test_adding_to_a_new_folder_creates_it(owner_client, workspace):
    contact = ContactFactory(workspace=workspace)
    owner_client.post(contact_url(contact, "folders/"), {"new_folder": "Wholesale leads"})
    assert list(Folder.objects.filter(workspace=workspace).values_list("name", flat=True)) == ["Wholesale leads"]
    assert FolderMembership.objects.get(contact=contact).folder.name == "Wholesale leads"


def test_bad_folder_input_changes_nothing(owner_client, workspace):
    contact = ContactFactory(workspace=workspace)
    FolderFactory(workspace=workspace, name="VIP")
    foreign = FolderFactory(workspace=WorkspaceFactory())

    nothing = owner_client.post(contact_url(contact, "folders/"), {})
    foreign_folder = owner_client.post(contact_url(contact, "folders/"), {"folder": foreign.pk})
    taken = owner_client.post(contact_url(contact, "folders/"), {"new_folder": "VIP"})

    assert [r.status_code for r in (nothing, foreign_folder, taken)] == [400, 400, 400]
    assert "Choose a folder or name a new one." in nothing.content.decode()
    assert "Choose one of this workspace&#x27;s folders." in foreign_folder.content.decode()
    assert "This name is taken." in taken.content.decode()
    assert not FolderMembership.objects.exists()
    assert Folder.objects.filter(workspace=workspace).count() == 1


def test_members_can_take_manual_actions(member_client, workspace):
    contact = ContactFactory(workspace=workspace)
    assert member_client.post(contact_url(contact, "message/"), {"text": "Hello"}).status_code == 302
    assert Message.objects.filter(contact=contact, origin="manual").count() == 1


def test_manual_actions_are_post_only(owner_client, workspace):
    contact = ContactFactory(workspace=workspace)
    assert owner_client.get(contact_url(contact, "message/")).status_code == 405
