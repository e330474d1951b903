"""Each workspace's own Instagram account: connect (Business Login), disconnect, tokens kept fresh,
a connection Meta broke, and @mentions whose author has to be looked up.

The Meta calls themselves are in contacts/meta.py; tokens are encrypted by contacts/tokens.py. Sends
of a workspace whose connection is broken stop before the activation gate: automations ask
`sending_blocked` and keep what they would have sent as paused actions with DISCONNECTED_REASON;
reconnecting fires `contacts.hooks.instagram_connected`, which resumes them (window permitting).
"""

import contextlib
import datetime
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Membership, User, Workspace
from contacts import hooks, meta
from contacts.models import InstagramConnection, InstagramConnectState, PendingMention
from contacts.tokens import TokenKeyError, token_decrypt, token_encrypt

logger = logging.getLogger(__name__)

DISCONNECTED_REASON = "Instagram disconnected"
CALLBACK_PATH = "/instagram/callback/"
STATE_SALT = "contacts.instagram.connect-state"
REFRESH_MIN_AGE = datetime.timedelta(hours=24)  # Meta refreshes a long-lived token only after 24 hours
REFRESH_AHEAD = datetime.timedelta(days=7)
UNROUTED_EVENTS_KEY = "instagram:unrouted_events"
MENTION_MAX_ATTEMPTS = 8


class ConnectRefused(Exception):
    """The connection was not made; `message` says why in words for the person, nothing was stored."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Credentials:
    account_id: str
    access_token: str
    broken: bool

    def __repr__(self) -> str:
        return f"Credentials(account_id={self.account_id!r}, broken={self.broken})"


# --- reading ------------------------------------------------------------------------------------------


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


def can_connect(*, workspace: Workspace, user: User) -> bool:
    """Owners and admins connect and disconnect the workspace's account."""
    return Membership.objects.filter(
        workspace=workspace, user=user, role__in=(Membership.Role.OWNER, Membership.Role.ADMIN)
    ).exists()


def redirect_uri() -> str:
    return settings.SITE_URL.rstrip("/") + CALLBACK_PATH


# --- connect --------------------------------------------------------------------------------------------


def connect_url(*, workspace: Workspace, user: User, now: datetime.datetime | None = None) -> str:
    """Where to send the person to grant access: Instagram's consent page with a signed, single-use
    `state` naming the workspace and the user, good for INSTAGRAM_CONNECT_STATE_MAX_AGE seconds."""
    nonce = secrets.token_urlsafe(32)
    InstagramConnectState.objects.create(nonce=nonce, workspace=workspace, user=user, created_at=now or timezone.now())
    state = signing.dumps({"w": workspace.pk, "u": user.pk, "n": nonce}, salt=STATE_SALT)
    query = urlencode({
        "client_id": settings.META_APP_ID, "redirect_uri": redirect_uri(), "response_type": "code",
        "scope": ",".join(meta.SCOPES), "state": state,
    })
    return f"{settings.INSTAGRAM_AUTHORIZE_URL}?{query}"


def _state_claim(state: str, now: datetime.datetime) -> tuple[Workspace, User]:
    try:
        data = signing.loads(state, salt=STATE_SALT, max_age=settings.INSTAGRAM_CONNECT_STATE_MAX_AGE)
    except signing.SignatureExpired:
        raise ConnectRefused("expired", "This connect link has expired (links last 10 minutes). "
                                        "Nothing was connected: start again from your workspace.") from None
    except signing.BadSignature:
        raise ConnectRefused("bad_state", "This connect link is not valid. Nothing was connected: "
                                          "start again from your workspace.") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), int | str) for k in ("w", "u", "n")):
        raise ConnectRefused("bad_state", "This connect link is not valid. Nothing was connected.")
    claimed = InstagramConnectState.objects.filter(
        nonce=str(data["n"]), workspace_id=data["w"], user_id=data["u"], used_at__isnull=True
    ).update(used_at=now)
    if not claimed:
        raise ConnectRefused("replayed", "This connect link was already used. Nothing more was connected: "
                                         "start again from your workspace.")
    workspace = Workspace.objects.filter(pk=data["w"], deleted_at__isnull=True).first()
    user = User.objects.filter(pk=data["u"], is_active=True).first()
    if workspace is None or user is None or not can_connect(workspace=workspace, user=user):
        raise ConnectRefused("forbidden", "Only the workspace's owners and admins can connect its Instagram account.")
    return workspace, user


