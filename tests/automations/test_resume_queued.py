"""Upgrades, bonuses and month openings queue the resume of paused actions: the request that raised the
headroom returns with the actions still waiting, and the queued task resumes them."""

import datetime

import pytest
from django.urls import reverse

from automations import tasks
from automations.models import PausedAction
from automations.services import campaign_create, campaign_launch
from billing.activation import usage
from billing.rollover import month_roll_over_as_needed
from tests.factories import ContactFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """Tasks published instead of run: (task, args) in the order they were queued."""
    published = []
    monkeypatch.setattr(tasks.paused_actions_resume, "delay",
                        lambda workspace_id: published.append(("resume", workspace_id)))
    monkeypatch.setattr(tasks.paused_actions_resume_many, "delay",
                        lambda workspace_ids: published.append(("resume_many", list(workspace_ids))))
    return published


def limited_workspace(django_capture_on_commit_callbacks):
    """A free workspace whose campaign reached 100 contacts and paused the other 4."""
    workspace = WorkspaceFactory()
    ContactFactory.create_batch(104, workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Launch", text="Hello")
    with django_capture_on_commit_callbacks(execute=True):
        campaign_launch(campaign=campaign, launched_by=None)
    assert PausedAction.objects.filter(workspace=workspace, status="waiting").count() == 4
    return workspace


def waiting(workspace) -> int:
    return PausedAction.objects.filter(workspace=workspace, status="waiting").count()


def test_a_bonus_granted_by_staff_returns_before_anything_resumes(client, admin_user, queued,
                                                                  django_capture_on_commit_callbacks):
    workspace = limited_workspace(django_capture_on_commit_callbacks)
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:accounts_workspace_changelist"), {
            "action": "grant_bonus_action", "_selected_action": [workspace.pk],
            "amount": "3", "reason": "Goodwill", "apply": "1",
        })

    assert response.status_code == 302
    assert waiting(workspace) == 4  # nothing was sent inside the request
    assert usage(workspace).activated == 100
    assert queued == [("resume", workspace.pk)]

    tasks.paused_actions_resume.run(workspace.pk)  # what the worker does with the queued task

    assert waiting(workspace) == 1
    assert usage(workspace).activated == 103


def test_the_admin_resume_action_queues_one_task_per_workspace(client, admin_user, queued,
                                                               django_capture_on_commit_callbacks):
    first = limited_workspace(django_capture_on_commit_callbacks)
    second = limited_workspace(django_capture_on_commit_callbacks)
    client.force_login(admin_user)
    selected = list(PausedAction.objects.filter(workspace__in=[first, second]).values_list("pk", flat=True))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:automations_pausedaction_changelist"),
                               {"action": "resume_selected", "_selected_action": selected}, follow=True)

    assert "Queued the resume of the waiting actions of 2 workspaces" in response.content.decode()
    assert sorted(queued) == sorted([("resume", first.pk), ("resume", second.pk)])
    assert waiting(first) == waiting(second) == 4


def test_a_new_month_queues_the_resume_and_runs_none_of_it_inline(queued, django_capture_on_commit_callbacks):
    workspace = limited_workspace(django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        month_roll_over_as_needed(now=datetime.datetime(2027, 1, 1, 0, 5, tzinfo=datetime.UTC))

    assert queued == [("resume_many", [workspace.pk])]
    assert waiting(workspace) == 4
