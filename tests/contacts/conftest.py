"""Fixtures for Instagram intake: Meta-shaped payloads, signed like Meta signs them, and a hook spy."""

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from django.conf import settings

from contacts import hooks
from tests.factories import WorkspaceFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "meta"
IG_ACCOUNT_ID = "17841400000000001"


def meta_fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def sign(body: bytes, secret: str | None = None) -> str:
    key = (secret if secret is not None else settings.META_APP_SECRET).encode()
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


@pytest.fixture
def ig_workspace(db):
    return WorkspaceFactory(instagram_account_id=IG_ACCOUNT_ID)


@pytest.fixture
def captured_events():
    """Every InboundEvent fired while the test runs; the listener is removed afterwards."""
    seen = []
    saved = hooks._inbound_listeners[:]
    hooks.on_inbound_event(seen.append)
    yield seen
    hooks._inbound_listeners[:] = saved


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """POST a payload to the webhook signed with the app secret and run what is queued after commit."""

    def post(payload, *, signature: str | None = "valid", raw: bytes | None = None):
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {}
        if signature == "valid":
            headers["HTTP_X_HUB_SIGNATURE_256"] = sign(body)
        elif signature is not None:
            headers["HTTP_X_HUB_SIGNATURE_256"] = signature
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/webhooks/instagram/", data=body, content_type="application/json", **headers)

    return post
