"""Usage alerts (rule 10) and the selectors the usage page and API read."""

import datetime

import pytest
from django.core import mail
from django.db import IntegrityError

from automations.models import UsageAlert
from automations.selectors import (
    campaign_list,
    paused_action_list,
    paused_actions_waiting_count,
    scenario_list,
    usage_alerts_active,
)
from automations.services import alerts, campaign_create, campaign_launch, scenario_create, usage_alerts_check
from automations.services.alerts import usage_alerts_unsent_ids
from automations.tasks import usage_alerts_retry
from billing.activation import activate_many
from billing.services import bonus_grant
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_alerts_at_80_and_100_once_each(free_workspace, django_capture_on_commit_callbacks):
    ws = free_workspace
    contacts = ContactFactory.create_batch(110, workspace=ws)
    with django_capture_on_commit_callbacks(execute=True):
        activate_many(ws, contacts[:79], kind="campaign")
        assert usage_alerts_check(workspace=ws) == []
        activate_many(ws, contacts[79:80], kind="campaign")
        first = usage_alerts_check(workspace=ws)
        again = usage_alerts_check(workspace=ws)
        activate_many(ws, contacts[80:110], kind="campaign")
        full = usage_alerts_check(workspace=ws)
        usage_alerts_check(workspace=ws)

    assert [a.threshold for a in first] == [80] and again == [] and [a.threshold for a in full] == [100]
    assert [a.threshold for a in usage_alerts_active(ws)] == [80, 100]
    assert len(mail.outbox) == 2
    assert mail.outbox[0].to == [f"owner-{ws.slug}@example.test"]
    assert "80%" in mail.outbox[0].subject and "all 100 activations" in mail.outbox[1].subject
    assert all(a.sent_at is not None for a in UsageAlert.objects.all())


def test_the_constraint_makes_it_once(free_workspace):
    UsageAlert.objects.create(workspace=free_workspace, month=datetime.date(2026, 11, 1), threshold=80)
    with pytest.raises(IntegrityError, match="automations_usage_alert_once"):
        UsageAlert.objects.create(workspace=free_workspace, month=datetime.date(2026, 11, 1), threshold=80)


def test_failed_email_is_recorded_and_retried_without_sending_twice(free_workspace, monkeypatch,
                                                                     django_capture_on_commit_callbacks):
    ws = free_workspace
    real = alerts.send_mail

    def broken(*args, **kwargs):
        raise OSError("SMTP server unreachable")

    monkeypatch.setattr(alerts, "send_mail", broken)
    activate_many(ws, ContactFactory.create_batch(80, workspace=ws), kind="campaign")
    with django_capture_on_commit_callbacks(execute=True):
        usage_alerts_check(workspace=ws)
    alert = UsageAlert.objects.get()
    assert (alert.sent_at, alert.attempts, alert.last_error) == (None, 1, "SMTP server unreachable")
    assert mail.outbox == [] and usage_alerts_unsent_ids() == [alert.pk]

    monkeypatch.setattr(alerts, "send_mail", real)
    assert usage_alerts_retry() == 1
    assert usage_alerts_retry() == 0

    alert.refresh_from_db()
    assert alert.sent_at is not None and alert.last_error == "" and alert.attempts == 2
    assert len(mail.outbox) == 1


def test_an_alert_overtaken_by_an_upgrade_is_not_emailed(free_workspace, django_capture_on_commit_callbacks):
    """The 100% email waits on a slow mail server; meanwhile the owner upgrades: no wrong email goes out."""
    ws = free_workspace
    activate_many(ws, ContactFactory.create_batch(100, workspace=ws), kind="campaign")
    usage_alerts_check(workspace=ws)  # created; the after-commit send has not run (no capture)
    bonus_grant(workspace=ws, amount=900, reason="Upgrade in progress", granted_by=None)

    assert usage_alerts_retry() == 0
    assert mail.outbox == []
    alert = UsageAlert.objects.get(threshold=100)
    assert alert.sent_at is None and "quota rose" in alert.last_error
    assert usage_alerts_unsent_ids() == []


def test_list_selectors_show_counters(free_workspace, fire, django_capture_on_commit_callbacks):
    ws = free_workspace
    ContactFactory.create_batch(103, workspace=ws)
    campaign = campaign_create(workspace=ws, name="Promo", text="Hi")
    with django_capture_on_commit_callbacks(execute=True):
        campaign_launch(campaign=campaign, launched_by=None)
    scenario = scenario_create(workspace=ws, name="Kw", trigger_type="dm_keyword",
                               trigger_config={"keywords": ["hi"]}, steps=[{"type": "send_message", "text": "yo"}])
    late = ContactFactory(workspace=ws)
    fire(late, text="hi", meta_id="m.1")

    row = campaign_list(workspace=ws).get()
    assert (row.recipients_count, row.sent_count, row.limited_count) == (103, 100, 3)
    s = scenario_list(workspace=ws).get()
    assert (s.pk, s.runs_total, s.runs_completed, s.runs_limited) == (scenario.pk, 1, 0, 1)
    assert paused_actions_waiting_count(ws) == 4
    assert [p.action_type for p in paused_action_list(workspace=ws)] == ["campaign_message"] * 3 + ["scenario_run"]
