"""Sending at Meta's pace: each Instagram account's send rate, shared by every worker process.

Meta allows an Instagram account about 300 text messages a second and 750 private replies an hour;
past that it answers HTTP 429 or a Graph error with one of its throttling codes (4, 17, 32, 613) and
the account is throttled for a while. So every send to Meta takes a slot of its account first:

- text messages: at most META_SEND_RATE a second per account (a moving window, so no one-second span
  ever holds more). Broadcasts (campaigns) may use only (1 - META_CONVERSATION_RATE_SHARE) of it: the
  rest is always free for conversational sends (scenario replies, inbox replies), which no broadcast
  can delay. A conversational send takes only the account's slot.
- private replies (to a comment): at most META_PRIVATE_REPLY_RATE an hour per account. One that finds
  no room does not block a worker for up to an hour: `private_reply_slot` says how long to wait, and
  the caller sends it then (its 7-day window is checked again at that time).
- throttled by Meta: `account_back_off` stops every send of the account, in every process, for the
  time Meta asked (Retry-After) or META_THROTTLE_BACKOFF_SECONDS.

The windows are kept by the `limits` library in Redis (META_PACING_URL; by default the Celery broker
when it is Redis), so every worker on every host shares them; without Redis (the offline `make run`,
the test suite) they live in the process. Within a process, one thread at a time waits for an
account's slot (the others queue on a lock), so a pool of senders does not poll Redis in a herd.
"""

import logging
import random
import threading
import time
from functools import cache

from django.conf import settings
from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

logger = logging.getLogger(__name__)

BROADCAST = "broadcast"
CONVERSATION = "conversation"
LANES = (BROADCAST, CONVERSATION)
# Meta's throttling error codes: application (4), user (17), API (32), and calls-per-period (613).
THROTTLE_CODES = frozenset({4, 17, 32, 613})
_KEY_PREFIX = "inro-pacing"


def pacing_url() -> str:
    url = getattr(settings, "META_PACING_URL", "") or ""
    if url:
        return url
    broker = getattr(settings, "CELERY_BROKER_URL", "") or ""
    return broker if broker.startswith(("redis://", "rediss://")) else "memory://"


@cache
def _limiter(url: str) -> tuple[MovingWindowRateLimiter, object]:
    storage = storage_from_string(url, key_prefix=_KEY_PREFIX) if url.startswith("redis") else storage_from_string(url)
    return MovingWindowRateLimiter(storage), storage


def _redis(url: str):
    """The Redis client behind the limits storage (the account back-offs live beside the windows)."""
    _, storage = _limiter(url)
    return getattr(storage, "storage", None) if url.startswith("redis") else None


_local_backoff: dict[str, float] = {}  # memory storage: account -> time.time() the back-off ends
_locks: dict[tuple[str, str], threading.Lock] = {}
_next_send: dict[tuple[str, str], float] = {}  # (account, lane) -> time.monotonic() of this process's next send
_locks_guard = threading.Lock()


