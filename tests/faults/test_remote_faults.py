"""Stripe, Meta and the mail server failing: retried with backoff where that is safe, a clear message
where a customer waits on it, and nothing lost or done twice.

Stripe: the real SDK against a local fake (a 5xx, then success: the SDK's own retries with the same
idempotency key) and against a socket that accepts and never answers (a timeout: a clear message on
the billing page, the checkout row marked failed). Meta: a campaign through the Graph backend while
Meta answers 503 and then times out before answering (retried with backoff; one DM per contact).
Mail: the SMTP server refusing connections when a usage alert is due (kept, retried, sent once).
"""

import socket
import threading
import time

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.test import Client

from automations.models import Campaign, UsageAlert
from automations.services import campaign_create, campaign_launch, usage_alerts_check
from automations.tasks import usage_alerts_retry
from billing import stripe_client
from billing.activation import activate_many, usage
from billing.fakestripe.server import FakeStripeServer
from billing.models import AutomationKind, CheckoutSession
from contacts.models import Message
from tests.contacts.test_graph_backend import FakeGraph
from tests.factories import ContactFactory, MembershipFactory, WorkspaceFactory, connect_instagram
from tests.faults.conftest import assert_no_drift

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _owner_client(workspace):
    owner = MembershipFactory(workspace=workspace).user
    client = Client()
    client.force_login(owner)
    return client, owner


def _page_messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_stripe_5xx_is_retried_by_the_sdk_with_the_same_idempotency_key(settings):
    server = FakeStripeServer().start()
    settings.STRIPE_API_BASE, settings.STRIPE_MAX_NETWORK_RETRIES = server.base_url, 2
    settings.SITE_URL = "http://testserver"
    try:
        workspace = WorkspaceFactory()
        client, _ = _owner_client(workspace)
        server.fake.fail_next("POST", "/v1/checkout/sessions", status=500)
        server.fake.fail_next("POST", "/v1/checkout/sessions", status=503)

        response = client.post(f"/w/{workspace.pk}/billing/checkout/", {"plan": "pro", "addon_packs": "1"})

        row = CheckoutSession.objects.get(workspace=workspace)
        assert (response.status_code, response.url) == (302, row.url)
        assert row.status == "open"
        calls = server.fake.calls("POST", "/v1/checkout/sessions")
        assert [c["idempotency_key"] for c in calls] == [f"checkout:{row.pk}"] * 3  # two 5xx, then created
        assert len(server.fake.sessions) == 1
    finally:
        server.stop()
    assert_no_drift()


@pytest.fixture
def silent_server():
    """Accepts connections and never answers: a provider that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []
    stop = threading.Event()

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    stop.set()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()
    listener.close()


def test_stripe_timing_out_shows_a_clear_message_and_charges_nothing(settings, monkeypatch, silent_server):
    port, accepted = silent_server
    monkeypatch.setattr(stripe_client, "TIMEOUT_SECONDS", 0.5)
    stripe_client._client_for.cache_clear()
    settings.STRIPE_API_BASE, settings.STRIPE_MAX_NETWORK_RETRIES = f"http://127.0.0.1:{port}", 2
    workspace = WorkspaceFactory()
    client, _ = _owner_client(workspace)
    try:
        response = client.post(f"/w/{workspace.pk}/billing/checkout/", {"plan": "pro", "addon_packs": "0"})
    finally:
        stripe_client._client_for.cache_clear()

    assert (response.status_code, response.url) == (302, f"/w/{workspace.pk}/billing/")
    assert _page_messages(response) == [
        "We could not reach our payment provider. Nothing was charged; please try again in a minute."
    ]
    assert len(accepted) == 3  # the first try and the SDK's two retries
    row = CheckoutSession.objects.get(workspace=workspace)
    assert (row.status, row.stripe_session_id, row.url) == ("failed", "", "")
    assert usage(workspace).quota == 100
    page = client.get(f"/w/{workspace.pk}/billing/")
    assert page.status_code == 200
    assert_no_drift()


def test_meta_5xx_and_timeouts_during_a_campaign_are_retried_and_each_contact_gets_one_dm(
        settings, django_capture_on_commit_callbacks):
    graph = FakeGraph()
    graph.thread.start()
    settings.INSTAGRAM_SEND_BACKEND = "graph"
    settings.META_GRAPH_API_BASE = graph.base_url
    settings.META_GRAPH_MAX_ATTEMPTS, settings.META_GRAPH_RETRY_BASE_SECONDS = 4, 0.01
    settings.META_GRAPH_TIMEOUT_SECONDS = 0.5
    original_do_post = graph.server.RequestHandlerClass.do_POST
    slow = {"left": 1}

    def do_post(handler):  # the second request hangs past the client's timeout, once
        if len(graph.requests) == 1 and slow["left"]:
            slow["left"] -= 1
            time.sleep(1.0)
        original_do_post(handler)

    graph.server.RequestHandlerClass.do_POST = do_post
    try:
        workspace = WorkspaceFactory()
        connect_instagram(workspace)
        _, owner = _owner_client(workspace)
        contacts = ContactFactory.create_batch(3, workspace=workspace)
        graph.queue(503, {"error": {"message": "Service temporarily unavailable", "code": 2}})
        campaign = campaign_create(workspace=workspace, name="Drop", text="It is live")

        with django_capture_on_commit_callbacks(execute=True):
            campaign_launch(campaign=campaign, launched_by=owner)  # inline task (test settings)
    finally:
        graph.server.shutdown()
        graph.server.server_close()

    campaign.refresh_from_db()
    assert (campaign.status, campaign.sent_count, campaign.failed_count) == (Campaign.Status.DONE, 3, 0)
    messages = Message.objects.filter(automation_ref=campaign.ref)
    assert sorted(messages.values_list("contact_id", flat=True)) == sorted(c.pk for c in contacts)
    assert set(messages.values_list("status", flat=True)) == {"sent"}
    assert len(set(messages.values_list("meta_mid", flat=True))) == 3
    assert usage(workspace).activated == 3
    assert_no_drift()


def test_smtp_down_when_a_usage_alert_is_due_keeps_it_and_sends_it_once_later(
        settings, django_capture_on_commit_callbacks):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connection refused
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    workspace = WorkspaceFactory()
    owner = MembershipFactory(workspace=workspace).user
    contacts = ContactFactory.create_batch(80, workspace=workspace)
    activate_many(workspace, [c.pk for c in contacts], kind=AutomationKind.SCENARIO, ref="scenario:1")

    with django_capture_on_commit_callbacks(execute=True):
        [alert] = usage_alerts_check(workspace=workspace)  # 80 of 100: the 80% alert, emailed inline
    alert.refresh_from_db()
    assert (alert.threshold, alert.sent_at, alert.attempts, alert.sending_since) == (80, None, 1, None)
    assert "Connection refused" in alert.last_error
    assert usage_alerts_check(workspace=workspace) == []  # due once: not created again
    assert usage_alerts_retry() == 0  # still down: kept for later
    alert.refresh_from_db()
    assert (alert.sent_at, alert.attempts) == (None, 2)

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # the mail server is back
    mail.outbox.clear()
    assert usage_alerts_retry() == 1
    assert usage_alerts_retry() == 0
    assert [m.to for m in mail.outbox] == [[owner.email]]
    assert mail.outbox[0].subject == f"{workspace.name}: 80% of this month's activations used"
    alert.refresh_from_db()
    assert alert.sent_at is not None and alert.last_error == ""
    assert UsageAlert.objects.filter(workspace=workspace).count() == 1
    assert_no_drift()
