"""Fixtures for the Stripe billing tests: a fake Stripe over HTTP and signed webhook deliveries."""

import json

import pytest
from django.conf import settings as django_settings

from billing import hooks
from billing.fakestripe import sign_payload
from billing.fakestripe.server import FakeStripeServer


@pytest.fixture
def fake_stripe(settings):
    """Stripe's API for the test: STRIPE_API_BASE points the real SDK at a local fake server."""
    server = FakeStripeServer().start()
    settings.STRIPE_API_BASE = server.base_url
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.SITE_URL = "http://testserver"
    yield server.fake
    server.stop()


def signed_post(client, event: dict, *, secret: str | None = None, timestamp: int | None = None):
    payload = json.dumps(event)
    header = sign_payload(payload, secret or django_settings.STRIPE_WEBHOOK_SECRET, timestamp)
    return client.post("/webhooks/stripe/", data=payload, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=header)


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """Deliver Stripe events to our webhook, signed like Stripe; asserts each got the expected status.

    After-commit callbacks (billing's hooks) run as in production, though the test holds a transaction.
    """

    def deliver_events(*events, expect: int = 200):
        responses = []
        for event in events:
            with django_capture_on_commit_callbacks(execute=True):
                responses.append(signed_post(client, event))
        for response in responses:
            assert response.status_code == expect, response.content
        return responses

    return deliver_events


@pytest.fixture
def headroom_calls():
    """A listener on billing's headroom hook, as automations registers one (resumes paused actions)."""
    calls: list[dict] = []

    def listener(**kwargs):
        calls.append(kwargs)

    hooks.on_headroom_raised(listener)
    return calls
