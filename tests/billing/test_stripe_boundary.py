"""The Stripe boundary: one module imports stripe; subscription objects of old and new API shapes."""

import datetime
import re
from pathlib import Path

import pytest

from billing.subscriptions import stripe_subscription_state

ROOT = Path(__file__).resolve().parents[2]


def test_only_the_stripe_client_imports_stripe():
    source_dirs = [d for d in ROOT.iterdir() if d.is_dir() and (d / "__init__.py").exists() and d.name != "tests"]
    importers = sorted(
        str(path.relative_to(ROOT))
        for directory in source_dirs
        for path in directory.rglob("*.py")
        if re.search(r"^\s*(import stripe\b|from stripe\b)", path.read_text(), re.MULTILINE)
    )
    assert importers == ["billing/stripe_client.py"]


def _subscription(**fields):
    base = {"id": "sub_1", "customer": "cus_1", "status": "active", "cancel_at_period_end": False,
            "cancel_at": None, "items": {"data": [{"id": "si_1", "quantity": 1, "price": {"id": "price_pro_local"}},
                                                  {"id": "si_2", "quantity": 4, "price": {"id": "price_addon_local"}}]}}
    base.update(fields)
    return base


@pytest.mark.django_db
def test_period_is_read_from_items_on_current_api_versions():
    subscription = _subscription()
    for item in subscription["items"]["data"]:
        item.update(current_period_start=1_767_225_600, current_period_end=1_769_904_000)

    state = stripe_subscription_state(subscription)

    assert (state.plan.code, state.addon_packs, state.status) == ("pro", 4, "active")
    assert state.period_start == datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    assert state.period_end == datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC)


@pytest.mark.django_db
def test_period_is_read_from_the_subscription_on_older_api_versions():
    state = stripe_subscription_state(_subscription(current_period_start=1_767_225_600,
                                                    current_period_end=1_769_904_000))
    assert state.period_end == datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC)


@pytest.mark.django_db
def test_past_due_keeps_the_plan_and_ended_statuses_mean_free():
    assert stripe_subscription_state(_subscription(status="past_due")).plan.code == "pro"
    for status in ("canceled", "unpaid", "incomplete_expired"):
        state = stripe_subscription_state(_subscription(status=status))
        assert (state.plan.code, state.addon_packs) == ("free", 0)
    assert stripe_subscription_state(_subscription(status="incomplete")).plan is None