def _taken_message(username: str) -> str:
    who = f"@{username}" if username else "This Instagram account"
    return (f"{who} is already connected to another workspace. An account can be connected to one workspace "
            "only: disconnect it there first. Nothing was changed here.")


def connection_complete(*, code: str, state: str, error: str = "",
                        now: datetime.datetime | None = None) -> InstagramConnection:
    """The consent redirect came back: check the state, exchange the code for a long-lived token,
    read the account, subscribe it to webhooks and store the connection. Raises ConnectRefused (and
    stores nothing) on a denied consent, a forged, replayed or expired state, an account another
    workspace holds, or any failed exchange."""
    now = now or timezone.now()
    if error:
        if state:
            with contextlib.suppress(ConnectRefused):
                _state_claim(state, now)  # a denied consent uses its link up too
        raise ConnectRefused("denied", "Instagram access was not granted, so nothing was connected. "
                                       "You can try again whenever you like.")
    if not state:
        raise ConnectRefused("bad_state", "This connect link is not valid. Nothing was connected.")
    workspace, user = _state_claim(state, now)
    if not code or len(code) > 2000:
        raise ConnectRefused("no_code", "Instagram sent no authorization code back. Nothing was connected.")
    try:
        short = meta.oauth_code_exchange(code=code, redirect_uri=redirect_uri())
        issued = meta.long_lived_token_exchange(short_lived_token=short.access_token)
        account = meta.account_read(access_token=issued.access_token)
    except meta.MetaError as failure:
        logger.warning("Instagram connect of workspace %s failed: %s", workspace.pk, failure)
        raise ConnectRefused("exchange_failed", "Instagram did not complete the connection, so nothing was "
                                                "stored. Please try again in a minute.") from None
    if Workspace.objects.filter(instagram_account_id=account.user_id).exclude(pk=workspace.pk).exists():
        raise ConnectRefused("taken", _taken_message(account.username))
    try:
        meta.webhooks_subscribe(access_token=issued.access_token)
    except meta.MetaError as failure:
        logger.warning("Instagram connect of workspace %s: webhook subscription failed: %s", workspace.pk, failure)
        raise ConnectRefused("exchange_failed", "Instagram did not subscribe the account to its notifications, "
                                                "so nothing was stored. Please try again in a minute.") from None
    previous = connection_for(workspace=workspace)
    if previous is not None and previous.account_id != account.user_id:
        _unsubscribe_quietly(previous)
    try:
        with transaction.atomic():
            Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
            InstagramConnection.objects.filter(workspace=workspace).exclude(account_id=account.user_id).delete()
            Workspace.objects.filter(pk=workspace.pk).update(instagram_account_id=account.user_id)
            connection, _ = InstagramConnection.objects.update_or_create(
                workspace=workspace,
                defaults={
                    "account_id": account.user_id, "username": account.username,
                    "token_encrypted": token_encrypt(issued.access_token),
                    "token_expires_at": now + datetime.timedelta(seconds=issued.expires_in),
                    "token_refreshed_at": now, "status": InstagramConnection.Status.ACTIVE,
                    "broken_at": None, "broken_reason": "", "connected_at": now, "connected_by": user,
                },
            )
            hooks.instagram_connected(workspace_id=workspace.pk)
    except IntegrityError:
        # Another workspace connected the same account at the same moment (unique account id).
        raise ConnectRefused("taken", _taken_message(account.username)) from None
    logger.info("Instagram account %s connected to workspace %s", account.user_id, workspace.pk)
    return connection


def _unsubscribe_quietly(connection: InstagramConnection) -> None:
    try:
        meta.webhooks_unsubscribe(access_token=token_decrypt(connection.token_encrypted))
    except (meta.MetaError, TokenKeyError) as failure:
        # The token may already be revoked: the account is forgotten here either way.
        logger.warning("Instagram unsubscribe of workspace %s failed: %s", connection.workspace_id, failure)


def connection_disconnect(*, workspace: Workspace) -> bool:
    """Unsubscribe the account from webhooks and delete the token; False if nothing was connected."""
    connection = connection_for(workspace=workspace)
    if connection is None:
        return False
    _unsubscribe_quietly(connection)
    with transaction.atomic():
        InstagramConnection.objects.filter(pk=connection.pk).delete()
        Workspace.objects.filter(pk=workspace.pk, instagram_account_id=connection.account_id).update(
            instagram_account_id=""
        )
    logger.info("Instagram account %s disconnected from workspace %s", connection.account_id, workspace.pk)
    return True


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


