"""API test fixtures: token-authenticated clients, and a check that every answer is in the schema."""

import re
from functools import cache
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache as django_cache
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from accounts.models import Membership
from accounts.services import api_token_create
from tests.factories import MembershipFactory, UserFactory


@cache
def openapi_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def documented_statuses(method: str, path: str) -> set[str] | None:
    """The statuses the schema documents for this request, or None for a path it doesn't describe."""
    match = resolve(urlsplit(path).path)
    if match.url_name in ("api-not-found", "api-schema", "api-docs"):
        return None
    template = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", match.route)
    operation = openapi_schema()["paths"][template].get(method.lower())
    if method.upper() == "OPTIONS":  # the Allow header, for any path (docs/api.md)
        return {"204", "401", "404"}
    if operation is None:  # a method the path does not have: 405 (401 first without a token)
        return {"401", "405"}
    return set(operation["responses"])


class CheckedClient(APIClient):
    """APIClient whose every response must carry a status the schema documents for that operation."""
    def generic(self, method, path, *args, **kwargs):
        response = super().generic(method, path, *args, **kwargs)
        statuses = documented_statuses(method, path)
        if statuses is not None:
            assert str(response.status_code) in statuses, (
                f"{method} {path} answered {response.status_code}, schema documents {sorted(statuses)}"
            )
        return response


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Throttle counters live in the cache: each test starts with none."""
    django_cache.clear()
    yield
    django_cache.clear()


def client_for(user) -> CheckedClient:
    _, key = api_token_create(user=user, name="test device")
    client = CheckedClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.token_key = key
    return client


@pytest.fixture
def anonymous():
    return CheckedClient()


@pytest.fixture
def api(owner):
    """The workspace owner's client."""
    return client_for(owner)


@pytest.fixture
def member_api(workspace):
    """A plain member (role member: not admin/owner) of the workspace."""
    user = MembershipFactory(workspace=workspace, role=Membership.Role.MEMBER).user
    return client_for(user)


@pytest.fixture
def outsider_api(db):
    """A user with a workspace of their own, but not a member of `workspace`."""
    user = UserFactory()
    MembershipFactory(user=user)
    return client_for(user)


def ws_url(workspace, rest: str = "") -> str:
    return f"/api/v1/workspaces/{workspace.pk}/{rest}"


# Stripe's API for tests that reach checkout/portal: a local fake server, never Stripe itself.
from tests.billing.conftest import deliver, fake_stripe  # noqa: E402, F401
