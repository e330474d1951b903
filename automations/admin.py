from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from accounts.models import Workspace
from automations import models, services
from automations.names import automation_names
from automations.selectors import paused_actions_waiting_count
from billing.admin import ActivationRecordAdmin as BillingActivationRecordAdmin
from billing.admin import MonthColumn
from billing.admin import WorkspaceAdmin as BillingWorkspaceAdmin
from billing.models import ActivationRecord
from inro.outbound import UnsafeURLError, url_checked

# The workspace page is billing's, plus the paused actions waiting: automations sits above billing,
# so it extends billing's admin rather than billing reading automations. The ledger's list likewise
# names the automations its references point at.
admin.site.unregister(Workspace)
admin.site.unregister(ActivationRecord)


@admin.register(ActivationRecord)
class ActivationRecordAdmin(BillingActivationRecordAdmin):
    def automation_names(self, refs: list[str]) -> dict:
        return automation_names(refs)


@admin.register(Workspace)
class WorkspaceAdmin(BillingWorkspaceAdmin):
    def automation_context(self, workspace: Workspace) -> dict:
        return {
            "paused_waiting": paused_actions_waiting_count(workspace),
            "paused_url": reverse("admin:automations_pausedaction_changelist")
            + f"?workspace__id__exact={workspace.pk}&status__exact=waiting",
        }


@admin.register(models.Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "status", "recipients_count", "sent_count", "limited_count",
                    "skipped_window_count", "failed_count", "created_at"]
    list_filter = ["status", "audience"]
    search_fields = ["name", "workspace__name"]
    raw_id_fields = ["workspace", "segment", "folder", "launched_by"]


@admin.register(models.CampaignRecipient)
class CampaignRecipientAdmin(admin.ModelAdmin):
    list_display = ["campaign", "contact", "rank", "status", "updated_at"]
    list_filter = ["status"]
    raw_id_fields = ["campaign", "contact", "message"]


@admin.register(models.Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "trigger_type", "enabled", "created_at"]
    list_filter = ["trigger_type", "enabled"]
    search_fields = ["name", "workspace__name"]
    raw_id_fields = ["workspace"]


class StepLogInline(admin.TabularInline):
    model = models.ScenarioStepLog
    extra = 0
    readonly_fields = ["step_index", "step_type", "outcome", "detail", "created_at"]


@admin.register(models.ScenarioRun)
class ScenarioRunAdmin(admin.ModelAdmin):
    list_display = ["scenario", "contact", "status", "next_step", "started_at", "finished_at"]
    list_filter = ["status"]
    raw_id_fields = ["scenario", "workspace", "contact"]
    inlines = [StepLogInline]


@admin.register(models.PausedAction)
class PausedActionAdmin(admin.ModelAdmin):
    """Limited actions waiting for headroom. Staff resume or cancel them through the services only."""

    list_display = ["created_at", "workspace", "contact", "kind", "automation_label", "action_type", "status",
                    "expires_at", "reason"]
    list_filter = ["status", "kind", "action_type"]
    search_fields = ["automation_ref", "workspace__name", "workspace__slug", "contact__username"]
    list_select_related = ["workspace", "contact"]
    raw_id_fields = ["workspace", "contact"]
    show_full_result_count = False
    actions = ["resume_selected", "cancel_selected"]
    readonly_fields = ["workspace", "contact", "kind", "automation_ref", "action_type", "payload", "status",
                       "created_at", "expires_at", "resolved_at", "reason"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_changelist(self, request, **kwargs):
        base = super().get_changelist(request, **kwargs)

        class NamedChangeList(base):
            def get_results(self, request):
                super().get_results(request)
                names = automation_names([row.automation_ref for row in self.result_list])  # one query
                for row in self.result_list:
                    row.automation_name = names.get(row.automation_ref)

        return NamedChangeList

    @admin.display(description="Automation", ordering="automation_ref")
    def automation_label(self, action) -> str:
        name = getattr(action, "automation_name", None)
        if name is None:
            return action.automation_ref
        return format_html('{} <span style="color:#777">({})</span>', name.full, action.automation_ref)

    @admin.action(description="Resume waiting actions of these workspaces (oldest first, up to the headroom)",
                  permissions=["change"])
    def resume_selected(self, request, queryset):
        # Queued, never run inside the request: a resume sends messages (paced by Meta's limits).
        workspace_ids = sorted(set(queryset.filter(status=models.PausedAction.Status.WAITING)
                                   .values_list("workspace_id", flat=True)))
        queued = services.paused_actions_resume_queue(workspace_ids=workspace_ids)
        self.message_user(request, f"Queued the resume of the waiting actions of {queued} workspaces "
                                   "(oldest first, up to the headroom); the rest wait for headroom.")

    @admin.action(description="Cancel selected waiting actions", permissions=["change"])
    def cancel_selected(self, request, queryset):
        cancelled = sum(services.paused_action_cancel(paused_action=action) for action in queryset)
        self.message_user(request, f"Cancelled {cancelled} paused actions.")


@admin.register(models.Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "created_at"]
    raw_id_fields = ["workspace"]


class IntegrationForm(forms.ModelForm):
    class Meta:
        model = models.Integration
        fields = ["workspace", "name", "url", "secret", "enabled", "created_at"]

    def clean_url(self) -> str:
        # The same check as every other way in: staff see why a URL is refused (an internal address).
        try:
            return url_checked(self.cleaned_data["url"])
        except UnsafeURLError as refused:
            raise forms.ValidationError(refused.message, code="unsafe_url") from None


@admin.register(models.Integration)
class IntegrationAdmin(admin.ModelAdmin):
    form = IntegrationForm
    list_display = ["name", "workspace", "url", "enabled"]
    raw_id_fields = ["workspace"]


@admin.register(models.IntegrationDelivery)
class IntegrationDeliveryAdmin(admin.ModelAdmin):
    list_display = ["integration", "contact", "event", "status", "attempts", "last_status_code", "created_at"]
    list_filter = ["status"]
    raw_id_fields = ["integration", "contact"]


@admin.register(models.EnrichmentJob)
class EnrichmentJobAdmin(admin.ModelAdmin):
    list_display = ["workspace", "status", "enriched_count", "limited_count", "failed_count", "created_at"]
    raw_id_fields = ["workspace", "requested_by"]


@admin.register(models.UsageAlert)
class UsageAlertAdmin(MonthColumn, admin.ModelAdmin):
    list_display = ["workspace", "month_name", "threshold", "created_at", "sent_at", "attempts", "last_error"]
    raw_id_fields = ["workspace"]
