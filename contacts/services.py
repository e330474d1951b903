"""Contact writes. Everything here is a manual action (rule 6): never counted, never blocked.

Also the privacy services: export, delete, and erasure at the person's request."""

import hashlib
import json
import secrets
from collections.abc import Iterable

from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from accounts.models import Membership, User, Workspace
from contacts.messaging import SendResult, send_message
from contacts.models import (
    Contact,
    ConversationRead,
    DataDeletionRequest,
    Folder,
    FolderMembership,
    Message,
    Tag,
    WebhookDelivery,
)
from inro.errors import ApplicationError


def _own_contacts(workspace: Workspace, contact_ids: Iterable[int]) -> list[int]:
    wanted = set(contact_ids)
    found = set(Contact.objects.filter(workspace=workspace, pk__in=wanted).values_list("pk", flat=True))
    if found != wanted:
        raise ApplicationError("Some of these contacts do not exist in this workspace.",
                               code="not_found", status=404, fields={"contact_ids": sorted(wanted - found)})
    return sorted(found)


def _folder_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ApplicationError("A folder needs a name of 1 to 80 characters.", code="invalid",
                               fields={"name": ["Enter 1 to 80 characters."]})
    return name


def _folder_save(folder: Folder) -> Folder:
    """Insert or rename; the unique (workspace, name) constraint decides, even between racing requests."""
    try:
        with transaction.atomic():
            folder.save()
    except IntegrityError:
        raise ApplicationError(f"A folder named {folder.name!r} already exists.", code="conflict", status=409,
                               fields={"name": ["This name is taken."]}) from None
    return folder


def folder_create(*, workspace: Workspace, name: str) -> Folder:
    return _folder_save(Folder(workspace=workspace, name=_folder_name(name)))


def folder_rename(*, folder: Folder, name: str) -> Folder:
    folder.name = _folder_name(name)
    return _folder_save(folder)


def folder_delete(*, folder: Folder) -> None:
    try:
        with transaction.atomic():
            folder.delete()
    except ProtectedError:  # e.g. a campaign's audience (automations protects the folders it targets)
        raise ApplicationError("This folder is in use (a campaign targets it): change that first.",
                               code="folder_in_use", status=409) from None


@transaction.atomic
def folder_add_contacts(*, folder: Folder, contact_ids: Iterable[int], added_by: User | None) -> int:
    """Put contacts in a folder by hand; returns how many were newly added. Manual: no activation."""
    ids = _own_contacts(folder.workspace, contact_ids)
    existing = set(
        FolderMembership.objects.filter(folder=folder, contact_id__in=ids).values_list("contact_id", flat=True)
    )
    FolderMembership.objects.bulk_create(
        [FolderMembership(folder=folder, contact_id=i, added_by=added_by) for i in ids if i not in existing],
        ignore_conflicts=True,
    )
    return len([i for i in ids if i not in existing])


@transaction.atomic
def folder_remove_contacts(*, folder: Folder, contact_ids: Iterable[int]) -> int:
    ids = _own_contacts(folder.workspace, contact_ids)
    deleted, _ = FolderMembership.objects.filter(folder=folder, contact_id__in=ids).delete()
    return deleted


@transaction.atomic
def contact_set_tags(*, contact: Contact, names: Iterable[str]) -> list[str]:
    """Replace a contact's tags by hand (creating tags as needed). Manual: no activation."""
    clean = sorted({n.strip().lower() for n in names if n and n.strip()})
    if any(len(n) > 64 for n in clean):
        raise ApplicationError("Tags are at most 64 characters.", code="invalid", fields={"tags": ["Too long."]})
    tags = []
    for name in clean:
        tag, _ = Tag.objects.get_or_create(workspace=contact.workspace, name=name)
        tags.append(tag)
    contact.tags.set(tags)
    return clean


@transaction.atomic
def contact_update_fields(*, contact: Contact, **changes) -> Contact:
    """Edit a contact's fields by hand (name, email, phone, custom_fields). Manual: no activation."""
    allowed = {"name", "email", "phone", "custom_fields"}
    unknown = set(changes) - allowed
    if unknown:
        raise ApplicationError(f"These fields cannot be edited: {', '.join(sorted(unknown))}.", code="invalid")
    for field, value in changes.items():
        setattr(contact, field, value)
    contact.full_clean(exclude=["workspace", "igsid", "source", "tags", "folders"])
    contact.save(update_fields=list(changes))
    return contact


MANUAL_MESSAGE_MAX_LENGTH = 1000


