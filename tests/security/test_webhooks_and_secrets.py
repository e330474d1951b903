"""Webhooks refuse what they should before doing anything, and secrets never reach the logs.

- Stripe: an event replayed past the signature tolerance (300 s) is refused; a wrong signature too.
- Meta: a delivery with a bad or missing signature is refused.
- Both: an oversized body is refused with 413 before it is read or parsed (declared or actual size).
- Logs captured during a bad-signature webhook, sign-ins and Stripe/Meta calls contain no secret.
- Stripe payloads are stored without card data.
"""

import json
import logging
import time

import pytest
from django.test import Client

from billing.fakestripe import sign_payload
from billing.fakestripe.server import FakeStripeServer
from billing.models import StripeEvent
from contacts.models import WebhookDelivery
from tests.contacts.conftest import sign
from tests.factories import MembershipFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

STRIPE_URL, META_URL = "/webhooks/stripe/", "/webhooks/instagram/"


def _event(event_id="evt_security_1", **obj) -> dict:
    return {"id": event_id, "object": "event", "type": "customer.created", "created": int(time.time()),
            "livemode": False, "data": {"object": {"id": "cus_1", "object": "customer", **obj}}}


def _stripe_post(client, payload: str, header: str, **extra):
    return client.post(STRIPE_URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header,
                       **extra)


def test_a_stripe_event_replayed_after_the_tolerance_is_refused_and_not_stored(client, settings):
    payload = json.dumps(_event())
    stale = sign_payload(payload, settings.STRIPE_WEBHOOK_SECRET, int(time.time()) - 301)
    response = _stripe_post(client, payload, stale)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_signature"
    assert "Timestamp outside the tolerance zone" in response.json()["error"]["message"]
    assert StripeEvent.objects.count() == 0
    # The same event signed now is accepted: only the age made the difference.
    assert _stripe_post(client, payload, sign_payload(payload, settings.STRIPE_WEBHOOK_SECRET)).status_code == 200
    assert StripeEvent.objects.count() == 1


@pytest.mark.parametrize("header", ["", "t=1,v1=deadbeef", "garbage"])
def test_a_stripe_event_with_a_bad_signature_is_refused(client, header):
    response = _stripe_post(client, json.dumps(_event()), header)
    assert response.status_code == 400
    assert StripeEvent.objects.count() == 0


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha1=abc", "sha256=" + sign(b"other")[7:]])
def test_a_meta_delivery_with_a_bad_signature_is_refused(client, signature):
    body = json.dumps({"object": "instagram", "entry": []}).encode()
    headers = {} if signature is None else {"HTTP_X_HUB_SIGNATURE_256": signature}
    response = client.post(META_URL, data=body, content_type="application/json", **headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "bad_signature"
    assert WebhookDelivery.objects.count() == 0


@pytest.mark.parametrize("url,limit_setting", [(STRIPE_URL, "STRIPE_WEBHOOK_MAX_BYTES"),
                                                (META_URL, "META_WEBHOOK_MAX_BYTES")])
def test_oversized_webhook_bodies_are_413_before_parsing(client, settings, url, limit_setting, monkeypatch):
    setattr(settings, limit_setting, 1000)
    parsed = []
    monkeypatch.setattr(json, "loads", lambda *a, **k: parsed.append(1))  # must never be reached
    body = b'{"pad": "' + b"x" * 2000 + b'"}'
    headers = {"HTTP_STRIPE_SIGNATURE": sign_payload(body.decode(), settings.STRIPE_WEBHOOK_SECRET),
               "HTTP_X_HUB_SIGNATURE_256": sign(body)}
    response = client.post(url, data=body, content_type="application/json", **headers)
    assert response.status_code == 413
    # A lying Content-Length is refused on the declared size, before the body is read.
    declared = client.generic("POST", url, b"{}", content_type="application/json", CONTENT_LENGTH="5000000",
                              **headers)
    assert declared.status_code == 413
    assert parsed == []
    assert StripeEvent.objects.count() == 0 and WebhookDelivery.objects.count() == 0


def test_stripe_payloads_are_stored_without_card_data(client, settings):
    charge = {"payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242",
                                                                  "exp_month": 12, "exp_year": 2031,
                                                                  "fingerprint": "fp_SECRETCARD"}},
              "card": {"last4": "4242", "fingerprint": "fp_SECRETCARD"},
              "lines": [{"card_present": {"last4": "4242"}}]}
    payload = json.dumps(_event("evt_card", **charge))
    assert _stripe_post(client, payload, sign_payload(payload, settings.STRIPE_WEBHOOK_SECRET)).status_code == 200
    stored = json.dumps(StripeEvent.objects.get(event_id="evt_card").payload)
    assert "4242" not in stored and "fp_SECRETCARD" not in stored and "exp_year" not in stored
    assert '"id": "cus_1"' in stored  # the rest is kept


def test_secrets_never_reach_the_logs(client, settings, caplog):
    caplog.set_level(logging.DEBUG)
    server = FakeStripeServer().start()
    settings.STRIPE_API_BASE, settings.STRIPE_MAX_NETWORK_RETRIES = server.base_url, 0
    settings.SITE_URL = "http://testserver"
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    password = "correct-horse-battery"  # the factory's test password
    try:
        workspace = WorkspaceFactory()
        owner = MembershipFactory(workspace=workspace).user
        # Webhooks with bad signatures (the valid signature of another secret in the header).
        body = b'{"object": "instagram", "entry": []}'
        client.post(META_URL, data=body, content_type="application/json",
                    HTTP_X_HUB_SIGNATURE_256=sign(body, "attacker-secret"))
        payload = json.dumps(_event())
        _stripe_post(client, payload, sign_payload(payload, "whsec_attacker"))
        # Sign-ins: a wrong password, then the right one.
        web = Client()
        web.post("/login/", {"username": owner.email, "password": "wrong-" + password})
        web.post("/login/", {"username": owner.email, "password": password})
        # Stripe calls: one failing (logged as a warning), one succeeding.
        server.fake.fail_next("POST", "/v1/checkout/sessions", status=500)
        web.post(f"/w/{workspace.pk}/billing/checkout/", {"plan": "pro", "addon_packs": "0"})
        web.post(f"/w/{workspace.pk}/billing/checkout/", {"plan": "pro", "addon_packs": "0"})
        assert len(server.fake.calls("POST", "/v1/checkout/sessions")) == 2
    finally:
        server.stop()

    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert "stripe checkout.sessions.create failed" in logged  # the failure is logged, without secrets
    secrets = [settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET, settings.META_APP_SECRET,
               settings.META_VERIFY_TOKEN, settings.SECRET_KEY, password, "wrong-" + password,
               "whsec_attacker", "attacker-secret", web.cookies["sessionid"].value]
    leaked = [secret for secret in secrets if secret in logged]
    assert leaked == []
