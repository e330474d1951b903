"""Stripe webhooks: signatures, exactly-once handling, ordering, cancellation, failed payments."""

import datetime
import json
import threading
import time

import pytest
from django.core import mail
from django.db import connection
from django.test import Client

from accounts.models import Membership
from billing.activation import activate_many, usage
from billing.fakestripe import sign_payload
from billing.models import PaymentFailure, Plan, PlanChange, StripeEvent, Subscription
from billing.selectors import billing_alerts
from billing.subscriptions import subscriptions_lapse_as_needed
from billing.webhooks import stripe_event_replay
from tests.billing.conftest import signed_post
from tests.billing.test_checkout import upgrade_to_pro
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def _paid_checkout_events(client, workspace, fake, packs=0):
    response = client.post(f"/w/{workspace.pk}/billing/checkout/", {"plan": "pro", "addon_packs": str(packs)})
    return fake.checkout_complete(response.url.rsplit("/", 1)[-1])


def test_bad_signature_is_400_and_nothing_is_stored(owner_client, workspace, fake_stripe):
    completed, _, _ = _paid_checkout_events(owner_client, workspace, fake_stripe)

    response = signed_post(Client(), completed, secret="whsec_someone_else")

    assert response.status_code == 400
    assert StripeEvent.objects.count() == 0
    assert not Subscription.objects.filter(workspace=workspace).exists()
    assert usage(workspace).quota == 100


def test_missing_or_garbled_signature_is_400(workspace):
    client = Client()
    payload = json.dumps({"id": "evt_1", "type": "invoice.paid", "created": 1, "data": {"object": {}}})
    assert client.post("/webhooks/stripe/", data=payload, content_type="application/json").status_code == 400
    assert client.post("/webhooks/stripe/", data=payload, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE="t=abc,v1=zzz").status_code == 400
    assert StripeEvent.objects.count() == 0


def test_tampered_payload_is_400(owner_client, workspace, fake_stripe):
    completed, _, _ = _paid_checkout_events(owner_client, workspace, fake_stripe)
    payload = json.dumps(completed)
    header = sign_payload(payload, "whsec_test_suite")
    tampered = payload.replace('"paid"', '"unpaid"')
    response = Client().post("/webhooks/stripe/", data=tampered, content_type="application/json",
                             HTTP_STRIPE_SIGNATURE=header)
    assert response.status_code == 400
    assert StripeEvent.objects.count() == 0


def test_stale_signature_is_400_and_nothing_is_stored(owner_client, workspace, fake_stripe):
    completed, _, _ = _paid_checkout_events(owner_client, workspace, fake_stripe)

    response = signed_post(Client(), completed, timestamp=int(time.time()) - 301 - 5)

    assert response.status_code == 400
    assert StripeEvent.objects.count() == 0
    assert usage(workspace).quota == 100


def test_unknown_event_type_is_200_and_stored_as_ignored_without_card_data(fake_stripe, deliver):
    charge = {"id": "ch_1", "object": "charge", "amount": 4900,
              "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
              "source": {"id": "card_1", "object": "card", "card": {"last4": "4242"}}}
    event = fake_stripe.event("charge.succeeded", charge)

    deliver(event)

    stored = StripeEvent.objects.get(event_id=event["id"])
    assert (stored.type, stored.status, stored.attempts) == ("charge.succeeded", "ignored", 1)
    assert "4242" not in json.dumps(stored.payload)
    assert stored.payload["data"]["object"] == {"id": "ch_1", "object": "charge", "amount": 4900,
                                                "source": {"id": "card_1", "object": "card"}}


def test_duplicate_delivery_is_processed_once(owner_client, workspace, fake_stripe, deliver, headroom_calls):
    completed, created, paid = _paid_checkout_events(owner_client, workspace, fake_stripe, packs=1)

    deliver(completed, completed, created, created, paid, completed)

    assert usage(workspace).quota == 2000
    assert len(headroom_calls) == 1
    assert PlanChange.objects.filter(workspace=workspace).count() == 1
    assert StripeEvent.objects.count() == 3
    assert StripeEvent.objects.get(event_id=completed["id"]).attempts == 1
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {"processed"}


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_delivery_is_processed_once(workspace, owner, fake_stripe, headroom_calls):
    client = Client()
    client.force_login(owner)
    completed, created, _ = _paid_checkout_events(client, workspace, fake_stripe, packs=2)
    threads_count = 6
    barrier = threading.Barrier(threads_count)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def deliver_same_event():
        try:
            barrier.wait()
            statuses.append(signed_post(Client(), completed).status_code)
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver_same_event) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert statuses == [200] * threads_count
    assert StripeEvent.objects.filter(event_id=completed["id"]).count() == 1
    assert StripeEvent.objects.get(event_id=completed["id"]).attempts == 1
    assert PlanChange.objects.filter(workspace=workspace).count() == 1
    assert usage(workspace).quota == 3000
    assert headroom_calls == [{"workspace_id": workspace.pk, "month": usage(workspace).month}]