def message_send_manual(*, contact: Contact, text: str, sent_by: User) -> SendResult:
    """A member sends a DM from the inbox (rule 6): never counted, never blocked by the quota.

    The activation gate is not called, whatever the quota state. Meta's rules for a person's reply do
    apply (`contacts.windows.reply_window`): within 24 hours a standard reply, up to 7 days one tagged
    HUMAN_AGENT, after that an ApplicationError (409, code "reply_window_closed") saying why and since
    when, with nothing stored. Meta may still refuse a message, which comes back as status "failed".
    """
    text = (text or "").strip()
    if not text or len(text) > MANUAL_MESSAGE_MAX_LENGTH:
        raise ApplicationError(
            f"A message needs 1 to {MANUAL_MESSAGE_MAX_LENGTH} characters.", code="invalid",
            fields={"text": [f"Enter 1 to {MANUAL_MESSAGE_MAX_LENGTH} characters."]},
        )
    if not Membership.objects.filter(user=sent_by, workspace_id=contact.workspace_id).exists():
        raise ApplicationError("Only members of this workspace can message its contacts.", code="forbidden",
                               status=403)
    return send_message(
        workspace=contact.workspace, contact=contact, text=text, origin=Message.Origin.MANUAL, sent_by=sent_by,
    )


_READS = ConversationRead._meta.db_table


def conversation_mark_read(*, membership: Membership, contact: Contact) -> int:
    """Mark a conversation read for one member, up to the person's newest message; returns that
    message's id (0: none yet). Other members' marks are untouched, and a mark never moves back (two
    tabs reading at once keep the further one). Reading is a manual action: never counted (rule 6)."""
    if contact.workspace_id != membership.workspace_id:
        raise ApplicationError("No such contact in this workspace.", code="not_found", status=404)
    newest = (
        Message.objects.filter(contact=contact, direction=Message.Direction.INBOUND)
        .order_by("-id").values_list("id", "created_at").first()
    )
    if newest is None:
        return 0
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_READS} (membership_id, contact_id, last_read_message_id, last_read_at, updated_at)"  # noqa: S608
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (membership_id, contact_id) DO UPDATE SET"
            " last_read_message_id = EXCLUDED.last_read_message_id, last_read_at = EXCLUDED.last_read_at,"
            f" updated_at = EXCLUDED.updated_at WHERE {_READS}.last_read_message_id < EXCLUDED.last_read_message_id",
            [membership.pk, contact.pk, newest[0], newest[1], now],
        )
    return newest[0]


# --- privacy: export, delete, erase -----------------------------------------------------------

# What erasure blanks: every field that says who the person is or what they wrote.
_PERSONAL_BLANKS = {"username": "", "name": "", "email": "", "phone": "", "custom_fields": {}, "biography": "",
                    "follower_count": None}
REDACTED_BODY = json.dumps({"redacted": "personal data erased at the person's request"})


def contact_export(*, contact: Contact) -> dict:
    """Everything the workspace holds about one contact, as plain JSON-ready data."""
    return {
        "igsid": contact.igsid,
        "username": contact.username,
        "name": contact.name,
        "email": contact.email,
        "phone": contact.phone,
        "source": contact.source,
        "captured_at": contact.captured_at.isoformat(),
        "last_inbound_at": contact.last_inbound_at.isoformat() if contact.last_inbound_at else None,
        "custom_fields": contact.custom_fields,
        "follower_count": contact.follower_count,
        "biography": contact.biography,
        "erased_at": contact.erased_at.isoformat() if contact.erased_at else None,
        "tags": sorted(contact.tags.values_list("name", flat=True)),
        "folders": sorted(contact.folders.values_list("name", flat=True)),
        "messages": [
            {"direction": m.direction, "origin": m.origin, "status": m.status, "text": m.text,
             "created_at": m.created_at.isoformat(), "sent_at": m.sent_at.isoformat() if m.sent_at else None}
            for m in contact.messages.order_by("created_at", "id")
        ],
        "events": [
            {"type": e.type, "occurred_at": e.occurred_at.isoformat()}
            for e in contact.captured_events.order_by("occurred_at", "id")
        ],
    }


@transaction.atomic
def contact_delete(*, contact: Contact) -> None:
    """Delete a contact and what it wrote. Its activation records stay (their contact becomes empty,
    ActivationRecord.contact is SET_NULL), so the month's activated count never changes."""
    contact.delete()


def _user_id_hash(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()


@transaction.atomic
def contact_erase_for_meta_user(*, user_id: str) -> DataDeletionRequest:
    """Meta's data deletion callback: erase this person's personal data in every workspace.

    The contact rows stay (blanked, `erased_at` set) so activation ledgers and counts are unchanged; the
    texts of their messages and the raw webhook deliveries that mention them are blanked too.
    """
    now = timezone.now()
    contacts = Contact.objects.filter(igsid=user_id)
    contact_ids = list(contacts.values_list("pk", flat=True))
    contacts.update(**_PERSONAL_BLANKS, erased_at=now)
    Message.objects.filter(contact_id__in=contact_ids).update(text="", error="")
    # Raw deliveries quote the person's id next to their words and username: redact those bodies.
    # The body hash stays, so a redelivery of the same notification is still recognised and ignored.
    WebhookDelivery.objects.filter(body__contains=json.dumps(user_id)).update(body=REDACTED_BODY)
    return DataDeletionRequest.objects.create(
        confirmation_code=secrets.token_hex(10), user_id_sha256=_user_id_hash(user_id),
        contacts_erased=len(contact_ids), requested_at=now, completed_at=now,
    )
