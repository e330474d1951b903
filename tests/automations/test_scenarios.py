"""Scenarios fired by Instagram events: one activation, one message, and the same event does nothing."""

import datetime
import json

import pytest
from django.urls import reverse

from automations.models import PausedAction, PendingQuestion, Scenario, ScenarioRun, ScenarioStepLog, SegmentMembership
from automations.services import scenario_create, segment_create
from automations.services.scenarios import ScenarioRunBusy, keywords_match, scenario_run_execute, scenario_start
from billing.activation import activate_many, usage
from billing.models import ActivationRecord
from billing.services import bonus_grant
from contacts.models import Contact, Message
from inro.errors import ApplicationError
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def keyword_scenario(workspace, **config):
    return scenario_create(
        workspace=workspace, name="Price reply", trigger_type="dm_keyword",
        trigger_config={"keywords": ["price"], **config},
        steps=[{"type": "send_message", "text": "Our prices: ..."}, {"type": "add_tag", "tag": "Lead"}],
    )


def outbox(contact):
    return list(Message.objects.filter(contact=contact, direction="out").values_list("text", "status"))


def test_keyword_event_records_one_activation_and_one_message_once(free_workspace, fire):
    scenario = keyword_scenario(free_workspace)
    contact = ContactFactory(workspace=free_workspace)

    fire(contact, text="What's the PRICE?", meta_id="mid.1")
    fire(contact, text="What's the PRICE?", meta_id="mid.1")  # the same event again

    records = ActivationRecord.objects.filter(workspace=free_workspace)
    assert list(records.values_list("contact_id", "kind", "automation_ref")) == [
        (contact.pk, "scenario", f"scenario:{scenario.pk}")]
    assert outbox(contact) == [("Our prices: ...", "sent")]
    run = ScenarioRun.objects.get()
    assert (run.status, run.next_step) == ("completed", 2)
    assert list(run.step_logs.values_list("step_type", "outcome")) == [("send_message", "sent"), ("add_tag", "tagged")]
    assert list(contact.tags.values_list("name", flat=True)) == ["lead"]


def test_a_second_event_is_a_new_run_but_no_new_activation(free_workspace, fire):
    keyword_scenario(free_workspace)
    contact = ContactFactory(workspace=free_workspace)

    fire(contact, text="price", meta_id="mid.1")
    fire(contact, text="price please", meta_id="mid.2")

    assert ActivationRecord.objects.filter(workspace=free_workspace).count() == 1
    assert len(outbox(contact)) == 2


@pytest.mark.parametrize(
    ("text", "config", "expected"),
    [
        ("Quel est le PRÉCIO?", {"keywords": ["precio"]}, True),
        ("precios", {"keywords": ["precio"]}, False),
        ("send me the price list", {"keywords": ["price", "list"], "match": "all"}, True),
        ("send me the price", {"keywords": ["price", "list"], "match": "all"}, False),
        ("Price!", {"keywords": ["price"], "exact": True}, True),
        ("price please", {"keywords": ["price"], "exact": True}, False),
        ("how about free shipping", {"keywords": ["free shipping", "discount"]}, True),
        ("shipping free", {"keywords": ["free shipping"]}, False),
    ],
)
def test_keyword_matching(text, config, expected):
    assert keywords_match(text, keywords=config["keywords"], match=config.get("match", "any"),
                          exact=config.get("exact", False)) is expected


def test_non_matching_and_disabled_scenarios_do_nothing(free_workspace, fire):
    scenario = keyword_scenario(free_workspace)
    contact = ContactFactory(workspace=free_workspace)
    fire(contact, text="hello there", meta_id="mid.1")
    scenario.enabled = False
    scenario.save()
    fire(contact, text="price", meta_id="mid.2")

    assert not ScenarioRun.objects.exists() and not ActivationRecord.objects.exists() and outbox(contact) == []


