"""The staff admin for billing: workspaces with their usage, the ledger, bonuses and plans.

Every action goes through the same services as the product (bonus_grant, quota_refresh, ...);
ledgers are append-only here, even for superusers.
"""

import csv
import datetime
import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.admin import MembershipInline
from accounts.models import Workspace
from billing import selectors, services, webhooks
from billing.forms import BonusGrantForm, PlanAdminForm
from billing.models import (
    ActivationEvent,
    ActivationRecord,
    BonusGrant,
    CheckoutSession,
    MonthlyUsage,
    MonthRollover,
    PaymentFailure,
    Plan,
    PlanChange,
    StripeEvent,
    Subscription,
)
from billing.months import month_of
from inro.errors import ApplicationError


class LimitReachedFilter(admin.SimpleListFilter):
    title = "limit reached this month"
    parameter_name = "limit_reached"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        at_limit = MonthlyUsage.objects.filter(month=month_of(), activated__gte=F("quota")).values("workspace_id")
        if self.value() == "yes":
            return queryset.filter(pk__in=at_limit)
        if self.value() == "no":
            return queryset.exclude(pk__in=at_limit)
        return queryset


class PlanFilter(admin.SimpleListFilter):
    title = "plan"
    parameter_name = "plan"

    def lookups(self, request, model_admin):
        return [(p.code, p.name) for p in Plan.objects.all()]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        if self.value() == Plan.FREE:
            return queryset.filter(subscription__isnull=True) | queryset.filter(subscription__plan__code=Plan.FREE)
        return queryset.filter(subscription__plan__code=self.value())


def can_grant_bonus(user) -> bool:
    return user.is_active and user.is_staff and user.has_perm("billing.add_bonusgrant")


def month_label(value: datetime.date | None) -> str:
    """A billing month as people say it: "December 2026" (not "Dec. 1, 2026")."""
    return value.strftime("%B %Y") if value else "—"


class MonthColumn:
    """`month` shown as "December 2026" in list pages, still sortable by the column."""

    @admin.display(description="Month", ordering="month")
    def month_name(self, obj) -> str:
        return month_label(obj.month)


