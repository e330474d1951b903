"""Tenancy on every route: an outsider gets 404, another workspace's objects are 404, no token is 401.

ROUTES must list every workspace-scoped operation of the schema (checked below), so a new endpoint
cannot ship without its outsider test.
"""

import json

import pytest

from contacts.models import Folder, FolderMembership, Message
from tests.api.conftest import openapi_schema, ws_url
from tests.factories import ContactFactory, FolderFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

# (method, path under /workspaces/{workspace_id}/, JSON body). {contact} and {folder} are filled in.
ROUTES = [
    ("GET", "usage/", None),
    ("GET", "usage/history/", None),
    ("GET", "activations/", None),
    ("GET", "contacts/", None),
    ("GET", "contacts/{contact}/", None),
    ("PATCH", "contacts/{contact}/", {"name": "Mallory"}),
    ("GET", "contacts/{contact}/messages/", None),
    ("POST", "contacts/{contact}/messages/", {"text": "hi"}),
    ("GET", "folders/", None),
    ("POST", "folders/", {"name": "Stolen"}),
    ("GET", "folders/{folder}/", None),
    ("PATCH", "folders/{folder}/", {"name": "Renamed"}),
    ("DELETE", "folders/{folder}/", None),
    ("POST", "folders/{folder}/contacts/", {"contact_ids": ["{contact}"]}),
    ("DELETE", "folders/{folder}/contacts/", {"contact_ids": ["{contact}"]}),
]
OBJECT_ROUTES = [route for route in ROUTES if "{" in route[1]]


def fill(route, contact, folder):
    method, path, body = route
    path = path.format(contact=contact.pk, folder=folder.pk)
    if body and "contact_ids" in body:
        body = {"contact_ids": [contact.pk]}
    return method, path, body


def call(client, method, url, body):
    return client.generic(method, url, data=None if body is None else json.dumps(body),
                          content_type="application/json")


def assert_nothing_changed(contact, folder, folder_name):
    contact.refresh_from_db()
    assert contact.name != "Mallory"
    assert Folder.objects.get(pk=folder.pk).name == folder_name
    assert not Folder.objects.filter(name="Stolen").exists()
    assert Message.objects.count() == 0
    assert FolderMembership.objects.filter(folder=folder).count() == 1


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_an_outsider_gets_404_on_every_route(outsider_api, workspace, route):
    contact = ContactFactory(workspace=workspace, name="Ana")
    folder = FolderFactory(workspace=workspace, name="VIP")
    folder.memberships.create(contact=contact)
    method, path, body = fill(route, contact, folder)

    response = call(outsider_api, method, ws_url(workspace, path), body)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert_nothing_changed(contact, folder, "VIP")


@pytest.mark.parametrize("route", OBJECT_ROUTES, ids=[f"{m} {p}" for m, p, _ in OBJECT_ROUTES])
def test_another_workspaces_objects_are_404_under_your_own_workspace(api, workspace, route):
    elsewhere = WorkspaceFactory()
    contact = ContactFactory(workspace=elsewhere, name="Ana")
    folder = FolderFactory(workspace=elsewhere, name="VIP")
    folder.memberships.create(contact=contact)
    method, path, body = fill(route, contact, folder)

    response = call(api, method, ws_url(workspace, path), body)

    assert response.status_code == 404
    assert_nothing_changed(contact, folder, "VIP")


def test_a_mix_of_own_folder_and_foreign_contact_is_404(api, workspace):
    folder = FolderFactory(workspace=workspace)
    foreign = ContactFactory(workspace=WorkspaceFactory())

    response = call(api, "POST", ws_url(workspace, f"folders/{folder.pk}/contacts/"), {"contact_ids": [foreign.pk]})

    assert response.status_code == 404
    assert FolderMembership.objects.count() == 0


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_no_token_is_401_on_every_route(anonymous, workspace, route):
    contact = ContactFactory(workspace=workspace, name="Ana")
    folder = FolderFactory(workspace=workspace, name="VIP")
    folder.memberships.create(contact=contact)
    method, path, body = fill(route, contact, folder)

    response = call(anonymous, method, ws_url(workspace, path), body)

    assert response.status_code == 401
    assert_nothing_changed(contact, folder, "VIP")


def test_a_deleted_workspace_is_404_for_its_own_owner(api, workspace):
    from django.utils import timezone

    workspace.deleted_at = timezone.now()
    workspace.save()

    assert api.get(ws_url(workspace, "usage/")).status_code == 404


def test_routes_cover_every_workspace_operation_in_the_schema():
    prefix = "/api/v1/workspaces/{workspace_id}/"
    in_schema = {
        (method.upper(), path[len(prefix):].replace("{contact_id}", "{contact}").replace("{folder_id}", "{folder}"))
        for path, operations in openapi_schema()["paths"].items() if path.startswith(prefix)
        for method in operations if method in ("get", "post", "put", "patch", "delete")
    }
    listed = {(m, p) for m, p, _ in ROUTES}
    assert in_schema - listed == set(), "add these operations to ROUTES"
    assert listed - in_schema == set()
