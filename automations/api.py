"""API endpoints of automations: segments (runs, enrichment), campaigns (preview, launch, cancel),
scenarios, outgoing integrations, paused actions.

Who may do what (the role matrix, docs/roles.md): every member reads all of it; owners and admins
create, edit, launch and cancel campaigns, create and edit scenarios and segments, start segmentation
runs and enrichment jobs, and configure integrations.
"""

import jsonschema
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.api_base import WorkspaceView, idempotent
from accounts.models import Membership
from automations import selectors, services
from automations.models import Campaign, EnrichmentJob, Integration, PausedAction, Scenario, Segment
from automations.services.campaigns import campaign_critical_set, campaign_delete, campaign_update
from automations.services.scenarios import MAX_WAIT_SECONDS, STORY_TRIGGER_EVENTS
from automations.services.segments import segment_delete
from billing.models import AutomationKind
from contacts.models import Contact
from contacts.selectors import folder_list
from inro.api import (
    IDEMPOTENCY_PARAMETER,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    cursor_page,
    request_body_conditions,
    validated_query,
)
from inro.converters import MAX_ID
from inro.errors import ApplicationError

# --- Segments -------------------------------------------------------------------------------------


class SegmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    rules = serializers.DictField(help_text="Rules over contact fields: sources, tags_any, tags_all, tags_none, "
                                            "captured_after/before, last_inbound_after/before, custom_fields, "
                                            "activated_this_month.")
    size = serializers.IntegerField(help_text="Contacts in the segment now (counted live; counting is free).")
    created_at = serializers.DateTimeField()
    run_every = serializers.ChoiceField(choices=Segment.RunEvery.choices,
                                        help_text="How often a segmentation run places the matching contacts.")
    next_run_at = serializers.DateTimeField(allow_null=True, help_text="When the next scheduled run starts.")
    last_run_at = serializers.DateTimeField(allow_null=True)
    last_run_added = serializers.IntegerField(help_text="Contacts the last run placed (each through the gate).")
    last_run_limited = serializers.IntegerField(help_text="Contacts the last run paused at the quota (rule 4).")


class SegmentListSerializer(serializers.Serializer):
    results = SegmentSerializer(many=True)


_TAGS_SCHEMA = {"type": "array", "minItems": 1,
                "items": {"type": "string", "maxLength": 64, "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$"}}
_MOMENT_SCHEMA = {"type": "string", "format": "date-time"}


@extend_schema_field({
    "type": "object", "additionalProperties": False,
    "description": "Every rule given must hold. Tag names are matched in lower case; moments are ISO 8601 with "
                   "a time zone; custom_fields match exact values.",
    "properties": {
        "sources": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(Contact.Source.values)}},
        "tags_any": _TAGS_SCHEMA, "tags_all": _TAGS_SCHEMA, "tags_none": _TAGS_SCHEMA,
        "captured_after": _MOMENT_SCHEMA, "captured_before": _MOMENT_SCHEMA,
        "last_inbound_after": _MOMENT_SCHEMA, "last_inbound_before": _MOMENT_SCHEMA,
        "custom_fields": {
            "type": "object", "minProperties": 1,
            "propertyNames": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,64}$"},
            "additionalProperties": {"anyOf": [{"type": "string", "pattern": "^[^\\x00]*$"},
                                               {"type": "number"}, {"type": "boolean"}]},
        },
        "activated_this_month": {"type": "boolean"},
    },
})
class SegmentRulesField(serializers.DictField):
    """Segment rules: the schema states them; automations.services.segments checks them (the same)."""


_RUN_EVERY_HELP = "Segmentation runs on a schedule: never (by hand only), every hour, day or week."


class SegmentWriteSerializer(StrictSerializer):
    name = StrictCharField(max_length=120)
    rules = SegmentRulesField(required=False)
    run_every = serializers.ChoiceField(choices=Segment.RunEvery.choices, required=False, help_text=_RUN_EVERY_HELP)


class SegmentUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=120, required=False)
    rules = SegmentRulesField(required=False)
    run_every = serializers.ChoiceField(choices=Segment.RunEvery.choices, required=False, help_text=_RUN_EVERY_HELP)


def _segment_row(segment: Segment, size: int) -> dict:
    return {"id": segment.pk, "name": segment.name, "rules": segment.rules, "size": size,
            "created_at": segment.created_at, "run_every": segment.run_every, "next_run_at": segment.next_run_at,
            "last_run_at": segment.last_run_at, "last_run_added": segment.last_run_added,
            "last_run_limited": segment.last_run_limited}


def _segment_data(segment: Segment) -> dict:
    return _segment_row(segment, services.segment_size(segment=segment))


