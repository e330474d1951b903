"""Scenarios: a trigger (keyword, comment, story, ad, new contact, outside webhook, the next message of
a segment's contact) and steps.

A run is created once per triggering event (unique on scenario + event id), so a redelivered event
does nothing. The first step that engages the contact asks the gate (`activate`, kind scenario, the
full quota: no reserve); a refusal pauses the whole run (rule 4) and it continues from the same
step when headroom appears. Every step writes a log line; sends use a key per run and step.
"""

import datetime
import logging
import math
import re
import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Workspace
from automations import enqueue
from automations.models import (
    Integration,
    PausedAction,
    PendingQuestion,
    Scenario,
    ScenarioRun,
    ScenarioStepLog,
    Segment,
    SegmentMembership,
)
from automations.services.alerts import usage_alerts_check
from automations.services.engagement import outcome_settle, reservation_settle
from automations.services.integrations import integration_push
from automations.services.paused import PauseItem, paused_actions_create
from automations.services.segments import segment_contacts
from billing.activation import activate
from billing.models import AutomationKind
from contacts.hooks import InboundEvent
from contacts.instagram_connection import DISCONNECTED_REASON, sending_blocked
from contacts.messaging import DISCONNECTED, private_reply_wait, send_message, window_is_open
from contacts.models import Contact, Message, Tag
from inro.errors import ApplicationError

logger = logging.getLogger(__name__)

MESSAGE_EVENTS = ("message", "quick_reply", "postback")
COMMENT_EVENTS = ("comment", "live_comment")
STORY_EVENTS = ("story_reply", "story_mention")
# A story trigger may also listen to mentions in posts and comments (collaborations), when asked to.
STORY_TRIGGER_EVENTS = (*STORY_EVENTS, "mention")
STEP_TYPES = ("send_message", "ask_question", "add_tag", "add_to_segment", "wait", "call_integration")
MESSAGE_STEPS = ("send_message", "ask_question")
ANSWER_TYPES = ("email", "phone", "text")
MAX_WAIT_SECONDS = 30 * 24 * 3600
RUN_LEASE = datetime.timedelta(minutes=5)
_CUSTOM_FIELD = re.compile(r"^custom:[A-Za-z0-9_]{1,64}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{5,24}$")


# --- matching -------------------------------------------------------------------------------------

