"""API endpoints of billing: usage, usage history and the activation ledger (numbers from billing.selectors)."""

import datetime
import re

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from accounts.api_base import WorkspaceView, idempotent
from accounts.models import Membership
from billing import checkout, selectors, services
from billing.checkout import MAX_ADDON_PACKS
from billing.models import AutomationKind, Plan
from inro.api import (
    IDEMPOTENCY_PARAMETER,
    StrictIntegerField,
    StrictSerializer,
    cursor_page,
    validated_query,
)


class PlanSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class ForecastSerializer(serializers.Serializer):
    projected_activations = serializers.IntegerField(
        help_text="Activations at the current pace by the month's end, not capped at the quota."
    )
    limit_date = serializers.DateField(allow_null=True, help_text="Day the quota runs out at this pace, if it does.")
    daily_rate = serializers.FloatField()
    method = serializers.CharField()
    shortfall = serializers.IntegerField(help_text="How far the projection goes past the quota (0 when it fits).")
    packs_needed = serializers.IntegerField(
        help_text="Add-on packs that would cover the shortfall on the current plan (0 on Free or when it fits)."
    )
    packs_price_cents = serializers.IntegerField(help_text="What those packs cost a month, in the plan's currency.")


@extend_schema_field({"type": "string", "pattern": "^[2-9][0-9]{3}-(0[1-9]|1[0-2])$", "example": "2026-03"})
class MonthField(serializers.Field):
    """A billing month as "YYYY-MM" (in and out)."""

    default_error_messages = {"invalid": "Enter a month as YYYY-MM, e.g. 2026-03."}

    def to_representation(self, value: datetime.date) -> str:
        return value.strftime("%Y-%m")

    def to_internal_value(self, data) -> datetime.date:
        if not isinstance(data, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}", data):
            self.fail("invalid")
        year, month = int(data[:4]), int(data[5:])
        if not (1 <= month <= 12 and year >= 2000):  # the schema's pattern says the same
            self.fail("invalid")
        return datetime.date(year, month, 1)


class ScheduledChangeSerializer(serializers.Serializer):
    plan = PlanSerializer()
    addon_packs = serializers.IntegerField()
    monthly_activations = serializers.IntegerField(help_text="Plan plus packs once the change applies.")
    takes_effect_at = serializers.DateTimeField(help_text="The end of the period paid for.")


class QuotaBreakdownSerializer(serializers.Serializer):
    plan_activations = serializers.IntegerField(help_text="The plan's monthly activations.")
    addon_packs = serializers.IntegerField()
    addon_activations = serializers.IntegerField(help_text="Add-on packs times the pack size.")
    bonus = serializers.IntegerField(help_text="Bonus activations granted for the month (rule 12).")
    kept_at = serializers.IntegerField(
        allow_null=True, help_text="The floor: when plan and packs fell below what was already activated this "
                                   "month, the quota was kept at that figure. Null when no floor holds.")
    floor_added = serializers.IntegerField(help_text="What the floor adds above plan and packs.")
    plan_quota = serializers.IntegerField(help_text="max(plan + packs, floor) + bonus: the quota before the cap.")
    monthly_cap = serializers.IntegerField(allow_null=True, help_text="The owners' cap (usage/settings/).")
    cap_holds = serializers.BooleanField(help_text="The cap sets the quota below plan_quota.")
    held_by = serializers.ChoiceField(choices=["plan", "floor", "cap"], help_text="What sets the quota.")
    conversation_reserve = serializers.IntegerField(help_text="Activations campaigns may not use.")
    campaign_remaining = serializers.IntegerField(help_text="What campaigns may still use: remaining minus "
                                                            "the reserve.")
    note = serializers.CharField(help_text="The same words as the usage and billing pages, e.g. "
                                           "\"kept at 105: already used this month; +2 bonus this month\".")
    scheduled_change = ScheduledChangeSerializer(allow_null=True, help_text="A decrease waiting for the end of "
                                                                            "the paid period.")


def quota_breakdown_data(parts: selectors.QuotaParts) -> dict:
    scheduled = None
    if parts.scheduled is not None:
        scheduled = {"plan": {"code": parts.scheduled.plan.code, "name": parts.scheduled.plan.name},
                     "addon_packs": parts.scheduled.addon_packs,
                     "monthly_activations": parts.scheduled.monthly_activations,
                     "takes_effect_at": parts.scheduled.takes_effect_at}
    return {
        "plan_activations": parts.plan_activations, "addon_packs": parts.addon_packs,
        "addon_activations": parts.addon_activations, "bonus": parts.bonus, "kept_at": parts.kept_at,
        "floor_added": parts.floor_added, "plan_quota": parts.plan_quota, "monthly_cap": parts.cap,
        "cap_holds": parts.cap_holds, "held_by": parts.held_by, "conversation_reserve": parts.reserve,
        "campaign_remaining": parts.campaign_remaining, "note": parts.note, "scheduled_change": scheduled,
    }


