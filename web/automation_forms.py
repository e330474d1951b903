"""Forms of the automation pages: campaigns, scenarios (trigger and steps), segments (rules and schedule)
and outgoing integrations.

The forms collect and shape input; the automations services check it (one set of rules for the web,
the API and the admin), and their ApplicationError fields are mapped back onto the form's fields
(`apply_service_error`), so each message sits under the input it is about.
"""

import datetime

from django import forms
from django.utils import timezone

from automations.models import Campaign, Integration, Scenario, Segment
from automations.services.scenarios import ANSWER_TYPES, MAX_WAIT_SECONDS, STEP_TYPES, STORY_TRIGGER_EVENTS
from contacts.models import Contact, Folder
from inro.errors import ApplicationError

STEP_LABELS = {
    "send_message": "Send a message",
    "ask_question": "Ask a question",
    "add_tag": "Add a tag",
    "add_to_segment": "Add to a segment",
    "wait": "Wait",
    "call_integration": "Push to an integration",
}
STORY_EVENT_LABELS = {"story_reply": "Replies to your stories", "story_mention": "Mentions in their stories",
                      "mention": "Mentions in posts and comments"}
WAIT_UNITS = {"minutes": 60, "hours": 3600, "days": 86400}


def apply_service_error(form: forms.Form, error: ApplicationError, names: dict[str, str] | None = None) -> None:
    """Put a service's refusal under the form's fields it names (`names` maps service fields to form
    fields); what names no field of the form goes on top of the form."""
    names = names or {}
    placed = False
    for key, messages in (error.fields or {}).items():
        field = names.get(key, key)
        if field in form.fields:
            for message in messages if isinstance(messages, list | tuple) else [messages]:
                form.add_error(field, str(message))
            placed = True
    if not placed:
        form.add_error(None, error.message)


# --- Campaigns ------------------------------------------------------------------------------------


class CampaignForm(forms.Form):
    name = forms.CharField(label="Name", max_length=120,
                           error_messages={"required": "Give the campaign a name.",
                                           "max_length": "At most 120 characters."})
    text = forms.CharField(label="Message", max_length=1000, widget=forms.Textarea(attrs={"rows": 4}),
                           help_text="Sent as a direct message, once per contact.",
                           error_messages={"required": "Write the message to send.",
                                           "max_length": "Instagram messages here are at most 1,000 characters."})
    audience = forms.ChoiceField(label="Audience", choices=Campaign.Audience.choices, initial=Campaign.Audience.ALL,
                                 error_messages={"invalid_choice": "Choose all contacts, a segment or a folder."})
    segment = forms.TypedChoiceField(label="Segment", required=False, coerce=int, empty_value=None,
                                     help_text="For the audience “A segment”.",
                                     error_messages={"invalid_choice": "Choose one of this workspace's segments."})
    folder = forms.TypedChoiceField(label="Folder", required=False, coerce=int, empty_value=None,
                                    help_text="For the audience “A folder”.",
                                    error_messages={"invalid_choice": "Choose one of this workspace's folders."})
    scheduled_at = forms.DateTimeField(
        label="Send at (UTC)", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"},
                                                                          format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        help_text="Leave empty to send as soon as you launch it.",
        error_messages={"invalid": "Enter a date and time, e.g. 2026-12-24 09:00."},
    )

    def __init__(self, *args, segments: list[Segment], folders: list[Folder], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._segments = {s.pk: s for s in segments}
        self._folders = {f.pk: f for f in folders}
        self.fields["segment"].choices = [("", "Choose a segment")] + [(str(s.pk), s.name) for s in segments]
        self.fields["folder"].choices = [("", "Choose a folder")] + [(str(f.pk), f.name) for f in folders]

    def clean_scheduled_at(self):
        moment = self.cleaned_data.get("scheduled_at")
        if moment is None:
            return None
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, datetime.UTC)
        if moment <= timezone.now():
            raise forms.ValidationError("Choose a moment in the future, or leave it empty to send at launch.")
        return moment

    def clean(self):
        data = super().clean()
        audience = data.get("audience")
        if audience == Campaign.Audience.SEGMENT and not data.get("segment"):
            self.add_error("segment", "Choose the segment to send to.")
        if audience == Campaign.Audience.FOLDER and not data.get("folder"):
            self.add_error("folder", "Choose the folder to send to.")
        return data

    def service_values(self) -> dict:
        data = self.cleaned_data
        return {"name": data["name"], "text": data["text"], "audience": data["audience"],
                "segment": self._segments.get(data.get("segment")) if data["audience"] == "segment" else None,
                "folder": self._folders.get(data.get("folder")) if data["audience"] == "folder" else None,
                "scheduled_at": data.get("scheduled_at")}


