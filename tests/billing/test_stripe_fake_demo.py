"""The offline demo's Stripe under /_fake_stripe/: off unless local settings enable it; works end to end."""

from pathlib import Path

import pytest
from django.core import mail

from billing.activation import usage
from billing.checkout import checkout_start
from billing.fakestripe import FakeStripe
from billing.fakestripe import views as fake_views
from billing.models import CheckoutSession, Subscription

pytestmark = pytest.mark.django_db


def test_fake_stripe_is_not_served_unless_enabled(client, settings):
    assert getattr(settings, "FAKE_STRIPE_ENABLED", False) is False
    assert client.post("/_fake_stripe/v1/checkout/sessions", {"mode": "subscription"}).status_code == 404
    assert client.get("/_fake_stripe/checkout/pay/cs_test_1").status_code == 404
    assert client.get("/_fake_stripe/portal/bps_1").status_code == 404


def test_production_settings_never_enable_the_fake():
    source = (Path(__file__).resolve().parents[2] / "inro" / "settings" / "production.py").read_text()
    assert "FAKE_STRIPE_ENABLED" not in source
    assert "DEBUG = False" in source


@pytest.fixture
def demo(settings, fake_stripe, monkeypatch):
    settings.FAKE_STRIPE_ENABLED = True
    monkeypatch.setattr(fake_views, "_fake", fake_stripe)
    return fake_stripe


def test_hosted_checkout_pay_button_upgrades_through_signed_webhooks(client, workspace, owner, demo,
                                                                      django_capture_on_commit_callbacks):
    client.force_login(owner)
    response = client.post(f"/w/{workspace.pk}/billing/checkout/", {"plan": "pro", "addon_packs": "2"})
    session_id = response.url.rsplit("/", 1)[-1]

    page = client.get(f"/_fake_stripe/checkout/pay/{session_id}")
    assert page.status_code == 200
    assert "Pro plan" in page.content.decode()
    assert "$58.00 / month" in page.content.decode()  # two packs at $29
    with django_capture_on_commit_callbacks(execute=True):
        paid = client.post(f"/_fake_stripe/checkout/pay/{session_id}", {"action": "pay"})

    assert paid.status_code == 302
    assert paid.url == f"http://testserver/w/{workspace.pk}/billing/success/?session_id={session_id}"
    assert usage(workspace).quota == 3000
    assert CheckoutSession.objects.get(workspace=workspace).status == "completed"
    success = client.get(paid.url.removeprefix("http://testserver"))
    assert "Your quota this month is now 3,000 activations" in success.content.decode()

    portal = client.post(f"/w/{workspace.pk}/billing/portal/")
    portal_path = portal.url.removeprefix("https://fake-stripe.invalid")
    assert client.get(f"/_fake_stripe{portal_path}").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/_fake_stripe{portal_path}", {"action": "fail_payment"})
    assert Subscription.objects.get(workspace=workspace).status == "past_due"
    assert len(mail.outbox) == 1
    client.post(f"/_fake_stripe{portal_path}", {"action": "pay_invoices"})
    assert Subscription.objects.get(workspace=workspace).status == "active"
    client.post(f"/_fake_stripe{portal_path}", {"action": "cancel_at_period_end"})
    assert Subscription.objects.get(workspace=workspace).cancel_at_period_end is True


def test_hosted_checkout_cancel_button_changes_nothing(client, workspace, owner, demo):
    client.force_login(owner)
    response = client.post(f"/w/{workspace.pk}/billing/checkout/", {"plan": "pro", "addon_packs": "0"})
    session_id = response.url.rsplit("/", 1)[-1]

    cancelled = client.post(f"/_fake_stripe/checkout/pay/{session_id}", {"action": "cancel"})

    assert cancelled.url == f"http://testserver/w/{workspace.pk}/billing/cancel/"
    assert usage(workspace).quota == 100
    assert not Subscription.objects.filter(workspace=workspace).exists()


@pytest.mark.django_db(transaction=True)
def test_sdk_reaches_the_in_process_fake_over_http(live_server, settings, workspace, owner, monkeypatch):
    """What `make run` does: STRIPE_API_BASE points the real SDK at our own server's /_fake_stripe/."""
    settings.FAKE_STRIPE_ENABLED = True
    settings.STRIPE_API_BASE = f"{live_server.url}/_fake_stripe"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.SITE_URL = live_server.url
    monkeypatch.setattr(fake_views, "_fake", FakeStripe(hosted_base=f"{live_server.url}/_fake_stripe"))

    url = checkout_start(workspace=workspace, user=owner, plan_code="pro", addon_packs=1)

    row = CheckoutSession.objects.get(workspace=workspace)
    assert url == f"{live_server.url}/_fake_stripe/checkout/pay/{row.stripe_session_id}"
    assert row.status == "open"
    assert fake_views.fake().sessions[row.stripe_session_id]["metadata"]["workspace_id"] == str(workspace.pk)
