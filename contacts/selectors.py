"""Contact reads: the filtered contact database, folders and tags."""

from django.db.models import Count, Q, QuerySet

from accounts.models import Workspace
from contacts.models import Contact, Folder, Message, Tag


def contact_list(
    *,
    workspace: Workspace,
    search: str | None = None,
    source: str | None = None,
    folder_id: int | None = None,
    tag: str | None = None,
) -> QuerySet[Contact]:
    """The workspace's contacts, newest first. Filters are validated by the caller's form/serializer."""
    contacts = Contact.objects.filter(workspace=workspace)
    if search:
        term = search.strip().lstrip("@")
        contacts = contacts.filter(Q(username__icontains=term) | Q(name__icontains=term) | Q(igsid=term))
    if source:
        contacts = contacts.filter(source=source)
    if folder_id:
        contacts = contacts.filter(folder_memberships__folder_id=folder_id)
    if tag:
        contacts = contacts.filter(tags__workspace=workspace, tags__name=tag)
    return contacts.order_by("-captured_at", "-id")


def contact_get(*, workspace: Workspace, contact_id: int) -> Contact | None:
    return Contact.objects.filter(workspace=workspace, pk=contact_id).first()


def folder_list(*, workspace: Workspace) -> QuerySet[Folder]:
    return Folder.objects.filter(workspace=workspace).annotate(size=Count("memberships")).order_by("name")


def tag_list(*, workspace: Workspace) -> QuerySet[Tag]:
    return Tag.objects.filter(workspace=workspace).order_by("name")


def contact_messages(*, contact: Contact, limit: int = 50) -> list[Message]:
    """The contact's latest messages, oldest first (a conversation reads top to bottom)."""
    latest = list(
        Message.objects.filter(contact=contact).select_related("sent_by").order_by("-created_at", "-id")[:limit]
    )
    return latest[::-1]


def message_list(*, workspace: Workspace, contact: Contact) -> QuerySet[Message]:
    """A contact's conversation, newest first (API history, inbox)."""
    return Message.objects.filter(workspace=workspace, contact=contact).order_by("-created_at", "-id")
