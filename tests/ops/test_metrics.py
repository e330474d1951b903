"""/metrics: token-protected, figures of the current month computed at scrape time."""

import pytest
from django.core.cache import cache
from prometheus_client.parser import text_string_to_metric_families

from billing.activation import activate
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

    samples = scrape(client)

    assert samples[("inro_activations_month", ())] == 4
    assert samples[("inro_activations_month_by_kind", (("kind", "campaign"),))] == 3
    assert samples[("inro_activations_month_by_kind", (("kind", "scenario"),))] == 1
    assert samples[("inro_activations_month_by_kind", (("kind", "integration"),))] == 0
    assert samples[("inro_quota_month", ())] == 100 + 100 + 101
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
