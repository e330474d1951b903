from django.contrib import admin

from automations import models


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
    list_display = ["workspace", "contact", "kind", "automation_ref", "action_type", "status", "created_at",
                    "expires_at", "reason"]
    list_filter = ["status", "kind", "action_type"]
    search_fields = ["automation_ref", "workspace__name"]
    raw_id_fields = ["workspace", "contact"]


@admin.register(models.Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "created_at"]
    raw_id_fields = ["workspace"]


@admin.register(models.Integration)
class IntegrationAdmin(admin.ModelAdmin):
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
class UsageAlertAdmin(admin.ModelAdmin):
    list_display = ["workspace", "month", "threshold", "created_at", "sent_at", "attempts", "last_error"]
    raw_id_fields = ["workspace"]
