"""Driving Business Login for Instagram as a browser would, against the Meta stand-in."""

import json
import time
from urllib.parse import parse_qs, urlsplit

import requests
from django.test import Client

from accounts.models import Membership
from accounts.services import api_token_create
from tests.contacts.conftest import sign
from tests.factories import MembershipFactory


def consent(url: str, *, username: str, decision: str = "allow") -> str:
    """Open Instagram's (stand-in) consent page at `url` and answer it; the path + query Instagram
    redirects the browser to (our callback)."""
    response = requests.get(url, params={"username": username, "decision": decision}, allow_redirects=False,
                            timeout=5)
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["Location"])
    return f"{location.path}?{location.query}"


def start_connect(client, workspace_id: int) -> str:
    """POST /api/v1/workspaces/{id}/instagram/connect/ as the signed-in client: the consent URL."""
    response = client.post(f"/api/v1/workspaces/{workspace_id}/instagram/connect/", content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()["url"]


def connect(client, workspace_id: int, *, username: str):
    """The whole flow; the callback's response."""
    return client.get(consent(start_connect(client, workspace_id), username=username))


def state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


def deliver_webhook(client, payload: dict):
    body = json.dumps(payload).encode()
    return client.post("/webhooks/instagram/", data=body, content_type="application/json",
                       HTTP_X_HUB_SIGNATURE_256=sign(body))


def dm_payload(account_id: str, sender_id: str, mid: str, text: str = "hi", timestamp: int | None = None) -> dict:
    ms = timestamp or int(time.time() * 1000)
    return {"object": "instagram", "entry": [{"id": account_id, "time": ms // 1000, "messaging": [{
        "sender": {"id": sender_id}, "recipient": {"id": account_id}, "timestamp": ms,
        "message": {"mid": mid, "text": text}}]}]}


def owner_client(workspace, role=Membership.Role.OWNER):
    """Signed in on the web and, with its API token, on the API (the mobile app's way)."""
    user = MembershipFactory(workspace=workspace, role=role).user
    _, key = api_token_create(user=user)
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    client.force_login(user)
    return client, user