def _lock(account_id: str, lane: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((account_id, lane), threading.Lock())


def send_rate() -> int:
    return max(1, int(settings.META_SEND_RATE))


def broadcast_rate() -> int:
    share = min(max(float(settings.META_CONVERSATION_RATE_SHARE), 0.0), 0.9)
    return max(1, int(send_rate() * (1 - share)))


def _lane_rate(lane: str) -> int:
    return broadcast_rate() if lane == BROADCAST else send_rate()


def _items(lane: str) -> list:
    # The lane's own window first: a broadcast refused there never takes the account's slot.
    items = [RateLimitItemPerSecond(send_rate(), namespace="send")]
    if lane == BROADCAST:
        items.insert(0, RateLimitItemPerSecond(broadcast_rate(), namespace="broadcast"))
    return items


def backoff_remaining(account_id: str) -> float:
    """Seconds the account is still backed off for (0: it may send)."""
    url = pacing_url()
    client = _redis(url)
    if client is None:
        return max(0.0, _local_backoff.get(account_id, 0.0) - time.time())
    left_ms = client.pttl(f"{_KEY_PREFIX}:backoff:{account_id}")
    return max(0.0, left_ms / 1000) if left_ms and left_ms > 0 else 0.0


def account_back_off(account_id: str, seconds: float | None = None) -> float:
    """Meta throttled the account: no send of it, from any worker, for `seconds` (or the default).
    A longer back-off already running is kept. Returns the back-off applied."""
    seconds = float(seconds) if seconds and seconds > 0 else float(settings.META_THROTTLE_BACKOFF_SECONDS)
    seconds = min(seconds, float(settings.META_THROTTLE_BACKOFF_MAX_SECONDS))
    url = pacing_url()
    client = _redis(url)
    if client is None:
        _local_backoff[account_id] = max(_local_backoff.get(account_id, 0.0), time.time() + seconds)
    else:
        key = f"{_KEY_PREFIX}:backoff:{account_id}"
        if backoff_remaining(account_id) < seconds:
            client.set(key, "1", px=max(1, int(seconds * 1000)))
    logger.warning("Meta throttled Instagram account %s: every send of it waits %.1fs", account_id, seconds)
    return seconds


def _try_slot(limiter: MovingWindowRateLimiter, account_id: str, lane: str) -> float:
    """Take a slot now (0.0) or say how long until one may free (seconds)."""
    for item in _items(lane):
        if not limiter.hit(item, account_id):
            reset_time, _ = limiter.get_window_stats(item, account_id)
            return max(reset_time - time.time(), 0.001)
    return 0.0


def send_slot(account_id: str, *, lane: str = BROADCAST, sleep=None) -> float:
    """Wait for the account's next text-message slot in `lane`; returns the seconds waited."""
    if lane not in LANES:
        raise ValueError(f"Unknown lane {lane!r}.")
    sleep = sleep or time.sleep
    limiter, _ = _limiter(pacing_url())
    started = time.monotonic()
    waited_out = 0.0  # the end (time.time()) of the last back-off waited out
    with _lock(account_id, lane):
        while True:
            backoff = backoff_remaining(account_id)
            # A back-off is waited out once; only a later one (Meta throttled the account again) waits again.
            if backoff > 0 and time.time() + backoff > waited_out + 0.05:
                waited_out = time.time() + backoff
                sleep(backoff)
                continue
            # Spread this process's sends over the second (at most the lane's rate, evenly): the window
            # alone would let a whole second's worth out at once, and arrival jitter on the way to Meta
            # could then put more than the rate in one of Meta's seconds.
            spacing = _next_send.get((account_id, lane), 0.0) - time.monotonic()
            if spacing > 0:
                sleep(spacing)
            wait = _try_slot(limiter, account_id, lane)
            if wait == 0.0:
                # On a schedule, not from now: the time of the Redis calls does not slow the rate down
                # (a process that fell behind catches up by at most 50 ms of sends at once).
                key = (account_id, lane)
                _next_send[key] = max(_next_send.get(key, 0.0), time.monotonic() - 0.05) + 1.0 / _lane_rate(lane)
                return time.monotonic() - started
            # A little jitter: processes waiting for the same account do not all ask at the same instant.
            sleep(min(wait, 1.0) + random.uniform(0, 0.002))  # noqa: S311 - not security


def private_reply_slot(account_id: str) -> float:
    """Take a private-reply slot of the hour for the account: 0.0 when taken, else the seconds until
    one frees (nothing taken; the caller sends later). The message's own per-second slot is taken by
    the send itself."""
    limiter, _ = _limiter(pacing_url())
    backoff = backoff_remaining(account_id)
    if backoff > 0:
        return backoff
    # One second more than Meta's window: the time from this slot to Meta's receiving the reply varies,
    # and it must never put one reply more in Meta's window.
    window = max(1, int(getattr(settings, "META_PRIVATE_REPLY_WINDOW_SECONDS", 3600))) + 1
    item = RateLimitItemPerSecond(max(1, int(settings.META_PRIVATE_REPLY_RATE)), window, namespace="private-reply")
    if limiter.hit(item, account_id):
        return 0.0
    reset_time, _ = limiter.get_window_stats(item, account_id)
    return max(reset_time - time.time(), 0.001)


def pacing_reset() -> None:
    """Forget every window and back-off (tests)."""
    url = pacing_url()
    _, storage = _limiter(url)
    storage.reset()
    client = _redis(url)
    if client is not None:
        for key in client.scan_iter(f"{_KEY_PREFIX}:backoff:*"):
            client.delete(key)
    _local_backoff.clear()
    _next_send.clear()