def test_out_of_order_updated_before_created_never_moves_back(owner_client, workspace, fake_stripe, deliver):
    completed, created, paid = _paid_checkout_events(owner_client, workspace, fake_stripe, packs=1)
    subscription_id = created["data"]["object"]["id"]
    addon_item = fake_stripe.subscriptions[subscription_id]["items"]["data"][1]
    fake_stripe.subscription_update(subscription_id, {"items": [{"id": addon_item["id"], "quantity": "5"}]})
    updated = fake_stripe.subscription_updated_event(subscription_id, created=created["created"] + 10)

    deliver(updated)  # Stripe delivered the later event first
    assert usage(workspace).quota == 6000
    deliver(created, completed, paid)

    subscription = Subscription.objects.get(workspace=workspace)
    assert (subscription.plan.code, subscription.addon_packs) == ("pro", 5)
    assert usage(workspace).quota == 6000
    ignored = StripeEvent.objects.get(event_id=created["id"])
    assert (ignored.status, ignored.error) == ("ignored", "older than the subscription state already applied")
    assert list(PlanChange.objects.filter(workspace=workspace).values_list("to_plan__code", "to_addon_packs")) == [
        ("pro", 5)]


def test_same_second_created_after_updated_is_still_older(owner_client, workspace, fake_stripe, deliver):
    _, created, _ = _paid_checkout_events(owner_client, workspace, fake_stripe, packs=1)
    subscription_id = created["data"]["object"]["id"]
    fake_stripe.subscription_update(subscription_id, {"cancel_at_period_end": "true"})
    updated = fake_stripe.subscription_updated_event(subscription_id, created=created["created"])

    deliver(updated, created)

    assert Subscription.objects.get(workspace=workspace).cancel_at_period_end is True


def test_cancellation_takes_effect_at_period_end_never_below_activated(
        owner_client, workspace, fake_stripe, deliver, make_contacts):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=0)
    activate_many(workspace=workspace, contacts=make_contacts(workspace, 150), kind="campaign")
    assert (usage(workspace).activated, usage(workspace).quota) == (150, 1000)

    deliver(fake_stripe.subscription_cancel_at_period_end(subscription.stripe_subscription_id))

    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.cancel_at_period_end, subscription.status) == ("pro", True, "active")
    assert usage(workspace).quota == 1000  # the paid period runs to its end
    assert [a.code for a in billing_alerts(workspace)] == ["ending"]
    page = owner_client.get(f"/w/{workspace.pk}/billing/").content.decode()
    assert 'data-field="ends"' in page

    ended = fake_stripe.subscription_end(subscription.stripe_subscription_id)
    deliver(ended)

    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.addon_packs, subscription.status) == ("free", 0, "canceled")
    assert usage(workspace).quota == 150  # back to Free (100), never below what is activated (rule 8)
    last = PlanChange.objects.filter(workspace=workspace).order_by("-id").first()
    assert (last.from_plan.code, last.to_plan.code, last.source_event_id) == ("pro", "free", ended["id"])
    assert billing_alerts(workspace) == []

    # A late `updated` from before the end (out of order) does not bring the plan back.
    alive = dict(ended["data"]["object"], status="active", ended_at=None, canceled_at=None)
    deliver(fake_stripe.event("customer.subscription.updated", alive, created=ended["created"] - 1))
    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.status) == ("free", "canceled")
    assert usage(workspace).quota == 150


