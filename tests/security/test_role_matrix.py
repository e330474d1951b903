"""The role matrix, walked: every API operation (found through the URL resolver, so a new route fails
this test until the matrix names it) for every role. Below the operation's role: 403 and nothing
changes; at or above it: never a 403. docs/roles.md holds the same table, checked row for row.

Members read everything and act by hand (manual DMs, folders, tags and fields); admins also run and
edit automations (segments and their runs, enrichment jobs, campaigns, scenarios, integrations);
owners also manage billing (and members).
"""

import json
import re
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import api_token_create
from automations.models import Campaign, EnrichmentJob, Integration, Scenario, Segment, SegmentMembership
from automations.services import campaign_create, scenario_create, segment_create
from billing.models import CheckoutSession
from contacts.models import Contact, Folder, FolderMembership, Message
from tests.billing.conftest import fake_stripe  # noqa: F401 - Stripe's API for checkout and portal: a local fake
from tests.factories import ContactFactory, FolderFactory, MembershipFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

ROLES = ("member", "admin", "owner")
RANK = {"user": 0, "member": 0, "admin": 1, "owner": 2}
WS = "/api/v1/workspaces/{workspace_id}/"

# (method, path template): the least role it needs. "user": any signed-in user, about themselves.
MATRIX = {
    ("GET", "/api/v1/me/"): "user",
    ("DELETE", "/api/v1/auth/token/"): "user",
    ("GET", "/api/v1/auth/devices/"): "user",
    ("DELETE", "/api/v1/auth/devices/{device_id}/"): "user",
    ("GET", WS + "usage/"): "member",
    ("GET", WS + "usage/history/"): "member",
    ("GET", WS + "usage/settings/"): "member",
    ("PATCH", WS + "usage/settings/"): "admin",
    ("GET", WS + "activations/"): "member",
    ("GET", WS + "paused-actions/"): "member",
    ("GET", WS + "contacts/"): "member",
    ("GET", WS + "contacts/{contact_id}/"): "member",
    ("PATCH", WS + "contacts/{contact_id}/"): "member",
    ("GET", WS + "contacts/{contact_id}/messages/"): "member",
    ("POST", WS + "contacts/{contact_id}/messages/"): "member",
    ("GET", WS + "conversations/"): "member",
    ("POST", WS + "conversations/{contact_id}/read/"): "member",
    ("GET", WS + "folders/"): "member",
    ("POST", WS + "folders/"): "member",
    ("GET", WS + "folders/{folder_id}/"): "member",
    ("PATCH", WS + "folders/{folder_id}/"): "member",
    ("DELETE", WS + "folders/{folder_id}/"): "member",
    ("POST", WS + "folders/{folder_id}/contacts/"): "member",
    ("DELETE", WS + "folders/{folder_id}/contacts/"): "member",
    ("GET", WS + "segments/"): "member",
    ("POST", WS + "segments/"): "admin",
    ("GET", WS + "segments/{segment_id}/"): "member",
    ("PATCH", WS + "segments/{segment_id}/"): "admin",
    ("DELETE", WS + "segments/{segment_id}/"): "admin",
    ("POST", WS + "segments/{segment_id}/run/"): "admin",
    ("POST", WS + "segments/{segment_id}/enrichment-jobs/"): "admin",
    ("GET", WS + "enrichment-jobs/"): "member",
    ("GET", WS + "campaigns/"): "member",
    ("POST", WS + "campaigns/"): "admin",
    ("GET", WS + "campaigns/{campaign_id}/"): "member",
    ("PATCH", WS + "campaigns/{campaign_id}/"): "admin",
    ("DELETE", WS + "campaigns/{campaign_id}/"): "admin",
    ("GET", WS + "campaigns/{campaign_id}/preview/"): "member",
    ("POST", WS + "campaigns/{campaign_id}/launch/"): "admin",
    ("POST", WS + "campaigns/{campaign_id}/cancel/"): "admin",
    ("GET", WS + "scenarios/"): "member",
    ("POST", WS + "scenarios/"): "admin",
    ("GET", WS + "scenarios/{scenario_id}/"): "member",
    ("PATCH", WS + "scenarios/{scenario_id}/"): "admin",
    ("POST", WS + "scenarios/{scenario_id}/enable/"): "admin",
    ("POST", WS + "scenarios/{scenario_id}/disable/"): "admin",
    ("GET", WS + "integrations/"): "member",
    ("POST", WS + "integrations/"): "admin",
    ("GET", WS + "integrations/{integration_id}/"): "member",
    ("PATCH", WS + "integrations/{integration_id}/"): "admin",
    ("GET", WS + "instagram/"): "member",
    ("POST", WS + "instagram/connect/"): "admin",
    ("POST", WS + "instagram/disconnect/"): "admin",
    ("POST", WS + "billing/checkout/"): "owner",
    ("POST", WS + "billing/portal/"): "owner",
}
PUBLIC = {("POST", "/api/v1/auth/token/")}  # signing in: no role yet

