"""A workspace's stored Instagram connection as the senders see it: its account and decrypted token
for a Graph call, whether its sends are blocked, and marking it broken when Meta rejects the token.

Below contacts.meta and contacts.messaging (which call it on every send) and contacts.instagram (the
connect flow, refreshes): it calls none of them.
"""

import datetime
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, Workspace
from contacts.models import InstagramConnection
from contacts.tokens import TokenKeyError, token_decrypt

logger = logging.getLogger(__name__)

DISCONNECTED_REASON = "Instagram disconnected"


@dataclass(frozen=True, slots=True)
class Credentials:
    account_id: str
    access_token: str
    broken: bool

    def __repr__(self) -> str:
        return f"Credentials(account_id={self.account_id!r}, broken={self.broken})"


def connection_for(*, workspace: Workspace) -> InstagramConnection | None:
    return InstagramConnection.objects.filter(workspace_id=workspace.pk).first()


def connection_credentials(*, workspace_id: int) -> Credentials | None:
    """The account and decrypted token a Graph call of this workspace uses (None: not connected)."""
    connection = InstagramConnection.objects.filter(workspace_id=workspace_id).first()
    if connection is None:
        return None
    try:
        token = token_decrypt(connection.token_encrypted)
    except TokenKeyError:
        logger.error("Instagram token of workspace %s: no configured key decrypts it", workspace_id)
        return None
    return Credentials(account_id=connection.account_id, access_token=token, broken=connection.is_broken)


def sending_blocked(*, workspace_id: int) -> bool:
    """True while the workspace's connection is broken: automated sends wait (before the gate)."""
    return InstagramConnection.objects.filter(
        workspace_id=workspace_id, status=InstagramConnection.Status.BROKEN
    ).exists()


# --- a connection Meta broke ------------------------------------------------------------------------------


def connection_mark_broken(*, workspace_id: int, reason: str, now: datetime.datetime | None = None) -> bool:
    """Meta rejected the token (error 190) or it expired unrefreshed: sends stop until a reconnect.
    The owners get one email per break (the conditional update lets one caller through)."""
    broken = InstagramConnection.objects.filter(
        workspace_id=workspace_id, status=InstagramConnection.Status.ACTIVE
    ).update(status=InstagramConnection.Status.BROKEN, broken_at=now or timezone.now(), broken_reason=reason[:255])
    if broken:
        logger.warning("Instagram connection of workspace %s is broken: %s", workspace_id, reason)
        transaction.on_commit(lambda: _email_owners(workspace_id), robust=True)
    return bool(broken)


def _email_owners(workspace_id: int) -> None:
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        return
    owners = list(
        Membership.objects.filter(workspace=workspace, role=Membership.Role.OWNER, user__is_active=True)
        .values_list("user__email", flat=True)
    )
    if not owners:
        return
    link = f"{settings.SITE_URL.rstrip('/')}/w/{workspace.pk}/instagram/"
    send_mail(
        subject=f"{DISCONNECTED_REASON}: reconnect {workspace.name}",
        message=(
            f"Instagram stopped accepting {workspace.name}'s connection (the access was revoked or expired).\n\n"
            "Automated messages are paused and nothing is charged for them meanwhile. Reconnect the account "
            f"and they resume, as long as each person's messaging window is still open:\n\n{link}\n"
        ),
        from_email=None,
        recipient_list=owners,
    )
