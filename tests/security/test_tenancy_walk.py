"""Every URL of the web app and the API, walked with an outsider and with a member lacking the role.

The routes come from Django's resolver, not from a hand-written list: a route added later is walked
too. Path parameters are filled with objects of ANOTHER workspace (the victim). Every response is
searched for the victim's data. A route is either in PUBLIC/OWN/SECRET_GUARDED below (each entry
commented), under admin/ (staff only), or workspace-scoped: then an outsider must get 404 (405 for a
method the view does not take) on every method. A new route that forgets the tenancy guard answers
something else and fails this test; a new path parameter fails it until PARAMS names a victim object.
"""

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Membership
from accounts.services import api_token_create
from automations.models import Campaign, Integration, Scenario, Segment
from billing.models import CheckoutSession
from contacts.models import Contact, Folder, FolderMembership, Message, Tag
from tests.factories import ContactFactory, MembershipFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

MARK = "victimsecret"  # in every piece of the victim's data; must never appear in a response to others
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# Public routes: anyone may call them; they hold no workspace data of their own.
PUBLIC = {
    "login", "logout",  # sign-in / sign-out
    "password_reset", "password_reset_done", "password_reset_confirm", "password_reset_complete",
    "instagram-webhook", "stripe",  # signed webhooks (Meta app secret, Stripe endpoint secret)
    "instagram_callback",  # Instagram's consent redirect: the signed, single-use state says who and where
    "instagram-data-deletion", "instagram-data-deletion-status",  # Meta's signed deletion callback + status
    "healthz", "readyz", "metrics",  # probes; metrics needs its bearer token (404 without)
    "api-schema", "api-docs", "api-token", "api-not-found",  # OpenAPI schema, Swagger UI, sign-in, 404 shape
}
# Routes about the signed-in user only (no workspace id in the path).
OWN = {
    "home",  # redirects to the user's own last workspace
    "api-me",  # the user and their own memberships
    "api-devices",  # the user's own devices (another user's device id is a 404: the default check)
}
# Routes guarded by a per-object secret instead of a membership: refused (403) without it.
SECRET_GUARDED = {"scenario_webhook"}
# Owner/admin-only actions: a member of the workspace without that role gets 403 and nothing happens.
MANAGER_ONLY = {("checkout", "POST"), ("portal", "POST")}
# The inbox is every member's, not only owners' and admins': a plain member reads and replies.
MEMBER_ALLOWED = {
    ("inbox", "GET"): 200, ("inbox_live", "GET"): 200, ("inbox_reply", "POST"): 302,
    ("api-conversations", "GET"): 200, ("api-conversation-read", "POST"): 200, ("api-contact-messages", "POST"): 201,
}


def _routes():
    def walk(patterns, prefix, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                ns = pattern.namespace or namespace
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), ns)
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.name or "", namespace or ""

    return list(walk(get_resolver().url_patterns, "", ""))


ROUTES = _routes()


def _path(route: str, params: dict) -> str:
    def param(name: str) -> str:
        if name not in params:
            raise AssertionError(f"route {route!r}: add a value of the victim workspace for <{name}> to PARAMS")
        return str(params[name])

    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: param(m.group(1)), route)

    def group(m):  # regex routes (admin's app list, the API's catch-all)
        name, body = m.group(1), m.group(2)
        if name in params:
            return str(params[name])
        return body.split("|")[0] if re.fullmatch(r"[\w|]+", body) else "x"

    path = re.sub(r"\(\?P<(\w+)>([^)]*)\)", group, path)
    path = path.replace("^", "").replace("$", "").replace("[\\s\\S]*", "nothing-here/").replace(".*", "nothing-here/")
    path = path.replace("\\", "")
    return "/" + path


@pytest.fixture
def world():
    victim = WorkspaceFactory(name="Victimsecret Brand", slug="victimsecret-brand")
    owner = MembershipFactory(workspace=victim).user
    member = MembershipFactory(workspace=victim, role=Membership.Role.MEMBER).user
    contact = ContactFactory(workspace=victim, name="Vera Victimsecret", username="vera_victimsecret",
                             igsid="99999999999")
    folder = Folder.objects.create(workspace=victim, name="Victimsecret Folder")
    FolderMembership.objects.create(folder=folder, contact=contact)
    tag = Tag.objects.create(workspace=victim, name="victimsecret-tag")
    Message.objects.create(workspace=victim, contact=contact, direction="in", origin="contact", status="received",
                           text="victimsecret message")
    segment = Segment.objects.create(workspace=victim, name="Victimsecret Segment")
    campaign = Campaign.objects.create(workspace=victim, name="Victimsecret Campaign", text="victimsecret text")
    scenario = Scenario.objects.create(workspace=victim, name="Victimsecret Scenario", trigger_type="webhook")
    integration = Integration.objects.create(workspace=victim, name="Victimsecret Integration",
                                             url="http://127.0.0.1:9/victimsecret")
    outsider_ws = WorkspaceFactory(name="Outsider Brand", slug="outsider-brand")
    outsider = MembershipFactory(workspace=outsider_ws).user
    ContactFactory(workspace=outsider_ws, name="Own Contact")
    params = {
        "workspace_id": victim.pk, "contact_id": contact.pk, "folder_id": folder.pk, "tag_id": tag.pk,
        "segment_id": segment.pk, "campaign_id": campaign.pk, "scenario_id": scenario.pk,
        "integration_id": integration.pk,
        "object_id": contact.pk, "content_type_id": 1, "code": "nosuchcode", "uidb64": "MQ", "token": "set-password",
        "app_label": "contacts", "url": "nothing-here/", "id": owner.pk,
        # the demo Stripe stand-in:
        "path": "customers", "session_id": "cs_1", "portal_id": "bps_1", "invoice_id": "in_1",
        "device_id": api_token_create(user=owner, name="victimsecret phone")[0].pk,  # the owner's device
    }
    return {"victim": victim, "owner": owner, "member": member, "outsider": outsider, "params": params}