def test_at_the_limit_a_run_is_paused_and_resumes_on_bonus(free_workspace, fire, django_capture_on_commit_callbacks):
    keyword_scenario(free_workspace)
    activate_many(free_workspace, ContactFactory.create_batch(100, workspace=free_workspace), kind="campaign")
    contact = ContactFactory(workspace=free_workspace)

    fire(contact, text="price?", meta_id="mid.9")

    run = ScenarioRun.objects.get()
    assert run.status == "limited" and outbox(contact) == []
    paused = PausedAction.objects.get()
    assert (paused.contact_id, paused.kind, paused.action_type, paused.status) == (
        contact.pk, "scenario", "scenario_run", "waiting")
    assert paused.expires_at == contact.last_inbound_at + datetime.timedelta(hours=24)
    assert not ActivationRecord.objects.filter(contact=contact).exists()

    with django_capture_on_commit_callbacks(execute=True):
        bonus_grant(workspace=free_workspace, amount=1, reason="one more", granted_by=None)

    run.refresh_from_db()
    assert run.status == "completed" and outbox(contact) == [("Our prices: ...", "sent")]
    assert ActivationRecord.objects.get(contact=contact).kind == "scenario"
    assert PausedAction.objects.get().status == "resumed"
    assert usage(free_workspace).activated == 101


def test_already_active_contact_runs_free_at_the_limit(free_workspace, fire):
    keyword_scenario(free_workspace)
    contacts = ContactFactory.create_batch(100, workspace=free_workspace)
    activate_many(free_workspace, contacts, kind="campaign")

    fire(contacts[0], text="price", meta_id="mid.1")

    assert outbox(contacts[0]) == [("Our prices: ...", "sent")]
    assert not PausedAction.objects.exists() and usage(free_workspace).activated == 100


def test_comment_trigger_answers_with_a_private_reply(free_workspace, fire):
    scenario_create(
        workspace=free_workspace, name="Giveaway", trigger_type="comment",
        trigger_config={"media_id": "17900000000000001"},
        steps=[{"type": "send_message", "text": "Check your DMs!"}, {"type": "send_message", "text": "Here it is"}],
    )
    contact = ContactFactory(workspace=free_workspace, source="organic_post")

    fire(contact, type="comment", text="me!", meta_id="c.1", comment_id="c.1", media_id="17900000000000002")
    assert not ScenarioRun.objects.exists()
    fire(contact, type="comment", text="me!", meta_id="c.2", comment_id="c.2", media_id="17900000000000001")

    messages = list(Message.objects.filter(contact=contact, direction="out").order_by("id").values_list(
        "text", "reply_to_comment_id"))
    assert messages == [("Check your DMs!", "c.2"), ("Here it is", "")]


def test_story_ad_and_new_contact_triggers(free_workspace, fire):
    steps = [{"type": "send_message", "text": "thanks"}]
    story = scenario_create(workspace=free_workspace, name="Story", trigger_type="story",
                            trigger_config={"events": ["story_mention"]}, steps=steps)
    ad = scenario_create(workspace=free_workspace, name="Ad", trigger_type="ad_referral",
                         trigger_config={"ad_id": "ad-7"}, steps=steps)
    welcome = scenario_create(workspace=free_workspace, name="Welcome", trigger_type="new_contact", steps=steps)
    contact = ContactFactory(workspace=free_workspace)

    fire(contact, type="story_reply", text="nice", meta_id="s.1")
    fire(contact, type="story_mention", meta_id="s.2")
    fire(contact, type="referral", referral_source="SHORTLINK", ad_id="ad-7", meta_id="r.0")  # not an ad
    fire(contact, type="referral", referral_source="ADS", ad_id="ad-8", meta_id="r.1")
    fire(contact, type="referral", referral_source="ADS", ad_id="ad-7", meta_id="r.2", is_new_contact=True)
    fire(contact, type="message", text="hi", meta_id="m.3", is_new_contact=True)

    runs = dict(ScenarioRun.objects.values_list("scenario_id", "trigger_key"))
    assert runs == {story.pk: "s.2", ad.pk: "r.2", welcome.pk: f"new_contact:{contact.pk}"}
    assert ActivationRecord.objects.filter(contact=contact).count() == 1