# --- Scenarios ------------------------------------------------------------------------------------


def _words(value: str) -> list[str]:
    return [part.strip() for part in (value or "").replace("\n", ",").split(",") if part.strip()]


class ScenarioForm(forms.Form):
    name = forms.CharField(label="Name", max_length=120,
                           error_messages={"required": "Give the scenario a name.",
                                           "max_length": "At most 120 characters."})
    enabled = forms.BooleanField(label="On: start runs as soon as it is saved", required=False, initial=True)
    trigger_type = forms.ChoiceField(label="Trigger", choices=Scenario.Trigger.choices,
                                     error_messages={"invalid_choice": "Choose a trigger from the list."})
    keywords = forms.CharField(label="Keywords", required=False, max_length=2000,
                               help_text="Separated by commas. Case and accents do not matter. "
                                         "Needed for a DM keyword; for comments, leave empty to answer every comment.")
    match = forms.ChoiceField(label="Match", required=False, choices=[("any", "Any keyword"), ("all", "All keywords")])
    exact = forms.BooleanField(label="The whole message is the keyword", required=False)
    media_id = forms.CharField(label="Post (media id)", required=False, max_length=64,
                               help_text="Comments: only on this post. Empty: every post.")
    events = forms.MultipleChoiceField(
        label="Story events", required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(event, STORY_EVENT_LABELS[event]) for event in STORY_TRIGGER_EVENTS],
        help_text="Story trigger: which events start it (both story events when none is ticked).")
    ad_id = forms.CharField(label="Ad id", required=False, max_length=64,
                            help_text="Ad referral: only this ad. Empty: every click-to-DM ad.")
    trigger_segment = forms.TypedChoiceField(
        label="Segment whose contacts' next message starts it", required=False, coerce=int, empty_value=None,
        error_messages={"invalid_choice": "Choose one of this workspace's segments."})

    def __init__(self, *args, segments: list[Segment], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["trigger_segment"].choices = [("", "Choose a segment")] + [(str(s.pk), s.name) for s in segments]

    SERVICE_FIELDS = {"trigger_config.keywords": "keywords", "trigger_config.match": "match",
                      "trigger_config.media_id": "media_id", "trigger_config.events": "events",
                      "trigger_config.ad_id": "ad_id", "trigger_config.segment_id": "trigger_segment",
                      "trigger_type": "trigger_type", "name": "name"}

    @classmethod
    def initial_for(cls, scenario: Scenario) -> dict:
        config = scenario.trigger_config or {}
        return {"name": scenario.name, "enabled": scenario.enabled, "trigger_type": scenario.trigger_type,
                "keywords": ", ".join(config.get("keywords", [])), "match": config.get("match", "any"),
                "exact": config.get("exact", False), "media_id": config.get("media_id", ""),
                "events": config.get("events", []), "ad_id": config.get("ad_id", ""),
                "trigger_segment": config.get("segment_id")}

    def trigger_config(self) -> dict:
        data = self.cleaned_data
        kind = data["trigger_type"]
        if kind == Scenario.Trigger.DM_KEYWORD:
            return {"keywords": _words(data.get("keywords")), "match": data.get("match") or "any",
                    "exact": bool(data.get("exact"))}
        if kind == Scenario.Trigger.COMMENT:
            config = {"media_id": data.get("media_id", "")}
            if _words(data.get("keywords")):
                config.update(keywords=_words(data.get("keywords")), match=data.get("match") or "any",
                              exact=bool(data.get("exact")))
            return config
        if kind == Scenario.Trigger.STORY:
            return {"events": data.get("events")} if data.get("events") else {}
        if kind == Scenario.Trigger.AD_REFERRAL:
            return {"ad_id": data.get("ad_id", "")}
        if kind == Scenario.Trigger.NEXT_MESSAGE:
            return {"segment_id": data.get("trigger_segment")}
        return {}


class StepForm(forms.Form):
    type = forms.ChoiceField(label="Step", required=False,
                             choices=[("", "No step (leave empty)")] + [(t, STEP_LABELS[t]) for t in STEP_TYPES])
    text = forms.CharField(label="Message or question", required=False, max_length=1000,
                           widget=forms.Textarea(attrs={"rows": 2}))
    field = forms.CharField(label="Store the answer in", required=False, max_length=71,
                            help_text="email, phone or custom:<name>")
    answer_type = forms.ChoiceField(label="Answer type", required=False,
                                    choices=[("", "Same as the field (text for custom)")]
                                    + [(a, a.title()) for a in ANSWER_TYPES])
    retry_text = forms.CharField(label="When the answer is not valid, say", required=False, max_length=1000)
    tag = forms.CharField(label="Tag", required=False, max_length=64)
    segment = forms.TypedChoiceField(label="Segment", required=False, coerce=int, empty_value=None)
    wait = forms.IntegerField(label="Wait for", required=False, min_value=1, max_value=MAX_WAIT_SECONDS)
    unit = forms.ChoiceField(label="Unit", required=False, initial="hours",
                             choices=[(u, u.title()) for u in WAIT_UNITS])
    integration = forms.TypedChoiceField(label="Integration", required=False, coerce=int, empty_value=None)

    def __init__(self, *args, segments: list[Segment], integrations: list[Integration], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["segment"].choices = [("", "Choose a segment")] + [(str(s.pk), s.name) for s in segments]
        self.fields["integration"].choices = [("", "Choose an integration")] + [
            (str(i.pk), i.name) for i in integrations]

    @staticmethod
    def initial_for(step: dict) -> dict:
        initial = {"type": step["type"], "text": step.get("text", ""), "field": step.get("field", ""),
                   "answer_type": step.get("answer_type", ""), "retry_text": step.get("retry_text", ""),
                   "tag": step.get("tag", ""), "segment": step.get("segment_id"),
                   "integration": step.get("integration_id")}
        if step["type"] == "wait":
            seconds = step["seconds"]
            unit = next((u for u in ("days", "hours", "minutes") if seconds % WAIT_UNITS[u] == 0), None)
            initial.update(wait=seconds // WAIT_UNITS[unit] if unit else seconds, unit=unit or "minutes")
        return initial

    def step(self) -> dict | None:
        """The step as the engine reads it (the engine checks it), or None for an empty row."""
        data = self.cleaned_data
        kind = data.get("type")
        if not kind:
            return None
        if kind == "send_message":
            return {"type": kind, "text": data.get("text", "")}
        if kind == "ask_question":
            step = {"type": kind, "text": data.get("text", ""), "field": data.get("field", "").strip(),
                    "retry_text": data.get("retry_text", "")}
            if data.get("answer_type"):
                step["answer_type"] = data["answer_type"]
            return step
        if kind == "add_tag":
            return {"type": kind, "tag": data.get("tag", "")}
        if kind == "add_to_segment":
            return {"type": kind, "segment_id": data.get("segment")}
        if kind == "wait":
            amount = data.get("wait")
            return {"type": kind, "seconds": amount * WAIT_UNITS.get(data.get("unit") or "hours", 3600)
                    if amount else None}
        return {"type": kind, "integration_id": data.get("integration")}


STEP_SERVICE_FIELDS = {"text": "text", "field": "field", "answer_type": "answer_type", "retry_text": "retry_text",
                       "tag": "tag", "segment_id": "segment", "seconds": "wait", "integration_id": "integration"}

StepFormSet = forms.formset_factory(StepForm, extra=0, max_num=50, absolute_max=60)


# --- Segments -------------------------------------------------------------------------------------


class SegmentForm(forms.Form):
    name = forms.CharField(label="Name", max_length=120,
                           error_messages={"required": "Give the segment a name.",
                                           "max_length": "At most 120 characters."})
    sources = forms.MultipleChoiceField(label="Came from", required=False, choices=Contact.Source.choices,
                                        widget=forms.CheckboxSelectMultiple,
                                        help_text="None ticked: any source.")
    tags_any = forms.CharField(label="Has any of these tags", required=False, max_length=1000,
                               help_text="Separated by commas.")
    tags_all = forms.CharField(label="Has all of these tags", required=False, max_length=1000)
    tags_none = forms.CharField(label="Has none of these tags", required=False, max_length=1000)
    last_inbound_after = forms.DateTimeField(
        label="Wrote to you after (UTC)", required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        error_messages={"invalid": "Enter a date and time, e.g. 2026-12-01 00:00."})
    captured_after = forms.DateTimeField(
        label="Captured after (UTC)", required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        error_messages={"invalid": "Enter a date and time, e.g. 2026-12-01 00:00."})
    activated_this_month = forms.ChoiceField(
        label="Activated this month", required=False,
        choices=[("", "Either"), ("yes", "Yes: already counted (free to engage again)"),
                 ("no", "No: engaging them uses an activation")])
    custom_fields = forms.CharField(label="Custom fields equal to", required=False, max_length=2000,
                                    widget=forms.Textarea(attrs={"rows": 2}),
                                    help_text="One per line, as name=value (e.g. size=M).")
    run_every = forms.ChoiceField(label="Run by itself", choices=Segment.RunEvery.choices,
                                  initial=Segment.RunEvery.NEVER,
                                  help_text="Each run places the matching contacts in the segment, each through "
                                            "your quota (segmentation).")

    RULE_FIELDS = ("sources", "tags_any", "tags_all", "tags_none", "last_inbound_after", "captured_after",
                   "activated_this_month", "custom_fields")

    @classmethod
    def initial_for(cls, segment: Segment) -> dict:
        rules = segment.rules or {}
        initial = {"name": segment.name, "run_every": segment.run_every, "sources": rules.get("sources", []),
                   "tags_any": ", ".join(rules.get("tags_any", [])), "tags_all": ", ".join(rules.get("tags_all", [])),
                   "tags_none": ", ".join(rules.get("tags_none", [])),
                   "custom_fields": "\n".join(f"{k}={v}" for k, v in rules.get("custom_fields", {}).items()),
                   "activated_this_month": {True: "yes", False: "no"}.get(rules.get("activated_this_month"), "")}
        for key in ("last_inbound_after", "captured_after"):
            if rules.get(key):
                initial[key] = datetime.datetime.fromisoformat(rules[key]).strftime("%Y-%m-%dT%H:%M")
        return initial

    def clean_custom_fields(self) -> dict:
        pairs = {}
        for number, line in enumerate((self.cleaned_data.get("custom_fields") or "").splitlines(), start=1):
            if not line.strip():
                continue
            if "=" not in line:
                raise forms.ValidationError(f"Line {number}: write name=value.")
            name, value = line.split("=", 1)
            pairs[name.strip()] = value.strip()
        return pairs

    def rules(self) -> dict:
        data = self.cleaned_data
        rules: dict = {}
        if data.get("sources"):
            rules["sources"] = data["sources"]
        for key in ("tags_any", "tags_all", "tags_none"):
            if _words(data.get(key)):
                rules[key] = _words(data[key])
        for key in ("last_inbound_after", "captured_after"):
            if data.get(key):
                moment = data[key]
                rules[key] = (timezone.make_aware(moment, datetime.UTC) if timezone.is_naive(moment)
                              else moment).isoformat()
        if data.get("activated_this_month"):
            rules["activated_this_month"] = data["activated_this_month"] == "yes"
        if data.get("custom_fields"):
            rules["custom_fields"] = data["custom_fields"]
        return rules

    SERVICE_FIELDS = {f"rules.{key}": key for key in RULE_FIELDS} | {"run_every": "run_every", "name": "name"}


# --- Integrations ---------------------------------------------------------------------------------


class IntegrationForm(forms.Form):
    name = forms.CharField(label="Name", max_length=120,
                           error_messages={"required": "Give the integration a name.",
                                           "max_length": "At most 120 characters."})
    url = forms.CharField(label="URL", max_length=500,
                          widget=forms.TextInput(attrs={"type": "url", "placeholder": "https://example.com/inro-hook",
                                                        "inputmode": "url"}),
                          help_text="Contacts are POSTed here as JSON, signed with the secret. Only public "
                                    "internet addresses: private, loopback and link-local ones are refused.",
                          error_messages={"required": "Enter the URL to push to.",
                                          "max_length": "At most 500 characters."})
    enabled = forms.BooleanField(label="On", required=False, initial=True)