class SegmentListView(WorkspaceView):
    required_roles = {"POST": Membership.Role.ADMIN}
    extra_error_statuses = {"POST": (409,)}

    @extend_schema(operation_id="segments_list", responses={200: SegmentListSerializer}, tags=["segments"])
    def get(self, request, workspace_id):
        """Every segment with its live size."""
        rows = selectors.segment_list(workspace=self.workspace)
        return Response({"results": [_segment_row(r.segment, r.size) for r in rows]})

    @extend_schema(operation_id="segments_create", request=SegmentWriteSerializer,
                   responses={201: SegmentSerializer}, tags=["segments"])
    def post(self, request, workspace_id):
        """Create a segment (names are unique in a workspace: 409 when taken)."""
        serializer = SegmentWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        segment = services.segment_create(workspace=self.workspace, name=serializer.validated_data["name"],
                                          rules=serializer.validated_data.get("rules"))
        if serializer.validated_data.get("run_every"):
            services.segment_schedule_set(segment=segment, run_every=serializer.validated_data["run_every"])
        return Response(SegmentSerializer(_segment_data(segment)).data, status=status.HTTP_201_CREATED)


class _SegmentMixin:
    def get_segment(self, segment_id: int) -> Segment:
        segment = selectors.segment_get(workspace=self.workspace, segment_id=segment_id)
        if segment is None:
            raise NotFound("No such segment in this workspace.")
        return segment