class UsageSerializer(serializers.Serializer):
    month = MonthField()
    activated = serializers.IntegerField(help_text="Confirmed activations this month: what is charged.")
    quota = serializers.IntegerField()
    remaining = serializers.IntegerField(help_text="Headroom left: quota - activated - in_flight.")
    in_flight = serializers.IntegerField(
        help_text="Activations reserved by automated actions under way, not yet confirmed (engaged) or released."
    )
    limit_reached = serializers.BooleanField()
    percent = serializers.IntegerField(help_text="0 to 100, for the meter.")
    level = serializers.ChoiceField(
        choices=["ok", "warning", "limit"],
        help_text="limit: the quota is reached; warning: 80 % used, or the current pace reaches the quota this "
                  "month (see forecast.limit_date); ok otherwise.",
    )
    paused_actions = serializers.IntegerField(help_text="Automated actions waiting for headroom (rule 4).")
    plan = PlanSerializer()
    addon_packs = serializers.IntegerField()
    resets_at = serializers.DateTimeField()
    forecast = ForecastSerializer()
    quota_breakdown = QuotaBreakdownSerializer(help_text="How the quota adds up and what holds headroom back.")


class UsageView(WorkspaceView):
    # Paused actions live in automations, which depends on billing (not the reverse): the URL module
    # passes automations' count in with as_view(paused_actions_count=...).
    paused_actions_count = None
    @extend_schema(operation_id="usage_retrieve", responses={200: UsageSerializer}, tags=["usage"])
    def get(self, request, workspace_id):
        """This month's activated contacts against the quota: the usage page's figures."""
        summary = selectors.usage_summary(workspace=self.workspace)
        data = {
            "month": summary.month,
            "activated": summary.activated,
            "quota": summary.quota,
            "remaining": summary.remaining,
            "in_flight": summary.in_flight,
            "limit_reached": summary.limit_reached,
            "percent": summary.percent,
            "level": summary.level,
            "paused_actions": self.paused_actions_count(self.workspace) if self.paused_actions_count else 0,
            "plan": {"code": summary.plan.code, "name": summary.plan.name},
            "addon_packs": summary.addon_packs,
            "resets_at": summary.resets_at,
            "forecast": summary.forecast,
            "quota_breakdown": quota_breakdown_data(summary.parts),
        }
        return Response(UsageSerializer(data).data)


class UsageMonthSerializer(serializers.Serializer):
    month = MonthField()
    activated = serializers.IntegerField()
    quota = serializers.IntegerField()
    limit_reached_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)


class UsageHistorySerializer(serializers.Serializer):
    results = UsageMonthSerializer(many=True)


class UsageHistoryQuerySerializer(serializers.Serializer):
    months = serializers.IntegerField(min_value=1, max_value=36, default=12,
                                      help_text="How many previous months, newest first (1 to 36).")


class UsageHistoryView(WorkspaceView):
    extra_error_statuses = {"GET": (400,)}
    @extend_schema(operation_id="usage_history", parameters=[UsageHistoryQuerySerializer],
                   responses={200: UsageHistorySerializer}, tags=["usage"])
    def get(self, request, workspace_id):
        """Previous months' figures, newest first (the current month is in usage/)."""
        query = validated_query(UsageHistoryQuerySerializer, request)
        rows = selectors.usage_history(workspace=self.workspace, months=query["months"])
        return Response({"results": UsageMonthSerializer(rows, many=True).data})


class ActivationContactSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField()


class ActivationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    contact = ActivationContactSerializer(allow_null=True, help_text="Null when the contact was erased.")
    month = MonthField()
    activated_at = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=AutomationKind.choices)
    automation_ref = serializers.CharField()


class ActivationQuerySerializer(serializers.Serializer):
    month = MonthField(required=False, help_text="YYYY-MM; this month when omitted.")
    kind = serializers.ChoiceField(choices=AutomationKind.choices, required=False)


