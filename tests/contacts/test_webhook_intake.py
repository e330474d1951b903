"""Meta's Instagram webhook: handshake, signature, limits, storage, capture, dedupe, the sweeper."""

import datetime
import json

import pytest
from django.utils import timezone

from billing.activation import usage
from billing.models import ActivationRecord
from contacts import intake
from contacts.models import CapturedEvent, Contact, Message, PendingMention, WebhookDelivery
from contacts.tasks import sweep_pending_deliveries
from tests.contacts.conftest import IG_ACCOUNT_ID, meta_fixture, sign
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

MESSAGE_MID = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDAxOjEwMDAx"
MESSAGE_AT = datetime.datetime(2025, 11, 26, 12, 0, tzinfo=datetime.UTC)  # 1764158400000 ms


# --- handshake ------------------------------------------------------------------------------

def test_handshake_echoes_the_challenge_for_the_right_token(client):
    response = client.get("/webhooks/instagram/", {
        "hub.mode": "subscribe", "hub.verify_token": "meta_verify_token_test", "hub.challenge": "1158201444",
    })

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"1158201444"


@pytest.mark.parametrize("params", [
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    {"hub.mode": "unsubscribe", "hub.verify_token": "meta_verify_token_test", "hub.challenge": "1"},
    {"hub.verify_token": "meta_verify_token_test", "hub.challenge": "1"},
    {},
])
def test_handshake_refuses_anything_else(client, params):
    response = client.get("/webhooks/instagram/", params)

    assert response.status_code == 403
    assert b"1" not in response.content


# --- refused deliveries ---------------------------------------------------------------------

@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha1=abc", "garbage"])
def test_bad_or_missing_signature_is_refused_and_nothing_is_stored(ig_workspace, deliver, captured_events, signature):
    response = deliver(meta_fixture("message_text"), signature=signature)

    assert response.status_code == 403
    assert WebhookDelivery.objects.count() == 0
    assert Contact.objects.count() == 0
    assert captured_events == []


def test_signature_made_with_another_secret_is_refused(ig_workspace, deliver):
    body = json.dumps(meta_fixture("message_text")).encode()

    response = deliver(None, raw=body, signature=sign(body, secret="someone-elses-secret"))

    assert response.status_code == 403
    assert WebhookDelivery.objects.count() == 0


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2, 3]", b'"instagram"', "{}".encode("utf-16")])
def test_malformed_body_is_a_400_and_nothing_is_stored(ig_workspace, deliver, raw):
    response = deliver(None, raw=raw)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed"
    assert WebhookDelivery.objects.count() == 0


def test_oversized_body_is_a_413_and_nothing_is_stored(ig_workspace, deliver, settings):
    settings.META_WEBHOOK_MAX_BYTES = 300
    payload = meta_fixture("message_text")
    payload["entry"][0]["messaging"][0]["message"]["text"] = "x" * 400

    response = deliver(payload)

    assert response.status_code == 413
    assert WebhookDelivery.objects.count() == 0
    assert Contact.objects.count() == 0


def test_declared_length_over_the_limit_is_refused_before_reading(ig_workspace, client, settings):
    settings.META_WEBHOOK_MAX_BYTES = 100
    body = b"{}"

    response = client.post("/webhooks/instagram/", data=body, content_type="application/json",
                           CONTENT_LENGTH="5000000", HTTP_X_HUB_SIGNATURE_256=sign(body))

    assert response.status_code == 413
    assert WebhookDelivery.objects.count() == 0


def test_other_methods_are_not_allowed(client):
    assert client.put("/webhooks/instagram/", data=b"{}").status_code == 405


# --- a signed delivery ----------------------------------------------------------------------

def test_signed_message_creates_contact_and_inbound_message_and_fires_the_hook_once(
    ig_workspace, deliver, captured_events
):
    response = deliver(meta_fixture("message_text"))

    assert response.status_code == 200
    contact = Contact.objects.get(workspace=ig_workspace)
    assert (contact.igsid, contact.source, contact.last_inbound_at) == ("1122334455667788", "dm", MESSAGE_AT)
    message = Message.objects.get(contact=contact)
    assert (message.direction, message.origin, message.status, message.text, message.meta_mid) == (
        "in", "contact", "received", "Hi! Is the PRICE still 20?", MESSAGE_MID,
    )
    assert len(captured_events) == 1
    event = captured_events[0]
    assert (event.workspace_id, event.contact_id, event.type, event.is_new_contact, event.text, event.meta_id) == (
        ig_workspace.pk, contact.pk, "message", True, "Hi! Is the PRICE still 20?", MESSAGE_MID,
    )
    assert event.occurred_at == MESSAGE_AT
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.events_captured, delivery.signature_valid) == (
        "processed", 1, 1, True,
    )


