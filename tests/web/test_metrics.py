"""/metrics: token-protected, figures of the current month computed at scrape time."""

import pytest
from django.core.cache import cache
from prometheus_client.parser import text_string_to_metric_families

from billing.activation import activate
from billing.models import MonthlyUsage
from billing.services import bonus_grant
from tests.factories import ContactFactory, WorkspaceFactory
from tests.ops import tasks_for_tests

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-for-tests"


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    cache.clear()
    yield TOKEN
    cache.clear()


def scrape(client) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_no_token_configured_means_no_endpoint(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_missing_token_is_401_and_wrong_token_403(client, metrics_token):
    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    basic = client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}")

    assert (missing.status_code, missing["WWW-Authenticate"]) == (401, 'Bearer realm="metrics"')
    assert wrong.status_code == 403
    assert basic.status_code == 401
    assert b"inro_" not in missing.content + wrong.content + basic.content


def test_activations_of_the_month_in_total_and_by_kind(client, metrics_token):
    first, second = WorkspaceFactory(), WorkspaceFactory()
    for contact in ContactFactory.create_batch(3, workspace=first):
        activate(workspace=first, contact=contact, kind="campaign", ref="campaign:1")
    activate(workspace=second, contact=ContactFactory(workspace=second), kind="scenario", ref="scenario:2")
    limited = WorkspaceFactory()
    bonus_grant(workspace=limited, amount=1, reason="test", granted_by=None)  # opens the month's row
    # A usage row whose per-kind counters are not known yet (as right after the migration): its
    # records are counted instead.
    unknown = WorkspaceFactory()
    activate(workspace=unknown, contact=ContactFactory(workspace=unknown), kind="scenario", ref="scenario:3")
    MonthlyUsage.objects.filter(workspace=unknown).update(activated_by_kind=None, activated_by_day=None)

    samples = scrape(client)

    assert samples[("inro_activations_month", ())] == 5
    assert samples[("inro_activations_month_by_kind", (("kind", "campaign"),))] == 3
    assert samples[("inro_activations_month_by_kind", (("kind", "scenario"),))] == 2
    assert samples[("inro_activations_month_by_kind", (("kind", "integration"),))] == 0
    assert samples[("inro_quota_month", ())] == 100 + 100 + 101 + 100
    assert samples[("inro_workspaces_at_limit", ())] == 0


def test_a_workspace_at_its_quota_is_counted_at_limit(client, metrics_token):
    workspace = WorkspaceFactory()
    contacts = ContactFactory.create_batch(101, workspace=workspace)
    for contact in contacts:
        activate(workspace=workspace, contact=contact, kind="campaign", ref="campaign:9")

    samples = scrape(client)

    assert samples[("inro_activations_month", ())] == 100
    assert samples[("inro_workspaces_at_limit", ())] == 1


def test_task_failures_are_counted_by_task(client, metrics_token):
    # As a worker runs them: the failure is recorded, not raised into the caller.
    for _ in range(2):
        assert tasks_for_tests.always_fails.apply(throw=False).failed()
    assert tasks_for_tests.log_request_id.apply(args=["fine"], throw=False).successful()

    samples = scrape(client)

    assert samples[("inro_task_failures_total", (("task", "tests.ops.always_fails"),))] == 2
    assert samples[("inro_task_failures_total", (("task", "tests.ops.log_request_id"),))] == 0
    assert samples[("inro_task_failures_total", (("task", "billing.tasks.roll_over_month"),))] == 0


def test_paused_actions_webhook_deliveries_and_stripe_events(client, metrics_token):
    import datetime

    from django.utils import timezone

    from automations.models import PausedAction
    from billing.models import StripeEvent
    from contacts.models import WebhookDelivery

    workspace = WorkspaceFactory()
    contacts = ContactFactory.create_batch(4, workspace=workspace)
    now = timezone.now()
    for i, (contact, kind, status) in enumerate([
        (contacts[0], "campaign", "waiting"), (contacts[1], "campaign", "waiting"),
        (contacts[2], "scenario", "waiting"), (contacts[3], "campaign", "resumed"),
    ]):
        PausedAction.objects.create(workspace=workspace, contact=contact, kind=kind, automation_ref=f"{kind}:1",
                                    action_type="campaign_message", dedupe_key=f"k{i}", status=status)
    old = PausedAction.objects.create(workspace=workspace, contact=contacts[0], kind="campaign",
                                      automation_ref="campaign:0", action_type="campaign_message",
                                      dedupe_key="last-month", status="expired")
    PausedAction.objects.filter(pk=old.pk).update(created_at=now - datetime.timedelta(days=40))
    WebhookDelivery.objects.create(body="{}", body_sha256="a" * 64, received_at=now - datetime.timedelta(seconds=90))
    WebhookDelivery.objects.create(body="{}", body_sha256="b" * 64, status="failed")
    WebhookDelivery.objects.create(body="{}", body_sha256="c" * 64, status="processed",
                                   received_at=now - datetime.timedelta(seconds=10),
                                   processed_at=now - datetime.timedelta(seconds=7))
    WebhookDelivery.objects.create(body="{}", body_sha256="d" * 64, status="processed",
                                   received_at=now - datetime.timedelta(seconds=20),
                                   processed_at=now - datetime.timedelta(seconds=19))
    StripeEvent.objects.create(event_id="evt_1", type="invoice.paid", created=1, payload={}, status="failed")
    StripeEvent.objects.create(event_id="evt_2", type="invoice.paid", created=1, payload={}, status="processed")

    samples = scrape(client)

    assert samples[("inro_paused_actions_waiting", (("kind", "campaign"),))] == 2
    assert samples[("inro_paused_actions_waiting", (("kind", "scenario"),))] == 1
    month = {key[1]: value for key, value in samples.items() if key[0] == "inro_refusals_month"}
    assert month == {
        (("kind", "campaign"), ("status", "resumed")): 1,
        (("kind", "campaign"), ("status", "waiting")): 2,
        (("kind", "scenario"), ("status", "waiting")): 1,
    }  # the expired one was refused last month
    assert samples[("inro_webhook_deliveries", (("status", "pending"),))] == 1
    assert samples[("inro_webhook_deliveries", (("status", "failed"),))] == 1
    assert 90 <= samples[("inro_webhook_oldest_pending_seconds", ())] < 120
    assert samples[("inro_webhook_processing_lag_seconds", ())] == 2.0
    assert samples[("inro_stripe_events", (("status", "failed"),))] == 1
    assert samples[("inro_stripe_events", (("status", "received"),))] == 0
