"""API endpoints of automations: segments, campaigns (preview, launch, cancel), scenarios, paused actions.

Who may do what (the role matrix, docs/roles.md): every member reads all of it; owners and admins
create, edit, launch and cancel campaigns, edit segments and turn scenarios on and off.
"""

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.api_base import WorkspaceView, idempotent
from accounts.models import Membership
from automations import selectors, services
from automations.models import Campaign, PausedAction, Scenario, Segment
from automations.services.campaigns import campaign_delete, campaign_update
from automations.services.segments import segment_delete
from billing.models import AutomationKind
from contacts.models import Contact
from contacts.selectors import folder_list
from inro.api import (
    IDEMPOTENCY_PARAMETER,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    cursor_page,
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


class SegmentWriteSerializer(StrictSerializer):
    name = StrictCharField(max_length=120)
    rules = SegmentRulesField(required=False)


class SegmentUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=120, required=False)
    rules = SegmentRulesField(required=False)


def _segment_data(segment: Segment) -> dict:
    return {"id": segment.pk, "name": segment.name, "rules": segment.rules,
            "size": services.segment_size(segment=segment), "created_at": segment.created_at}


class SegmentListView(WorkspaceView):
    required_roles = {"POST": Membership.Role.ADMIN}
    extra_error_statuses = {"POST": (409,)}

    @extend_schema(operation_id="segments_list", responses={200: SegmentListSerializer}, tags=["segments"])
    def get(self, request, workspace_id):
        """Every segment with its live size."""
        rows = selectors.segment_list(workspace=self.workspace)
        return Response({"results": [
            {"id": r.segment.pk, "name": r.segment.name, "rules": r.segment.rules, "size": r.size,
             "created_at": r.segment.created_at} for r in rows
        ]})

    @extend_schema(operation_id="segments_create", request=SegmentWriteSerializer,
                   responses={201: SegmentSerializer}, tags=["segments"])
    def post(self, request, workspace_id):
        """Create a segment (names are unique in a workspace: 409 when taken)."""
        serializer = SegmentWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        segment = services.segment_create(workspace=self.workspace, name=serializer.validated_data["name"],
                                          rules=serializer.validated_data.get("rules"))
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
        """Rename a segment or replace its rules."""
        segment = self.get_segment(segment_id)
        serializer = SegmentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        segment = services.segment_update(segment=segment, name=serializer.validated_data.get("name"),
                                          rules=serializer.validated_data.get("rules"))
        return Response(SegmentSerializer(_segment_data(segment)).data)

    @extend_schema(operation_id="segments_destroy", responses={204: None}, tags=["segments"])
    def delete(self, request, workspace_id, segment_id):
        """Delete a segment (409 while a campaign targets it)."""
        segment_delete(segment=self.get_segment(segment_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


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


class CampaignPreviewSerializer(serializers.Serializer):
    audience = serializers.IntegerField(help_text="Contacts in the audience.")
    already_active = serializers.IntegerField(help_text="Already activated this month: free to message.")
    would_activate = serializers.IntegerField(help_text="New activations a launch now would use.")
    would_be_limited = serializers.IntegerField(help_text="Would be paused at the quota (rule 4).")
    outside_window = serializers.IntegerField(help_text="Messaging window closed: not messaged, not counted.")


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
        """Edit a draft (409 once launched)."""
        campaign = self.get_campaign(campaign_id)
        serializer = CampaignUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = {k: v for k, v in serializer.validated_data.items() if k not in ("segment", "folder")}
        changes.update(_targets(self, serializer.validated_data))
        return Response(CampaignSerializer(campaign_update(campaign=campaign, **changes)).data)

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


class ScenarioListView(WorkspaceView):
    @extend_schema(operation_id="scenarios_list", responses={200: ScenarioListSerializer}, tags=["scenarios"])
    def get(self, request, workspace_id):
        """Scenarios by name, with their run counters."""
        return Response({"results": ScenarioSerializer(selectors.scenario_list(workspace=self.workspace),
                                                       many=True).data})


class _ScenarioMixin:
    def get_scenario(self, scenario_id: int) -> Scenario:
        scenario = selectors.scenario_get(workspace=self.workspace, scenario_id=scenario_id)
        if scenario is None:
            raise NotFound("No such scenario in this workspace.")
        return scenario


class ScenarioDetailView(_ScenarioMixin, WorkspaceView):
    @extend_schema(operation_id="scenarios_retrieve", responses={200: ScenarioSerializer}, tags=["scenarios"])
    def get(self, request, workspace_id, scenario_id):
        """One scenario: trigger, steps and run counters."""
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
