from django.contrib import admin

from contacts import intake
from contacts.models import (
    CapturedEvent,
    Contact,
    DataDeletionRequest,
    Folder,
    FolderMembership,
    InstagramConnection,
    Message,
    PendingMention,
    Tag,
    WebhookDelivery,
)


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["__str__", "workspace", "source", "captured_at", "last_inbound_at"]
    list_filter = ["source"]
    search_fields = ["igsid", "username", "name", "email", "workspace__name"]
    list_select_related = ["workspace"]
    raw_id_fields = ["workspace"]
    filter_horizontal = ["tags"]
    show_full_result_count = False
    date_hierarchy = "captured_at"


@admin.register(Folder)
class FolderAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "created_at"]
    search_fields = ["name", "workspace__name"]
    list_select_related = ["workspace"]
    raw_id_fields = ["workspace"]


@admin.register(FolderMembership)
class FolderMembershipAdmin(admin.ModelAdmin):
    list_display = ["folder", "contact", "added_at", "added_by"]
    list_select_related = ["folder", "contact", "added_by"]
    raw_id_fields = ["folder", "contact", "added_by"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace"]
    search_fields = ["name", "workspace__name"]
    list_select_related = ["workspace"]
    raw_id_fields = ["workspace"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """The outbox (outbound) and the inbox (inbound) of every workspace."""

    list_display = ["__str__", "workspace", "direction", "origin", "status", "created_at", "sent_at"]
    list_filter = ["direction", "origin", "status"]
    search_fields = ["text", "meta_mid", "contact__igsid", "contact__username", "workspace__name"]
    list_select_related = ["workspace", "contact"]
    raw_id_fields = ["workspace", "contact", "sent_by"]
    show_full_result_count = False


@admin.register(CapturedEvent)
class CapturedEventAdmin(admin.ModelAdmin):
    list_display = ["type", "meta_id", "workspace", "contact", "occurred_at", "delivery"]
    list_filter = ["type"]
    search_fields = ["meta_id", "contact__igsid", "workspace__name"]
    list_select_related = ["workspace", "contact"]
    raw_id_fields = ["workspace", "contact", "delivery"]
    show_full_result_count = False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["__str__", "received_at", "status", "attempts", "events_captured", "processed_at"]
    list_filter = ["status"]
    search_fields = ["body_sha256", "note", "error"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    actions = ["replay"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Replay the selected failed deliveries")
    def replay(self, request, queryset):
        count = sum(intake.delivery_replay(delivery_id=pk) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} delivery(ies) queued again.")


@admin.register(DataDeletionRequest)
class DataDeletionRequestAdmin(admin.ModelAdmin):
    list_display = ["confirmation_code", "status", "contacts_erased", "requested_at", "completed_at"]
    search_fields = ["confirmation_code"]
    readonly_fields = [f.name for f in DataDeletionRequest._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(InstagramConnection)
class InstagramConnectionAdmin(admin.ModelAdmin):
    """Staff see which account a workspace connected and its state; never the token (not even
    encrypted): it is not a field of these pages, and connections change only through the flow."""

    list_display = ["workspace", "username", "account_id", "status", "token_expires_at", "token_refreshed_at"]
    list_filter = ["status"]
    search_fields = ["account_id", "username", "workspace__name"]
    list_select_related = ["workspace"]
    fields = ["workspace", "account_id", "username", "status", "broken_at", "broken_reason", "token_expires_at",
              "token_refreshed_at", "connected_at", "connected_by"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PendingMention)
class PendingMentionAdmin(admin.ModelAdmin):
    list_display = ["meta_id", "workspace", "status", "attempts", "next_attempt_at", "last_error"]
    list_filter = ["status"]
    search_fields = ["meta_id", "comment_id", "media_id"]
    list_select_related = ["workspace"]
    readonly_fields = [f.name for f in PendingMention._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