def test_the_same_delivery_again_changes_nothing_and_fires_nothing(ig_workspace, deliver, captured_events):
    payload = meta_fixture("message_text")
    deliver(payload)

    again = deliver(payload)

    assert again.status_code == 200
    assert WebhookDelivery.objects.count() == 1
    assert Contact.objects.count() == 1
    assert Message.objects.count() == 1
    assert len(captured_events) == 1


def test_the_same_event_in_a_different_delivery_is_captured_once(ig_workspace, deliver, captured_events):
    first = meta_fixture("message_text")
    second = meta_fixture("message_text")
    second["entry"][0]["time"] += 5000  # Meta retried with a new envelope: another body, same mid

    deliver(first)
    deliver(second)

    assert WebhookDelivery.objects.count() == 2
    assert list(WebhookDelivery.objects.values_list("status", "events_captured")) == [
        ("processed", 0), ("processed", 1),
    ]
    assert Message.objects.count() == 1
    assert CapturedEvent.objects.count() == 1
    assert len(captured_events) == 1


def test_processing_a_delivery_twice_changes_nothing(ig_workspace, deliver, captured_events):
    deliver(meta_fixture("comments"))
    delivery = WebhookDelivery.objects.get()

    intake.delivery_process(delivery_id=delivery.pk)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="pending")  # as if a second worker held it
    intake.delivery_process(delivery_id=delivery.pk)

    assert CapturedEvent.objects.count() == 1
    assert Contact.objects.count() == 1
    assert len(captured_events) == 1


def test_capture_is_free_at_the_quota_limit(ig_workspace, deliver, captured_events, make_contacts):
    from billing.activation import activate_many

    activate_many(ig_workspace, make_contacts(ig_workspace, 100), kind="campaign")
    assert usage(ig_workspace).limit_reached

    deliver(meta_fixture("message_text"))

    newcomer = Contact.objects.get(workspace=ig_workspace, igsid="1122334455667788")
    assert not ActivationRecord.objects.filter(contact=newcomer).exists()
    assert usage(ig_workspace).activated == 100
    assert len(captured_events) == 1


# --- storing and draining ------------------------------------------------------------------

@pytest.fixture
def nudges(monkeypatch):
    """Record the view's nudges of the drain instead of running it: deliveries stay pending."""
    seen = []
    monkeypatch.setattr(intake, "_nudge_drain", lambda: seen.append(1))
    return seen


def test_a_delivery_is_stored_raw_in_one_statement_and_the_drain_is_nudged(
    ig_workspace, client, nudges, django_assert_num_queries, django_capture_on_commit_callbacks
):
    body = json.dumps(meta_fixture("message_text")).encode()

    with django_assert_num_queries(1), django_capture_on_commit_callbacks(execute=True):
        response = client.post("/webhooks/instagram/", data=body, content_type="application/json",
                               HTTP_X_HUB_SIGNATURE_256=sign(body))

    assert (response.status_code, response.content) == (200, b"EVENT_RECEIVED")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.body, delivery.body_sha256, delivery.signature_valid) == (
        body.decode(), intake.body_digest(body), True,
    )
    assert (delivery.status, delivery.attempts, delivery.events_captured, delivery.note, delivery.error) == (
        "pending", 0, 0, "", "",
    )
    assert delivery.processed_at is None
    assert nudges == [1]
    assert Contact.objects.count() == 0


def test_a_duplicate_body_answers_200_and_stores_nothing_new(
    ig_workspace, client, nudges, django_capture_on_commit_callbacks
):
    body = json.dumps(meta_fixture("message_text")).encode()

    with django_capture_on_commit_callbacks(execute=True):
        first, created = intake.delivery_store(body=body, signature_valid=True)
        response = client.post("/webhooks/instagram/", data=body, content_type="application/json",
                               HTTP_X_HUB_SIGNATURE_256=sign(body))
        again, created_again = intake.delivery_store(body=body, signature_valid=True)

    assert response.status_code == 200
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert list(WebhookDelivery.objects.values_list("pk", "status")) == [(first.pk, "pending")]
    assert len(nudges) == 3  # still pending: nudged again, harmless


