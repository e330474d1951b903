"""The hook point intake fires when an Instagram event has been captured (after commit).

Dependencies point automations -> contacts, so contacts cannot import automations. Automations
registers a listener here at start-up (AutomationsConfig.ready) to fire scenarios. A listener gets
one `InboundEvent`; it runs after the capturing transaction commits.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction


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
    def notify() -> None:
        for listener in list(_inbound_listeners):
            listener(event)

    transaction.on_commit(notify)
