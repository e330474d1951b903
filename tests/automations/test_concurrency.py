"""Paused-action resumes, campaign fan-outs and alerts racing on PostgreSQL: nothing runs twice."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections, transaction

from automations.models import CampaignRecipient, PausedAction, UsageAlert
from automations.services import campaign_create, campaign_send, paused_actions_resume, usage_alerts_check
from automations.services.campaign_fanout import CampaignBusy
from billing.activation import usage
from billing.models import ActivationRecord, BonusGrant
from billing.months import month_of
from billing.quota import usage_quota_refresh
from contacts.models import Message
from tests.factories import ContactFactory, MembershipFactory, WorkspaceFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def run_in_parallel(workers, job):
    barrier = threading.Barrier(workers)

    def wrapped(i):
        try:
            barrier.wait(timeout=30)
            return job(i)
        except Exception as error:  # returned to the test to assert on
            return error
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(wrapped, range(workers)))


def limited_campaign(n_contacts):
    workspace = WorkspaceFactory()
    MembershipFactory(workspace=workspace)
    ContactFactory.create_batch(n_contacts, workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Race", text="Hi")
    campaign.status = "sending"
    campaign.save(update_fields=["status"])
    return workspace, campaign


def test_two_fanouts_of_one_campaign_send_each_contact_once():
    workspace, campaign = limited_campaign(180)

    results = run_in_parallel(2, lambda i: campaign_send(campaign_id=campaign.pk, batch_size=40))

    assert sum(isinstance(r, CampaignBusy) for r in results) <= 1
    sent_to = list(Message.objects.filter(workspace=workspace, direction="out").values_list("contact_id", flat=True))
    assert len(sent_to) == len(set(sent_to)) == 100
    statuses = list(CampaignRecipient.objects.filter(campaign=campaign).values_list("status", flat=True))
    assert (len(statuses), statuses.count("sent"), statuses.count("limited")) == (180, 100, 80)
    campaign.refresh_from_db()
    assert (campaign.status, campaign.sent_count, campaign.limited_count) == ("done", 100, 80)
    assert PausedAction.objects.filter(workspace=workspace).count() == 80


def test_four_resumers_run_each_paused_action_once():
    workspace, campaign = limited_campaign(180)
    campaign_send(campaign_id=campaign.pk)
    BonusGrant.objects.create(workspace=workspace, month=month_of(), amount=50, reason="race")
    with transaction.atomic():  # the quota rises without the hook: the resumers below race instead
        usage_quota_refresh(workspace_id=workspace.pk, month=month_of())

    results = run_in_parallel(4, lambda i: paused_actions_resume(workspace=workspace))

    assert not [r for r in results if isinstance(r, Exception)]
    assert sum(r.resumed for r in results) == 50
    assert PausedAction.objects.filter(workspace=workspace, status="resumed").count() == 50
    sent_to = list(Message.objects.filter(workspace=workspace, direction="out").values_list("contact_id", flat=True))
    assert len(sent_to) == len(set(sent_to)) == 150
    assert ActivationRecord.objects.filter(workspace=workspace).count() == usage(workspace).activated == 150


def test_racing_alert_checks_make_one_alert_per_threshold():
    workspace, campaign = limited_campaign(120)
    campaign_send(campaign_id=campaign.pk)
    UsageAlert.objects.all().delete()

    run_in_parallel(6, lambda i: usage_alerts_check(workspace=workspace))

    assert sorted(UsageAlert.objects.values_list("threshold", flat=True)) == [80, 100]