def test_a_duplicate_of_a_processed_delivery_does_not_nudge(ig_workspace, deliver, nudges):
    body = json.dumps(meta_fixture("message_text")).encode()
    delivery, _ = intake.delivery_store(body=body, signature_valid=True)
    intake.delivery_process(delivery_id=delivery.pk)
    nudges.clear()

    assert deliver(None, raw=body).status_code == 200

    assert nudges == []
    assert WebhookDelivery.objects.get().status == "processed"
    assert CapturedEvent.objects.count() == 1


def test_the_drain_processes_every_pending_delivery_once_oldest_first(
    ig_workspace, nudges, captured_events, django_capture_on_commit_callbacks
):
    stored = []
    for i in range(3):
        payload = meta_fixture("message_text")
        payload["entry"][0]["messaging"][0]["message"]["mid"] = f"mid-drain-{i}"
        stored.append(intake.delivery_store(body=json.dumps(payload).encode(), signature_valid=True)[0])

    with django_capture_on_commit_callbacks(execute=True):
        assert intake.deliveries_drain(limit=100) == (3, False)
        assert intake.deliveries_drain(limit=100) == (0, False)

    assert list(WebhookDelivery.objects.order_by("id").values_list("status", "attempts", "events_captured")) == [
        ("processed", 1, 1)] * 3
    assert [e.meta_id for e in captured_events] == ["mid-drain-0", "mid-drain-1", "mid-drain-2"]


def test_the_drain_stops_at_its_limit_and_says_more_may_be_left(ig_workspace, nudges):
    for i in range(3):
        intake.delivery_store(body=json.dumps({"object": "instagram", "entry": [], "n": i}).encode(),
                              signature_valid=True)

    assert intake.deliveries_drain(limit=2) == (2, True)
    assert WebhookDelivery.objects.filter(status="pending").count() == 1
    assert intake.deliveries_drain(limit=2) == (1, False)


def _two_deliveries_the_first_raising(monkeypatch, error: BaseException) -> tuple[WebhookDelivery, WebhookDelivery]:
    """A DM delivery whose capture raises `error`, stored before a comment delivery that captures normally."""
    first, _ = intake.delivery_store(body=json.dumps(meta_fixture("message_text")).encode(), signature_valid=True)
    second, _ = intake.delivery_store(body=json.dumps(meta_fixture("comments")).encode(), signature_valid=True)
    original = intake._capture_delivery

    def raise_on_the_first(delivery, now):
        if delivery.pk == first.pk:
            raise error
        return original(delivery, now)

    monkeypatch.setattr(intake, "_capture_delivery", raise_on_the_first)
    return first, second


def test_the_drain_marks_a_crashing_delivery_failed_and_goes_on(ig_workspace, nudges, monkeypatch):
    bad, good = _two_deliveries_the_first_raising(monkeypatch, RuntimeError("boom"))

    assert intake.deliveries_drain(limit=100) == (2, False)

    bad.refresh_from_db()
    good.refresh_from_db()
    assert (bad.status, bad.error, bad.attempts) == ("failed", "RuntimeError: boom", 1)
    assert (good.status, good.events_captured, good.attempts) == ("processed", 1, 1)
    assert Contact.objects.count() == 1


class WorkerKilled(BaseException):
    """The worker process dying on a delivery (out of memory, a hard time limit): no code catches it,
    and the transaction it was in rolls back."""


def test_a_delivery_its_worker_died_on_is_not_taken_again_by_the_drain(ig_workspace, nudges, monkeypatch):
    poison, good = _two_deliveries_the_first_raising(monkeypatch, WorkerKilled())

    with pytest.raises(WorkerKilled):
        intake.deliveries_drain(limit=100)
    poison.refresh_from_db()
    assert (poison.status, poison.attempts) == ("pending", 1)  # the attempt outlived its worker

    # The drain task comes back (acknowledged late, requeued when its worker is lost): it goes past the
    # delivery its predecessor died on, which waits for the sweeper, instead of dying on it again.
    assert intake.deliveries_drain(limit=100) == (1, False)
    good.refresh_from_db()
    poison.refresh_from_db()
    assert (good.status, good.events_captured, good.attempts) == ("processed", 1, 1)
    assert (poison.status, poison.attempts) == ("pending", 1)
    assert Contact.objects.count() == 1


