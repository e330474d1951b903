"""Account writes: creating workspaces and memberships, passwords and API tokens."""

import datetime
import hashlib
import secrets
from dataclasses import dataclass

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import ApiToken, IdempotencyKey, Membership, User, Workspace
from inro.errors import ApplicationError


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "workspace"
    slug, n = base, 1
    while Workspace.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def workspace_create(*, name: str, owner: User, instagram_account_id: str = "") -> Workspace:
    """A new workspace with its owner. It starts on Free: no subscription row means Free."""
    name = name.strip()
    if not name:
        raise ValueError("A workspace needs a name.")
    workspace = Workspace.objects.create(
        name=name, slug=_unique_slug(name), instagram_account_id=instagram_account_id
    )
    Membership.objects.create(user=owner, workspace=workspace, role=Membership.Role.OWNER)
    return workspace


def membership_add(*, workspace: Workspace, user: User, role: str = Membership.Role.MEMBER) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        workspace=workspace, user=user, defaults={"role": role}
    )
    return membership


def api_token_create(*, user: User, name: str = "", user_agent: str = "") -> tuple[ApiToken, str]:
    """A new API key for one device; returns the row and the key, which is shown only this once.

    The device is named by the client (`name`) or, failing that, after its User-Agent.
    """
    key = secrets.token_hex(20)
    user_agent = (user_agent or "").strip()[:255]
    name = (name or "").strip()[:100] or device_name_from_user_agent(user_agent)
    token = ApiToken.objects.create(user=user, key_hash=api_token_hash(key), name=name, user_agent=user_agent,
                                    password_fingerprint=user.get_session_auth_hash())
    return token, key


_PLATFORMS = (("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("Windows", "Windows"),
              ("Macintosh", "Mac"), ("Mac OS X", "Mac"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))
_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("CriOS/", "Chrome"),
             ("Chrome/", "Chrome"), ("Safari/", "Safari"))


def device_name_from_user_agent(user_agent: str) -> str:
    """A short name a person recognises ("Chrome on Android", "Inro on iPhone"), or "Unknown device"."""
    platform = next((name for marker, name in _PLATFORMS if marker in user_agent), "")
    if user_agent.startswith("Mozilla/"):
        app = next((name for marker, name in _BROWSERS if marker in user_agent), "Browser")
    else:
        # An app's own User-Agent, e.g. "Inro/2.4 (iPhone; iOS 17.1)" or "okhttp/4.12": its product name.
        app = user_agent.split("/", 1)[0].split(" ", 1)[0][:40]
    if app and platform:
        return f"{app} on {platform}"[:100]
    return (app or platform or "Unknown device")[:100]


def api_token_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk).delete()


def api_tokens_purge_expired(*, now: datetime.datetime | None = None) -> int:
    """Delete tokens past their idle or absolute expiry (they no longer authenticate); how many."""
    now = now or timezone.now()
    idle, max_age = ApiToken.lifetimes()
    deleted, _ = ApiToken.objects.filter(
        Q(created_at__lte=now - max_age) | Q(last_used_at__lte=now - idle)
        | Q(last_used_at__isnull=True, created_at__lte=now - idle)
    ).delete()
    return deleted


def api_token_touch(*, token: ApiToken, now: datetime.datetime | None = None) -> None:
    """Record use, at most once a minute per token so authenticated reads don't all write."""
    now = now or timezone.now()
    if token.last_used_at is None or now - token.last_used_at > datetime.timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


@transaction.atomic
def user_set_password(*, user: User, password: str) -> None:
    """Change a password (validated by AUTH_PASSWORD_VALIDATORS) and revoke every API token of the user."""
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as error:
        raise ApplicationError(
            "This password cannot be used: " + " ".join(error.messages),
            code="invalid", fields={"password": list(error.messages)},
        ) from None
    user.set_password(password)
    user.save(update_fields=["password"])
    # A changed password means a device may be in the wrong hands: every device logs in again.
    ApiToken.objects.filter(user=user).delete()


IDEMPOTENCY_WINDOW = datetime.timedelta(hours=24)
# A first request still marked running after this long died with its process; its key is free again.
IDEMPOTENCY_ABANDONED_AFTER = datetime.timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    record: IdempotencyKey
    replay: bool  # True: the key answered before; send record.response_status/response_body back


def idempotency_claim(
    *, user: User, route: str, key: str, request_hash: str, now: datetime.datetime | None = None
) -> IdempotencyClaim:
    """Take a key for a first request, or find the answer it already gave.

    Raises a 409 ApplicationError when the key was used with another body, or its first request is
    still running (a concurrent duplicate: the unique constraint let only one of them in).
    """
    now = now or timezone.now()
    for _ in range(3):
        try:
            with transaction.atomic():
                record = IdempotencyKey.objects.create(
                    user=user, route=route, key=key, request_hash=request_hash, created_at=now
                )
            return IdempotencyClaim(record=record, replay=False)
        except IntegrityError:
            pass
        with transaction.atomic():
            record = IdempotencyKey.objects.select_for_update().filter(user=user, route=route, key=key).first()
            if record is None:  # released by its first request in between: try to take it again
                continue
            expired = now - record.created_at >= IDEMPOTENCY_WINDOW
            abandoned = record.response_status is None and now - record.created_at >= IDEMPOTENCY_ABANDONED_AFTER
            if expired or abandoned:
                record.request_hash, record.created_at = request_hash, now
                record.response_status, record.response_body = None, None
                record.save(update_fields=["request_hash", "created_at", "response_status", "response_body"])
                return IdempotencyClaim(record=record, replay=False)
            if record.request_hash != request_hash:
                raise ApplicationError(
                    "This Idempotency-Key was already used with a different request. Use a new key for a new request.",
                    code="idempotency_key_reused", status=409,
                )
            if record.response_status is None:
                raise ApplicationError(
                    "A request with this Idempotency-Key is still being processed. Retry in a moment.",
                    code="idempotency_in_progress", status=409,
                )
            return IdempotencyClaim(record=record, replay=True)
    raise ApplicationError(
        "A request with this Idempotency-Key is still being processed. Retry in a moment.",
        code="idempotency_in_progress", status=409,
    )


def idempotency_complete(*, record: IdempotencyKey, status: int, body) -> None:
    IdempotencyKey.objects.filter(pk=record.pk).update(response_status=status, response_body=body)


def idempotency_release(*, record: IdempotencyKey) -> None:
    """The first request did not succeed: forget the key so the client can retry with it."""
    IdempotencyKey.objects.filter(pk=record.pk, response_status__isnull=True).delete()


def idempotency_purge(*, now: datetime.datetime | None = None) -> int:
    """Delete keys past their 24-hour window; returns how many."""
    now = now or timezone.now()
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=now - IDEMPOTENCY_WINDOW).delete()
    return deleted