def moment_label(value: datetime.datetime | None) -> str:
    if value is None:
        return "—"
    local = value.astimezone(datetime.UTC)
    return f"{local.day} {local:%b %Y, %H:%M:%S} UTC"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledgers and records kept by the services: viewable, never added, edited or deleted here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    """Workspaces: usage, bonuses and the spending controls. Created and deleted times are facts, not
    input; a workspace is not deleted from here (no bulk "Delete selected" either): deleting one is
    a customer's decision with consequences (billing, contacts' data) no admin button spells out."""

    list_display = ["name", "slug", "instagram_account_id", "plan_name", "payment_status", "created_at",
                    "deleted_at"]
    readonly_fields = ["created_at", "deleted_at"]
    list_select_related = ["subscription__plan"]
    search_fields = [
        "name", "slug", "instagram_account_id", "memberships__user__email", "subscription__stripe_customer_id",
    ]
    list_filter = [PlanFilter, LimitReachedFilter, "subscription__status", "deleted_at"]
    inlines = [MembershipInline]
    prepopulated_fields = {"slug": ["name"]}
    show_full_result_count = False
    actions = ["grant_bonus_action"]
    change_form_template = "admin/billing/workspace_change_form.html"

    def save_model(self, request, obj, form, change):
        """The spending controls go through their service, so the month's quota follows the cap and
        paused actions resume when it rises (rule 16)."""
        controls = {"monthly_cap", "activation_reserve"}.intersection(form.changed_data if change else ())
        if controls:
            saved = Workspace.objects.get(pk=obj.pk)
            cap, reserve = obj.monthly_cap, obj.activation_reserve
            obj.monthly_cap, obj.activation_reserve = saved.monthly_cap, saved.activation_reserve
            super().save_model(request, obj, form, change)
            services.spending_controls_update(workspace=obj, monthly_cap=cap, conversation_reserve=reserve)
            obj.refresh_from_db()
            return
        super().save_model(request, obj, form, change)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="Plan")
    def plan_name(self, workspace: Workspace) -> str:
        subscription = getattr(workspace, "subscription", None)
        return subscription.plan.name if subscription else "Free"

    @admin.display(description="Payment")
    def payment_status(self, workspace: Workspace) -> str:
        subscription = getattr(workspace, "subscription", None)
        return selectors.subscription_badge(subscription).label if subscription else "—"

    def automation_context(self, workspace: Workspace) -> dict:
        """Figures of the apps above billing for the change page; automations' admin fills them in."""
        return {}

    def get_urls(self):
        return [
            path("<id:workspace_id>/grant-bonus/", self.admin_site.admin_view(self.grant_bonus_view),
                 name="accounts_workspace_grant_bonus"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        workspace = get_object_or_404(Workspace, pk=object_id)
        month = month_of()
        extra_context = {
            **(extra_context or {}),
            "usage": selectors.usage_summary(workspace=workspace),
            "history": selectors.usage_history(workspace=workspace, months=6),
            "bonuses": list(BonusGrant.objects.filter(workspace=workspace).select_related("granted_by")[:10]),
            "plan_changes": selectors.plan_history(workspace=workspace, limit=10),
            **self.automation_context(workspace),
            "ledger_url": reverse("admin:billing_activationrecord_changelist")
            + f"?workspace__id__exact={workspace.pk}&month={month.isoformat()}",
            "grant_url": reverse("admin:accounts_workspace_grant_bonus", args=[workspace.pk]),
            "can_grant_bonus": can_grant_bonus(request.user),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Grant bonus activations for this month")
    def grant_bonus_action(self, request: HttpRequest, queryset: QuerySet[Workspace]):
        return self._bonus_form(request, list(queryset.order_by("pk")))

    def grant_bonus_view(self, request: HttpRequest, workspace_id: int):
        return self._bonus_form(request, [get_object_or_404(Workspace, pk=workspace_id)])

    def _bonus_form(self, request: HttpRequest, workspaces: list[Workspace]):
        if not can_grant_bonus(request.user):
            raise PermissionDenied
        form = BonusGrantForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            granted = []
            for workspace in workspaces:
                try:
                    services.bonus_grant(
                        workspace=workspace, amount=form.cleaned_data["amount"],
                        reason=form.cleaned_data["reason"], granted_by=request.user,
                    )
                    granted.append(workspace.name)
                except ApplicationError as error:
                    self.message_user(request, f"{workspace.name}: {error.message}", messages.ERROR)
            if granted:
                self.message_user(
                    request, f"Granted {form.cleaned_data['amount']} bonus activations to {', '.join(granted)}.",
                    messages.SUCCESS,
                )
            if len(workspaces) == 1:
                return HttpResponseRedirect(reverse("admin:accounts_workspace_change", args=[workspaces[0].pk]))
            return HttpResponseRedirect(reverse("admin:accounts_workspace_changelist"))
        return TemplateResponse(request, "admin/billing/grant_bonus.html", {
            **self.admin_site.each_context(request),
            "title": "Grant bonus activations",
            "form": form,
            "workspaces": workspaces,
            "month": month_of(),
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    form = PlanAdminForm
    list_display = ["code", "name", "monthly_activations", "price_cents", "addon_pack_size",
                    "addon_pack_price_cents", "stripe_price_id", "stripe_addon_price_id"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and form.cleaned_data.get("apply_now"):
            touched = services.plan_apply_now(plan=obj)
            message = f"Applied now to this month's quota of {touched} workspaces."
            self.log_change(request, obj, message)
            self.message_user(request, message, messages.SUCCESS)
        elif change:
            self.message_user(request, "Saved. Quota changes apply to existing subscribers from next month.",
                              messages.INFO)


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["workspace", "plan", "status", "addon_packs", "current_period_end", "cancel_at_period_end"]
    list_filter = ["plan", "status", "cancel_at_period_end"]
    search_fields = ["workspace__name", "stripe_customer_id", "stripe_subscription_id"]
    list_select_related = ["workspace", "plan"]
    raw_id_fields = ["workspace"]
    # Plan and packs follow Stripe (webhooks) or staff services; editing them here would skip the quota.
    readonly_fields = ["workspace", "plan", "status", "addon_packs", "stripe_customer_id", "stripe_subscription_id",
                       "current_period_start", "current_period_end", "cancel_at_period_end"]

    def has_add_permission(self, request):
        return False


@admin.register(MonthlyUsage)
class MonthlyUsageAdmin(MonthColumn, ReadOnlyAdmin):
    list_display = ["workspace", "month_name", "activated", "quota", "limit_reached_at", "closed_at"]
    list_filter = ["month"]
    search_fields = ["workspace__name", "workspace__slug"]
    list_select_related = ["workspace"]
    show_full_result_count = False



class MonthFilter(admin.SimpleListFilter):
    title = "month"
    parameter_name = "month"

    def lookups(self, request, model_admin):
        month = month_of()
        months = []
        for _ in range(12):
            months.append((month.isoformat(), month.strftime("%B %Y")))
            month = (month - datetime.timedelta(days=1)).replace(day=1)
        return months

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            month = datetime.date.fromisoformat(self.value()).replace(day=1)
        except ValueError:
            return queryset.none()
        return queryset.filter(month=month)


@admin.register(ActivationRecord)
class ActivationRecordAdmin(MonthColumn, ReadOnlyAdmin):
    """The ledger is append-only: not even a superuser adds, edits or deletes here."""

    list_display = ["activated_at", "workspace", "contact_link", "month_name", "kind", "automation_label"]
    list_filter = [MonthFilter, "kind"]
    search_fields = ["workspace__name", "workspace__slug", "contact__username", "automation_ref"]
    list_select_related = ["workspace", "contact"]
    show_full_result_count = False
    raw_id_fields = ["workspace", "contact"]
    actions = ["export_csv"]
    change_list_template = "admin/billing/activationrecord_change_list.html"

    def automation_names(self, refs: list[str]) -> dict:
        """{reference: name} of the apps above billing; automations' admin fills it in."""
        return {}

    def get_changelist(self, request, **kwargs):
        base = super().get_changelist(request, **kwargs)
        model_admin = self

        class NamedChangeList(base):
            def get_results(self, request):
                super().get_results(request)
                # Every row's automation named at once (one query), not one look-up per row.
                names = model_admin.automation_names([row.automation_ref for row in self.result_list])
                for row in self.result_list:
                    row.automation_name = names.get(row.automation_ref)

        return NamedChangeList

    @admin.display(description="Automation", ordering="automation_ref")
    def automation_label(self, record) -> str:
        name = getattr(record, "automation_name", None)
        if name is None:
            return record.automation_ref or "—"
        return format_html('{} <span style="color:#777">({})</span>', str(getattr(name, "full", name)),
                           record.automation_ref)

    @admin.display(description="Contact")
    def contact_link(self, record: ActivationRecord) -> str:
        if record.contact is None:
            return "(erased)"
        return format_html('<a href="{}">{}</a>',
                           reverse("admin:contacts_contact_change", args=[record.contact_id]), record.contact)

    def get_urls(self):
        return [
            path("export.csv", self.admin_site.admin_view(self.export_filtered_view),
                 name="billing_activationrecord_export"),
            *super().get_urls(),
        ]

    @admin.action(description="Export selected to CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        return self._csv(queryset)

    def export_filtered_view(self, request):
        """CSV of the list as currently filtered (same filters and search as the changelist)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        return self._csv(changelist.get_queryset(request))

    def _csv(self, queryset):
        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())
        rows = queryset.select_related("workspace", "contact").order_by("activated_at", "id")

        def stream():
            yield writer.writerow(["activated_at", "month", "workspace", "contact_id", "username", "kind",
                                   "automation_ref", "automation_name"])
            refs = rows.order_by().values_list("automation_ref", flat=True).distinct()
            names = self.automation_names(list(refs[:5000]))
            for record in rows.iterator(chunk_size=2000):
                name = names.get(record.automation_ref)
                yield writer.writerow([
                    record.activated_at.isoformat(), record.month.strftime("%Y-%m"), record.workspace.slug,
                    record.contact_id or "", record.contact.username if record.contact else "", record.kind,
                    record.automation_ref, getattr(name, "name", ""),
                ])

        response = StreamingHttpResponse(stream(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="activations.csv"'
        return response


@admin.register(ActivationEvent)
class ActivationEventAdmin(MonthColumn, ReadOnlyAdmin):
    """The history of reservations (rule 13): who reserved, confirmed or released, when and why."""

    list_display = ["at", "workspace", "contact_id", "month_name", "action", "kind", "by", "reason"]
    list_filter = [MonthFilter, "action", "kind"]
    search_fields = ["workspace__name", "workspace__slug", "by", "reason"]
    list_select_related = ["workspace"]
    show_full_result_count = False
    raw_id_fields = ["workspace", "contact"]


@admin.register(BonusGrant)
class BonusGrantAdmin(MonthColumn, ReadOnlyAdmin):
    """Grants go through the workspace's "grant bonus" form (billing.services.bonus_grant), so the
    quota follows and paused actions resume; the ledger itself is append-only."""

    list_display = ["workspace", "month_name", "amount", "reason", "granted_by", "created_at"]
    list_filter = [MonthFilter]
    search_fields = ["workspace__name", "reason"]
    list_select_related = ["workspace", "granted_by"]


@admin.register(MonthRollover)
class MonthRolloverAdmin(MonthColumn, admin.ModelAdmin):
    list_display = ["month_name", "started_at", "completed_at", "workspaces_opened"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    """Stripe events as received: which workspace, when (readable), status and why, the payload, and an
    idempotent replay that reports each event's outcome."""

    list_display = ["received_at", "event_id", "type", "workspace_link", "created_at_label", "status", "attempts",
                    "short_error"]
    list_filter = ["status", "type"]
    search_fields = ["event_id", "type"]
    show_full_result_count = False
    actions = ["replay_events"]
    readonly_fields = ["event_id", "type", "workspace_link", "created_at_label", "livemode", "status", "error",
                       "attempts", "received_at", "processed_at", "payload_pretty"]
    exclude = ["payload", "created"]

    def get_changelist(self, request, **kwargs):
        base = super().get_changelist(request, **kwargs)

        class WithWorkspaces(base):
            def get_results(self, request):
                super().get_results(request)
                # The workspaces of the page's events, in two queries whatever the page's size.
                found = selectors.stripe_event_workspaces(list(self.result_list))
                for event in self.result_list:
                    event.workspace = found.get(event.pk)

        return WithWorkspaces

    @admin.display(description="Workspace")
    def workspace_link(self, event: StripeEvent) -> str:
        if not hasattr(event, "workspace"):
            event.workspace = selectors.stripe_event_workspaces([event]).get(event.pk)
        if event.workspace is None:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("admin:accounts_workspace_change",
                                                          args=[event.workspace.pk]), event.workspace.name)

    @admin.display(description="Created at Stripe", ordering="created")
    def created_at_label(self, event: StripeEvent) -> str:
        return moment_label(datetime.datetime.fromtimestamp(event.created, tz=datetime.UTC)) if event.created else "—"

    @admin.display(description="Error or reason")
    def short_error(self, event: StripeEvent) -> str:
        reason = event_reason(event)
        return (reason[:80] + "…") if len(reason) > 80 else reason

    @admin.display(description="Payload (card data removed)")
    def payload_pretty(self, event: StripeEvent) -> str:
        return format_html("<pre style='white-space:pre-wrap;max-height:40em;overflow:auto'>{}</pre>",
                           json.dumps(event.payload, indent=2, sort_keys=True))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("billing.replay_stripeevent")

    @admin.action(description="Replay selected events (idempotent)", permissions=["replay"])
    def replay_events(self, request, queryset):
        outcomes: dict[str, int] = {}
        failed = False
        for event in queryset.order_by("received_at", "pk"):
            replayed = webhooks.stripe_event_replay(event=event)
            outcomes[replayed.status] = outcomes.get(replayed.status, 0) + 1
            failed = failed or replayed.status == StripeEvent.Status.FAILED
            reason = event_reason(replayed)
            self.message_user(
                request, f"Event {replayed.event_id} ({replayed.type}): {replayed.get_status_display().lower()}"
                         + (f", {reason}" if reason else "") + ".",
                messages.WARNING if replayed.status == StripeEvent.Status.FAILED else messages.INFO,
            )
        summary = ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items()))
        level = messages.WARNING if failed else messages.SUCCESS
        self.message_user(request, f"Replayed {sum(outcomes.values())} events: {summary}.", level)


def event_reason(event: StripeEvent) -> str:
    """Why an event ended as it did, in words: the handler's reason, or that nothing handles its type."""
    if event.error:
        return event.error
    if event.status == StripeEvent.Status.IGNORED:
        return "nothing here acts on this event type"
    return ""


@admin.register(PlanChange)
class PlanChangeAdmin(ReadOnlyAdmin):
    """Append-only history of plan changes."""

    list_display = ["created_at", "workspace", "from_plan", "from_addon_packs", "to_plan", "to_addon_packs",
                    "changed_by", "source_event_id", "reason"]
    list_select_related = ["workspace", "from_plan", "to_plan", "changed_by"]
    search_fields = ["workspace__name", "source_event_id"]
    list_filter = ["to_plan"]
    show_full_result_count = False


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workspace", "kind", "plan", "addon_packs", "status", "stripe_session_id",
                    "created_by"]
    list_select_related = ["workspace", "plan", "created_by"]
    list_filter = ["status", "kind"]
    search_fields = ["workspace__name", "stripe_session_id"]
    show_full_result_count = False



@admin.register(PaymentFailure)
class PaymentFailureAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workspace", "stripe_invoice_id", "amount_due_cents", "currency", "attempt_count",
                    "emailed_at", "resolved_at"]
    list_select_related = ["workspace"]
    search_fields = ["workspace__name", "stripe_invoice_id"]
    show_full_result_count = False