class SegmentDetailView(_SegmentMixin, WorkspaceView):
    required_roles = {"PATCH": Membership.Role.ADMIN, "DELETE": Membership.Role.ADMIN}
    extra_error_statuses = {"PATCH": (409,), "DELETE": (409,)}

    @extend_schema(operation_id="segments_retrieve", responses={200: SegmentSerializer}, tags=["segments"])
    def get(self, request, workspace_id, segment_id):
        """One segment with its live size."""
        return Response(SegmentSerializer(_segment_data(self.get_segment(segment_id))).data)

    @extend_schema(operation_id="segments_partial_update", request=SegmentUpdateSerializer,
                   responses={200: SegmentSerializer}, tags=["segments"])
    def patch(self, request, workspace_id, segment_id):
        """Rename a segment, replace its rules, or change how often it runs."""
        segment = self.get_segment(segment_id)
        serializer = SegmentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        segment = services.segment_update(segment=segment, name=serializer.validated_data.get("name"),
                                          rules=serializer.validated_data.get("rules"))
        if serializer.validated_data.get("run_every"):
            services.segment_schedule_set(segment=segment, run_every=serializer.validated_data["run_every"])
        return Response(SegmentSerializer(_segment_data(segment)).data)

    @extend_schema(operation_id="segments_destroy", responses={204: None}, tags=["segments"])
    def delete(self, request, workspace_id, segment_id):
        """Delete a segment (409 while a campaign targets it)."""
        segment_delete(segment=self.get_segment(segment_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SegmentRunView(_SegmentMixin, WorkspaceView):
    required_roles = {"POST": Membership.Role.ADMIN}

    @extend_schema(operation_id="segments_run", request=None, responses={202: SegmentSerializer}, tags=["segments"])
    def post(self, request, workspace_id, segment_id):
        """Start a segmentation run now: every contact the rules select is placed in the segment, each
        through the gate (kind segmentation); those refused at the quota are paused. The run goes on in
        the background: its result shows in last_run_added and last_run_limited."""
        segment = services.segment_run_request(segment=self.get_segment(segment_id))
        return Response(SegmentSerializer(_segment_data(segment)).data, status=status.HTTP_202_ACCEPTED)


class EnrichmentJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    segment = serializers.IntegerField(source="segment_id", allow_null=True)
    status = serializers.ChoiceField(choices=EnrichmentJob.Status.choices)
    contacts = serializers.IntegerField(help_text="Contacts the job enriches (fixed when it starts).")
    enriched_count = serializers.IntegerField()
    limited_count = serializers.IntegerField(help_text="Paused at the quota (rule 4); enriched when headroom appears.")
    failed_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


def _job_data(job: EnrichmentJob) -> dict:
    return {"id": job.pk, "segment_id": job.segment_id, "status": job.status, "contacts": len(job.contact_ids),
            "enriched_count": job.enriched_count, "limited_count": job.limited_count,
            "failed_count": job.failed_count, "created_at": job.created_at, "finished_at": job.finished_at}


class SegmentEnrichView(_SegmentMixin, WorkspaceView):
    required_roles = {"POST": Membership.Role.ADMIN}
    extra_error_statuses = {"POST": (409,)}

    @extend_schema(operation_id="segments_enrich", request=None, responses={201: EnrichmentJobSerializer},
                   tags=["segments"])
    def post(self, request, workspace_id, segment_id):
        """Start an enrichment job on the segment's contacts as they are now (at most 10,000, most
        recently engaged first); each contact goes through the gate (kind enrichment). 409 when the
        segment is empty."""
        job = services.enrichment_job_for_segment(segment=self.get_segment(segment_id), requested_by=request.user)
        job.refresh_from_db()
        return Response(EnrichmentJobSerializer(_job_data(job)).data, status=status.HTTP_201_CREATED)


class EnrichmentJobListView(WorkspaceView):
    serializer_class = EnrichmentJobSerializer
    pagination_class = cursor_page("-created_at", "-id")

    @extend_schema(operation_id="enrichment_jobs_list", responses={200: EnrichmentJobSerializer(many=True)},
                   tags=["segments"])
    def get(self, request, workspace_id):
        """Enrichment jobs, newest first, with their counters."""
        page = self.paginate_queryset(selectors.enrichment_job_list(workspace=self.workspace))
        return self.get_paginated_response(EnrichmentJobSerializer([_job_data(j) for j in page], many=True).data)


# --- Campaigns ------------------------------------------------------------------------------------


class CampaignSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    text = serializers.CharField()
    audience = serializers.ChoiceField(choices=Campaign.Audience.choices)
    segment = serializers.IntegerField(source="segment_id", allow_null=True)
    folder = serializers.IntegerField(source="folder_id", allow_null=True)
    scheduled_at = serializers.DateTimeField(allow_null=True)
    status = serializers.ChoiceField(choices=Campaign.Status.choices)
    created_at = serializers.DateTimeField()
    launched_at = serializers.DateTimeField(allow_null=True)
    launched_by = serializers.IntegerField(source="launched_by_id", allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    recipients_count = serializers.IntegerField()
    sent_count = serializers.IntegerField()
    limited_count = serializers.IntegerField(help_text="Paused at the quota (rule 4); resume with headroom.")
    skipped_window_count = serializers.IntegerField()
    failed_count = serializers.IntegerField()
    critical = serializers.BooleanField(help_text="When headroom is short, its paused messages resume before other "
                                                  "paused actions (rule 16).")


class CampaignWriteSerializer(StrictSerializer):
    name = StrictCharField(max_length=120)
    text = StrictCharField(max_length=1000)
    audience = serializers.ChoiceField(choices=Campaign.Audience.choices, default=Campaign.Audience.ALL)
    segment = StrictIntegerField(min_value=1, max_value=MAX_ID, required=False, allow_null=True,
                                 help_text="Segment id, for audience \"segment\".")
    folder = StrictIntegerField(min_value=1, max_value=MAX_ID, required=False, allow_null=True,
                                help_text="Folder id, for audience \"folder\".")
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True,
                                             help_text="Send at this time once launched; now when empty.")


class CampaignUpdateSerializer(CampaignWriteSerializer):
    name = StrictCharField(max_length=120, required=False)
    text = StrictCharField(max_length=1000, required=False)
    audience = serializers.ChoiceField(choices=Campaign.Audience.choices, required=False)
    critical = StrictBooleanField(required=False, help_text="Mark the campaign critical (owners and admins; "
                                                                  "at any stage, launched or not).")


class CampaignPreviewSerializer(serializers.Serializer):
    audience = serializers.IntegerField(help_text="Contacts in the audience.")
    already_active = serializers.IntegerField(help_text="Already activated this month: free to message.")
    would_activate = serializers.IntegerField(help_text="New activations a launch now would use.")
    would_be_limited = serializers.IntegerField(help_text="Would be paused at the quota (rule 4).")
    outside_window = serializers.IntegerField(help_text="Messaging window closed: not messaged, not counted.")
    reserve = serializers.IntegerField(help_text="Activations kept for people who write to you: campaigns leave them.")
    critical = serializers.BooleanField()
    waiting_now = serializers.IntegerField(help_text="Paused actions of the workspace waiting now.")
    waiting_before = serializers.IntegerField(help_text="Paused actions that would resume before this campaign's "
                                                        "paused contacts, as it is flagged.")
    waiting_before_if_critical = serializers.IntegerField(help_text="The same if it were marked critical.")
    critical_words = serializers.CharField(help_text="How the critical flag changes who is reached.")


def _audience_needs(target: str, *, required: bool) -> dict:
    """The audience "segment" needs a segment id (and "folder" a folder id): required in a new campaign;
    in an edit, not null when given (left out, the campaign's own is kept)."""
    then = {"properties": {target: {"type": "integer"}}}
    if required:
        then["required"] = [target]
    return {"if": {"required": ["audience"], "properties": {"audience": {"const": target}}}, "then": then}


request_body_conditions("CampaignWriteRequest", _audience_needs("segment", required=True),
                        _audience_needs("folder", required=True))
request_body_conditions("PatchedCampaignUpdateRequest", _audience_needs("segment", required=False),
                        _audience_needs("folder", required=False))


def _targets(view: WorkspaceView, data: dict) -> dict:
    """Segment and folder ids from the request, resolved in this workspace (404 when not found: the
    body is well formed, the thing it names is missing, as for an id in the path)."""
    targets = {}
    if data.get("segment") is not None:
        segment = selectors.segment_get(workspace=view.workspace, segment_id=data["segment"])
        if segment is None:
            raise ApplicationError("No such segment in this workspace.", code="not_found", status=404,
                                   fields={"segment": ["No such segment in this workspace."]})
        targets["segment"] = segment
    elif "segment" in data:
        targets["segment"] = None
    if data.get("folder") is not None:
        folder = folder_list(workspace=view.workspace).filter(pk=data["folder"]).first()
        if folder is None:
            raise ApplicationError("No such folder in this workspace.", code="not_found", status=404,
                                   fields={"folder": ["No such folder in this workspace."]})
        targets["folder"] = folder
    elif "folder" in data:
        targets["folder"] = None
    return targets


class CampaignListView(WorkspaceView):
    required_roles = {"POST": Membership.Role.ADMIN}
    serializer_class = CampaignSerializer
    pagination_class = cursor_page("-created_at", "-id")

    @extend_schema(operation_id="campaigns_list", responses={200: CampaignSerializer(many=True)},
                   tags=["campaigns"])
    def get(self, request, workspace_id):
        """Campaigns, newest first, with their exact counters."""
        page = self.paginate_queryset(selectors.campaign_list(workspace=self.workspace))
        return self.get_paginated_response(CampaignSerializer(page, many=True).data)

    @extend_schema(operation_id="campaigns_create", request=CampaignWriteSerializer,
                   responses={201: CampaignSerializer}, tags=["campaigns"])
    def post(self, request, workspace_id):
        """Create a draft campaign; nothing is sent until it is launched."""
        serializer = CampaignWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        campaign = services.campaign_create(
            workspace=self.workspace, name=data["name"], text=data["text"], audience=data["audience"],
            scheduled_at=data.get("scheduled_at"), **_targets(self, data),
        )
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)


class _CampaignMixin:
    def get_campaign(self, campaign_id: int) -> Campaign:
        campaign = selectors.campaign_get(workspace=self.workspace, campaign_id=campaign_id)
        if campaign is None:
            raise NotFound("No such campaign in this workspace.")
        return campaign


class CampaignDetailView(_CampaignMixin, WorkspaceView):
    required_roles = {"PATCH": Membership.Role.ADMIN, "DELETE": Membership.Role.ADMIN}
    extra_error_statuses = {"PATCH": (409,), "DELETE": (409,)}

    @extend_schema(operation_id="campaigns_retrieve", responses={200: CampaignSerializer}, tags=["campaigns"])
    def get(self, request, workspace_id, campaign_id):
        """One campaign with its counters."""
        return Response(CampaignSerializer(self.get_campaign(campaign_id)).data)

    @extend_schema(operation_id="campaigns_partial_update", request=CampaignUpdateSerializer,
                   responses={200: CampaignSerializer}, tags=["campaigns"])
    def patch(self, request, workspace_id, campaign_id):
        """Edit a draft (409 once launched). `critical` alone may change at any stage, by owners and admins."""
        campaign = self.get_campaign(campaign_id)
        serializer = CampaignUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        critical = data.pop("critical", None)
        if critical is not None:
            self.require_manager("mark campaigns critical")
        changes = {k: v for k, v in data.items() if k not in ("segment", "folder")}
        changes.update(_targets(self, data))
        if changes:
            campaign = campaign_update(campaign=campaign, **changes)
        if critical is not None:
            campaign = campaign_critical_set(campaign=campaign, critical=critical)
        return Response(CampaignSerializer(campaign).data)

    @extend_schema(operation_id="campaigns_destroy", responses={204: None}, tags=["campaigns"])
    def delete(self, request, workspace_id, campaign_id):
        """Delete a draft (409 once launched: cancel it instead)."""
        campaign_delete(campaign=self.get_campaign(campaign_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CampaignPreviewView(_CampaignMixin, WorkspaceView):
    @extend_schema(operation_id="campaigns_preview", responses={200: CampaignPreviewSerializer}, tags=["campaigns"])
    def get(self, request, workspace_id, campaign_id):
        """What a launch now would do: audience, activations it would use, contacts it would pause."""
        preview = services.campaign_preview(campaign=self.get_campaign(campaign_id))
        return Response(CampaignPreviewSerializer(preview).data)


class CampaignLaunchView(_CampaignMixin, WorkspaceView):
    required_roles = {"POST": Membership.Role.ADMIN}
    extra_error_statuses = {"POST": (409,)}

    @extend_schema(operation_id="campaigns_launch", request=None, responses={200: CampaignSerializer},
                   parameters=[IDEMPOTENCY_PARAMETER], tags=["campaigns"])
    @idempotent
    def post(self, request, workspace_id, campaign_id):
        """Launch a draft now (or at its scheduled time). Owners and admins only; 409 unless a draft."""
        campaign = services.campaign_launch(campaign=self.get_campaign(campaign_id), launched_by=request.user)
        return Response(CampaignSerializer(campaign).data)


class CampaignCancelView(_CampaignMixin, WorkspaceView):
    required_roles = {"POST": Membership.Role.ADMIN}
    extra_error_statuses = {"POST": (409,)}

    @extend_schema(operation_id="campaigns_cancel", request=None, responses={200: CampaignSerializer},
                   tags=["campaigns"])
    def post(self, request, workspace_id, campaign_id):
        """Stop a campaign: nothing more is sent, its paused messages are cancelled (409 when finished)."""
        campaign = services.campaign_cancel(campaign=self.get_campaign(campaign_id))
        return Response(CampaignSerializer(campaign).data)


# --- Scenarios ------------------------------------------------------------------------------------


class ScenarioSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    enabled = serializers.BooleanField()
    trigger_type = serializers.ChoiceField(choices=Scenario.Trigger.choices)
    trigger_config = serializers.DictField()
    steps = serializers.ListField(child=serializers.DictField())
    created_at = serializers.DateTimeField()
    runs_total = serializers.IntegerField()
    runs_completed = serializers.IntegerField()
    runs_limited = serializers.IntegerField(help_text="Runs paused at the quota (rule 4).")
    runs_waiting = serializers.IntegerField()


class ScenarioListSerializer(serializers.Serializer):
    results = ScenarioSerializer(many=True)


# The trigger and the steps are checked against these JSON Schemas, the very ones the OpenAPI schema
# publishes (so what a client reads is what the server enforces); the engine's own checks
# (automations.services.scenarios) then find nothing more to refuse, except ids that name nothing
# here (404).
_NO_NUL = "^[^\\x00]*$"
_SOME_TEXT = "^[^\\x00]*[^\\s\\x00][^\\x00]*$"
_TEXT = {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": _SOME_TEXT}
_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_KEYWORDS = {"type": "array", "minItems": 1, "maxItems": 50,
             "items": {"type": "string", "maxLength": 100, "pattern": "^[^\\x00]*\\w[^\\x00]*$"},
             "description": "Words or phrases, matched case- and accent-insensitively."}
_MATCH = {"type": "string", "enum": ["any", "all"], "description": "any (default): one keyword is enough; all: "
                                                                    "every keyword must appear."}
_EXACT = {"type": "boolean", "description": "The whole message is the keyword (punctuation aside)."}
_OPTIONAL_ID = {"type": "string", "maxLength": 64, "pattern": _NO_NUL}


def _variant(kind: str, properties: dict, required: tuple[str, ...] = (), description: str = "") -> dict:
    return {"type": "object", "additionalProperties": False, "description": description,
            "required": ["type", *required],
            "properties": {"type": {"type": "string", "enum": [kind]}, **properties}}


TRIGGER_SCHEMA = {
    "description": "What starts a run. type is one of dm_keyword, comment, story, ad_referral, new_contact, "
                   "webhook, next_message; the other fields depend on it.",
    "oneOf": [
        _variant("dm_keyword", {"keywords": _KEYWORDS, "match": _MATCH, "exact": _EXACT}, ("keywords",),
                 "A direct message containing the keywords."),
        _variant("comment", {"keywords": _KEYWORDS, "match": _MATCH, "exact": _EXACT, "media_id": _OPTIONAL_ID},
                 description="A comment on a post (media_id: one post only; keywords: only matching comments)."),
        _variant("story", {"events": {"type": "array", "minItems": 1,
                                      "items": {"type": "string", "enum": list(STORY_TRIGGER_EVENTS)}}},
                 description="A story reply or mention (events: which ones; both story events by default)."),
        _variant("ad_referral", {"ad_id": _OPTIONAL_ID}, description="A click-to-DM ad (ad_id: one ad only)."),
        _variant("new_contact", {}, description="A contact's first event."),
        _variant("webhook", {}, description="An outside system posting to the scenario's hook with its secret."),
        _variant("next_message", {"segment_id": _ID}, ("segment_id",),
                 "The next message of each contact in the segment (once per contact)."),
    ],
}
_QUESTION = {"text": _TEXT, "retry_text": {"type": "string", "maxLength": 1000, "pattern": _NO_NUL}}
STEP_SCHEMA = {
    "description": "One step; type is one of send_message, ask_question, add_tag, add_to_segment, wait, "
                   "call_integration.",
    "oneOf": [
        _variant("send_message", {"text": _TEXT}, ("text",), "Send a direct message."),
        _variant("ask_question", {**_QUESTION, "field": {"type": "string", "enum": ["email"]},
                                  "answer_type": {"type": "string", "enum": ["email"]}}, ("text", "field"),
                 "Ask for an email address; the answer is stored in the contact's email."),
        _variant("ask_question", {**_QUESTION, "field": {"type": "string", "enum": ["phone"]},
                                  "answer_type": {"type": "string", "enum": ["phone"]}}, ("text", "field"),
                 "Ask for a phone number; the answer is stored in the contact's phone."),
        _variant("ask_question", {**_QUESTION, "field": {"type": "string", "pattern": "^custom:[A-Za-z0-9_]{1,64}$"},
                                  "answer_type": {"type": "string", "enum": ["email", "phone", "text"]}},
                 ("text", "field"), "Ask anything; the answer is stored in a custom field (custom:<name>)."),
        _variant("add_tag", {"tag": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": _SOME_TEXT}},
                 ("tag",), "Tag the contact (lower case)."),
        _variant("add_to_segment", {"segment_id": _ID}, ("segment_id",), "Place the contact in a segment."),
        _variant("wait", {"seconds": {"type": "integer", "minimum": 1, "maximum": MAX_WAIT_SECONDS}}, ("seconds",),
                 "Wait (1 second to 30 days) before the next step."),
        _variant("call_integration", {"integration_id": _ID}, ("integration_id",),
                 "Push the contact to an outgoing integration."),
    ],
}
STEPS_SCHEMA = {"type": "array", "minItems": 1, "maxItems": 50, "items": STEP_SCHEMA}


def _readable(error: jsonschema.exceptions.ValidationError) -> str:
    if error.path and error.path[-1] == "field" and error.validator in ("enum", "pattern"):
        return "Store the answer in email, phone or custom:<name> (letters, digits and _)."
    if error.validator == "oneOf":
        return "Give an object with a type and its fields."
    if error.validator == "minItems":
        return f"Give at least {error.validator_value}."
    if error.validator == "maxItems":
        return f"Give at most {error.validator_value}."
    if error.validator == "pattern":
        if "\\w" in error.validator_value:
            return "A keyword needs at least one letter or digit."
        if error.validator_value.startswith("^custom:"):
            return "Store the answer in email, phone or custom:<name> (letters, digits and _)."
        return "Enter some text (not only spaces)."
    if error.validator == "enum" and len(error.validator_value) == 1:
        return f"Must be {error.validator_value[0]!r} here."
    return error.message


def _schema_errors(value: object, schema: dict, field: str) -> None:
    """A 400 naming the first place the value breaks the schema, in words. A step or trigger of a
    known type is checked against that type's own shape, so the message is about its fields."""
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(value))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    base = list(error.absolute_path)
    if error.validator == "oneOf" and isinstance(error.instance, dict):
        kind = error.instance.get("type")
        variants = [v for v in error.validator_value if kind in v["properties"]["type"]["enum"]]
        if not variants:
            where = ".".join([field, *(str(p) for p in [*base, "type"])])
            kinds = sorted({v["properties"]["type"]["enum"][0] for v in error.validator_value})
            message = f"Choose a type among {', '.join(kinds)}."
            raise ApplicationError(f"{where}: {message}", code="invalid", fields={where: [message]})
        tried = [list(jsonschema.Draft7Validator(v).iter_errors(error.instance)) for v in variants]
        closest = min(tried, key=len)
        error = jsonschema.exceptions.best_match(closest)
        base += list(error.absolute_path)
    where = ".".join([field, *(str(p) for p in base)])
    message = _readable(error)
    raise ApplicationError(f"{where}: {message}", code="invalid", fields={where: [message]})


_INTEGER_KEYS = ("seconds", "segment_id", "integration_id")


def _integers(item: dict) -> dict:
    """JSON Schema counts 60.0 as an integer: so does the server (the engine takes ints)."""
    return {key: int(value) if key in _INTEGER_KEYS and isinstance(value, float) else value
            for key, value in item.items()}


@extend_schema_field(TRIGGER_SCHEMA)
class TriggerField(serializers.Field):
    def to_internal_value(self, data):
        _schema_errors(data, TRIGGER_SCHEMA, "trigger")
        return _integers(data)

    def to_representation(self, value):
        return value


@extend_schema_field(STEPS_SCHEMA)
class StepsField(serializers.Field):
    def to_internal_value(self, data):
        _schema_errors(data, STEPS_SCHEMA, "steps")
        return [_integers(step) for step in data]

    def to_representation(self, value):
        return value


class ScenarioWriteSerializer(StrictSerializer):
    name = StrictCharField(max_length=120)
    enabled = StrictBooleanField(default=True, help_text="On (default): it starts engaging contacts at once.")
    trigger = TriggerField()
    steps = StepsField()


class ScenarioUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=120, required=False)
    enabled = StrictBooleanField(required=False)
    trigger = TriggerField(required=False)
    steps = StepsField(required=False)


def _scenario_references(view: WorkspaceView, steps: list[dict] | None, trigger: dict | None = None) -> None:
    """Segment and integration ids the trigger and steps name, in this workspace: 404 when one is
    missing (the body is well formed, the thing it names is not here)."""
    if trigger and trigger.get("segment_id") is not None and selectors.segment_get(
            workspace=view.workspace, segment_id=trigger["segment_id"]) is None:
        raise ApplicationError("No such segment in this workspace.", code="not_found", status=404,
                               fields={"trigger.segment_id": ["No such segment in this workspace."]})
    for index, step in enumerate(steps or []):
        if step["type"] == "add_to_segment" and selectors.segment_get(
                workspace=view.workspace, segment_id=step["segment_id"]) is None:
            raise ApplicationError("No such segment in this workspace.", code="not_found", status=404,
                                   fields={f"steps.{index}.segment_id": ["No such segment in this workspace."]})
        if step["type"] == "call_integration" and selectors.integration_get(
                workspace=view.workspace, integration_id=step["integration_id"]) is None:
            raise ApplicationError("No such integration in this workspace.", code="not_found", status=404,
                                   fields={f"steps.{index}.integration_id": ["No such integration in this workspace."]})


def _trigger_parts(trigger: dict | None) -> tuple[str | None, dict | None]:
    if trigger is None:
        return None, None
    config = {key: value for key, value in trigger.items() if key != "type"}
    return trigger["type"], config


class ScenarioListView(WorkspaceView):
    required_roles = {"POST": Membership.Role.ADMIN}

    @extend_schema(operation_id="scenarios_list", responses={200: ScenarioListSerializer}, tags=["scenarios"])
    def get(self, request, workspace_id):
        """Scenarios by name, with their run counters."""
        return Response({"results": ScenarioSerializer(selectors.scenario_list(workspace=self.workspace),
                                                       many=True).data})

    @extend_schema(operation_id="scenarios_create", request=ScenarioWriteSerializer,
                   responses={201: ScenarioSerializer}, tags=["scenarios"])
    def post(self, request, workspace_id):
        """Create a scenario: a trigger and its steps (owners and admins). On by default: from then on,
        each run that engages a new contact this month uses one activation, through the gate."""
        serializer = ScenarioWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        _scenario_references(self, data["steps"], data["trigger"])
        trigger_type, config = _trigger_parts(data["trigger"])
        scenario = services.scenario_create(workspace=self.workspace, name=data["name"], trigger_type=trigger_type,
                                            trigger_config=config, steps=data["steps"], enabled=data["enabled"])
        scenario = selectors.scenario_get(workspace=self.workspace, scenario_id=scenario.pk)
        return Response(ScenarioSerializer(scenario).data, status=status.HTTP_201_CREATED)


class _ScenarioMixin:
    def get_scenario(self, scenario_id: int) -> Scenario:
        scenario = selectors.scenario_get(workspace=self.workspace, scenario_id=scenario_id)
        if scenario is None:
            raise NotFound("No such scenario in this workspace.")
        return scenario


class ScenarioDetailView(_ScenarioMixin, WorkspaceView):
    required_roles = {"PATCH": Membership.Role.ADMIN}

    @extend_schema(operation_id="scenarios_retrieve", responses={200: ScenarioSerializer}, tags=["scenarios"])
    def get(self, request, workspace_id, scenario_id):
        """One scenario: trigger, steps and run counters."""
        return Response(ScenarioSerializer(self.get_scenario(scenario_id)).data)

    @extend_schema(operation_id="scenarios_partial_update", request=ScenarioUpdateSerializer,
                   responses={200: ScenarioSerializer}, tags=["scenarios"])
    def patch(self, request, workspace_id, scenario_id):
        """Edit a scenario: name, trigger, steps, on or off (owners and admins). Runs already under way
        go on from the step they are at."""
        scenario = self.get_scenario(scenario_id)
        serializer = ScenarioUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        _scenario_references(self, data.get("steps"), data.get("trigger"))
        trigger_type, config = _trigger_parts(data.get("trigger"))
        services.scenario_update(scenario=scenario, name=data.get("name"), trigger_type=trigger_type,
                                 trigger_config=config, steps=data.get("steps"), enabled=data.get("enabled"))
        return Response(ScenarioSerializer(self.get_scenario(scenario_id)).data)


class ScenarioEnableView(_ScenarioMixin, WorkspaceView):
    required_roles = {"POST": Membership.Role.ADMIN}
    enabled = True

    @extend_schema(operation_id="scenarios_enable", request=None, responses={200: ScenarioSerializer},
                   tags=["scenarios"])
    def post(self, request, workspace_id, scenario_id):
        """Turn the scenario on: it starts engaging contacts (owners and admins only)."""
        scenario = self.get_scenario(scenario_id)
        services.scenario_set_enabled(scenario=scenario, enabled=True)
        return Response(ScenarioSerializer(self.get_scenario(scenario_id)).data)


class ScenarioDisableView(_ScenarioMixin, WorkspaceView):
    required_roles = {"POST": Membership.Role.ADMIN}
    @extend_schema(operation_id="scenarios_disable", request=None, responses={200: ScenarioSerializer},
                   tags=["scenarios"])
    def post(self, request, workspace_id, scenario_id):
        """Turn the scenario off: it stops engaging contacts (owners and admins only)."""
        scenario = self.get_scenario(scenario_id)
        services.scenario_set_enabled(scenario=scenario, enabled=False)
        return Response(ScenarioSerializer(self.get_scenario(scenario_id)).data)


# --- Integrations ---------------------------------------------------------------------------------


class IntegrationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    url = serializers.CharField(help_text="Where contacts are pushed (POST, JSON).")
    enabled = serializers.BooleanField()
    secret = serializers.CharField(allow_null=True, help_text="Signs each push (X-Inro-Signature: sha256=<HMAC of "
                                                              "the body>). Shown to owners and admins only.")
    created_at = serializers.DateTimeField()


class IntegrationListSerializer(serializers.Serializer):
    results = IntegrationSerializer(many=True)


_URL_HELP = ("An http:// or https:// URL whose host resolves only to public internet addresses (the server "
             "never calls private, loopback or link-local ones); a 400 says why one is refused.")


class IntegrationWriteSerializer(StrictSerializer):
    name = StrictCharField(max_length=120)
    url = StrictCharField(max_length=500, help_text=_URL_HELP)


class IntegrationUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=120, required=False)
    url = StrictCharField(max_length=500, required=False, help_text=_URL_HELP)
    enabled = StrictBooleanField(required=False, help_text="Off: steps that call it do nothing.")
    new_secret = StrictBooleanField(required=False, help_text="true: replace the secret (the receiver must "
                                                                    "then check signatures with the new one).")


def _integration_data(view: WorkspaceView, integration: Integration) -> dict:
    return {"id": integration.pk, "name": integration.name, "url": integration.url, "enabled": integration.enabled,
            "secret": integration.secret if view.membership.can_manage else None,
            "created_at": integration.created_at}


class IntegrationListView(WorkspaceView):
    required_roles = {"POST": Membership.Role.ADMIN}

    @extend_schema(operation_id="integrations_list", responses={200: IntegrationListSerializer},
                   tags=["integrations"])
    def get(self, request, workspace_id):
        """Outgoing integrations by name."""
        return Response({"results": [_integration_data(self, i)
                                     for i in selectors.integration_list(workspace=self.workspace)]})

    @extend_schema(operation_id="integrations_create", request=IntegrationWriteSerializer,
                   responses={201: IntegrationSerializer}, tags=["integrations"])
    def post(self, request, workspace_id):
        """Add an outgoing integration (owners and admins); its secret is made here. Each contact it pushes
        for the first time this month uses one activation, through the gate."""
        serializer = IntegrationWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        integration = services.integration_create(workspace=self.workspace, **serializer.validated_data)
        return Response(IntegrationSerializer(_integration_data(self, integration)).data,
                        status=status.HTTP_201_CREATED)


class IntegrationDetailView(WorkspaceView):
    required_roles = {"PATCH": Membership.Role.ADMIN}

    def get_integration(self, integration_id: int) -> Integration:
        integration = selectors.integration_get(workspace=self.workspace, integration_id=integration_id)
        if integration is None:
            raise NotFound("No such integration in this workspace.")
        return integration

    @extend_schema(operation_id="integrations_retrieve", responses={200: IntegrationSerializer},
                   tags=["integrations"])
    def get(self, request, workspace_id, integration_id):
        """One outgoing integration."""
        return Response(IntegrationSerializer(_integration_data(self, self.get_integration(integration_id))).data)

    @extend_schema(operation_id="integrations_partial_update", request=IntegrationUpdateSerializer,
                   responses={200: IntegrationSerializer}, tags=["integrations"])
    def patch(self, request, workspace_id, integration_id):
        """Rename it, point it elsewhere (checked like a new one), turn it on or off, or replace its secret."""
        integration = self.get_integration(integration_id)
        serializer = IntegrationUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        integration = services.integration_update(integration=integration, **serializer.validated_data)
        return Response(IntegrationSerializer(_integration_data(self, integration)).data)


# --- Paused actions -------------------------------------------------------------------------------


class PausedContactSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField()


class PausedActionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    contact = PausedContactSerializer()
    kind = serializers.ChoiceField(choices=AutomationKind.choices)
    automation_ref = serializers.CharField(help_text="Which automation, e.g. campaign:12.")
    action_type = serializers.ChoiceField(choices=PausedAction.ActionType.choices)
    status = serializers.ChoiceField(choices=PausedAction.Status.choices)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True, help_text="When its messaging window closes.")
    resolved_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField()


class PausedActionQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=PausedAction.Status.choices, default=PausedAction.Status.WAITING,
                                     help_text="waiting (default): what resumes, oldest first, with headroom.")


class PausedActionListView(WorkspaceView):
    serializer_class = PausedActionSerializer
    pagination_class = cursor_page("created_at", "id")

    @extend_schema(operation_id="paused_actions_list", parameters=[PausedActionQuerySerializer],
                   responses={200: PausedActionSerializer(many=True)}, tags=["usage"])
    def get(self, request, workspace_id):
        """Automated actions paused at the quota (rule 4), oldest first: the order they resume in."""
        query = validated_query(PausedActionQuerySerializer, request)
        actions = selectors.paused_action_list(workspace=self.workspace, status=query["status"])
        page = self.paginate_queryset(actions)
        return self.get_paginated_response(PausedActionSerializer(page, many=True).data)