def _clients(user):
    web = Client()
    web.force_login(user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='walk')[1]}")
    return web, api


def _call(web, api, method, path):
    client = api if path.startswith("/api/") else web
    return client.generic(method, path, b"{}", content_type="application/json")


def _body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace").lower()
    return response.content.decode(errors="replace").lower()


def test_every_route_keeps_outsiders_and_role_less_members_out(world, capsys):
    web, api = _clients(world["outsider"])
    member_web, member_api = _clients(world["member"])
    walked, calls, guarded = 0, 0, 0
    problems = []
    for route, name, namespace in ROUTES:
        path = _path(route, world["params"])
        walked += 1
        # Signing out (web logout, the API's DELETE on its token) is only tried with GET: it would end
        # the walk's own session or token. These routes are public anyway.
        for method in ("GET",) if name in ("logout", "api-token") else METHODS:
            response = _call(web, api, method, path)
            calls += 1
            status, body = response.status_code, _body(response)
            where = f"{method} {path} ({namespace + ':' if namespace else ''}{name})"
            if MARK in body:
                problems.append(f"{where}: the victim's data appears in the response")
            if status >= 500:
                problems.append(f"{where}: {status}")
            if route.startswith("admin/"):
                # Staff only: a customer is sent to the admin's sign-in page (or refused), never let in.
                ok = status in (302, 403, 404, 405) and (status != 302 or "/admin/login/" in response["Location"])
                if name in ("login", "logout") and status in (200, 302):
                    ok = True  # the admin sign-in page itself; signing out of it
            elif namespace in ("fake_stripe", "fake_meta"):
                ok = status == 404  # the offline demo's stand-ins: off unless FAKE_STRIPE/FAKE_META_ENABLED
            elif name in PUBLIC or name in OWN:
                ok = True  # no workspace in the path; the data check above still applies
            elif name in SECRET_GUARDED:
                ok = status in (403, 405)
            else:
                guarded += 1 if method == "GET" else 0
                ok = status in (404, 405)
            if not ok:
                problems.append(f"{where}: an outsider got {status}")
        for role_route, role_method in MANAGER_ONLY:
            if name == role_route and namespace in ("", "billing"):
                response = _call(member_web, member_api, role_method, path)
                calls += 1
                if response.status_code != 403 or MARK in _body(response):
                    problems.append(f"{role_method} {path}: a member without the role got {response.status_code}")
    assert problems == [], "\n".join(problems)
    assert CheckoutSession.objects.count() == 0
    assert Folder.objects.filter(workspace=world["victim"]).count() == 1
    assert Message.objects.filter(workspace=world["victim"]).count() == 1
    assert guarded >= 20  # sanity: the workspace routes were found
    with capsys.disabled():
        print(f"\ntenancy walk: {walked} routes ({guarded} workspace-scoped), {calls} requests, 0 leaks")


def test_a_plain_member_reads_and_replies_in_the_inbox(world):
    """The inbox routes, walked as a member without the owner/admin role: each one works."""
    contact_id = world["params"]["contact_id"]
    Contact.objects.filter(pk=contact_id).update(last_inbound_at=timezone.now())
    web, api = _clients(world["member"])
    seen = set()
    for route, name, _ in ROUTES:
        for (allowed, method), expected in MEMBER_ALLOWED.items():
            if name != allowed:
                continue
            path = _path(route, world["params"])
            if path.startswith("/api/"):
                response = api.generic(method, path, b'{"text": "hello"}' if method == "POST" else b"",
                                       content_type="application/json")
            else:
                response = web.generic(method, path, "text=hello" if method == "POST" else "",
                                       content_type="application/x-www-form-urlencoded")
            assert response.status_code == expected, f"{method} {path} as a member: {response.status_code}"
            seen.add((name, method))
    assert seen == set(MEMBER_ALLOWED)
    assert Message.objects.filter(workspace=world["victim"], origin="manual").count() == 2


def test_every_web_form_enforces_csrf(world):
    """POST without a CSRF token, as the workspace's own owner: 403 on every web route that takes POST."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["owner"])
    csrf_exempt = {"instagram-webhook", "stripe", "instagram-data-deletion", "scenario_webhook"}  # signed instead
    refused = 0
    for route, name, namespace in ROUTES:
        if route.startswith(("api/", "admin/")) or name in csrf_exempt or namespace in ("fake_stripe", "fake_meta"):
            continue  # the API authenticates with tokens (and enforces CSRF for sessions); admin is Django's
        path = _path(route, world["params"])
        response = client.post(path, {"name": "x", "text": "x", "username": "a@b.c", "password": "x"})
        assert response.status_code in (403, 405), f"POST {path} without a CSRF token got {response.status_code}"
        refused += response.status_code == 403
    assert refused >= 5  # login, logout, checkout, portal, manual message, folder add, password reset...
    assert Message.objects.filter(workspace=world["victim"]).count() == 1
