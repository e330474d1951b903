"""Two beat processes by accident: the monthly rollover run twice at once does the work once."""

import datetime

import pytest
from django.db.models import Count

from billing import hooks
from billing.models import MonthlyUsage, MonthRollover
from billing.rollover import month_roll_over_as_needed
from tests.concurrency import run_in_parallel
from tests.factories import WorkspaceFactory

pytestmark = [pytest.mark.django_db(transaction=True)]

WORKSPACES = 120
UTC = datetime.UTC




def test_two_rollovers_racing_each_month_open_it_exactly_once():
    WorkspaceFactory.create_batch(WORKSPACES)
    opened_hooks: list[datetime.date] = []
    hooks.on_month_opened(lambda month: opened_hooks.append(month))
    months = [datetime.date(2027, m, 1) for m in range(3, 9)]

    results = []
    for month in months:  # six rounds: each a fresh month, two beats firing at 00:05 on the 1st
        now = datetime.datetime.combine(month, datetime.time(0, 5), tzinfo=UTC)
        results.append(sorted(run_in_parallel(2, lambda i, now=now: month_roll_over_as_needed(now=now))))

    assert results == [[[], [month]] for month in months]  # one run did it, the other found it done
    assert opened_hooks == months  # paused actions resumed once per month, not twice
    per_month = dict(MonthlyUsage.objects.values_list("month").annotate(n=Count("id")).values_list("month", "n"))
    assert per_month == dict.fromkeys(months, WORKSPACES)
    assert MonthlyUsage.objects.values("workspace", "month").annotate(n=Count("id")).filter(n__gt=1).count() == 0
    rollovers = list(MonthRollover.objects.order_by("month").values_list("month", "workspaces_opened"))
    assert rollovers == [(month, WORKSPACES) for month in months]
    assert not MonthRollover.objects.filter(completed_at__isnull=True).exists()
    # Every month but the last is closed, the last one open.
    assert MonthlyUsage.objects.filter(month=months[-1], closed_at__isnull=False).count() == 0
    assert MonthlyUsage.objects.filter(month__lt=months[-1], closed_at__isnull=True).count() == 0
