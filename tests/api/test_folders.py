"""Folders over the API: CRUD and putting contacts in or out by hand (rule 6: never counted)."""

import pytest

from billing.activation import activate_many, usage
from billing.models import ActivationRecord
from contacts.models import Folder, FolderMembership
from tests.api.conftest import ws_url
from tests.factories import ContactFactory, FolderFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def test_folder_crud(api, workspace):
    created = api.post(ws_url(workspace, "folders/"), {"name": " VIP "}, format="json")
    assert created.status_code == 201
    folder_id = created.json()["id"]
    assert (created.json()["name"], created.json()["size"]) == ("VIP", 0)

    assert api.get(ws_url(workspace, "folders/")).json()["results"][0]["id"] == folder_id
    renamed = api.patch(ws_url(workspace, f"folders/{folder_id}/"), {"name": "Wholesale"}, format="json")
    assert renamed.json()["name"] == "Wholesale"
    assert api.get(ws_url(workspace, f"folders/{folder_id}/")).json()["name"] == "Wholesale"

    assert api.delete(ws_url(workspace, f"folders/{folder_id}/")).status_code == 204
    assert not Folder.objects.filter(pk=folder_id).exists()


def test_a_taken_folder_name_is_a_conflict(api, workspace):
    FolderFactory(workspace=workspace, name="VIP")
    other = FolderFactory(workspace=workspace, name="Leads")

    create = api.post(ws_url(workspace, "folders/"), {"name": "VIP"}, format="json")
    rename = api.patch(ws_url(workspace, f"folders/{other.pk}/"), {"name": "VIP"}, format="json")

    assert (create.status_code, rename.status_code) == (409, 409)
    assert create.json()["error"]["code"] == "conflict"
    assert create.json()["error"]["fields"] == {"name": ["This name is taken."]}
    assert Folder.objects.filter(workspace=workspace).count() == 2


def test_a_folder_needs_a_name(api, workspace):
    response = api.post(ws_url(workspace, "folders/"), {"name": ""}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["name"]
    assert Folder.objects.count() == 0


def test_adding_and_removing_contacts_at_the_limit_creates_no_activation(api, workspace, make_contacts):
    activate_many(workspace, make_contacts(workspace, 100), kind="campaign")
    folder = FolderFactory(workspace=workspace)
    a, b = ContactFactory(workspace=workspace), ContactFactory(workspace=workspace)
    url = ws_url(workspace, f"folders/{folder.pk}/contacts/")

    added = api.post(url, {"contact_ids": [a.pk, b.pk]}, format="json")
    again = api.post(url, {"contact_ids": [a.pk]}, format="json")
    removed = api.delete(url, {"contact_ids": [b.pk]}, format="json")

    assert added.json() == {"changed": 2, "size": 2}
    assert again.json() == {"changed": 0, "size": 2}
    assert removed.json() == {"changed": 1, "size": 1}
    assert list(folder.contacts.all()) == [a]
    assert not ActivationRecord.objects.filter(contact__in=[a, b]).exists()
    assert usage(workspace).activated == 100


def test_contacts_of_another_workspace_are_404_and_nothing_is_added(api, workspace):
    folder = FolderFactory(workspace=workspace)
    mine = ContactFactory(workspace=workspace)
    theirs = ContactFactory(workspace=WorkspaceFactory())

    response = api.post(ws_url(workspace, f"folders/{folder.pk}/contacts/"),
                        {"contact_ids": [mine.pk, theirs.pk]}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["fields"] == {"contact_ids": [str(theirs.pk)]}
    assert FolderMembership.objects.count() == 0


@pytest.mark.parametrize("body", [{}, {"contact_ids": []}, {"contact_ids": ["x"]}, {"contact_ids": [0]},
                                  {"contact_ids": [2**63]}, ["not", "an", "object"]])
def test_contact_ids_are_validated(api, workspace, body):
    folder = FolderFactory(workspace=workspace)

    response = api.post(ws_url(workspace, f"folders/{folder.pk}/contacts/"), body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert FolderMembership.objects.count() == 0