def test_the_sweeper_gives_up_on_a_delivery_that_never_finishes_and_staff_can_replay_it(
    ig_workspace, nudges, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.META_WEBHOOK_MAX_ATTEMPTS = 3
    poison, _ = intake.delivery_store(body=json.dumps(meta_fixture("message_text")).encode(), signature_valid=True)
    WebhookDelivery.objects.update(received_at=timezone.now() - datetime.timedelta(minutes=5))
    original = intake._capture_delivery

    def die(delivery, now):
        raise WorkerKilled

    monkeypatch.setattr(intake, "_capture_delivery", die)
    for attempt in (1, 2, 3):
        with pytest.raises(WorkerKilled):
            sweep_pending_deliveries()
        poison.refresh_from_db()
        assert (poison.status, poison.attempts) == ("pending", attempt)

    assert sweep_pending_deliveries() == 1  # the fourth start gives up instead of processing
    poison.refresh_from_db()
    assert (poison.status, poison.attempts) == ("failed", 4)
    assert poison.error.startswith("Gave up: processing started 3 times and never finished")
    assert sweep_pending_deliveries() == 0
    assert intake.deliveries_drain(limit=100) == (0, False)
    assert Contact.objects.count() == 0

    # The cause is fixed; staff replay it: its attempts count afresh and it is processed.
    monkeypatch.setattr(intake, "_capture_delivery", original)
    with django_capture_on_commit_callbacks(execute=True):
        assert intake.delivery_replay(delivery_id=poison.pk) is True
    poison.refresh_from_db()
    assert (poison.status, poison.attempts, poison.events_captured, poison.error) == ("processed", 1, 1, "")
    assert Contact.objects.count() == 1


def test_a_lost_nudge_is_covered_by_the_sweeper(
    ig_workspace, deliver, nudges, captured_events, django_capture_on_commit_callbacks
):
    assert deliver(meta_fixture("message_text")).status_code == 200  # nudged, but nothing ran
    assert WebhookDelivery.objects.get().status == "pending"
    WebhookDelivery.objects.update(received_at=timezone.now() - datetime.timedelta(minutes=5))

    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_pending_deliveries() == 1

    assert WebhookDelivery.objects.get().status == "processed"
    assert len(captured_events) == 1


def test_the_drain_task_processes_what_the_view_stored(
    ig_workspace, nudges, captured_events, django_capture_on_commit_callbacks
):
    from contacts.tasks import drain_instagram_deliveries

    intake.delivery_store(body=json.dumps(meta_fixture("message_text")).encode(), signature_valid=True)

    with django_capture_on_commit_callbacks(execute=True):
        assert drain_instagram_deliveries.delay().get() == 1
    assert WebhookDelivery.objects.get().status == "processed"
    assert len(captured_events) == 1


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_nudge_publishes_at_once_then_once_at_the_end_of_the_window():
    clock, published = _Clock(), []
    nudge = intake.DrainNudge(window=0.5, publish=published.append, clock=clock)

    nudge()  # a first delivery: the drain is queued at once
    clock.now += 0.125
    nudge()  # more in the same window: one more drain, due when the window ends
    clock.now += 0.125
    nudge()
    nudge()  # covered by that trailing drain: nothing published
    clock.now += 0.25
    nudge()  # a new window

    assert published == [None, 0.375, None]


def test_the_nudge_publishes_every_time_when_tasks_run_inline():
    published = []
    nudge = intake.DrainNudge(window=0.5, publish=published.append, clock=lambda: 1.0, eager=lambda: True)

    for _ in range(3):
        nudge()

    assert published == [None, None, None]


# --- each shape maps to its source and type --------------------------------------------------

@pytest.mark.parametrize(("fixture", "igsid", "source", "kind", "expected"), [
    ("message_quick_reply", "1122334455667788", "dm", "quick_reply",
     {"text": "Yes, send the catalogue", "payload": "CATALOGUE_YES"}),
    ("message_story_reply", "2233445566778899", "story", "story_reply",
     {"text": "Love this colour!", "media_id": "17900000000000001"}),
    ("message_story_mention", "3344556677889900", "story", "story_mention", {"text": ""}),
    ("message_ad_referral", "4455667788990011", "paid_ad", "message",
     {"text": "I saw your ad, do you ship to Lyon?", "referral_source": "ADS", "ad_id": "23850000000000001"}),
    ("messaging_referral_ads", "5566778899001122", "paid_ad", "referral",
     {"referral_source": "ADS", "ad_id": "23850000000000001", "payload": "winter-sale"}),
    ("postback", "6677889900112233", "dm", "postback", {"text": "Get the discount", "payload": "DISCOUNT_10"}),
    ("comments", "7788990011223344", "organic_post", "comment",
     {"text": "PRICE please", "media_id": "17887498072083520", "comment_id": "17865799348089039",
      "meta_id": "17865799348089039"}),
    ("live_comments", "8899001122334455", "organic_post", "live_comment",
     {"text": "Want one!", "media_id": "17887498072083521", "comment_id": "17865799348089040"}),
    ("comment_on_ad", "9900112233445566", "paid_ad", "comment",
     {"ad_id": "23850000000000002", "referral_source": "ADS", "comment_id": "17865799348089041"}),
])
def test_each_event_shape_maps_to_its_source_and_type(
    ig_workspace, deliver, captured_events, fixture, igsid, source, kind, expected
):
    assert deliver(meta_fixture(fixture)).status_code == 200

    contact = Contact.objects.get(workspace=ig_workspace)
    assert (contact.igsid, contact.source) == (igsid, source)
    assert len(captured_events) == 1
    event = captured_events[0]
    assert (event.type, event.contact_id, event.is_new_contact) == (kind, contact.pk, True)
    for name, value in expected.items():
        assert getattr(event, name) == value, name


def test_story_events_carry_the_story_url(ig_workspace, deliver, captured_events):
    deliver(meta_fixture("message_story_mention"))
    deliver(meta_fixture("message_story_reply"))

    assert [e.extra["story_url"] for e in captured_events] == [
        "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=17900000000000002&signature=def",
        "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=17900000000000001&signature=abc",
    ]


def test_comments_update_the_username_and_are_not_inbox_messages(ig_workspace, deliver):
    ContactFactory(workspace=ig_workspace, igsid="7788990011223344", username="old_name", source="dm",
                   last_inbound_at=None)

    deliver(meta_fixture("comments"))

    contact = Contact.objects.get(workspace=ig_workspace)
    assert (contact.username, contact.source) == ("maya.designs", "dm")  # source is kept from first capture
    # A comment opens one private reply, not the 24-hour DM window (contacts/windows.py).
    assert contact.last_inbound_at is None
    assert contact.last_comment_at == datetime.datetime(2025, 11, 26, 12, 8, tzinfo=datetime.UTC)
    assert Message.objects.count() == 0


def test_dm_types_are_stored_in_the_inbox(ig_workspace, deliver):
    for name in ("message_text", "message_quick_reply", "postback", "message_story_mention"):
        deliver(meta_fixture(name))

    assert sorted(Message.objects.values_list("text", flat=True)) == [
        "", "Get the discount", "Hi! Is the PRICE still 20?", "Yes, send the catalogue",
    ]
    assert set(Message.objects.values_list("direction", "origin", "status")) == {("in", "contact", "received")}


def test_an_existing_contact_is_updated_not_duplicated(ig_workspace, deliver, captured_events):
    deliver(meta_fixture("message_text"))
    deliver(meta_fixture("message_quick_reply"))

    contact = Contact.objects.get(workspace=ig_workspace)
    assert [e.is_new_contact for e in captured_events] == [True, False]
    assert contact.last_inbound_at == datetime.datetime(2025, 11, 26, 12, 1, tzinfo=datetime.UTC)


def test_last_inbound_never_moves_backwards(ig_workspace, deliver):
    deliver(meta_fixture("message_quick_reply"))  # 12:01
    deliver(meta_fixture("message_text"))  # 12:00, delivered late

    assert Contact.objects.get().last_inbound_at == datetime.datetime(2025, 11, 26, 12, 1, tzinfo=datetime.UTC)
    assert Message.objects.count() == 2


def test_a_timestamp_in_the_future_is_clamped_to_now(ig_workspace, deliver):
    payload = meta_fixture("message_text")
    payload["entry"][0]["messaging"][0]["timestamp"] = int((timezone.now().timestamp() + 86400 * 365) * 1000)
    before = timezone.now()

    deliver(payload)

    assert before <= Contact.objects.get().last_inbound_at <= timezone.now()


def test_echoes_of_our_own_messages_are_ignored(ig_workspace, deliver, captured_events):
    response = deliver(meta_fixture("message_echo"))

    assert response.status_code == 200
    assert Contact.objects.count() == 0
    assert Message.objects.count() == 0
    assert captured_events == []
    assert WebhookDelivery.objects.get().status == "processed"


def test_a_mention_without_its_author_waits_for_a_look_up_and_never_blocks_intake(
        ig_workspace, deliver, captured_events):
    # No connection (so no token): the look-up fails and is retried later; the delivery is done.
    deliver(meta_fixture("mentions"))

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "processed"
    mention = PendingMention.objects.get()
    assert (mention.workspace_id, mention.comment_id, mention.media_id, mention.status, mention.attempts) == (
        ig_workspace.pk, "17865799348089042", "17887498072083523", "pending", 1)
    assert mention.next_attempt_at > timezone.now()
    assert Contact.objects.count() == 0
    assert captured_events == []


def test_mention_with_its_author_captures_a_collaboration_contact(ig_workspace, deliver, captured_events):
    payload = meta_fixture("mentions")
    payload["entry"][0]["changes"][0]["value"]["from"] = {"id": "1231231231231231", "username": "collab.brand"}

    deliver(payload)

    contact = Contact.objects.get()
    assert (contact.igsid, contact.username, contact.source) == ("1231231231231231", "collab.brand", "collaboration")
    assert [(e.type, e.media_id, e.comment_id) for e in captured_events] == [
        ("mention", "17887498072083523", "17865799348089042"),
    ]


def test_unknown_fields_and_shapes_are_ignored_without_failing(ig_workspace, deliver, captured_events):
    payload = meta_fixture("comments")
    payload["entry"][0]["changes"].insert(0, {"field": "story_insights", "value": {"media_id": "1", "reach": 3}})
    payload["entry"][0]["changes"].insert(0, "not-an-object")
    payload["entry"].insert(0, {"time": 1, "messaging": "nope"})
    payload["entry"][1].setdefault("messaging", []).append({"sender": {"id": "42"}, "read": {"mid": "x"}})

    assert deliver(payload).status_code == 200

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.events_captured) == ("processed", 1)
    assert "Ignored field 'story_insights'." in delivery.note
    assert len(captured_events) == 1


