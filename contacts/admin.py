from django.contrib import admin

from contacts.models import Contact, Folder, FolderMembership, Tag


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
