"""Sign-in limits shared by the web form and `POST /api/v1/auth/token/` (docs/security.md, "Sign-in").

Failed attempts are counted per email (across all client addresses) and per client address (across
all emails). Past a few free failures each further attempt must wait, and the wait doubles with each
failure, up to LOGIN_DELAY_MAX_SECONDS: guessing slows to a crawl, but nothing locks an account for
good, so a stranger cannot lock its owner out by failing on purpose. A device the owner signed in
from before (a signed device key: a cookie on the web, the `Inro-Device` header in the API) only
answers to its own failures, so someone else's failures never block the owner's correct password.

While an attempt must wait, the password is not checked at all: the answer says how long to wait.
Counters live in the cache (Redis in production via CACHE_URL, shared by every web process); keys
hash the email and address, so no personal data sits in cache keys.
"""

import hashlib
import math
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest

from accounts.models import User

DEVICE_COOKIE = "inro_device"
DEVICE_HEADER = "Inro-Device"
_DEVICE_SALT = "accounts.trusted-device"


def client_ip(request: HttpRequest | None) -> str:
    """REMOTE_ADDR, or the address the trusted proxies in front saw (same rule as the API throttles)."""
    if request is None:
        return ""
    proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return request.META.get("REMOTE_ADDR", "")


# --- Trusted devices -------------------------------------------------------------------------------

def device_key_new(*, user_id: int) -> str:
    """A signed key naming this user and one device, given to the device after a successful sign-in."""
    return signing.dumps({"u": user_id, "d": secrets.token_hex(8)}, salt=_DEVICE_SALT, compress=True)


def device_of(key: str | None) -> tuple[int, str] | None:
    """(user id, device id) of a genuine device key younger than LOGIN_DEVICE_TRUST_DAYS, else None."""
    if not key or len(key) > 500:
        return None
    try:
        value = signing.loads(key, salt=_DEVICE_SALT, max_age=settings.LOGIN_DEVICE_TRUST_DAYS * 86400)
    except signing.BadSignature:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("u"), int) or not isinstance(value.get("d"), str):
        return None
    return value["u"], value["d"]


# --- Counting --------------------------------------------------------------------------------------

def _now() -> float:
    return time.time()


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Scope:
    """One counter: failures of an email, of an address, or of an email on one trusted device."""

    key: str
    free: int  # failures allowed before attempts must wait


def scopes(*, email: str, ip: str, device: str = "") -> list[Scope]:
    """The counters an attempt answers to. `device`: the id of a trusted device of this email's user."""
    email = email.strip().lower()
    if device:
        # The owner's own device: only failures made on it count (someone guessing elsewhere does not).
        return [Scope(f"signin:device:{_digest(email, device)}", settings.LOGIN_FREE_FAILURES)]
    return [Scope(f"signin:email:{_digest(email)}", settings.LOGIN_FREE_FAILURES),
            Scope(f"signin:ip:{_digest(ip)}", settings.LOGIN_FREE_FAILURES_PER_ADDRESS)]


def _delay(failures: int, free: int) -> float:
    """Seconds an attempt must wait after `failures`: none while free, then 1, 2, 4, ... up to the cap."""
    if failures < free:
        return 0.0
    return float(min(settings.LOGIN_DELAY_BASE_SECONDS * 2 ** (failures - free), settings.LOGIN_DELAY_MAX_SECONDS))


def _state(scope: Scope) -> tuple[int, float]:
    value = cache.get(scope.key) or {}
    return int(value.get("n", 0)), float(value.get("at", 0.0))


def wait_seconds(*, email: str, ip: str, device: str = "", now: float | None = None) -> int:
    """How long this attempt must wait before its password is even checked (0: go ahead).

    Once attempts must wait, only one attempt per failure count gets through (an atomic cache add),
    so parallel requests cannot all slip in the moment a wait ends.
    """
    now = _now() if now is None else now
    longest = 0.0
    for scope in scopes(email=email, ip=ip, device=device):
        failures, last = _state(scope)
        delay = _delay(failures, scope.free)
        if delay <= 0:
            continue
        remaining = last + delay - now
        if remaining <= 0 and not cache.add(f"{scope.key}:slot:{failures}", 1, timeout=int(delay) + 60):
            remaining = 1.0  # another attempt took this turn
        longest = max(longest, remaining)
    return math.ceil(longest) if longest > 0 else 0


def failed(*, email: str, ip: str, device: str = "", now: float | None = None) -> None:
    """Count a failed attempt in each of its scopes (counters live LOGIN_FAILURE_WINDOW_SECONDS after the last)."""
    now = _now() if now is None else now
    for scope in scopes(email=email, ip=ip, device=device):
        failures, _ = _state(scope)
        cache.set(scope.key, {"n": failures + 1, "at": now}, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)


def succeeded(*, email: str, ip: str, device: str = "") -> None:
    """The right password: this email's counters start again (the address keeps its own count)."""
    for scope in scopes(email=email, ip=ip, device=device):
        if not scope.key.startswith("signin:ip:"):
            cache.delete(scope.key)


def wait_message(seconds: int) -> str:
    when = f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
    return (f"Too many failed sign-in attempts. For your security, wait {when} before trying again, sign in "
            "from a device you used before, or reset your password.")


# --- The attempt -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SignIn:
    user: User | None  # None: refused (wrong email or password, or must wait)
    wait: int = 0  # seconds to wait before the next attempt; the password was not checked
    device_key: str = ""  # on success: the key the device keeps (a cookie, or the Inro-Device header)


def sign_in_attempt(*, request: HttpRequest | None, email: str, password: str, device_key: str | None) -> SignIn:
    """One sign-in attempt, web or API: the limits first, then the password, then the counters."""
    email = email.strip().lower()
    ip = client_ip(request)
    device = ""
    known = device_of(device_key)
    if known is not None and User.objects.filter(pk=known[0], email=email).exists():
        device = known[1]
    wait = wait_seconds(email=email, ip=ip, device=device)
    if wait:
        return SignIn(user=None, wait=wait)
    user = authenticate(request, username=email, password=password)
    if user is None or not user.is_active:
        failed(email=email, ip=ip, device=device)
        return SignIn(user=None)
    succeeded(email=email, ip=ip, device=device)
    return SignIn(user=user, device_key=device_key if device else device_key_new(user_id=user.pk))
