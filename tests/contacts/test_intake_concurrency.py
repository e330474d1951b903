"""Intake under real concurrency: workers racing on the same events capture and fire each once."""

import json

import pytest

from contacts import intake
from contacts.models import CapturedEvent, Contact, Message, WebhookDelivery
from tests.concurrency import run_in_parallel
from tests.contacts.conftest import meta_fixture
from tests.factories import WorkspaceFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def _store(payload: dict) -> WebhookDelivery:
    body = json.dumps(payload).encode()
    return WebhookDelivery.objects.create(body=body.decode(), body_sha256=intake.body_digest(body),
                                          signature_valid=True)


@pytest.fixture
def ig_account():
    return WorkspaceFactory(instagram_account_id="17841400000000001")


def test_the_same_event_in_eight_deliveries_processed_at_once_is_captured_once(ig_account, captured_events):
    deliveries = []
    for i in range(8):
        payload = meta_fixture("message_text")
        payload["entry"][0]["time"] += i  # Meta's retries: new envelopes around the same message
        deliveries.append(_store(payload))

    run_in_parallel(8, lambda i: intake.delivery_process(delivery_id=deliveries[i].pk))

    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"processed"}
    assert sum(WebhookDelivery.objects.values_list("events_captured", flat=True)) == 1
    assert (Contact.objects.count(), Message.objects.count(), CapturedEvent.objects.count()) == (1, 1, 1)
    assert len(captured_events) == 1


def test_eight_first_messages_from_one_new_person_make_one_contact(ig_account, captured_events):
    deliveries = []
    for i in range(8):
        payload = meta_fixture("message_text")
        payload["entry"][0]["messaging"][0]["message"]["mid"] = f"aWdfZAG1fmid-{i}"
        payload["entry"][0]["messaging"][0]["timestamp"] += i * 1000
        deliveries.append(_store(payload))

    run_in_parallel(8, lambda i: intake.delivery_process(delivery_id=deliveries[i].pk))

    assert Contact.objects.count() == 1
    assert Message.objects.count() == 8
    assert len(captured_events) == 8
    assert sum(e.is_new_contact for e in captured_events) == 1


def test_one_delivery_processed_by_eight_workers_at_once_is_processed_once(ig_account, captured_events):
    delivery = _store(meta_fixture("comments"))

    run_in_parallel(8, lambda i: intake.delivery_process(delivery_id=delivery.pk))

    delivery.refresh_from_db()
    assert (delivery.status, delivery.events_captured) == ("processed", 1)
    assert CapturedEvent.objects.count() == 1
    assert len(captured_events) == 1


def test_drains_running_side_by_side_process_each_pending_delivery_once(ig_account, captured_events):
    for i in range(40):
        payload = meta_fixture("message_text")
        payload["entry"][0]["messaging"][0]["sender"]["id"] = f"77700000{i:04d}"
        payload["entry"][0]["messaging"][0]["message"]["mid"] = f"mid-side-by-side-{i}"
        _store(payload)

    results = run_in_parallel(4, lambda i: intake.deliveries_drain(limit=1000))

    assert sum(handled for handled, _ in results) == 40
    assert not any(more for _, more in results)
    assert set(WebhookDelivery.objects.values_list("status", "attempts", "events_captured")) == {("processed", 1, 1)}
    assert (Contact.objects.count(), Message.objects.count(), CapturedEvent.objects.count()) == (40, 40, 40)
    assert len(captured_events) == 40


def test_the_same_body_posted_eight_times_at_once_is_stored_once(ig_account, monkeypatch):
    monkeypatch.setattr(intake, "_nudge_drain", lambda: None)
    body = json.dumps(meta_fixture("message_text")).encode()

    results = run_in_parallel(8, lambda i: intake.delivery_store(body=body, signature_valid=True))

    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert len({delivery.pk for delivery, _ in results}) == 1
    assert WebhookDelivery.objects.count() == 1