def test_payment_failure_keeps_plan_marks_past_due_and_emails_owners_once(
        owner_client, workspace, owner, fake_stripe, deliver):
    MembershipFactory(workspace=workspace, role=Membership.Role.MEMBER)
    second_owner = MembershipFactory(workspace=workspace, role=Membership.Role.OWNER).user
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=1)
    mail.outbox.clear()

    failed, updated = fake_stripe.invoice_payment_failed(subscription.stripe_subscription_id)
    deliver(failed, updated)

    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.addon_packs, subscription.status) == ("pro", 1, "past_due")
    assert usage(workspace).quota == 2000
    assert [a.code for a in billing_alerts(workspace)] == ["past_due"]
    page = owner_client.get(f"/w/{workspace.pk}/billing/").content.decode()
    assert 'data-alert="past_due"' in page
    assert '<span class="badge limit" data-field="status-badge">Past due</span>' in page
    [email] = mail.outbox
    assert sorted(email.to) == sorted([owner.email, second_owner.email])
    assert email.subject == f"Payment failed for {workspace.name}"
    assert "78.00 USD" in email.body  # Pro 49 + one pack 29, as Stripe's invoice says
    invoice_id = failed["data"]["object"]["id"]

    # Stripe retries the same invoice and fails again: no second email.
    deliver(*fake_stripe.invoice_payment_failed(subscription.stripe_subscription_id, attempt_count=2,
                                                invoice_id=invoice_id))
    assert len(mail.outbox) == 1
    assert PaymentFailure.objects.get(stripe_invoice_id=invoice_id).attempt_count == 2

    fake_stripe.invoices[invoice_id]["status"] = "paid"
    deliver(fake_stripe.event("invoice.paid", fake_stripe.invoices[invoice_id]))
    subscription.refresh_from_db()
    assert subscription.status == "active"
    assert billing_alerts(workspace) == []


def test_subscription_ending_unpaid_returns_to_free(owner_client, workspace, fake_stripe, deliver):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=2)
    fake_stripe.subscriptions[subscription.stripe_subscription_id]["status"] = "unpaid"

    deliver(fake_stripe.subscription_updated_event(subscription.stripe_subscription_id))

    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.addon_packs, subscription.status) == ("free", 0, "unpaid")
    assert usage(workspace).quota == 100


def test_handler_failure_answers_500_marks_failed_and_replay_fixes_it(
        owner_client, workspace, fake_stripe, deliver):
    _, created, _ = _paid_checkout_events(owner_client, workspace, fake_stripe)
    created["data"]["object"]["items"]["data"][0]["price"]["id"] = "price_renamed_by_staff"

    deliver(created, expect=500)

    event = StripeEvent.objects.get(event_id=created["id"])
    assert event.status == "failed"
    assert event.error == ("UnknownPriceError: Subscription {} has no known plan price (price_renamed_by_staff)."
                           .format(created["data"]["object"]["id"]))
    assert not Subscription.objects.filter(workspace=workspace).exists()  # the failed handler left nothing
    assert usage(workspace).quota == 100

    deliver(created, expect=500)  # Stripe retries: still failing, attempts counted
    assert StripeEvent.objects.get(event_id=created["id"]).attempts == 2

    Plan.objects.filter(code="pro").update(stripe_price_id="price_renamed_by_staff")
    replayed = stripe_event_replay(event=event)

    assert (replayed.status, replayed.error, replayed.attempts) == ("processed", "", 3)
    assert usage(workspace).quota == 1000
    assert stripe_event_replay(event=replayed).status == "processed"  # idempotent
    assert PlanChange.objects.filter(workspace=workspace).count() == 1


def test_subscription_of_an_unknown_workspace_is_ignored(fake_stripe, deliver, owner_client, workspace):
    _, created, _ = _paid_checkout_events(owner_client, workspace, fake_stripe)
    created["data"]["object"]["metadata"] = {}

    deliver(created)

    assert StripeEvent.objects.get(event_id=created["id"]).status == "ignored"
    assert not Subscription.objects.filter(workspace=workspace).exists()


def _cancelled_at_period_end(client, workspace, fake, deliver):
    subscription = upgrade_to_pro(client, workspace, fake, deliver, packs=1)
    deliver(fake.subscription_cancel_at_period_end(subscription.stripe_subscription_id))
    subscription.refresh_from_db()
    return subscription


