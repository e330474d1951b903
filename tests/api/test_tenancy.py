"""Tenancy on every route: an outsider gets 404, another workspace's objects are 404, no token is 401.

ROUTES must list every workspace-scoped operation of the schema (checked below), so a new endpoint
cannot ship without its outsider test.
"""

import json
import re

import pytest
from django.utils import timezone

from accounts.models import Workspace
from automations.models import Campaign, EnrichmentJob, Integration, Scenario, Segment
from automations.services import campaign_create, scenario_create, segment_create
from billing.models import CheckoutSession
from contacts.models import ConversationRead, Folder, FolderMembership, Message
from tests.api.conftest import openapi_schema, ws_url
from tests.factories import ContactFactory, FolderFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

# (method, path under /workspaces/{workspace_id}/, JSON body). {contact} and {folder} are filled in.
ROUTES = [
    ("GET", "usage/", None),
    ("GET", "usage/history/", None),
    ("GET", "usage/settings/", None),
    ("PATCH", "usage/settings/", {"monthly_cap": 0, "conversation_reserve": 50}),
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
    ("GET", "segments/", None),
    ("POST", "segments/", {"name": "Stolen"}),
    ("GET", "segments/{segment}/", None),
    ("PATCH", "segments/{segment}/", {"name": "Renamed"}),
    ("DELETE", "segments/{segment}/", None),
    ("GET", "campaigns/", None),
    ("POST", "campaigns/", {"name": "Stolen", "text": "Hi"}),
    ("GET", "campaigns/{campaign}/", None),
    ("PATCH", "campaigns/{campaign}/", {"text": "Renamed"}),
    ("PATCH", "campaigns/{campaign}/", {"critical": True}),
    ("DELETE", "campaigns/{campaign}/", None),
    ("GET", "campaigns/{campaign}/preview/", None),
    ("POST", "campaigns/{campaign}/launch/", None),
    ("POST", "campaigns/{campaign}/cancel/", None),
    ("GET", "scenarios/", None),
    ("GET", "scenarios/{scenario}/", None),
    ("POST", "scenarios/{scenario}/enable/", None),
    ("POST", "scenarios/{scenario}/disable/", None),
    ("POST", "scenarios/", {"name": "Stolen", "trigger_type": "webhook", "trigger_config": {},
                            "steps": [{"type": "add_tag", "tag": "x"}]}),
    ("PATCH", "scenarios/{scenario}/", {"name": "Renamed"}),
    ("POST", "segments/{segment}/run/", None),
    ("POST", "segments/{segment}/enrichment-jobs/", None),
    ("GET", "enrichment-jobs/", None),
    ("GET", "integrations/", None),
    ("POST", "integrations/", {"name": "Stolen", "url": "https://example.com/hook"}),
    ("GET", "integrations/{integration}/", None),
    ("PATCH", "integrations/{integration}/", {"name": "Renamed"}),
    ("GET", "paused-actions/", None),
    ("POST", "billing/checkout/", {"plan": "pro", "addon_packs": 1}),
    ("POST", "billing/portal/", None),
    ("GET", "instagram/", None),
    ("POST", "instagram/connect/", None),
    ("POST", "instagram/disconnect/", None),
    ("GET", "conversations/", None),
    ("POST", "conversations/{contact}/read/", None),
]
OBJECT_ROUTES = [route for route in ROUTES if "{" in route[1]]