def normalize_words(text: str) -> list[str]:
    """Lower-case words without accents: 'Précio!' and 'precio' match (case- and accent-insensitive)."""
    decomposed = unicodedata.normalize("NFKD", (text or "").casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.findall(r"\w+", plain)


def _contains(words: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return n > 0 and any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


def keywords_match(text: str, *, keywords: list[str], match: str = "any", exact: bool = False) -> bool:
    words = normalize_words(text)
    phrases = [normalize_words(k) for k in keywords]
    phrases = [p for p in phrases if p]
    if not words or not phrases:
        return False
    if exact:
        # Strict: the whole message is the keyword (punctuation, case and accents aside).
        return any(words == p for p in phrases)
    if match == "all":
        return all(_contains(words, p) for p in phrases)
    return any(_contains(words, p) for p in phrases)


def scenario_matches(scenario: Scenario, event: InboundEvent) -> bool:
    config = scenario.trigger_config or {}
    trigger = scenario.trigger_type
    if trigger == Scenario.Trigger.DM_KEYWORD:
        return event.type in MESSAGE_EVENTS and keywords_match(
            event.text or event.payload, keywords=config.get("keywords", []), match=config.get("match", "any"),
            exact=bool(config.get("exact")),
        )
    if trigger == Scenario.Trigger.COMMENT:
        if event.type not in COMMENT_EVENTS:
            return False
        if config.get("media_id") and config["media_id"] != event.media_id:
            return False
        if config.get("keywords"):
            return keywords_match(event.text, keywords=config["keywords"], match=config.get("match", "any"),
                                  exact=bool(config.get("exact")))
        return True
    if trigger == Scenario.Trigger.STORY:
        return event.type in config.get("events", list(STORY_EVENTS))
    if trigger == Scenario.Trigger.AD_REFERRAL:
        # A click-to-DM ad: a referral event, or a first message carrying the ad's referral.
        if event.referral_source.upper() != "ADS":
            return False
        return not config.get("ad_id") or config["ad_id"] == event.ad_id
    if trigger == Scenario.Trigger.NEW_CONTACT:
        return event.is_new_contact
    if trigger == Scenario.Trigger.NEXT_MESSAGE:
        # The next message of a contact placed in the segment (e.g. those a campaign could not reach):
        # once per contact (see _trigger_key).
        segment = Segment.objects.filter(pk=config.get("segment_id"), workspace_id=scenario.workspace_id).first()
        return event.type in MESSAGE_EVENTS and segment is not None and segment_contacts(
            segment=segment).filter(pk=event.contact_id).exists()
    return False


# --- definitions ----------------------------------------------------------------------------------

def _bad(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, code="invalid", fields={field: [message]})


def _clean_keywords(config: dict) -> dict:
    keywords = config.get("keywords")
    if not isinstance(keywords, list) or not keywords or not all(
        isinstance(k, str) and normalize_words(k) and len(k) <= 100 for k in keywords
    ):
        raise _bad("trigger_config.keywords", "Give a list of keywords (1 to 100 characters, with letters or digits).")
    match = config.get("match", "any")
    if match not in ("any", "all"):
        raise _bad("trigger_config.match", "Choose 'any' or 'all'.")
    return {"keywords": [k.strip() for k in keywords], "match": match, "exact": bool(config.get("exact", False))}


def scenario_trigger_clean(trigger_type: str, config: object, *, workspace: Workspace | None = None) -> dict:
    if trigger_type not in Scenario.Trigger.values:
        raise _bad("trigger_type", f"Choose one of {', '.join(Scenario.Trigger.values)}.")
    config = config or {}
    if not isinstance(config, dict):
        raise _bad("trigger_config", "The trigger configuration must be an object.")
    if trigger_type == Scenario.Trigger.DM_KEYWORD:
        return _clean_keywords(config)
    if trigger_type == Scenario.Trigger.COMMENT:
        clean = _clean_keywords(config) if config.get("keywords") else {}
        media_id = config.get("media_id", "")
        if not isinstance(media_id, str) or len(media_id) > 64:
            raise _bad("trigger_config.media_id", "Give the post's media id (at most 64 characters).")
        return {**clean, "media_id": media_id.strip()}
    if trigger_type == Scenario.Trigger.STORY:
        events = config.get("events", list(STORY_EVENTS))
        if not isinstance(events, list) or not events or not set(events) <= set(STORY_TRIGGER_EVENTS):
            raise _bad("trigger_config.events", "Choose among story_reply, story_mention and mention.")
        return {"events": sorted(set(events))}
    if trigger_type == Scenario.Trigger.AD_REFERRAL:
        ad_id = config.get("ad_id", "")
        if not isinstance(ad_id, str) or len(ad_id) > 64:
            raise _bad("trigger_config.ad_id", "Give the ad id (at most 64 characters).")
        return {"ad_id": ad_id.strip()}
    if trigger_type == Scenario.Trigger.NEXT_MESSAGE:
        segment_id = config.get("segment_id")
        if not isinstance(segment_id, int) or isinstance(segment_id, bool) or (
                workspace is not None and not Segment.objects.filter(pk=segment_id, workspace=workspace).exists()):
            raise _bad("trigger_config.segment_id", "Choose a segment of this workspace: its contacts' next message "
                                                    "starts the scenario.")
        return {"segment_id": segment_id}
    return {}


def scenario_steps_clean(workspace: Workspace, steps: object) -> list[dict]:
    if not isinstance(steps, list) or not steps or len(steps) > 50:
        raise _bad("steps", "Give 1 to 50 steps.")
    clean = []
    for index, step in enumerate(steps):
        field = f"steps.{index}"
        if not isinstance(step, dict) or step.get("type") not in STEP_TYPES:
            raise _bad(field, f"Each step needs a type among {', '.join(STEP_TYPES)}.")
        kind = step["type"]
        if kind in MESSAGE_STEPS:
            text = step.get("text")
            if not isinstance(text, str) or not text.strip() or len(text) > 1000:
                raise _bad(f"{field}.text", "Enter a message of 1 to 1000 characters.")
            item = {"type": kind, "text": text.strip()}
            if kind == "ask_question":
                target = step.get("field")
                # Stored in email or phone, the answer is of that type unless said otherwise.
                answer_type = step.get("answer_type", target if target in ("email", "phone") else "text")
                if answer_type not in ANSWER_TYPES:
                    raise _bad(f"{field}.answer_type", "Choose email, phone or text.")
                if target not in ("email", "phone") and not (isinstance(target, str) and _CUSTOM_FIELD.match(target)):
                    raise _bad(f"{field}.field", "Store the answer in email, phone or custom:<name>.")
                if target in ("email", "phone") and answer_type != target:
                    raise _bad(f"{field}.answer_type", f"The {target} field takes a {target} answer.")
                retry = step.get("retry_text", "")
                if not isinstance(retry, str) or len(retry) > 1000:
                    raise _bad(f"{field}.retry_text", "At most 1000 characters.")
                item.update(field=target, answer_type=answer_type, retry_text=retry.strip())
        elif kind == "add_tag":
            tag = step.get("tag")
            if not isinstance(tag, str) or not tag.strip() or len(tag) > 64:
                raise _bad(f"{field}.tag", "Enter a tag of 1 to 64 characters.")
            item = {"type": kind, "tag": tag.strip().lower()}
        elif kind == "add_to_segment":
            segment_id = step.get("segment_id")
            if not isinstance(segment_id, int) or not Segment.objects.filter(
                pk=segment_id, workspace=workspace
            ).exists():
                raise _bad(f"{field}.segment_id", "Choose a segment of this workspace.")
            item = {"type": kind, "segment_id": segment_id}
        elif kind == "wait":
            seconds = step.get("seconds")
            if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= MAX_WAIT_SECONDS:
                raise _bad(f"{field}.seconds", "Wait between 1 second and 30 days.")
            item = {"type": kind, "seconds": seconds}
        else:
            integration_id = step.get("integration_id")
            if not isinstance(integration_id, int) or not Integration.objects.filter(
                pk=integration_id, workspace=workspace
            ).exists():
                raise _bad(f"{field}.integration_id", "Choose an integration of this workspace.")
            item = {"type": kind, "integration_id": integration_id}
        clean.append(item)
    return clean


def scenario_create(
    *, workspace: Workspace, name: str, trigger_type: str, trigger_config: object = None, steps: object,
    enabled: bool = True,
) -> Scenario:
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise _bad("name", "Enter a name of 1 to 120 characters.")
    return Scenario.objects.create(
        workspace=workspace, name=name, enabled=bool(enabled), trigger_type=trigger_type,
        trigger_config=scenario_trigger_clean(trigger_type, trigger_config, workspace=workspace),
        steps=scenario_steps_clean(workspace, steps),
    )


def scenario_update(
    *, scenario: Scenario, name: str | None = None, trigger_type: str | None = None, trigger_config: object = None,
    steps: object = None, enabled: bool | None = None,
) -> Scenario:
    """Edit a scenario with the checks of `scenario_create`; what is not given stays as it is.

    A new trigger type takes a new configuration (its own fields); runs already started keep going
    with the steps they were started with, from the step they are at.
    """
    changes: dict = {}
    if name is not None:
        name = name.strip()
        if not name or len(name) > 120:
            raise _bad("name", "Enter a name of 1 to 120 characters.")
        changes["name"] = name
    if trigger_type is not None or trigger_config is not None:
        kind = trigger_type if trigger_type is not None else scenario.trigger_type
        config = trigger_config if trigger_config is not None else (
            scenario.trigger_config if kind == scenario.trigger_type else {})
        changes["trigger_type"] = kind
        changes["trigger_config"] = scenario_trigger_clean(kind, config, workspace=scenario.workspace)
    if steps is not None:
        changes["steps"] = scenario_steps_clean(scenario.workspace, steps)
    if enabled is not None:
        changes["enabled"] = bool(enabled)
    if changes:
        Scenario.objects.filter(pk=scenario.pk).update(**changes)
        for field, value in changes.items():
            setattr(scenario, field, value)
    return scenario


def scenario_set_enabled(*, scenario: Scenario, enabled: bool) -> Scenario:
    Scenario.objects.filter(pk=scenario.pk).update(enabled=bool(enabled))
    scenario.enabled = bool(enabled)
    return scenario


# --- runs -----------------------------------------------------------------------------------------

def _queue_execute(run_id: int) -> None:
    enqueue.scenario_run_execute(run_id)


def scenario_start(
    *, scenario: Scenario, contact: Contact, trigger_key: str, trigger_type: str = "", reply_to_comment_id: str = "",
    data: dict | None = None,
) -> ScenarioRun | None:
    """Create the run for one triggering event and execute it after commit; None if it already ran."""
    if contact.workspace_id != scenario.workspace_id:
        raise ValueError("The contact belongs to another workspace.")
    try:
        with transaction.atomic():
            run = ScenarioRun.objects.create(
                scenario=scenario, workspace_id=scenario.workspace_id, contact=contact,
                trigger_key=trigger_key[:255], trigger_type=trigger_type[:24],
                reply_to_comment_id=reply_to_comment_id[:64], data=data or {},
            )
            transaction.on_commit(lambda: _queue_execute(run.pk))
    except IntegrityError:
        return None  # this event already started this scenario
    return run


def _log(run: ScenarioRun, index: int, step_type: str, outcome: str, detail: str = "") -> None:
    ScenarioStepLog.objects.create(run=run, step_index=index, step_type=step_type, outcome=outcome,
                                   detail=detail[:2000])


def _private_reply_id(run: ScenarioRun) -> str:
    # Meta allows one private reply per comment: the first message of a comment-triggered run.
    if run.reply_to_comment_id and not run.data.get("private_reply_used"):
        return run.reply_to_comment_id
    return ""


def _send(run: ScenarioRun, index: int, text: str, suffix: str = "") -> str:
    reply_id = _private_reply_id(run)
    result = send_message(
        workspace=run.workspace, contact=run.contact, text=text, origin=Message.Origin.AUTOMATED,
        idempotency_key=f"scenario-run:{run.pk}:step:{index}{suffix}", automation_ref=run.scenario.ref,
        reply_to_comment_id=reply_id,
    )
    if reply_id and result.status != DISCONNECTED:
        run.data = {**run.data, "private_reply_used": True}
        ScenarioRun.objects.filter(pk=run.pk).update(data=run.data)
    return result.status


def _pause(run: ScenarioRun, index: int, step: dict, *, reason: str = "") -> None:
    with transaction.atomic():
        paused_actions_create(
            workspace=run.workspace, kind=AutomationKind.SCENARIO, automation_ref=run.scenario.ref,
            action_type=PausedAction.ActionType.SCENARIO_RUN, needs_window=step["type"] in MESSAGE_STEPS,
            private_reply=bool(_private_reply_id(run)), reason=reason,
            items=[PauseItem(run.contact, f"scenario-run:{run.pk}", {"run_id": run.pk, "step": index})],
        )
        ScenarioRun.objects.filter(pk=run.pk, status=ScenarioRun.Status.RUNNING).update(
            status=ScenarioRun.Status.LIMITED, next_step=index
        )
        detail = (f"{DISCONNECTED_REASON}: paused until the account is reconnected." if reason
                  else "Monthly quota reached: paused until headroom appears.")
        _log(run, index, step["type"], "limited", detail)


def _store_answer(contact: Contact, target: str, value: str) -> None:
    if target in ("email", "phone"):
        Contact.objects.filter(pk=contact.pk).update(**{target: value})
    else:
        key = target.split(":", 1)[1]
        contact.refresh_from_db(fields=["custom_fields"])
        Contact.objects.filter(pk=contact.pk).update(custom_fields={**(contact.custom_fields or {}), key: value})


def _execute_step(run: ScenarioRun, index: int, step: dict) -> str:
    kind = step["type"]
    contact = run.contact
    if kind == "send_message":
        return _send(run, index, step["text"])
    if kind == "ask_question":
        status = _send(run, index, step["text"])
        if status != Message.Status.SENT:
            return status
        with transaction.atomic():
            # A newer question supersedes an unanswered older one: an answer can only mean one thing.
            PendingQuestion.objects.filter(contact=contact, answered_at__isnull=True).update(
                answered_at=timezone.now(), answer=""
            )
            PendingQuestion.objects.create(
                workspace=run.workspace, contact=contact, run=run, step_index=index, field=step["field"],
                answer_type=step["answer_type"],
            )
        return "waiting_answer"
    if kind == "add_tag":
        tag, _ = Tag.objects.get_or_create(workspace=run.workspace, name=step["tag"])
        contact.tags.add(tag)
        return "tagged"
    if kind == "add_to_segment":
        segment = Segment.objects.filter(pk=step["segment_id"], workspace=run.workspace).first()
        if segment is None:
            return "segment_deleted"
        SegmentMembership.objects.get_or_create(segment=segment, contact=contact,
                                                defaults={"automation_ref": run.scenario.ref})
        return "added"
    if kind == "call_integration":
        integration = Integration.objects.filter(pk=step["integration_id"], workspace=run.workspace).first()
        if integration is None or not integration.enabled:
            return "integration_off"
        delivery = integration_push(
            integration=integration, contact=contact, event="scenario.step",
            idempotency_key=f"scenario-run:{run.pk}:step:{index}", data={"scenario_id": run.scenario_id, **run.data},
        )
        return "queued" if delivery is not None else "limited"
    raise ValueError(f"Unknown step type {kind!r}")


def _queue_continue(run_id: int, step: int, seconds: int) -> None:
    enqueue.scenario_run_continue(run_id, step, countdown=seconds)


class ScenarioRunBusy(Exception):
    """Another worker is executing this run right now."""


def scenario_run_execute(*, run_id: int) -> ScenarioRun:
    """Run the steps from `next_step` until the end, a wait, a question or the quota.

    Raises ScenarioRunBusy while another worker holds the run's lease (a redelivered task).
    """
    now = timezone.now()
    claimed = ScenarioRun.objects.filter(pk=run_id, status=ScenarioRun.Status.RUNNING).filter(
        Q(executing_until__isnull=True) | Q(executing_until__lt=now)
    ).update(executing_until=now + RUN_LEASE)
    if not claimed:
        run = ScenarioRun.objects.get(pk=run_id)
        if run.status == ScenarioRun.Status.RUNNING:
            raise ScenarioRunBusy(f"Scenario run {run_id} is being executed by another worker.")
        return run
    followups: list = []
    try:
        run = _execute_claimed(run_id, followups)
    finally:
        ScenarioRun.objects.filter(pk=run_id).update(executing_until=None)
    run.executing_until = None
    for followup in followups:  # queued only once the lease is released
        transaction.on_commit(followup)
    return run


def _window_open(run: ScenarioRun) -> bool:
    """Would Meta accept an automated message to the run's contact now (rule 14)? The first message of
    a comment-triggered run is a private reply (7 days after the comment), the rest need the 24-hour
    window; the rule itself is contacts.messaging.window_is_open."""
    return window_is_open(run.contact, private_reply=bool(_private_reply_id(run)))


def _execute_claimed(run_id: int, followups: list) -> ScenarioRun:
    run = ScenarioRun.objects.select_related("scenario", "contact", "workspace").get(pk=run_id)
    steps = run.scenario.steps or []
    index = run.next_step
    while index < len(steps):
        step = steps[index]
        if step["type"] == "wait":
            if ScenarioRun.objects.filter(pk=run.pk, status=ScenarioRun.Status.RUNNING, next_step=index).update(
                status=ScenarioRun.Status.WAITING, next_step=index + 1
            ):
                _log(run, index, "wait", "waiting", f"{step['seconds']} seconds")
                followups.append(lambda i=index + 1, s=step["seconds"]: _queue_continue(run.pk, i, s))
            break
        if step["type"] in MESSAGE_STEPS and sending_blocked(workspace_id=run.workspace_id):
            # The Instagram connection is broken: the run waits before the gate (nothing charged).
            _pause(run, index, step, reason=DISCONNECTED_REASON)
            break
        if step["type"] in MESSAGE_STEPS and _private_reply_id(run) and _window_open(run):
            wait = private_reply_wait(workspace=run.workspace)
            if wait > 0:
                # The account's private replies of the hour are used up: this one waits its turn (its
                # 7-day window is checked again then). A reservation is not held across the wait.
                _release_held(run, "private_reply_paced")
                if ScenarioRun.objects.filter(pk=run.pk, status=ScenarioRun.Status.RUNNING).update(
                    status=ScenarioRun.Status.WAITING, next_step=index
                ):
                    seconds = max(1, math.ceil(wait))
                    _log(run, index, step["type"], "paced",
                         f"Private replies of the hour used up: sent in {seconds} s.")
                    followups.append(lambda i=index, s=seconds: _queue_continue(run.pk, i, s))
                break
        if not run.engaged:
            if step["type"] in MESSAGE_STEPS and not _window_open(run):
                # Rule 14: outside Meta's window nothing is sent, so nothing reaches the gate.
                _release_held(run, "skipped_window")
                _log(run, index, step["type"], Message.Status.SKIPPED_WINDOW,
                     "Messaging window closed: not sent, nothing charged.")
                index += 1
                ScenarioRun.objects.filter(pk=run.pk).update(next_step=index)
                continue
            if run.held_month is None:
                decision = activate(run.workspace, run.contact, kind=AutomationKind.SCENARIO, ref=run.scenario.ref,
                                    confirm=False)
                if not decision.allowed:
                    _pause(run, index, step)
                    usage_alerts_check(workspace=run.workspace)
                    break
                if decision.held:
                    # Kept on the run, so a retried execution settles this reservation, not a new one.
                    run.held_month = decision.month
                    ScenarioRun.objects.filter(pk=run.pk).update(held_month=decision.month)
                else:
                    run.engaged = True
                    ScenarioRun.objects.filter(pk=run.pk).update(engaged=True)
                if decision.newly_activated:
                    usage_alerts_check(workspace=run.workspace)
        outcome = _execute_step(run, index, step)
        if outcome == DISCONNECTED:
            # Meta rejected the token mid-run: nothing engaged the contact, so the reservation goes back,
            # and the run waits for the reconnect (the resume asks the gate again).
            _release_held(run, "instagram_disconnected")
            _pause(run, index, step, reason=DISCONNECTED_REASON)
            break
        if run.held_month is not None:
            _settle_held(run, outcome)
        _log(run, index, step["type"], outcome)
        index += 1
        if outcome == "waiting_answer":
            ScenarioRun.objects.filter(pk=run.pk, status=ScenarioRun.Status.RUNNING).update(
                status=ScenarioRun.Status.WAITING_ANSWER, next_step=index
            )
            break
        ScenarioRun.objects.filter(pk=run.pk).update(next_step=index)
    else:
        _release_held(run, "run_ended")
        ScenarioRun.objects.filter(pk=run.pk, status=ScenarioRun.Status.RUNNING).update(
            status=ScenarioRun.Status.COMPLETED, finished_at=timezone.now(), next_step=len(steps)
        )
    run.refresh_from_db()
    return run


def _claim_held(run: ScenarioRun) -> datetime.date | None:
    """Take the run's reservation off it, once (a conditional update): the caller settles it."""
    month = run.held_month
    if month is None or not ScenarioRun.objects.filter(pk=run.pk, held_month=month).update(held_month=None):
        return None
    run.held_month = None
    return month


def _settle_held(run: ScenarioRun, outcome: str) -> None:
    """After the run's first engaging step: confirm its reservation if the step engaged the contact
    (the contact is then activated for the rest of the run), release it if not (a later step asks
    the gate again). A step that queued an integration push hands on: the push holds its own."""
    month = _claim_held(run)
    if month is None:
        return
    engaged = outcome_settle(workspace_id=run.workspace_id, month=month, kind=AutomationKind.SCENARIO,
                             ref=run.scenario.ref, contact_id=run.contact_id,
                             outcome="handed_to_integration" if outcome == "queued" else outcome)
    if engaged:
        run.engaged = True
        ScenarioRun.objects.filter(pk=run.pk).update(engaged=True)


def _release_held(run: ScenarioRun, reason: str) -> None:
    month = _claim_held(run)
    if month is not None:
        reservation_settle(workspace_id=run.workspace_id, month=month, kind=AutomationKind.SCENARIO,
                           ref=run.scenario.ref, not_engaged=[run.contact_id], reason=reason)


def scenario_run_continue(*, run_id: int, step: int) -> ScenarioRun | None:
    """After a wait: continue once (the conditional update is the claim)."""
    if not ScenarioRun.objects.filter(pk=run_id, status=ScenarioRun.Status.WAITING, next_step=step).update(
        status=ScenarioRun.Status.RUNNING
    ):
        return None
    _queue_execute(run_id)  # the execute task retries while another worker holds the run
    return ScenarioRun.objects.get(pk=run_id)


def scenario_run_resume(*, action: PausedAction, now: datetime.datetime) -> str:
    """A paused run the gate now allows: continue from the step it stopped at.

    The reservation the resume took is handed to the run (`held_month`), settled by that step's
    outcome; a contact already activated needs none (`engaged`)."""
    run_id = action.payload["run_id"]
    held = getattr(action, "held_month", None) if getattr(action, "may_release", True) else None
    in_flight = getattr(action, "held_month", None) is not None
    if not ScenarioRun.objects.filter(pk=run_id, status=ScenarioRun.Status.LIMITED).update(
        status=ScenarioRun.Status.RUNNING, engaged=not in_flight, held_month=held
    ):
        return "run_not_limited"
    _queue_execute(run_id)
    return "run_queued"


def scenario_runs_expired(*, actions: list[PausedAction], now: datetime.datetime) -> None:
    ScenarioRun.objects.filter(
        pk__in=[a.payload["run_id"] for a in actions], status=ScenarioRun.Status.LIMITED
    ).update(status=ScenarioRun.Status.EXPIRED, finished_at=now)


# --- answers --------------------------------------------------------------------------------------

def answer_validate(answer_type: str, text: str) -> tuple[str | None, str]:
    """(clean value, '') or (None, what is wrong)."""
    text = (text or "").strip()
    if not text:
        return None, "empty"
    if answer_type == "email":
        try:
            validate_email(text)
        except ValidationError:
            return None, "not an email address"
        return text.lower(), ""
    if answer_type == "phone":
        digits = re.sub(r"\D", "", text)
        if not _PHONE.match(text) or not 7 <= len(digits) <= 15:
            return None, "not a phone number"
        return ("+" if text.startswith("+") else "") + digits, ""
    return text[:1000], ""


def question_answer(*, contact: Contact, event: InboundEvent) -> bool:
    """Treat an inbound message as the answer to the contact's open question; True if it was one."""
    question = (
        PendingQuestion.objects.select_related("run", "run__scenario", "run__workspace", "run__contact")
        .filter(contact=contact, answered_at__isnull=True)
        .first()
    )
    if question is None:
        return False
    run = question.run
    value, problem = answer_validate(question.answer_type, event.text)
    if value is None:
        step = (run.scenario.steps or [])[question.step_index] if question.step_index < len(run.scenario.steps) else {}
        _log(run, question.step_index, "ask_question", "invalid_answer", problem)
        if step.get("retry_text"):
            _send(run, question.step_index, step["retry_text"], suffix=f":retry:{event.meta_id or event.occurred_at}")
        return True
    with transaction.atomic():
        if not PendingQuestion.objects.filter(pk=question.pk, answered_at__isnull=True).update(
            answered_at=timezone.now(), answer=value
        ):
            return True  # answered by a concurrent delivery
        _store_answer(contact, question.field, value)
        _log(run, question.step_index, "ask_question", "answered", f"{question.field} = {value}")
        if ScenarioRun.objects.filter(pk=run.pk, status=ScenarioRun.Status.WAITING_ANSWER).update(
            status=ScenarioRun.Status.RUNNING, data={**run.data, question.field: value}
        ):
            transaction.on_commit(lambda: _queue_execute(run.pk))
    return True


def _trigger_key(scenario: Scenario, event: InboundEvent) -> str:
    if scenario.trigger_type == Scenario.Trigger.NEW_CONTACT:
        return f"new_contact:{event.contact_id}"  # once per contact, whatever event captured it
    if scenario.trigger_type == Scenario.Trigger.NEXT_MESSAGE:
        return f"next_message:{event.contact_id}"  # the next message only, not every one after it
    return event.meta_id or f"{event.type}:{event.contact_id}:{event.occurred_at.isoformat()}"


def inbound_event_handle(event: InboundEvent) -> list[ScenarioRun]:
    """The contacts.hooks listener: answer an open question, else start every matching scenario."""
    contact = Contact.objects.filter(pk=event.contact_id, workspace_id=event.workspace_id).first()
    if contact is None:
        return []
    if event.type in MESSAGE_EVENTS and event.text and question_answer(contact=contact, event=event):
        return []
    started = []
    scenarios = Scenario.objects.filter(workspace_id=event.workspace_id, enabled=True).exclude(
        trigger_type=Scenario.Trigger.WEBHOOK
    ).order_by("id")
    for scenario in scenarios:
        if not scenario_matches(scenario, event):
            continue
        run = scenario_start(
            scenario=scenario, contact=contact, trigger_key=_trigger_key(scenario, event), trigger_type=event.type,
            reply_to_comment_id=event.comment_id if event.type in COMMENT_EVENTS else "",
        )
        if run is not None:
            started.append(run)
    return started


def scenario_webhook_fire(*, scenario: Scenario, contact: Contact, event_id: str, data: dict) -> ScenarioRun | None:
    """An outside system triggered the scenario (already authenticated by its secret)."""
    if not scenario.enabled:
        raise ApplicationError("This scenario is turned off.", code="scenario_disabled", status=409)
    key = f"webhook:{event_id}" if event_id else f"webhook:{timezone.now().isoformat()}:{contact.pk}"
    return scenario_start(scenario=scenario, contact=contact, trigger_key=key, trigger_type="webhook", data=data)