def test_period_over_without_the_deleted_event_returns_to_free_after_asking_stripe(
        owner_client, workspace, fake_stripe, deliver):

    subscription = _cancelled_at_period_end(owner_client, workspace, fake_stripe, deliver)
    end = subscription.current_period_end
    assert subscriptions_lapse_as_needed(now=end) == []  # not over yet (grace)
    fake_stripe.subscriptions[subscription.stripe_subscription_id]["status"] = "canceled"  # event lost

    assert subscriptions_lapse_as_needed(now=end + datetime.timedelta(hours=2)) == [workspace.pk]

    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.addon_packs, subscription.status) == ("free", 0, "canceled")
    assert usage(workspace).quota == 100
    assert subscriptions_lapse_as_needed(now=end + datetime.timedelta(hours=3)) == []


def test_period_over_with_stripe_unreachable_still_returns_to_free(
        owner_client, workspace, fake_stripe, deliver, settings):

    subscription = _cancelled_at_period_end(owner_client, workspace, fake_stripe, deliver)
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"

    assert subscriptions_lapse_as_needed(now=subscription.current_period_end + datetime.timedelta(days=1)) == [
        workspace.pk]
    assert Subscription.objects.get(workspace=workspace).plan.code == "free"


def test_renewed_subscription_is_not_lapsed(owner_client, workspace, fake_stripe, deliver):
    subscription = _cancelled_at_period_end(owner_client, workspace, fake_stripe, deliver)
    remote = fake_stripe.subscriptions[subscription.stripe_subscription_id]
    remote["cancel_at_period_end"] = False  # the customer changed their mind; the event was lost
    for item in remote["items"]["data"]:
        item["current_period_start"] = item["current_period_end"]
        item["current_period_end"] += 30 * 24 * 3600

    assert subscriptions_lapse_as_needed(now=subscription.current_period_end + datetime.timedelta(hours=2)) == []
    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.cancel_at_period_end) == ("pro", False)


def test_incomplete_subscription_first_then_paid_checkout_grants_pro(owner_client, workspace, fake_stripe, deliver):
    completed, created, paid = _paid_checkout_events(owner_client, workspace, fake_stripe, packs=1)
    created["data"]["object"]["status"] = "incomplete"  # Stripe's first word, before the payment settled

    deliver(created)
    assert Subscription.objects.get(workspace=workspace).plan.code == "free"
    assert usage(workspace).quota == 100

    deliver(completed, paid, fake_stripe.subscription_updated_event(created["data"]["object"]["id"]))

    subscription = Subscription.objects.get(workspace=workspace)
    assert (subscription.plan.code, subscription.addon_packs, subscription.status) == ("pro", 1, "active")
    assert usage(workspace).quota == 2000
    assert PlanChange.objects.filter(workspace=workspace).count() == 1


def test_an_abandoned_checkouts_expired_subscription_does_not_touch_the_current_plan(
        owner_client, workspace, fake_stripe, deliver):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=1)
    stray = dict(fake_stripe.subscriptions[subscription.stripe_subscription_id], id="sub_abandoned",
                 status="incomplete_expired")

    deliver(fake_stripe.event("customer.subscription.updated", stray),
            fake_stripe.event("customer.subscription.deleted", stray))

    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.addon_packs) == ("pro", 1)
    assert usage(workspace).quota == 2000
    stray_events = StripeEvent.objects.filter(payload__data__object__id="sub_abandoned")
    assert sorted(stray_events.values_list("status", flat=True)) == ["ignored", "ignored"]


@pytest.mark.django_db(transaction=True)
def test_checkout_completed_and_subscription_created_at_the_same_moment(workspace, owner, fake_stripe,
                                                                        headroom_calls):
    client = Client()
    client.force_login(owner)
    completed, created, paid = _paid_checkout_events(client, workspace, fake_stripe, packs=3)
    events = [completed, created, paid, completed, created]
    barrier = threading.Barrier(len(events))
    statuses: list[int] = []

    def deliver_one(event):
        try:
            barrier.wait()
            statuses.append(signed_post(Client(), event).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver_one, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * len(events)
    subscription = Subscription.objects.get(workspace=workspace)
    assert (subscription.plan.code, subscription.addon_packs, subscription.status) == ("pro", 3, "active")
    assert subscription.stripe_subscription_id == created["data"]["object"]["id"]
    assert PlanChange.objects.filter(workspace=workspace).count() == 1
    assert usage(workspace).quota == 4000
    assert len(headroom_calls) == 1
    assert StripeEvent.objects.count() == 3
