"""Usage, history and the activation ledger: the same figures as the usage page's selectors."""

import datetime

import pytest

from billing import selectors
from billing.activation import activate_many
from billing.models import ActivationRecord, MonthlyUsage
from billing.months import month_of, previous_month
from tests.api.conftest import ws_url
from tests.factories import ContactFactory, pro_subscription

pytestmark = pytest.mark.django_db


def test_me_lists_workspaces_with_roles(api, owner, workspace):
    response = api.get("/api/v1/me/")

    assert response.status_code == 200
    assert response.json() == {
        "id": owner.pk, "email": owner.email, "full_name": owner.full_name,
        "workspaces": [{"id": workspace.pk, "name": workspace.name, "slug": workspace.slug, "role": "owner",
                        "can_manage": True}],
    }


def test_usage_shows_the_selector_figures(api, workspace, make_contacts):
    pro_subscription(workspace, addon_packs=2)
    activate_many(workspace, make_contacts(workspace, 30), kind="campaign")
    summary = selectors.usage_summary(workspace=workspace)

    response = api.get(ws_url(workspace, "usage/"))

    assert response.status_code == 200
    body = response.json()
    assert body["month"] == month_of().strftime("%Y-%m")
    assert (body["activated"], body["quota"], body["remaining"]) == (30, summary.quota, summary.quota - 30)
    assert body["limit_reached"] is False
    assert body["paused_actions"] == 0
    assert body["plan"] == {"code": "pro", "name": summary.plan.name}
    assert body["addon_packs"] == 2
    assert body["resets_at"].startswith(summary.resets_at.strftime("%Y-%m-%dT00:00:00"))
    assert body["forecast"]["projected_activations"] == summary.forecast.projected_activations
    assert body["forecast"]["limit_date"] is None


def test_usage_at_the_limit(api, workspace, make_contacts):
    activate_many(workspace, make_contacts(workspace, 100), kind="scenario")

    body = api.get(ws_url(workspace, "usage/")).json()

    assert (body["activated"], body["quota"], body["remaining"], body["limit_reached"]) == (100, 100, 0, True)
    assert body["plan"]["code"] == "free"
    assert body["level"] == "limit"


def test_usage_history_one_row_per_previous_month(api, workspace):
    last = previous_month(month_of())
    MonthlyUsage.objects.create(workspace=workspace, month=last, quota=100, activated=64)
    MonthlyUsage.objects.create(workspace=workspace, month=previous_month(last), quota=1000, activated=1000,
                                limit_reached_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))

    response = api.get(ws_url(workspace, "usage/history/"))

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["month"], r["activated"], r["quota"]) for r in rows] == [
        (last.strftime("%Y-%m"), 64, 100), (previous_month(last).strftime("%Y-%m"), 1000, 1000)]
    assert rows[1]["limit_reached_at"] is not None
    assert len(api.get(ws_url(workspace, "usage/history/?months=1")).json()["results"]) == 1


def test_usage_history_refuses_a_bad_months_value(api, workspace):
    response = api.get(ws_url(workspace, "usage/history/?months=0"))

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["months"]


def test_activations_filtered_by_kind_and_paginated_by_cursor(api, workspace, make_contacts):
    activate_many(workspace, make_contacts(workspace, 3), kind="campaign", ref="campaign:7")
    activate_many(workspace, make_contacts(workspace, 2), kind="scenario")

    page = api.get(ws_url(workspace, "activations/?kind=campaign&page_size=2")).json()

    assert len(page["results"]) == 2
    assert {r["kind"] for r in page["results"]} == {"campaign"}
    assert page["results"][0]["automation_ref"] == "campaign:7"
    assert page["results"][0]["month"] == month_of().strftime("%Y-%m")
    second = api.get(page["next"]).json()
    assert len(second["results"]) == 1
    assert second["next"] is None
    seen = {r["id"] for r in page["results"] + second["results"]}
    assert seen == set(ActivationRecord.objects.filter(kind="campaign").values_list("id", flat=True))


def test_activations_of_another_month_and_an_erased_contact(api, workspace):
    contact = ContactFactory(workspace=workspace)
    activate_many(workspace, [contact], kind="enrichment")
    contact.delete()

    this_month = api.get(ws_url(workspace, f"activations/?month={month_of():%Y-%m}")).json()["results"]
    other_month = api.get(ws_url(workspace, "activations/?month=2001-01")).json()["results"]

    assert [(r["kind"], r["contact"]) for r in this_month] == [("enrichment", None)]
    assert other_month == []


@pytest.mark.parametrize("query, field", [
    ("month=2026-13", "month"), ("month=march", "month"), ("month=1999-01", "month"),
    ("kind=manual", "kind"), ("month=", "month"), ("kind=", "kind"),
])
def test_activation_filters_are_validated(api, workspace, query, field):
    response = api.get(ws_url(workspace, f"activations/?{query}"))

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
