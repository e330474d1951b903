"""API endpoints of contacts: the contact database, conversations (manual DMs) and folders.

Everything here is a manual action (rule 6): never counted, never blocked at the limit.
"""

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.api_base import WorkspaceView, idempotent
from contacts import selectors, services
from contacts.models import Contact, Folder, Message
from inro.api import (
    IDEMPOTENCY_PARAMETER,
    StrictCharField,
    StrictEmailField,
    StrictIntegerField,
    StrictSerializer,
    cursor_page,
    validated_query,
)
from inro.converters import MAX_ID

# --- Contacts -------------------------------------------------------------------------------------


class ContactSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    igsid = serializers.CharField(help_text="Instagram-scoped user id.")
    username = serializers.CharField()
    name = serializers.CharField()
    source = serializers.ChoiceField(choices=Contact.Source.choices)
    captured_at = serializers.DateTimeField()
    last_inbound_at = serializers.DateTimeField(allow_null=True)
    email = serializers.CharField()
    phone = serializers.CharField()
    custom_fields = serializers.DictField()
    follower_count = serializers.IntegerField(allow_null=True)
    biography = serializers.CharField()
    tags = serializers.SerializerMethodField(help_text="Tag names.")
    folders = serializers.SerializerMethodField(help_text="Folder ids.")

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tags(self, contact) -> list[str]:
        return sorted(tag.name for tag in contact.tags.all())

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_folders(self, contact) -> list[int]:
        return sorted(membership.folder_id for membership in contact.folder_memberships.all())


MAX_CUSTOM_FIELDS = 25
MAX_CUSTOM_VALUE_LENGTH = 255


@extend_schema_field({"anyOf": [{"type": "string", "maxLength": 254, "format": "email"},
                                {"type": "string", "maxLength": 0}]})
class BlankableEmailField(StrictEmailField):
    """An email address, or "" to clear it."""


@extend_schema_field({
    "type": "object", "maxProperties": MAX_CUSTOM_FIELDS,
    "propertyNames": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\x00]*$"},
    "additionalProperties": {"anyOf": [
        {"type": "string", "maxLength": MAX_CUSTOM_VALUE_LENGTH, "pattern": "^[^\\x00]*$"},
        {"type": "number"}, {"type": "boolean"}, {"type": "null"}]},
})
class CustomFieldsField(serializers.DictField):
    """Your own fields: names of 1 to 64 characters, plain values (text, number, true/false, null)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) > MAX_CUSTOM_FIELDS:
            raise serializers.ValidationError(f"Keep to {MAX_CUSTOM_FIELDS} custom fields.")
        for name, item in value.items():
            if not 1 <= len(name) <= 64:
                raise serializers.ValidationError(f"Field names are 1 to 64 characters: {name[:70]!r}.")
            if isinstance(item, dict | list) or (isinstance(item, str) and len(item) > MAX_CUSTOM_VALUE_LENGTH):
                raise serializers.ValidationError(
                    f"Each value is text of at most {MAX_CUSTOM_VALUE_LENGTH} characters, a number, true/false "
                    f"or null: {name!r} is not.")
        return value


class ContactUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=150, allow_blank=True, required=False)
    email = BlankableEmailField(max_length=254, allow_blank=True, required=False)
    phone = StrictCharField(max_length=32, allow_blank=True, required=False)
    custom_fields = CustomFieldsField(required=False, help_text="Your own fields; replaces them all.")
    tags = serializers.ListField(child=StrictCharField(max_length=64), max_length=100, required=False,
                                 help_text="Tag names; replaces the contact's tags.")


class ContactQuerySerializer(serializers.Serializer):
    search = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                   help_text="Username, name or exact IGSID.")
    source = serializers.ChoiceField(choices=Contact.Source.choices, required=False)
    folder = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, help_text="Folder id.")
    tag = serializers.CharField(max_length=64, required=False, help_text="Tag name.")
    activated = serializers.BooleanField(required=False, allow_null=True, default=None,
                                         help_text="Activated this month (true) or not (false).")


def _with_relations(contacts):
    return contacts.prefetch_related("tags", "folder_memberships")


class ContactListView(WorkspaceView):
    extra_error_statuses = {"GET": (400,)}
    serializer_class = ContactSerializer
    pagination_class = cursor_page("-captured_at", "-id")
    # "Activated this month" is billing's to say, and billing sits above contacts: the URL module
    # passes billing's filter in with as_view(activated_filter=...).
    activated_filter = None

    def get_queryset(self):
        query = validated_query(ContactQuerySerializer, self.request)
        folder_id = query.get("folder")  # a folder that does not exist here holds no contacts: an empty page
        contacts = selectors.contact_list(workspace=self.workspace, search=query.get("search"),
                                          source=query.get("source"), folder_id=folder_id, tag=query.get("tag"))
        if query.get("activated") is not None and self.activated_filter is not None:
            contacts = self.activated_filter(contacts, workspace=self.workspace, activated=query["activated"])
        return _with_relations(contacts)

    @extend_schema(operation_id="contacts_list", parameters=[ContactQuerySerializer],
                   responses={200: ContactSerializer(many=True)}, tags=["contacts"])
    def get(self, request, workspace_id):
        """The contact database, newest first, with search and filters."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class _ContactMixin:
    def get_contact(self, contact_id: int) -> Contact:
        contact = selectors.contact_get(workspace=self.workspace, contact_id=contact_id)
        if contact is None:
            raise NotFound("No such contact in this workspace.")
        return contact