class Objects:
    """One of everything in a workspace, named as the route placeholders are."""
    def __init__(self, workspace):
        self.contact = ContactFactory(workspace=workspace, name="Ana")
        self.folder = FolderFactory(workspace=workspace, name="VIP")
        self.folder.memberships.create(contact=self.contact)
        self.segment = segment_create(workspace=workspace, name="Fans", rules={"sources": ["dm"]})
        self.campaign = campaign_create(workspace=workspace, name="Promo", text="Hi")
        self.scenario = scenario_create(workspace=workspace, name="Kw", trigger_type="dm_keyword",
                                        trigger_config={"keywords": ["hi"]}, steps=[{"type": "send_message",
                                                                                    "text": "yo"}], enabled=False)
        self.integration = Integration.objects.create(workspace=workspace, name="Hook",
                                                      url="https://example.com/hook")

    def fill(self, route):
        method, path, body = route
        path = path.format(contact=self.contact.pk, folder=self.folder.pk, segment=self.segment.pk,
                           campaign=self.campaign.pk, scenario=self.scenario.pk,
                           integration=self.integration.pk)
        if body and "contact_ids" in body:
            body = {"contact_ids": [self.contact.pk]}
        return method, path, body

    def assert_nothing_changed(self):
        self.contact.refresh_from_db()
        assert self.contact.name == "Ana"
        assert Folder.objects.get(pk=self.folder.pk).name == "VIP"
        assert FolderMembership.objects.filter(folder=self.folder).count() == 1
        assert Segment.objects.get(pk=self.segment.pk).name == "Fans"
        assert Campaign.objects.get(pk=self.campaign.pk).status == "draft"
        assert Campaign.objects.get(pk=self.campaign.pk).text == "Hi"
        assert Campaign.objects.get(pk=self.campaign.pk).critical is False
        workspace = Workspace.objects.get(pk=self.contact.workspace_id)
        assert (workspace.monthly_cap, workspace.activation_reserve) == (None, 0)
        assert Scenario.objects.get(pk=self.scenario.pk).enabled is False
        assert Scenario.objects.get(pk=self.scenario.pk).name == "Kw"
        assert not Scenario.objects.filter(name="Stolen").exists()
        assert Integration.objects.get(pk=self.integration.pk).name == "Hook"
        assert not Integration.objects.filter(name="Stolen").exists()
        assert EnrichmentJob.objects.count() == 0
        assert Segment.objects.get(pk=self.segment.pk).last_run_at is None
        assert not Folder.objects.filter(name="Stolen").exists()
        assert not Segment.objects.filter(name="Stolen").exists()
        assert not Campaign.objects.filter(name="Stolen").exists()
        assert Message.objects.count() == 0
        assert ConversationRead.objects.count() == 0
        assert CheckoutSession.objects.count() == 0


def call(client, method, url, body):
    return client.generic(method, url, data="" if body is None else json.dumps(body),
                          content_type="application/json")


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_an_outsider_gets_404_on_every_route(outsider_api, workspace, route, fake_stripe):
    objects = Objects(workspace)
    method, path, body = objects.fill(route)

    response = call(outsider_api, method, ws_url(workspace, path), body)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    objects.assert_nothing_changed()
    assert fake_stripe.requests == []


@pytest.mark.parametrize("route", OBJECT_ROUTES, ids=[f"{m} {p}" for m, p, _ in OBJECT_ROUTES])
def test_another_workspaces_objects_are_404_under_your_own_workspace(api, workspace, route):
    objects = Objects(WorkspaceFactory())
    method, path, body = objects.fill(route)

    response = call(api, method, ws_url(workspace, path), body)

    assert response.status_code == 404
    objects.assert_nothing_changed()


def test_a_mix_of_own_folder_and_foreign_contact_is_404(api, workspace):
    folder = FolderFactory(workspace=workspace)
    foreign = ContactFactory(workspace=WorkspaceFactory())

    response = call(api, "POST", ws_url(workspace, f"folders/{folder.pk}/contacts/"), {"contact_ids": [foreign.pk]})

    assert response.status_code == 404
    assert FolderMembership.objects.count() == 0


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_no_token_is_401_on_every_route(anonymous, workspace, route, fake_stripe):
    objects = Objects(workspace)
    method, path, body = objects.fill(route)

    response = call(anonymous, method, ws_url(workspace, path), body)

    assert response.status_code == 401
    objects.assert_nothing_changed()
    assert fake_stripe.requests == []


def test_a_deleted_workspace_is_404_for_its_own_owner(api, workspace):
    workspace.deleted_at = timezone.now()
    workspace.save()

    assert api.get(ws_url(workspace, "usage/")).status_code == 404


def test_routes_cover_every_workspace_operation_in_the_schema():
    prefix = "/api/v1/workspaces/{workspace_id}/"
    in_schema = {
        (method.upper(), re.sub(r"\{(\w+)_id\}", r"{\1}", path[len(prefix):]))
        for path, operations in openapi_schema()["paths"].items() if path.startswith(prefix)
        for method in operations if method in ("get", "post", "put", "patch", "delete")
    }
    listed = {(m, p) for m, p, _ in ROUTES}
    assert in_schema - listed == set(), "add these operations to ROUTES"
    assert listed - in_schema == set()
