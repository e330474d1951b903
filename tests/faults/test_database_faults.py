"""The database connection lost while tasks run, and in the middle of a plan change.

Restarting the shared PostgreSQL server would break every other suite running in parallel, so the
fault is injected at the connection instead:
- tasks on a real worker: the test holds a row lock the task needs, waits until the worker's backend
  is blocked on it, then kills that backend with `pg_terminate_backend` (what a server restart does
  to every connection); the task gets OperationalError, retries with backoff, and finishes;
- the Stripe webhook (handled in the request): a query wrapper raises OperationalError on the
  usage-row update that follows the subscription change, i.e. the connection dropping halfway.
"""

import json
import threading
from collections import Counter
from contextlib import contextmanager

import pytest
from django.db import OperationalError, close_old_connections, connection, connections, transaction
from django.test import Client

from accounts.models import Workspace
from automations.models import Campaign, CampaignRecipient
from automations.services import campaign_create, campaign_launch
from billing.activation import usage, usage_row_open
from billing.checkout import checkout_begin
from billing.fakestripe import sign_payload
from billing.fakestripe.server import FakeStripeServer
from billing.models import MonthlyUsage, PlanChange, StripeEvent, Subscription
from billing.months import month_of
from contacts import intake
from contacts.models import CapturedEvent, Message, WebhookDelivery
from tests.factories import ContactFactory, MembershipFactory
from tests.faults.conftest import BROKER_URL, DEAD_BROKER_URL, assert_no_drift, broker, wait_until
from tests.faults.test_broker_down import IG_ACCOUNT, _dm

pytestmark = [pytest.mark.django_db(transaction=True)]


@contextmanager
def row_locked(model, **lookup):
    """Hold SELECT ... FOR UPDATE on one row from another connection until the block ends."""
    locked, release = threading.Event(), threading.Event()
    errors = []

    def hold():
        try:
            with transaction.atomic():
                model.objects.select_for_update().get(**lookup)
                locked.set()
                release.wait(timeout=120)
        except Exception as error:  # reported by the main thread
            errors.append(error)
            locked.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait(timeout=30)
    assert not errors, errors
    try:
        yield
    finally:
        release.set()
        thread.join(timeout=30)


def terminate_backend_waiting_on_a_lock() -> int:
    """Kill the (worker's) connection blocked on our lock, as a server restart would. Returns how many."""

    def blocked():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND wait_event_type = 'Lock'"
            )
            return [row[0] for row in cursor.fetchall()]

    pids = wait_until(blocked, timeout=60, interval=0.05, what="the worker to block on the locked row")
    with connection.cursor() as cursor:
        for pid in pids:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    return len(pids)


def test_webhook_processing_survives_its_connection_being_killed(workers, settings):
    Workspace.objects.create(name="IG Brand", slug="ig-brand", instagram_account_id=IG_ACCOUNT)
    with broker(DEAD_BROKER_URL):  # stored, not queued yet
        delivery, _ = intake.delivery_store(body=_dm(1), signature_valid=True)
    workers.start()
    with row_locked(WebhookDelivery, pk=delivery.pk):
        with broker(BROKER_URL):
            intake._queue(delivery.pk)
        killed = terminate_backend_waiting_on_a_lock()
    assert killed == 1
    wait_until(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "processed", timeout=90,
               interval=0.1, what="the retried task to process the delivery")
    assert CapturedEvent.objects.count() == 1
    assert list(Message.objects.values_list("text", flat=True)) == ["hello 1"]
    log = workers.log.read_text()
    assert "Retry in" in log and "OperationalError" in log  # retried with backoff after the connection died
    assert_no_drift()


def test_campaign_survives_its_connection_being_killed_mid_fan_out(workers):
    workspace = Workspace.objects.create(name="Brand", slug="brand")
    owner = MembershipFactory(workspace=workspace).user
    ContactFactory.create_batch(60, workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Flash sale", text="Today only")
    usage_row_open(workspace_id=workspace.pk, month=month_of())
    workers.start()
    with row_locked(MonthlyUsage, workspace=workspace, month=month_of()):
        with broker(BROKER_URL):
            campaign_launch(campaign=campaign, launched_by=owner)
        killed = terminate_backend_waiting_on_a_lock()  # the fan-out waits on the gate's usage-row lock
    assert killed == 1
    wait_until(lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE, timeout=90,
               interval=0.1, what="the retried campaign to finish")
    statuses = Counter(CampaignRecipient.objects.filter(campaign=campaign).values_list("status", flat=True))
    assert statuses == {"sent": 60}
    assert Message.objects.filter(automation_ref=campaign.ref).count() == 60
    assert usage(workspace).activated == 60
    assert "Retry in" in workers.log.read_text()
    assert_no_drift()


class DropOnUsageUpdate:
    """Raise OperationalError on the first UPDATE of a usage row: the connection lost halfway through."""

    def __init__(self):
        self.fired = 0

    def __call__(self, execute, sql, params, many, context):
        if not self.fired and sql.lstrip().upper().startswith('UPDATE "BILLING_MONTHLYUSAGE"'):
            self.fired += 1
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)


def test_a_plan_change_cut_halfway_by_the_database_is_not_half_applied(settings):
    server = FakeStripeServer().start()
    settings.STRIPE_API_BASE = server.base_url
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.SITE_URL = "http://testserver"
    try:
        workspace = Workspace.objects.create(name="Paid Brand", slug="paid-brand")
        owner = MembershipFactory(workspace=workspace).user
        started = checkout_begin(workspace=workspace, user=owner, plan_code="pro", addon_packs=2)
        completed, created, paid = server.fake.checkout_complete(started.checkout.stripe_session_id)
        payload = json.dumps(completed)
        headers = {"HTTP_STRIPE_SIGNATURE": sign_payload(payload, "whsec_test_suite")}
        client = Client()

        fault = DropOnUsageUpdate()
        with connection.execute_wrapper(fault):
            response = client.post("/webhooks/stripe/", data=payload, content_type="application/json", **headers)
        assert fault.fired == 1
        assert response.status_code == 500  # Stripe retries the delivery
        # Nothing of the change stuck: still Free, quota 100, no plan change, the event marked failed.
        assert usage(workspace).quota == 100
        assert not Subscription.objects.filter(workspace=workspace, plan__code="pro").exists()
        assert PlanChange.objects.count() == 0
        event = StripeEvent.objects.get(event_id=completed["id"])
        assert (event.status, event.attempts) == ("failed", 1)
        assert "OperationalError" in event.error

        close_old_connections()
        response = client.post("/webhooks/stripe/", data=payload, content_type="application/json", **headers)
        assert response.status_code == 200
        assert usage(workspace).quota == 3000
        subscription = Subscription.objects.get(workspace=workspace)
        assert (subscription.plan.code, subscription.addon_packs) == ("pro", 2)
        assert PlanChange.objects.count() == 1
        event.refresh_from_db()
        assert (event.status, event.attempts) == ("processed", 2)
    finally:
        server.stop()
    assert_no_drift()