class ContactDetailView(_ContactMixin, WorkspaceView):
    serializer_class = ContactSerializer

    @extend_schema(operation_id="contacts_retrieve", tags=["contacts"])
    def get(self, request, workspace_id, contact_id):
        """One contact with its tags and folders."""
        contact = _with_relations(Contact.objects.filter(pk=self.get_contact(contact_id).pk)).get()
        return Response(ContactSerializer(contact).data)

    @extend_schema(operation_id="contacts_partial_update", request=ContactUpdateSerializer,
                   responses={200: ContactSerializer}, tags=["contacts"])
    def patch(self, request, workspace_id, contact_id):
        """Edit a contact by hand (name, email, phone, custom fields, tags): manual, no activation."""
        contact = self.get_contact(contact_id)
        serializer = ContactUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        tags = changes.pop("tags", None)
        if changes:
            services.contact_update_fields(contact=contact, **changes)
        if tags is not None:
            services.contact_set_tags(contact=contact, names=tags)
        contact = _with_relations(Contact.objects.filter(pk=contact.pk)).get()
        return Response(ContactSerializer(contact).data)


# --- Messages -------------------------------------------------------------------------------------


class MessageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    direction = serializers.ChoiceField(choices=Message.Direction.choices)
    origin = serializers.ChoiceField(choices=Message.Origin.choices)
    status = serializers.ChoiceField(choices=Message.Status.choices)
    text = serializers.CharField()
    automation_ref = serializers.CharField()
    tag = serializers.CharField(help_text='Meta\'s message tag it was sent with: "HUMAN_AGENT" for a member\'s reply '
                                          "24 hours to 7 days after the person's last message, else empty.")
    sent_by = serializers.IntegerField(source="sent_by_id", allow_null=True, help_text="User id, for manual ones.")
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)


class MessageSendSerializer(StrictSerializer):
    text = StrictCharField(max_length=1000, help_text="1 to 1000 characters (Instagram's limit).")


class ContactMessagesView(_ContactMixin, WorkspaceView):
    serializer_class = MessageSerializer
    pagination_class = cursor_page("-created_at", "-id")

    @extend_schema(operation_id="contacts_messages_list", responses={200: MessageSerializer(many=True)},
                   tags=["contacts"])
    def get(self, request, workspace_id, contact_id):
        """The conversation with this contact, newest first."""
        contact = self.get_contact(contact_id)
        page = self.paginate_queryset(selectors.message_list(workspace=self.workspace, contact=contact))
        return self.get_paginated_response(MessageSerializer(page, many=True).data)

    @extend_schema(operation_id="contacts_messages_create", request=MessageSendSerializer,
                   responses={201: MessageSerializer}, parameters=[IDEMPOTENCY_PARAMETER], tags=["contacts"])
    @idempotent
    def post(self, request, workspace_id, contact_id):
        """Send a DM by hand (rule 6): no activation, works at the limit. Within 24 hours of the person's last
        message a standard reply, up to 7 days one tagged HUMAN_AGENT, after that 409 reply_window_closed."""
        contact = self.get_contact(contact_id)
        serializer = MessageSendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.message_send_manual(contact=contact, text=serializer.validated_data["text"],
                                              sent_by=request.user)
        return Response(MessageSerializer(result.message).data, status=status.HTTP_201_CREATED)


# --- Folders --------------------------------------------------------------------------------------