def test_a_delivery_for_another_object_is_stored_and_ignored(deliver):
    assert deliver({"object": "page", "entry": []}).status_code == 200

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "processed"
    assert "not 'instagram'" in delivery.note


def test_unknown_account_is_stored_and_processed_with_a_note(deliver, captured_events):
    response = deliver(meta_fixture("message_text"))  # no workspace holds this account

    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.error, delivery.events_captured) == ("processed", "", 0)
    assert delivery.note == f"No workspace for Instagram account {IG_ACCOUNT_ID}: its events were not captured."
    assert Contact.objects.count() == 0
    assert captured_events == []


def test_events_are_kept_apart_per_workspace(ig_workspace, deliver):
    from tests.factories import WorkspaceFactory

    other = WorkspaceFactory(instagram_account_id="17841400000000999")
    payload = meta_fixture("message_text")
    twin = json.loads(json.dumps(payload).replace(IG_ACCOUNT_ID, "17841400000000999"))

    deliver(payload)
    deliver(twin)

    assert Contact.objects.filter(workspace=ig_workspace).count() == 1
    assert Contact.objects.filter(workspace=other).count() == 1
    assert Message.objects.filter(meta_mid=MESSAGE_MID).count() == 2


# --- durability -----------------------------------------------------------------------------

def test_a_broker_outage_after_the_200_is_covered_by_the_sweeper(ig_workspace, deliver, captured_events, monkeypatch):
    from contacts import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.drain_instagram_deliveries, "apply_async", broker_down)  # the view's nudge

    response = deliver(meta_fixture("message_text"))

    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, Contact.objects.count()) == ("pending", 0)

    # Too recent for the sweeper: the task may still be on its way.
    assert sweep_pending_deliveries() == 0
    WebhookDelivery.objects.update(received_at=timezone.now() - datetime.timedelta(minutes=5))

    assert sweep_pending_deliveries() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.events_captured) == ("processed", 1)
    assert Contact.objects.count() == 1
    assert sweep_pending_deliveries() == 0


