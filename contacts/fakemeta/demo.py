"""The demo workspaces come connected (seed_demo): a connection holding a token the local stand-in
issued, so sends, refreshes and mention look-ups work offline. Only with FAKE_META_ENABLED."""

import datetime

from django.conf import settings
from django.utils import timezone

from accounts.models import Workspace
from contacts.fakemeta import LONG_LIVED_SECONDS, account_id_for
from contacts.fakemeta.views import fake
from contacts.models import InstagramConnection
from contacts.tokens import token_encrypt


def demo_connect(*, workspace: Workspace, username: str) -> InstagramConnection | None:
    """Connect the workspace to the stand-in's account `username` unless it is connected already."""
    if not getattr(settings, "FAKE_META_ENABLED", False):
        return None
    existing = InstagramConnection.objects.filter(workspace=workspace).first()
    if existing is not None:
        return existing
    account_id = account_id_for(username)
    now = timezone.now()
    Workspace.objects.filter(pk=workspace.pk).update(instagram_account_id=account_id)
    fake().subscriptions[account_id] = ["messages", "messaging_postbacks", "messaging_referral", "comments",
                                        "mentions"]
    return InstagramConnection.objects.create(
        workspace=workspace, account_id=account_id, username=username,
        token_encrypted=token_encrypt(fake().issue_token(username=username)),
        token_expires_at=now + datetime.timedelta(seconds=LONG_LIVED_SECONDS), token_refreshed_at=now,
    )
