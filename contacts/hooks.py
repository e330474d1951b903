"""The hook point intake fires when an Instagram event has been captured (after commit).

Dependencies point automations -> contacts, so contacts cannot import automations. Automations
registers a listener here at start-up (AutomationsConfig.ready) to fire scenarios. A listener gets
one `InboundEvent`; it runs after the capturing transaction commits.

Intake (contacts/intake.py) fires exactly one event per Meta event, once: a redelivery fires nothing.
Types and where they come from:
- message, quick_reply (payload = quick_reply.payload), postback (text = button title, payload),
  story_reply (media_id = story id, extra["story_url"]), story_mention (extra["story_url"]):
  direct messages, also stored as inbound Messages;
- referral: an ad click or ig.me link that opened the thread without a message (payload = ref);
- comment, live_comment: comment_id is what a private reply answers, media_id the post or reel;
- mention: the account was @mentioned in a comment (media_id, comment_id).
An ad is recognised by `referral_source == "ADS"` whatever the type: a message sent from a
click-to-DM ad is type "message" with referral_source "ADS" and ad_id set, a comment on an ad is type
"comment" with them set. extra["delivery_id"] names the stored webhook delivery.
"""

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InboundEvent:
    workspace_id: int
    contact_id: int
    # message, quick_reply, postback, story_reply, story_mention, referral, comment, live_comment, mention
    type: str
    occurred_at: datetime.datetime
    is_new_contact: bool = False
    text: str = ""
    meta_id: str = ""  # message mid or comment id
    media_id: str = ""  # post/reel/story the event is about, when there is one
    comment_id: str = ""  # for comments: what a private reply answers
    referral_source: str = ""  # "ADS" for ad clicks
    ad_id: str = ""
    payload: str = ""  # quick reply / postback payload
    extra: dict = field(default_factory=dict)


InboundListener = Callable[[InboundEvent], None]
_inbound_listeners: list[InboundListener] = []


def on_inbound_event(listener: InboundListener) -> InboundListener:
    if listener not in _inbound_listeners:
        _inbound_listeners.append(listener)
    return listener


def inbound_event_captured(event: InboundEvent) -> None:
    """Notify every listener after commit. The capture is final by then (a redelivery fires nothing),
    so one listener failing is logged and does not keep the others, or the next events, from running;
    a listener that needs retries should queue its own Celery task."""

    def notify() -> None:
        for listener in list(_inbound_listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("Inbound event listener %r failed on %s %s", listener, event.type, event.meta_id)

    transaction.on_commit(notify)


ConnectedListener = Callable[..., None]
_connected_listeners: list[ConnectedListener] = []


def on_instagram_connected(listener: ConnectedListener) -> ConnectedListener:
    """Register a listener for a workspace (re)connecting its Instagram account (keyword: workspace_id)."""
    if listener not in _connected_listeners:
        _connected_listeners.append(listener)
    return listener


def instagram_connected(*, workspace_id: int) -> None:
    """Tell listeners, after commit, that the workspace's account is connected again: what waited for
    it (automated sends paused as "Instagram disconnected") may resume."""

    def notify() -> None:
        for listener in list(_connected_listeners):
            listener(workspace_id=workspace_id)

    transaction.on_commit(notify, robust=True)