BODIES = {
    "PATCH contacts/{contact_id}/": {"name": "Renamed", "tags": ["vip"]},
    "POST contacts/{contact_id}/messages/": {"text": "Hello"},
    "POST folders/": {"name": "New folder"},
    "PATCH folders/{folder_id}/": {"name": "Renamed folder"},
    "POST folders/{folder_id}/contacts/": {"contact_ids": ["{contact_id}"]},
    "DELETE folders/{folder_id}/contacts/": {"contact_ids": ["{contact_id}"]},
    "POST segments/": {"name": "New segment", "rules": {"sources": ["dm"]}},
    "PATCH segments/{segment_id}/": {"name": "Renamed segment", "run_every": "day"},
    "POST scenarios/": {"name": "Welcome", "trigger": {"type": "new_contact"},
                        "steps": [{"type": "send_message", "text": "Welcome!"}]},
    "PATCH scenarios/{scenario_id}/": {"name": "Prices", "enabled": False},
    "POST integrations/": {"name": "CRM", "url": "http://127.0.0.1:9/hook"},
    "PATCH integrations/{integration_id}/": {"enabled": False, "new_secret": True},
    "POST campaigns/": {"name": "New campaign", "text": "Hi"},
    "PATCH campaigns/{campaign_id}/": {"text": "Changed"},
    "POST billing/checkout/": {"plan": "pro", "addon_packs": 1},
    "PATCH usage/settings/": {"monthly_cap": 500},
}


def api_operations() -> set[tuple[str, str]]:
    """Every (method, path template) the URL resolver routes under /api/v1/, from the views themselves."""
    found = set()

    def walk(patterns, prefix):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                route = prefix + str(pattern.pattern)
                view = getattr(pattern.callback, "view_class", None)
                if not route.startswith("api/v1/") or view is None:
                    continue
                template = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
                for method in view.http_method_names:
                    if method not in ("options", "head") and hasattr(view, method):
                        found.add((method.upper(), template))

    walk(get_resolver().url_patterns, "")
    return found


def test_the_matrix_names_every_api_operation():
    assert api_operations() == set(MATRIX) | PUBLIC


def test_the_docs_hold_the_same_table():
    text = (Path(__file__).resolve().parents[2] / "docs" / "roles.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z]+ /api/[^`]+)` \| (\w+) \|", text, flags=re.M))
    assert rows == {f"{method} {path}": role for (method, path), role in MATRIX.items()}


class World:
    def __init__(self):
        self.workspace = WorkspaceFactory()
        self.contact = ContactFactory(workspace=self.workspace)
        self.folder = FolderFactory(workspace=self.workspace, name="VIP")
        self.segment = segment_create(workspace=self.workspace, name="DM leads", rules={"sources": ["dm"]})
        self.campaign = campaign_create(workspace=self.workspace, name="Promo", text="Hi")
        self.scenario = scenario_create(workspace=self.workspace, name="Price", trigger_type="dm_keyword",
                                        trigger_config={"keywords": ["price"]},
                                        steps=[{"type": "send_message", "text": "Our prices"}])
        self.integration = Integration.objects.create(workspace=self.workspace, name="CRM",
                                                      url="http://127.0.0.1:9/hook")
        self.users = {role: MembershipFactory(workspace=self.workspace, role=role).user for role in ROLES}

    def snapshot(self):
        return (
            list(Folder.objects.values_list("pk", "name").order_by("pk")),
            FolderMembership.objects.count(), Message.objects.count(),
            list(Contact.objects.values_list("pk", "name").order_by("pk")),
            list(Segment.objects.values_list("pk", "name", "rules", "run_every").order_by("pk")),
            SegmentMembership.objects.count(), EnrichmentJob.objects.count(),
            list(Integration.objects.values_list("pk", "name", "url", "enabled", "secret").order_by("pk")),
            list(Campaign.objects.values_list("pk", "text", "status").order_by("pk")),
            list(Scenario.objects.values_list("pk", "name", "enabled", "trigger_type", "steps").order_by("pk")),
            CheckoutSession.objects.count(), ApiToken.objects.count(),
        )

    def request(self, role, method, template):
        client = APIClient()
        token, key = api_token_create(user=self.users[role], name=f"{role} phone")
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        values = {"workspace_id": self.workspace.pk, "contact_id": self.contact.pk, "folder_id": self.folder.pk,
                  "segment_id": self.segment.pk, "campaign_id": self.campaign.pk, "scenario_id": self.scenario.pk,
                  "integration_id": self.integration.pk,
                  "device_id": token.pk}
        path = template.format(**values)
        body = BODIES.get(f"{method} {template.removeprefix(WS)}")
        data = None if body is None else json.dumps(body).replace('"{contact_id}"', str(self.contact.pk))
        return client.generic(method, path, data or "", content_type="application/json")


@pytest.mark.usefixtures("fake_stripe")
def test_every_operation_for_every_role():
    world = World()
    problems = []
    for (method, template), least in sorted(MATRIX.items(), key=lambda item: RANK[item[1]], reverse=True):
        for role in ROLES:  # lower roles first: their refused attempts must leave everything in place
            before = world.snapshot()
            response = world.request(role, method, template)
            allowed = RANK[role] >= RANK[least]
            after = world.snapshot()
            where = f"{method} {template} as {role} ({least} and up)"
            if response.status_code >= 500:
                problems.append(f"{where}: {response.status_code}")
            elif allowed and response.status_code == 403:
                problems.append(f"{where}: refused with 403")
            elif not allowed:
                if response.status_code != 403:
                    problems.append(f"{where}: answered {response.status_code}, not 403")
                elif before[:-1] != after[:-1] or after[-1] != before[-1] + 1:  # one token: this request's own
                    problems.append(f"{where}: 403 but something changed")
    assert problems == [], "\n".join(problems)