# --- keeping tokens fresh ---------------------------------------------------------------------------------


def tokens_refresh_due(*, now: datetime.datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Refresh tokens at least 24 hours old that expire within 7 days (the beat job); one Meta
    refuses (190), or that fails past its expiry, breaks its connection."""
    now = now or timezone.now()
    due = list(
        InstagramConnection.objects.filter(
            status=InstagramConnection.Status.ACTIVE, token_refreshed_at__lte=now - REFRESH_MIN_AGE,
            token_expires_at__lte=now + REFRESH_AHEAD,
        ).order_by("token_expires_at").values_list("pk", flat=True)[:limit]
    )
    tally = {"refreshed": 0, "broken": 0, "retry": 0}
    for connection_id in due:
        tally[connection_refresh(connection_id=connection_id, now=now)] += 1
    return tally


def connection_refresh(*, connection_id: int, now: datetime.datetime | None = None) -> str:
    """Refresh one token: "refreshed", "broken" or "retry" (a failure before expiry: next run)."""
    now = now or timezone.now()
    connection = InstagramConnection.objects.filter(pk=connection_id).first()
    if connection is None or connection.is_broken:
        return "retry"
    try:
        token = token_decrypt(connection.token_encrypted)
        issued = meta.token_refresh(access_token=token)
    except meta.TokenRejected:
        connection_mark_broken(workspace_id=connection.workspace_id, now=now,
                               reason="Instagram rejected the access token (error 190).")
        return "broken"
    except (meta.MetaError, TokenKeyError) as failure:
        if now >= connection.token_expires_at:
            connection_mark_broken(workspace_id=connection.workspace_id, now=now,
                                   reason="The access token expired and could not be refreshed.")
            return "broken"
        logger.warning("Instagram token refresh of workspace %s failed, retried next run: %s",
                       connection.workspace_id, failure)
        return "retry"
    # Only if nobody reconnected meanwhile (the stored token is still the one refreshed).
    InstagramConnection.objects.filter(pk=connection.pk, token_encrypted=connection.token_encrypted).update(
        token_encrypted=token_encrypt(issued.access_token), token_refreshed_at=now,
        token_expires_at=now + datetime.timedelta(seconds=issued.expires_in),
    )
    return "refreshed"


def tokens_reencrypt() -> int:
    """Re-encrypt every stored token under the first key of INSTAGRAM_TOKEN_KEYS (key rotation)."""
    from contacts.tokens import token_reencrypt  # noqa: PLC0415

    done = 0
    for pk, ciphertext in InstagramConnection.objects.values_list("pk", "token_encrypted").iterator():
        InstagramConnection.objects.filter(pk=pk, token_encrypted=ciphertext).update(
            token_encrypted=token_reencrypt(ciphertext)
        )
        done += 1
    return done


# --- deliveries for an account no workspace holds -------------------------------------------------------


def unrouted_events_count(n: int = 1) -> None:
    """Count events for an account no workspace holds (the /metrics counter); never fails intake."""
    try:
        cache.add(UNROUTED_EVENTS_KEY, 0, timeout=None)
        cache.incr(UNROUTED_EVENTS_KEY, n)
    except Exception:
        logger.warning("could not count unrouted Instagram events", exc_info=True)


def unrouted_events_total() -> int:
    try:
        return int(cache.get(UNROUTED_EVENTS_KEY) or 0)
    except Exception:
        return 0


# --- mentions whose author is looked up -------------------------------------------------------------------


def _mention_backoff(attempts: int) -> datetime.timedelta:
    return datetime.timedelta(seconds=min(60 * 2 ** max(attempts - 1, 0), 6 * 3600))


def mention_resolve(*, mention_id: int, now: datetime.datetime | None = None) -> str:
    """Look up who @mentioned the account and capture them as a `collaboration` contact.

    The row is leased first (next attempt pushed back, committed), the call made with no transaction
    open; a failure is retried by the every-minute sweep with backoff, and gives up after
    MENTION_MAX_ATTEMPTS. Returns the mention's status after this attempt.
    """
    from contacts import intake  # noqa: PLC0415 (intake imports this module)

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