class FolderSerializer(StrictSerializer):
    id = StrictIntegerField(read_only=True)
    name = StrictCharField(max_length=80)
    size = StrictIntegerField(read_only=True, help_text="Contacts in the folder.")
    created_at = serializers.DateTimeField(read_only=True)


class FolderListSerializer(serializers.Serializer):
    results = FolderSerializer(many=True)


class FolderListView(WorkspaceView):
    serializer_class = FolderSerializer

    @extend_schema(operation_id="folders_list", responses={200: FolderListSerializer}, tags=["folders"])
    def get(self, request, workspace_id):
        """Every folder with its size, by name."""
        return Response({"results": FolderSerializer(selectors.folder_list(workspace=self.workspace), many=True).data})

    @extend_schema(operation_id="folders_create", responses={201: FolderSerializer}, tags=["folders"])
    def post(self, request, workspace_id):
        """Create a folder (names are unique in a workspace: 409 when taken)."""
        serializer = FolderSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        folder = services.folder_create(workspace=self.workspace, name=serializer.validated_data["name"])
        folder = selectors.folder_list(workspace=self.workspace).get(pk=folder.pk)
        return Response(FolderSerializer(folder).data, status=status.HTTP_201_CREATED)

    extra_error_statuses = {"POST": (409,)}


class _FolderMixin:
    def get_folder(self, folder_id: int) -> Folder:
        folder = selectors.folder_list(workspace=self.workspace).filter(pk=folder_id).first()
        if folder is None:
            raise NotFound("No such folder in this workspace.")
        return folder


class FolderDetailView(_FolderMixin, WorkspaceView):
    serializer_class = FolderSerializer
    extra_error_statuses = {"PATCH": (409,), "DELETE": (409,)}

    @extend_schema(operation_id="folders_retrieve", tags=["folders"])
    def get(self, request, workspace_id, folder_id):
        """One folder with its size."""
        return Response(FolderSerializer(self.get_folder(folder_id)).data)

    @extend_schema(operation_id="folders_partial_update", tags=["folders"], request=FolderSerializer)
    def patch(self, request, workspace_id, folder_id):
        """Rename a folder (409 when the name is taken); without a name, nothing changes."""
        folder = self.get_folder(folder_id)
        serializer = FolderSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        if "name" in serializer.validated_data:
            services.folder_rename(folder=folder, name=serializer.validated_data["name"])
        return Response(FolderSerializer(self.get_folder(folder_id)).data)

    @extend_schema(operation_id="folders_destroy", tags=["folders"])
    def delete(self, request, workspace_id, folder_id):
        """Delete the folder; its contacts stay in the database (409 while a campaign targets it)."""
        services.folder_delete(folder=self.get_folder(folder_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContactIdsSerializer(StrictSerializer):
    contact_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=MAX_ID), min_length=1, max_length=1000,
        help_text="1 to 1000 contact ids of this workspace.",
    )


class FolderChangeSerializer(serializers.Serializer):
    changed = serializers.IntegerField(help_text="Contacts newly added (POST) or removed (DELETE).")
    size = serializers.IntegerField(help_text="Contacts in the folder now.")


class FolderContactsView(_FolderMixin, WorkspaceView):
    # Put contacts in a folder or take them out, by hand (rule 6): no activation, never blocked.

    serializer_class = ContactIdsSerializer
    delete_has_body = True

    def _contact_ids(self, request) -> list[int]:
        serializer = ContactIdsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data["contact_ids"]

    @extend_schema(operation_id="folders_contacts_add", request=ContactIdsSerializer,
                   responses={200: FolderChangeSerializer}, tags=["folders"])
    def post(self, request, workspace_id, folder_id):
        """Add contacts to the folder by hand; contacts already in it are left alone."""
        contact_ids = self._contact_ids(request)  # a malformed body is a 400 before any lookup
        changed = services.folder_add_contacts(folder=self.get_folder(folder_id), contact_ids=contact_ids,
                                               added_by=request.user)
        return Response({"changed": changed, "size": self.get_folder(folder_id).size})

    @extend_schema(operation_id="folders_contacts_remove", request=ContactIdsSerializer,
                   responses={200: FolderChangeSerializer}, tags=["folders"])
    def delete(self, request, workspace_id, folder_id):
        """Take contacts out of the folder by hand (the body is {"contact_ids": [...]}, as for POST)."""
        contact_ids = self._contact_ids(request)  # a malformed body is a 400 before any lookup
        changed = services.folder_remove_contacts(folder=self.get_folder(folder_id), contact_ids=contact_ids)
        return Response({"changed": changed, "size": self.get_folder(folder_id).size})
