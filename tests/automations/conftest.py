"""Fixtures for automations: a settable clock, inbound events, a Free workspace with an owner."""

import datetime

import pytest
from django.utils import timezone

from contacts.hooks import InboundEvent, inbound_event_captured
from contacts.models import Contact
from contacts.windows import COMMENT_TYPES
from tests.factories import MembershipFactory, WorkspaceFactory


class Clock:
    """Patched into django.utils.timezone.now: the gate, billing.months and messaging all read it."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now

    def set(self, now: datetime.datetime) -> None:
        self.now = now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(timezone.now())
    # billing.activation, billing.months and contacts.messaging all call `timezone.now()` through the
    # module, so this one patch moves every clock the gate and the window rules read.
    monkeypatch.setattr(timezone, "now", clock)
    return clock


@pytest.fixture
def free_workspace(db):
    workspace = WorkspaceFactory()
    MembershipFactory(workspace=workspace, user__email=f"owner-{workspace.slug}@example.test")
    return workspace


@pytest.fixture
def fire(django_capture_on_commit_callbacks):
    """Deliver an InboundEvent the way intake does: after commit, to every listener."""

    def deliver(contact, type="message", **fields):
        event = InboundEvent(
            workspace_id=contact.workspace_id, contact_id=contact.pk, type=type,
            occurred_at=fields.pop("occurred_at", timezone.now()), **fields,
        )
        if type in COMMENT_TYPES:
            # Intake records the comment's time first: it opens the one private reply (rule 14).
            Contact.objects.filter(pk=contact.pk).update(last_comment_at=event.occurred_at)
        with django_capture_on_commit_callbacks(execute=True):
            inbound_event_captured(event)
        return event

    return deliver
