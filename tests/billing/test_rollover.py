"""The monthly rollover job (rule 11): idempotent, catching up, never needed by activation."""

import datetime

import pytest
from django_celery_beat.models import PeriodicTask

from billing import hooks
from billing.activation import activate, usage
from billing.models import ActivationRecord, MonthlyUsage, MonthRollover
from billing.months import month_end, month_of, next_month
from billing.rollover import month_roll_over_as_needed
from billing.tasks import roll_over_month
from tests.factories import ContactFactory, WorkspaceFactory, pro_subscription

pytestmark = pytest.mark.django_db

UTC = datetime.UTC


def at(*args) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


def test_last_microsecond_belongs_to_the_old_month():
    assert month_of(at(2026, 11, 30, 23, 59, 59, 999999)) == datetime.date(2026, 11, 1)
    assert month_of(at(2026, 12, 1, 0, 0, 0)) == datetime.date(2026, 12, 1)
    assert month_end(datetime.date(2026, 11, 1)) == at(2026, 12, 1)


def test_year_change_opens_january_for_every_workspace():
    free, pro = WorkspaceFactory(), WorkspaceFactory()
    pro_subscription(pro, addon_packs=1)

    opened = month_roll_over_as_needed(now=at(2027, 1, 1, 0, 5))

    assert opened == [datetime.date(2027, 1, 1)]
    rows = {r.workspace_id: r for r in MonthlyUsage.objects.filter(month=datetime.date(2027, 1, 1))}
    assert (rows[free.pk].quota, rows[pro.pk].quota) == (100, 2000)
    assert all(r.activated == 0 for r in rows.values())


def test_double_run_changes_nothing():
    WorkspaceFactory.create_batch(3)
    now = at(2027, 2, 1, 0, 5)
    notified = []
    hooks.on_month_opened(lambda month: notified.append(month))

    first = month_roll_over_as_needed(now=now)
    rows_after_first = list(MonthlyUsage.objects.values_list("pk", "quota", "activated"))
    second = month_roll_over_as_needed(now=now + datetime.timedelta(hours=1))

    assert first == [datetime.date(2027, 2, 1)] and second == []
    assert list(MonthlyUsage.objects.values_list("pk", "quota", "activated")) == rows_after_first
    assert MonthRollover.objects.count() == 1


def test_missed_run_catches_up_each_month_and_closes_them(django_capture_on_commit_callbacks):
    workspace = WorkspaceFactory()
    month_roll_over_as_needed(now=at(2027, 1, 1, 0, 5))
    # February's run never happened; March's picks it up.
    with django_capture_on_commit_callbacks(execute=True):
        opened = month_roll_over_as_needed(now=at(2027, 3, 1, 0, 5))

    assert opened == [datetime.date(2027, 2, 1), datetime.date(2027, 3, 1)]
    feb = MonthlyUsage.objects.get(workspace=workspace, month=datetime.date(2027, 2, 1))
    jan = MonthlyUsage.objects.get(workspace=workspace, month=datetime.date(2027, 1, 1))
    assert feb.closed_at is not None and jan.closed_at is not None
    assert MonthlyUsage.objects.get(workspace=workspace, month=datetime.date(2027, 3, 1)).closed_at is None


def test_new_month_gives_back_the_full_quota_and_resumes(django_capture_on_commit_callbacks):
    workspace = WorkspaceFactory()
    contact = ContactFactory(workspace=workspace)
    activate(workspace, contact, kind="campaign")
    current = month_of()
    resumed = []
    hooks.on_month_opened(lambda month: resumed.append(month))

    with django_capture_on_commit_callbacks(execute=True):
        month_roll_over_as_needed(now=month_end(current) + datetime.timedelta(minutes=5))

    following = MonthlyUsage.objects.get(workspace=workspace, month=next_month(current))
    assert (following.activated, following.quota) == (0, 100)
    assert usage(workspace).activated == 1  # this month is untouched
    assert resumed == [next_month(current)]


def test_activation_does_not_need_the_job():
    workspace = WorkspaceFactory()
    assert MonthlyUsage.objects.count() == 0

    assert activate(workspace, ContactFactory(workspace=workspace), kind="scenario").newly_activated
    assert ActivationRecord.objects.count() == 1


def test_the_task_runs_and_is_scheduled_by_beat():
    WorkspaceFactory()
    assert roll_over_month() == [month_of().isoformat()]
    assert roll_over_month() == []
    task = PeriodicTask.objects.get(name="billing: roll over the month")
    assert task.task == "billing.tasks.roll_over_month" and task.enabled
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_month) == ("5", "0", "1")
    assert str(task.crontab.timezone) == "UTC"