def test_survey_question_stores_a_validated_answer_then_continues(free_workspace, fire):
    segment = segment_create(workspace=free_workspace, name="Newsletter")
    scenario_create(
        workspace=free_workspace, name="Email capture", trigger_type="dm_keyword",
        trigger_config={"keywords": ["newsletter"]},
        steps=[
            {"type": "ask_question", "text": "Your email?", "field": "email", "answer_type": "email",
             "retry_text": "That does not look like an email, try again?"},
            {"type": "ask_question", "text": "Your size?", "field": "custom:size", "answer_type": "text"},
            {"type": "add_to_segment", "segment_id": segment.pk},
            {"type": "send_message", "text": "Subscribed!"},
        ],
    )
    contact = ContactFactory(workspace=free_workspace, email="")

    fire(contact, text="newsletter", meta_id="m.1")
    assert ScenarioRun.objects.get().status == "waiting_answer"
    fire(contact, text="not-an-email", meta_id="m.2")
    fire(contact, text="  Ana@Example.COM ", meta_id="m.3")
    fire(contact, text="M", meta_id="m.4")

    contact.refresh_from_db()
    assert (contact.email, contact.custom_fields) == ("ana@example.com", {"size": "M"})
    assert [t for t, _ in outbox(contact)][::-1] == [
        "Your email?", "That does not look like an email, try again?", "Your size?", "Subscribed!"]
    run = ScenarioRun.objects.get()
    assert run.status == "completed"
    assert SegmentMembership.objects.filter(segment=segment, contact=contact).exists()
    assert PendingQuestion.objects.filter(answered_at__isnull=True).count() == 0
    assert ScenarioStepLog.objects.filter(run=run, outcome="invalid_answer").count() == 1
    assert ActivationRecord.objects.filter(contact=contact).count() == 1


def test_wait_step_continues_later(free_workspace, fire):
    scenario_create(
        workspace=free_workspace, name="Follow-up", trigger_type="dm_keyword", trigger_config={"keywords": ["hi"]},
        steps=[{"type": "send_message", "text": "Hello"}, {"type": "wait", "seconds": 600},
               {"type": "send_message", "text": "Still there?"}],
    )
    contact = ContactFactory(workspace=free_workspace)

    fire(contact, text="hi", meta_id="m.1")  # tasks run inline in tests: the countdown elapses at once

    assert [t for t, _ in outbox(contact)][::-1] == ["Hello", "Still there?"]
    run = ScenarioRun.objects.get()
    assert run.status == "completed"
    assert list(run.step_logs.values_list("outcome", flat=True)) == ["sent", "waiting", "sent"]


@pytest.mark.parametrize(
    ("trigger_type", "config", "steps", "field"),
    [
        ("dm_keyword", {"keywords": []}, [{"type": "send_message", "text": "x"}], "trigger_config.keywords"),
        ("dm_keyword", {"keywords": ["a"], "match": "some"}, [{"type": "send_message", "text": "x"}],
         "trigger_config.match"),
        ("unknown", {}, [{"type": "send_message", "text": "x"}], "trigger_type"),
        ("new_contact", {}, [], "steps"),
        ("new_contact", {}, [{"type": "wait", "seconds": 0}], "steps.0.seconds"),
        ("new_contact", {}, [{"type": "ask_question", "text": "?", "field": "email", "answer_type": "phone"}],
         "steps.0.answer_type"),
        ("new_contact", {}, [{"type": "add_to_segment", "segment_id": 999999}], "steps.0.segment_id"),
        ("new_contact", {}, [{"type": "launch_rocket"}], "steps.0"),
        ("story", {"events": ["comment"]}, [{"type": "send_message", "text": "x"}], "trigger_config.events"),
    ],
)
def test_invalid_definitions_are_refused(free_workspace, trigger_type, config, steps, field):
    with pytest.raises(ApplicationError) as error:
        scenario_create(workspace=free_workspace, name="Bad", trigger_type=trigger_type, trigger_config=config,
                        steps=steps)
    assert field in error.value.fields
    assert not Scenario.objects.exists()