def test_a_crash_while_processing_marks_the_delivery_failed_and_captures_nothing(ig_workspace, deliver, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(intake, "_contact_capture", explode)

    assert deliver(meta_fixture("message_text")).status_code == 200

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.error, delivery.attempts) == ("failed", "RuntimeError: boom", 1)
    assert Contact.objects.count() == 0


def test_a_database_outage_leaves_the_delivery_pending_for_a_retry(ig_workspace, deliver, monkeypatch):
    from django.db import OperationalError

    from contacts import tasks

    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(tasks.drain_instagram_deliveries, "apply_async", lambda *args, **kwargs: None)
    deliver(meta_fixture("message_text"))
    delivery = WebhookDelivery.objects.get()
    monkeypatch.setattr(intake, "_capture_delivery", flaky)

    with pytest.raises(OperationalError):
        intake.delivery_process(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    monkeypatch.undo()
    intake.delivery_process(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("processed", 2)
    assert Contact.objects.count() == 1


def test_the_sweeper_is_in_the_beat_schedule():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="contacts.tasks.sweep_pending_deliveries")
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (1, "minutes")


def test_a_failed_delivery_can_be_replayed_by_staff(
    ig_workspace, deliver, monkeypatch, django_capture_on_commit_callbacks
):
    original = intake._contact_capture

    def explode(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(intake, "_contact_capture", explode)
    deliver(meta_fixture("message_text"))
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed"
    monkeypatch.setattr(intake, "_contact_capture", original)

    with django_capture_on_commit_callbacks(execute=True):
        assert intake.delivery_replay(delivery_id=delivery.pk) is True

    delivery.refresh_from_db()
    # Attempts count afresh from a replay: the limit on unfinished attempts applies to the new run.
    assert (delivery.status, delivery.attempts, delivery.error) == ("processed", 1, "")
    assert Contact.objects.count() == 1
    assert intake.delivery_replay(delivery_id=delivery.pk) is False


def test_admin_lists_deliveries_and_messages(admin_client, ig_workspace, deliver):
    deliver(meta_fixture("message_text"))

    assert admin_client.get("/admin/contacts/webhookdelivery/").status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert admin_client.get(f"/admin/contacts/webhookdelivery/{delivery.pk}/change/").status_code == 200
    assert admin_client.get("/admin/contacts/message/").status_code == 200
    assert admin_client.get("/admin/contacts/capturedevent/").status_code == 200
    assert admin_client.get("/admin/contacts/datadeletionrequest/").status_code == 200


def test_a_failing_listener_does_not_keep_the_others_from_hearing(ig_workspace, deliver, captured_events):
    from contacts import hooks

    def broken(event):
        raise RuntimeError("listener bug")

    hooks._inbound_listeners.insert(0, broken)
    payload = meta_fixture("message_text")
    payload["entry"].append(meta_fixture("comments")["entry"][0])

    assert deliver(payload).status_code == 200

    assert [e.type for e in captured_events] == ["message", "comment"]
    assert WebhookDelivery.objects.get().status == "processed"


def test_processed_deliveries_are_pruned_after_the_retention_period(ig_workspace, deliver, settings):
    settings.META_WEBHOOK_RETENTION_DAYS = 30
    deliver(meta_fixture("message_text"))
    deliver(meta_fixture("comments"))
    old, recent = WebhookDelivery.objects.order_by("id")
    WebhookDelivery.objects.filter(pk=old.pk).update(received_at=timezone.now() - datetime.timedelta(days=31))
    stale_pending = WebhookDelivery.objects.create(body="{}", body_sha256="f" * 64,
                                                   received_at=timezone.now() - datetime.timedelta(days=40))
    WebhookDelivery.objects.filter(pk=stale_pending.pk).update(status="failed")

    sweep_pending_deliveries()

    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {recent.pk, stale_pending.pk}
    assert Message.objects.count() == 1 and CapturedEvent.objects.count() == 2


def test_an_unsent_message_is_blanked_and_fires_nothing(ig_workspace, deliver, captured_events):
    deliver(meta_fixture("message_text"))
    unsend = meta_fixture("message_text")
    unsend["entry"][0]["messaging"][0]["message"] = {"mid": MESSAGE_MID, "is_deleted": True}

    assert deliver(unsend).status_code == 200

    assert Message.objects.get(meta_mid=MESSAGE_MID).text == ""
    assert len(captured_events) == 1
    assert WebhookDelivery.objects.order_by("id").last().events_captured == 0
