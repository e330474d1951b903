"""The broker is down when Meta and Stripe deliver webhooks.

Meta: the view only verifies and stores; the delivery is answered 200 and stays pending. When the
broker is back, the periodic sweeper (sent through the broker to a real worker, as beat sends it)
processes what was stored and not handled; a redelivery and a second sweep change nothing.

Stripe: events are handled synchronously in the request (billing/webhooks.py), so a broker outage
does not stop a plan change: the upgrade and the payment failure are applied and answered 200. What
they queue (resume paused actions, email the owners) is caught up when the broker returns: the
every-minute job resumes actions of workspaces with headroom, the hourly job emails unsent failures.
"""

import copy
import json
import time

import pytest
from django.core import mail
from django.test import Client

from accounts.models import Workspace
from automations.models import Campaign, PausedAction
from automations.services import campaign_create, campaign_launch
from billing.activation import activate_many, usage
from billing.checkout import checkout_begin
from billing.fakestripe import sign_payload
from billing.fakestripe.server import FakeStripeServer
from billing.models import AutomationKind, PaymentFailure, StripeEvent, Subscription
from contacts.models import CapturedEvent, Contact, Message, WebhookDelivery
from inro.celery import app as celery_app
from tests.contacts.conftest import meta_fixture, sign
from tests.factories import ContactFactory, MembershipFactory
from tests.faults.conftest import BROKER_URL, DEAD_BROKER_URL, assert_no_drift, broker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]

IG_ACCOUNT = "17841400000000777"


def _dm(n: int) -> bytes:
    payload = copy.deepcopy(meta_fixture("message_text"))
    entry = payload["entry"][0]
    entry["id"] = IG_ACCOUNT
    item = entry["messaging"][0]
    item["sender"]["id"] = f"55500000{n:04d}"
    item["recipient"]["id"] = IG_ACCOUNT
    item["message"]["mid"] = f"mid-broker-down-{n}"
    item["message"]["text"] = f"hello {n}"
    return json.dumps(payload).encode()


def _post_meta(client: Client, body: bytes):
    return client.post("/webhooks/instagram/", data=body, content_type="application/json",
                       HTTP_X_HUB_SIGNATURE_256=sign(body))


def test_meta_deliveries_during_a_broker_outage_are_stored_answered_and_swept_once(workers, settings):
    Workspace.objects.create(name="IG Brand", slug="ig-brand", instagram_account_id=IG_ACCOUNT)
    client = Client()
    bodies = [_dm(n) for n in range(5)]

    with broker(DEAD_BROKER_URL):
        started = time.monotonic()
        responses = [_post_meta(client, body) for body in bodies] + [_post_meta(client, bodies[0])]  # a redelivery
        outage_seconds = time.monotonic() - started

    assert [r.status_code for r in responses] == [200] * 6
    assert [r.content for r in responses] == [b"EVENT_RECEIVED"] * 6
    assert WebhookDelivery.objects.count() == 5
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"pending"}
    assert CapturedEvent.objects.count() == 0 and Contact.objects.count() == 0

    # The broker is back: a real worker, and the periodic sweeper as beat sends it.
    workers.start(extra_env={"META_WEBHOOK_SWEEP_AFTER_SECONDS": "0"})
    with broker(BROKER_URL):
        celery_app.send_task("contacts.tasks.sweep_pending_deliveries")
    wait_until(lambda: not WebhookDelivery.objects.exclude(status="processed").exists(), timeout=60,
               interval=0.1, what="the sweeper to process the stored deliveries")

    assert CapturedEvent.objects.count() == 5
    assert sorted(Contact.objects.values_list("igsid", flat=True)) == [f"55500000{n:04d}" for n in range(5)]
    assert sorted(Message.objects.filter(direction="in").values_list("text", flat=True)) == [
        f"hello {n}" for n in range(5)]
    assert sorted(WebhookDelivery.objects.values_list("attempts", flat=True)) == [1] * 5

    # Meta redelivers one after the outage, and the sweeper runs again: nothing is handled twice.
    with broker(BROKER_URL):
        assert _post_meta(client, bodies[3]).status_code == 200
        celery_app.send_task("contacts.tasks.sweep_pending_deliveries")
    time.sleep(1.0)  # give the worker the chance to do something wrong; the state must stay as it was
    assert WebhookDelivery.objects.count() == 5
    assert CapturedEvent.objects.count() == 5
    assert Message.objects.filter(direction="in").count() == 5
    print(f"\n6 Meta deliveries answered 200 with the broker down ({outage_seconds:.1f}s in all); 5 swept once")
    assert_no_drift()