# --- the inbound webhook from outside ---------------------------------------------------------------

@pytest.fixture
def hook_scenario(free_workspace):
    return scenario_create(workspace=free_workspace, name="From Shopify", trigger_type="webhook",
                           steps=[{"type": "send_message", "text": "Your order shipped"}])


def post(client, scenario, body, secret=None):
    headers = {"HTTP_X_INRO_SCENARIO_SECRET": scenario.webhook_secret if secret is None else secret}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(reverse("scenario_webhook", args=[scenario.pk]), data=data,
                       content_type="application/json", **headers)


def test_webhook_runs_the_scenario_for_a_contact_by_username(client, hook_scenario, free_workspace,
                                                               django_capture_on_commit_callbacks):
    contact = ContactFactory(workspace=free_workspace, username="ana.b")

    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, hook_scenario, {"username": "@Ana.B", "event_id": "order-1"})
    with django_capture_on_commit_callbacks(execute=True):
        again = post(client, hook_scenario, {"username": "ana.b", "event_id": "order-1"})
    with django_capture_on_commit_callbacks(execute=True):
        by_id = post(client, hook_scenario, {"contact_id": contact.pk, "event_id": "order-2"})

    assert (first.status_code, again.status_code, by_id.status_code) == (202, 200, 202)
    assert first.json()["status"] == "accepted" and again.json() == {"status": "duplicate"}
    assert ScenarioRun.objects.get(pk=first.json()["run_id"]).status == "completed"
    assert len(outbox(contact)) == 2
    assert ActivationRecord.objects.get(contact=contact).kind == "scenario"


@pytest.mark.parametrize(
    ("body", "secret", "status", "code"),
    [
        ({"contact_id": 1}, "wrong-secret", 403, "forbidden"),
        ({"contact_id": 1}, "", 403, "forbidden"),
        (b"{not json", None, 400, "invalid_json"),
        ([1, 2], None, 400, "invalid"),
        ({"event_id": "x"}, None, 400, "invalid"),
        ({"contact_id": 999999}, None, 404, "contact_not_found"),
        ({"username": "nobody"}, None, 404, "contact_not_found"),
        ({"contact_id": True}, None, 400, "invalid"),
    ],
)
def test_webhook_refuses_bad_requests_and_changes_nothing(client, hook_scenario, body, secret, status, code):
    response = post(client, hook_scenario, body, secret=secret)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not ScenarioRun.objects.exists() and not Message.objects.exists()


def test_webhook_for_unknown_scenario_or_other_workspace_contact(client, hook_scenario):
    stranger = ContactFactory()  # another workspace
    response = post(client, hook_scenario, {"contact_id": stranger.pk})
    missing = client.post("/hooks/scenarios/999999/", data="{}", content_type="application/json")

    assert (response.status_code, missing.status_code) == (404, 404)
    assert client.get(reverse("scenario_webhook", args=[hook_scenario.pk])).status_code == 405
    assert not Contact.objects.filter(pk=stranger.pk, scenario_runs__isnull=False).exists()


def test_a_run_held_by_another_worker_is_not_executed_alongside(free_workspace, clock):
    scenario = keyword_scenario(free_workspace)
    contact = ContactFactory(workspace=free_workspace)
    run = scenario_start(scenario=scenario, contact=contact, trigger_key="mid.1")  # queued after commit: not run
    ScenarioRun.objects.filter(pk=run.pk).update(executing_until=clock.now + datetime.timedelta(minutes=2))

    with pytest.raises(ScenarioRunBusy):
        scenario_run_execute(run_id=run.pk)
    assert outbox(contact) == [] and not ActivationRecord.objects.exists()

    clock.set(clock.now + datetime.timedelta(minutes=3))  # that worker died; its lease ran out
    run = scenario_run_execute(run_id=run.pk)

    assert (run.status, run.executing_until) == ("completed", None)
    assert outbox(contact) == [("Our prices: ...", "sent")]
