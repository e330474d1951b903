"""Checkout and portal over the API: owners and admins only, idempotent, Stripe faked locally."""

import pytest

from billing.models import CheckoutSession
from tests.api.conftest import ws_url

pytestmark = pytest.mark.django_db


def test_checkout_returns_the_stripe_checkout_url(api, workspace, fake_stripe):
    response = api.post(ws_url(workspace, "billing/checkout/"), {"plan": "pro", "addon_packs": 2}, format="json")

    assert response.status_code == 200
    row = CheckoutSession.objects.get(workspace=workspace)
    assert response.json() == {"url": row.url}
    assert (row.addon_packs, row.plan.code) == (2, "pro")
    assert len(fake_stripe.calls("POST", "/v1/checkout/sessions")) == 1


def test_checkout_with_an_idempotency_key_calls_stripe_once(api, workspace, fake_stripe):
    url = ws_url(workspace, "billing/checkout/")

    first = api.post(url, {"plan": "pro", "addon_packs": 1}, format="json", HTTP_IDEMPOTENCY_KEY="buy-1")
    again = api.post(url, {"plan": "pro", "addon_packs": 1}, format="json", HTTP_IDEMPOTENCY_KEY="buy-1")
    other = api.post(url, {"plan": "pro", "addon_packs": 3}, format="json", HTTP_IDEMPOTENCY_KEY="buy-1")

    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert other.status_code == 409
    assert CheckoutSession.objects.count() == 1
    assert len(fake_stripe.calls("POST", "/v1/checkout/sessions")) == 1


@pytest.mark.parametrize("body, field", [
    ({"plan": "pro", "addon_packs": -1}, "addon_packs"), ({"plan": "pro", "addon_packs": 101}, "addon_packs"),
    ({"plan": "free"}, "plan"), ({"plan": "gold"}, "plan"), ({}, "plan"),
])
def test_checkout_input_is_validated(api, workspace, fake_stripe, body, field):
    response = api.post(ws_url(workspace, "billing/checkout/"), body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert CheckoutSession.objects.count() == 0
    assert fake_stripe.requests == []


def test_a_stripe_failure_is_a_502_and_charges_nothing(api, workspace, fake_stripe):
    fake_stripe.fail_next("POST", "/v1/checkout/sessions", status=500)

    response = api.post(ws_url(workspace, "billing/checkout/"), {"plan": "pro"}, format="json",
                        HTTP_IDEMPOTENCY_KEY="k")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "billing_error"
    retry = api.post(ws_url(workspace, "billing/checkout/"), {"plan": "pro"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert retry.status_code == 200


def test_portal_needs_a_payment_account(api, workspace, fake_stripe):
    response = api.post(ws_url(workspace, "billing/portal/"))

    assert response.status_code == 409  # the request is fine; the workspace has no payment account yet
    assert response.json()["error"]["code"] == "no_billing_account"
    assert fake_stripe.requests == []


def test_portal_after_an_upgrade(api, workspace, fake_stripe, deliver):
    checkout_url = api.post(ws_url(workspace, "billing/checkout/"), {"plan": "pro"}, format="json").json()["url"]
    deliver(*fake_stripe.checkout_complete(checkout_url.rsplit("/", 1)[-1]))

    response = api.post(ws_url(workspace, "billing/portal/"))

    [portal] = fake_stripe.portal_sessions.values()
    assert response.json() == {"url": portal["url"]}


@pytest.mark.parametrize("path", ["billing/checkout/", "billing/portal/"])
def test_a_member_cannot_buy_or_manage_billing(member_api, workspace, fake_stripe, path):
    response = member_api.post(ws_url(workspace, path), {"plan": "pro", "addon_packs": 1}, format="json")

    assert response.status_code == 403
    assert CheckoutSession.objects.count() == 0
    assert fake_stripe.requests == []
