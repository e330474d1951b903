from django.contrib import admin

from billing.models import ActivationRecord, BonusGrant, MonthlyUsage, MonthRollover, Plan, Subscription


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "monthly_activations", "price_cents", "addon_pack_size",
                    "addon_pack_price_cents", "stripe_price_id", "stripe_addon_price_id"]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["workspace", "plan", "status", "addon_packs", "current_period_end", "cancel_at_period_end"]
    list_filter = ["plan", "status", "cancel_at_period_end"]
    search_fields = ["workspace__name", "stripe_customer_id", "stripe_subscription_id"]
    list_select_related = ["workspace", "plan"]
    raw_id_fields = ["workspace"]


@admin.register(MonthlyUsage)
class MonthlyUsageAdmin(admin.ModelAdmin):
    list_display = ["workspace", "month", "activated", "quota", "limit_reached_at", "closed_at"]
    list_filter = ["month"]
    search_fields = ["workspace__name", "workspace__slug"]
    list_select_related = ["workspace"]
    readonly_fields = ["workspace", "month", "quota", "activated", "limit_reached_at", "opened_at", "closed_at"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ActivationRecord)
class ActivationRecordAdmin(admin.ModelAdmin):
    list_display = ["activated_at", "workspace", "contact", "month", "kind", "automation_ref"]
    list_filter = ["kind", "month"]
    search_fields = ["workspace__name", "contact__username", "automation_ref"]
    list_select_related = ["workspace", "contact"]
    show_full_result_count = False

    # The ledger is append-only: not even a superuser edits it here.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BonusGrant)
class BonusGrantAdmin(admin.ModelAdmin):
    list_display = ["workspace", "month", "amount", "reason", "granted_by", "created_at"]
    list_filter = ["month"]
    search_fields = ["workspace__name", "reason"]
    list_select_related = ["workspace", "granted_by"]

    # Grants go through billing.services.bonus_grant so the quota follows; never a bare insert.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(MonthRollover)
class MonthRolloverAdmin(admin.ModelAdmin):
    list_display = ["month", "started_at", "completed_at", "workspaces_opened"]