class ActivationListView(WorkspaceView):
    serializer_class = ActivationSerializer
    pagination_class = cursor_page("-activated_at", "-id")

    def get_queryset(self):
        query = validated_query(ActivationQuerySerializer, self.request)
        return selectors.activation_list(workspace=self.workspace, month=query.get("month"), kind=query.get("kind"))

    @extend_schema(operation_id="activations_list", parameters=[ActivationQuerySerializer],
                   responses={200: ActivationSerializer(many=True)}, tags=["usage"])
    def get(self, request, workspace_id):
        """A month's activated contacts (the ledger), newest first."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class CheckoutRequestSerializer(StrictSerializer):
    # The one plan bought online (billing.checkout refuses any other): the schema says so too.
    plan = serializers.ChoiceField(choices=[Plan.PRO], help_text="Plan code: \"pro\".")
    addon_packs = StrictIntegerField(min_value=0, max_value=MAX_ADDON_PACKS, default=0,
                                     help_text=f"Add-on packs, 0 to {MAX_ADDON_PACKS}.")


class RedirectSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="Open it in a browser: Stripe Checkout, the portal or the billing page.")


class CheckoutView(WorkspaceView):
    required_roles = {"POST": Membership.Role.OWNER}
    extra_error_statuses = {"POST": (502,)}

    @extend_schema(operation_id="billing_checkout", request=CheckoutRequestSerializer,
                   responses={200: RedirectSerializer}, parameters=[IDEMPOTENCY_PARAMETER], tags=["billing"])
    @idempotent
    def post(self, request, workspace_id):
        """Upgrade to a plan with add-on packs (rule 8): the Stripe Checkout page to open, or the billing page
        when a live subscription's packs were changed in place. Owners and admins only."""
        serializer = CheckoutRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        url = checkout.checkout_start(workspace=self.workspace, user=request.user,
                                              plan_code=serializer.validated_data["plan"],
                                              addon_packs=serializer.validated_data["addon_packs"])
        return Response({"url": url})


class PortalView(WorkspaceView):
    required_roles = {"POST": Membership.Role.OWNER}
    extra_error_statuses = {"POST": (409, 502)}

    @extend_schema(operation_id="billing_portal", request=None, responses={200: RedirectSerializer},
                   tags=["billing"])
    def post(self, request, workspace_id):
        """Stripe's billing portal (payment method, invoices, cancellation). Owners and admins only."""
        return Response({"url": checkout.portal_start(workspace=self.workspace, user=request.user)})


class SpendingControlsSerializer(StrictSerializer):
    monthly_cap = StrictIntegerField(
        allow_null=True, min_value=0, max_value=services.MAX_SPENDING_FIGURE, required=False,
        help_text="At most this many activations this month (rule 16): automations pause at the cap exactly as "
                  "at the quota. Null: no cap. Raising or clearing it resumes paused actions at once.")
    conversation_reserve = StrictIntegerField(
        min_value=0, max_value=services.MAX_SPENDING_FIGURE, required=False,
        help_text="Activations campaigns may not use, kept for people who write to you.")


class SpendingControlsStateSerializer(serializers.Serializer):
    monthly_cap = serializers.IntegerField(allow_null=True)
    conversation_reserve = serializers.IntegerField()
    quota = serializers.IntegerField(help_text="This month's quota, the cap applied.")
    plan_quota = serializers.IntegerField(help_text="The quota before the cap: plan, packs, floor and bonuses.")
    activated = serializers.IntegerField()
    remaining = serializers.IntegerField()
    campaign_remaining = serializers.IntegerField(help_text="What campaigns may still use: remaining minus the "
                                                            "reserve.")
    note = serializers.CharField(help_text="What holds headroom back, in the usage page's words.")


def _controls_data(workspace) -> dict:
    parts = selectors.quota_parts(workspace=workspace)
    return {"monthly_cap": parts.cap, "conversation_reserve": parts.reserve, "quota": parts.quota,
            "plan_quota": parts.plan_quota, "activated": parts.activated, "remaining": parts.remaining,
            "campaign_remaining": parts.campaign_remaining, "note": parts.note}


class SpendingControlsView(WorkspaceView):
    required_roles = {"PATCH": Membership.Role.ADMIN}

    @extend_schema(operation_id="usage_settings_retrieve", responses={200: SpendingControlsStateSerializer},
                   tags=["usage"])
    def get(self, request, workspace_id):
        """The spending controls (rule 16) and what they leave this month."""
        return Response(SpendingControlsStateSerializer(_controls_data(self.workspace)).data)

    @extend_schema(operation_id="usage_settings_partial_update", request=SpendingControlsSerializer,
                   responses={200: SpendingControlsStateSerializer}, tags=["usage"])
    def patch(self, request, workspace_id):
        """Set the monthly cap and the reserve for conversations (owners and admins only); fields left out
        stay as they are. Critical campaigns are marked on the campaign (campaigns/{id}/, `critical`)."""
        serializer = SpendingControlsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workspace = services.spending_controls_update(workspace=self.workspace, **serializer.validated_data)
        return Response(SpendingControlsStateSerializer(_controls_data(workspace)).data)
