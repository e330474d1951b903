"""The hook listeners: which workspaces get a resume task, and the segment audience of a campaign."""

import datetime

import pytest

from automations import listeners, tasks
from automations.models import PausedAction
from automations.services import campaign_create, campaign_launch, segment_create
from automations.services.paused import PauseItem, paused_actions_create
from billing import hooks
from billing.rollover import month_roll_over_as_needed
from tests.factories import ContactFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def pause_one(workspace):
    contact = ContactFactory(workspace=workspace)
    paused_actions_create(workspace=workspace, kind="campaign", automation_ref="campaign:1",
                          action_type=PausedAction.ActionType.CAMPAIGN_MESSAGE, needs_window=True,
                          items=[PauseItem(contact, f"k{contact.pk}", {"campaign_id": 1, "recipient_id": 1})])


def test_listeners_are_registered_at_start_up():
    assert listeners.headroom_raised in hooks._headroom_listeners
    assert listeners.month_opened in hooks._month_listeners


def test_new_month_queues_one_bulk_resume_for_workspaces_with_waiting_actions(monkeypatch,
                                                                             django_capture_on_commit_callbacks):
    waiting_a, waiting_b, idle = WorkspaceFactory(), WorkspaceFactory(), WorkspaceFactory()
    pause_one(waiting_a)
    pause_one(waiting_b)
    queued = []
    monkeypatch.setattr(tasks.paused_actions_resume_many, "delay", lambda ids: queued.append(ids))
    monkeypatch.setattr(listeners, "RESUME_FANOUT_CHUNK", 1)

    with django_capture_on_commit_callbacks(execute=True):
        month_roll_over_as_needed(now=datetime.datetime(2027, 1, 1, 0, 5, tzinfo=datetime.UTC))

    assert queued == [[waiting_a.pk], [waiting_b.pk]]
    assert idle.pk not in [i for chunk in queued for i in chunk]


def test_headroom_raised_queues_nothing_without_waiting_actions(monkeypatch):
    workspace = WorkspaceFactory()
    queued = []
    monkeypatch.setattr(tasks.paused_actions_resume, "delay", lambda workspace_id: queued.append(workspace_id))

    listeners.headroom_raised(workspace_id=workspace.pk, month=datetime.date(2026, 11, 1))
    pause_one(workspace)
    listeners.headroom_raised(workspace_id=workspace.pk, month=datetime.date(2026, 11, 1))

    assert queued == [workspace.pk]


def test_campaign_to_a_segment_reaches_rule_matches_and_placed_members(free_workspace,
                                                                       django_capture_on_commit_callbacks):
    stories = ContactFactory.create_batch(3, workspace=free_workspace, source="story")
    placed = ContactFactory(workspace=free_workspace, source="dm")
    ContactFactory.create_batch(4, workspace=free_workspace, source="dm")
    segment = segment_create(workspace=free_workspace, name="Stories", rules={"sources": ["story"]})
    segment.memberships.create(contact=placed)
    campaign = campaign_create(workspace=free_workspace, name="To stories", text="New story out",
                               audience="segment", segment=segment)

    with django_capture_on_commit_callbacks(execute=True):
        campaign_launch(campaign=campaign, launched_by=None)

    assert set(campaign.recipients.values_list("contact_id", flat=True)) == {c.pk for c in stories} | {placed.pk}
