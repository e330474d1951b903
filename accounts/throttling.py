"""Brute-force protection for the web sign-in: after LOGIN_FAILURE_LIMIT failed attempts for
one email from one client address within LOGIN_FAILURE_WINDOW_SECONDS, further attempts for that
email from that address are refused, even with the right password, until the window has passed.

Counters live in the cache (Redis in production via CACHE_URL, so every web process shares them).
Keys hash the email and address: no personal data in cache keys.
"""

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

LOCKED_MESSAGE = (
    "Too many failed sign-in attempts for this email. For your security, sign-in is paused for "
    "{minutes} minutes; try again later or reset your password."
)


def _limit() -> int:
    return getattr(settings, "LOGIN_FAILURE_LIMIT", 5)


def _window() -> int:
    return getattr(settings, "LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)


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


def _key(email: str, ip: str) -> str:
    digest = hashlib.sha256(f"{email.strip().lower()}|{ip}".encode()).hexdigest()
    return f"login-failures:{digest}"


def login_locked(*, email: str, ip: str) -> bool:
    return (cache.get(_key(email, ip)) or 0) >= _limit()


def login_failed(*, email: str, ip: str) -> int:
    """Count a failure; the window starts at the first failure and is not extended by later ones."""
    key = _key(email, ip)
    cache.add(key, 0, timeout=_window())
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=_window())
        return 1


def login_succeeded(*, email: str, ip: str) -> None:
    cache.delete(_key(email, ip))


def locked_message() -> str:
    return LOCKED_MESSAGE.format(minutes=max(_window() // 60, 1))