def _post_stripe(client: Client, event: dict):
    payload = json.dumps(event)
    return client.post("/webhooks/stripe/", data=payload, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=sign_payload(payload, "whsec_test_suite"))


def test_stripe_events_during_a_broker_outage_apply_and_their_follow_ups_catch_up(workers, settings):
    server = FakeStripeServer().start()
    settings.STRIPE_API_BASE = server.base_url
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.SITE_URL = "http://testserver"
    try:
        workspace = Workspace.objects.create(name="Paid Brand", slug="paid-brand")
        owner = MembershipFactory(workspace=workspace).user
        # At its Free limit with five campaign messages paused (inline tasks: the broker is not involved yet).
        contacts = ContactFactory.create_batch(105, workspace=workspace)
        activate_many(workspace, [c.pk for c in contacts[:100]], kind=AutomationKind.SCENARIO, ref="scenario:1")
        campaign = campaign_create(workspace=workspace, name="Launch", text="New drop")
        campaign_launch(campaign=campaign, launched_by=owner)
        assert PausedAction.objects.filter(workspace=workspace, status="waiting").count() == 5
        started = checkout_begin(workspace=workspace, user=owner, plan_code="pro", addon_packs=0)
        completed, created, paid = server.fake.checkout_complete(started.checkout.stripe_session_id)
        client = Client()
        mail.outbox.clear()  # the usage alerts of the campaign above

        with broker(DEAD_BROKER_URL):
            responses = [_post_stripe(client, e) for e in (completed, created, paid)]
            subscription_id = Subscription.objects.get(workspace=workspace).stripe_subscription_id
            failed_events = server.fake.invoice_payment_failed(subscription_id)
            responses += [_post_stripe(client, e) for e in failed_events]
            responses += [_post_stripe(client, completed)]  # Stripe redelivers one

        assert [r.status_code for r in responses] == [200] * len(responses)
        assert usage(workspace).quota == 1000  # the upgrade applied at once, broker or not (rule 8)
        subscription = Subscription.objects.get(workspace=workspace)
        assert (subscription.plan.code, subscription.status) == ("pro", "past_due")
        assert set(StripeEvent.objects.values_list("status", flat=True)) == {"processed"}
        assert StripeEvent.objects.count() == 3 + len(failed_events)
        assert set(StripeEvent.objects.values_list("attempts", flat=True)) == {1}
        failure = PaymentFailure.objects.get(workspace=workspace)
        assert failure.emailed_at is None  # its email task was never queued
        assert PausedAction.objects.filter(workspace=workspace, status="waiting").count() == 5
        assert mail.outbox == []

        # The broker is back: beat's every-minute and hourly jobs run on a real worker.
        workers.start()
        with broker(BROKER_URL):
            celery_app.send_task("automations.tasks.campaigns_launch_due")
            celery_app.send_task("billing.tasks.roll_over_month")
        wait_until(lambda: not PausedAction.objects.filter(workspace=workspace, status="waiting").exists(),
                   timeout=60, interval=0.1, what="the paused actions to resume")
        wait_until(lambda: PaymentFailure.objects.get(pk=failure.pk).emailed_at is not None, timeout=60,
                   interval=0.1, what="the payment failure email")
        with broker(BROKER_URL):  # both jobs again: nothing is done twice
            celery_app.send_task("automations.tasks.campaigns_launch_due")
            celery_app.send_task("billing.tasks.roll_over_month")
        time.sleep(1.0)
        campaign.refresh_from_db()
        assert (campaign.status, campaign.sent_count, campaign.limited_count) == (Campaign.Status.DONE, 105, 0)
        assert Message.objects.filter(workspace=workspace, automation_ref=campaign.ref).count() == 105
        assert usage(workspace).activated == 105
        assert StripeEvent.objects.count() == 3 + len(failed_events)
    finally:
        server.stop()
    assert_no_drift()
