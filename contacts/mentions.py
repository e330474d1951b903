"""@mentions whose author Meta's notification does not name: looked up with the workspace's token,
then captured as `collaboration` contacts by contacts.intake.

Intake stores each such mention as a PendingMention and queues its look-up; a failed look-up is
retried by the every-minute sweep with backoff and never blocks intake.
"""

import datetime

from django.db import transaction
from django.utils import timezone

from contacts import intake, meta
from contacts.instagram_connection import connection_credentials, connection_mark_broken
from contacts.models import PendingMention

MENTION_MAX_ATTEMPTS = 8


def _mention_backoff(attempts: int) -> datetime.timedelta:
    return datetime.timedelta(seconds=min(60 * 2 ** max(attempts - 1, 0), 6 * 3600))


def mention_resolve(*, mention_id: int, now: datetime.datetime | None = None) -> str:
    """Look up who @mentioned the account and capture them as a `collaboration` contact.

    The row is leased first (next attempt pushed back, committed), the call made with no transaction
    open; a failure is retried by the every-minute sweep with backoff, and gives up after
    MENTION_MAX_ATTEMPTS. Returns the mention's status after this attempt.
    """
    now = now or timezone.now()
    with transaction.atomic():
        mention = (
            PendingMention.objects.select_for_update(skip_locked=True)
            .filter(pk=mention_id, status=PendingMention.Status.PENDING, next_attempt_at__lte=now).first()
        )
        if mention is None:
            return "skipped"
        mention.attempts += 1
        mention.next_attempt_at = now + _mention_backoff(mention.attempts)
        mention.save(update_fields=["attempts", "next_attempt_at"])
    credentials = connection_credentials(workspace_id=mention.workspace_id)
    try:
        if credentials is None or credentials.broken:
            raise meta.MetaError("The workspace's Instagram connection is not usable.")
        author_id, username = meta.mention_author(
            access_token=credentials.access_token, account_id=credentials.account_id,
            comment_id=mention.comment_id, media_id=mention.media_id,
        )
    except meta.MetaError as failure:
        if isinstance(failure, meta.TokenRejected):
            connection_mark_broken(workspace_id=mention.workspace_id, now=now,
                                   reason="Instagram rejected the access token (error 190).")
        status = PendingMention.Status.FAILED if mention.attempts >= MENTION_MAX_ATTEMPTS else mention.status
        PendingMention.objects.filter(pk=mention.pk).update(status=status, last_error=str(failure)[:500])
        return status
    with transaction.atomic():
        intake.mention_capture(mention=mention, author_id=author_id, username=username, now=now)
        PendingMention.objects.filter(pk=mention.pk).update(status=PendingMention.Status.CAPTURED, last_error="")
    return PendingMention.Status.CAPTURED


def mentions_resolve_due(*, now: datetime.datetime | None = None, limit: int = 200) -> int:
    now = now or timezone.now()
    ids = list(
        PendingMention.objects.filter(status=PendingMention.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )
    for mention_id in ids:
        mention_resolve(mention_id=mention_id, now=now)
    return len(ids)
