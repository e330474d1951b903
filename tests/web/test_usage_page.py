"""The usage page: the meter, the banners, the upgrade form, the lists and the CSV export."""

import csv
import datetime
import io
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.activation import activate_many
from billing.models import ActivationRecord, MonthlyUsage, Subscription
from billing.months import month_end, month_of
from billing.services import quota_refresh
from tests.factories import ContactFactory, pro_subscription
from web import usage_views
from web.usage_views import reset_wording

pytestmark = pytest.mark.django_db


@pytest.fixture
def late_in_month(monkeypatch):
    """Three hours before the month ends: the pace so far is the month's, whatever today's date."""
    moment = month_end(month_of()) - datetime.timedelta(hours=3)
    monkeypatch.setattr(usage_views, "timezone", SimpleNamespace(now=lambda: moment))
    return moment


def usage_url(workspace):
    return reverse("usage", kwargs={"workspace_id": workspace.pk})


def test_reset_wording_speaks_like_a_person():
    reset = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    assert reset_wording(resets_at=reset, now=datetime.datetime(2026, 11, 26, 14, 6, tzinfo=datetime.UTC)) == (
        "resets in 5 days, on 1 December"
    )
    assert reset_wording(resets_at=reset, now=datetime.datetime(2026, 11, 30, 23, 59, tzinfo=datetime.UTC)) == (
        "resets tomorrow, on 1 December"
    )
    assert reset_wording(resets_at=datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC),
                         now=datetime.datetime(2026, 12, 1, 0, 0, tzinfo=datetime.UTC)) == (
        "resets in 31 days, on 1 January"
    )


def test_the_meter_shows_the_month_figures(owner_client, workspace, make_contacts, late_in_month):
    activate_many(workspace, make_contacts(workspace, 42), kind="campaign")
    make_contacts(workspace, 8)  # captured, never activated

    response = owner_client.get(usage_url(workspace))

    assert response.status_code == 200
    page = response.content.decode()
    assert 'role="meter"' in page
    assert 'aria-valuenow="42"' in page and 'aria-valuemax="100"' in page
    assert '<span data-testid="activated">42</span>' in page
    assert '<strong class="num" data-testid="remaining">58</strong>' in page
    assert '<span data-testid="not-activated">8</span>' in page
    assert '<span data-testid="database-total">50</span>' in page
    assert 'class="meter ok"' in page
    assert "You've reached your limit" not in page
    assert response.context["reset_words"].startswith("resets ")


def test_the_meter_turns_amber_at_80_percent_and_red_at_the_limit(owner_client, workspace, make_contacts):
    contacts = make_contacts(workspace, 100)
    activate_many(workspace, contacts[:80], kind="scenario")

    page = owner_client.get(usage_url(workspace)).content.decode()
    assert 'class="meter warning"' in page
    assert "You've used 80% of this month's activated contacts" in page

    activate_many(workspace, contacts[80:], kind="scenario")
    page = owner_client.get(usage_url(workspace)).content.decode()
    assert 'class="meter limit"' in page
    assert "reached your limit of 100 activated contacts" in page
    assert 'data-testid="limit-banner"' in page


def test_a_failed_payment_shows_a_banner(owner_client, workspace):
    subscription = pro_subscription(workspace)
    Subscription.objects.filter(pk=subscription.pk).update(status=Subscription.Status.PAST_DUE)

    page = owner_client.get(usage_url(workspace)).content.decode()

    assert "Your last payment failed" in page
    assert f'action="/w/{workspace.pk}/billing/portal/"' in page


def test_owners_get_the_upgrade_form_members_do_not(owner_client, workspace, client):
    page = owner_client.get(usage_url(workspace)).content.decode()
    assert f'action="/w/{workspace.pk}/billing/checkout/"' in page
    assert 'name="plan" value="pro"' in page
    assert 'name="addon_packs"' in page and "csrfmiddlewaretoken" in page


def test_members_are_told_who_can_upgrade(member_client, workspace):
    page = member_client.get(usage_url(workspace)).content.decode()
    assert "/billing/checkout/" not in page
    assert "Only owners can change the plan." in page


def test_pro_workspace_sees_its_packs_in_the_quota(owner_client, workspace):
    pro_subscription(workspace, addon_packs=2)
    quota_refresh(workspace=workspace)
    response = owner_client.get(usage_url(workspace))
    summary = response.context["summary"]
    page = response.content.decode()
    assert summary.quota == 1000 + 2 * summary.plan.addon_pack_size
    assert f"2 add-on packs × {summary.plan.addon_pack_size:,}" in page
    # One pack more, priced on the billing page before anything changes.
    assert 'name="packs" type="number" min="0" max="100" step="1" value="3"' in page


def test_the_activated_list_is_searchable_and_paginated(owner_client, workspace):
    ava = ContactFactory(workspace=workspace, username="ava.sun", name="Ava Sun")
    others = [ContactFactory(workspace=workspace, username=f"lead_{i:02}", name=f"Lead {i}") for i in range(30)]
    activate_many(workspace, [ava, *others], kind="campaign", ref="campaign:7")

    first = owner_client.get(usage_url(workspace))
    assert first.context["page"].paginator.num_pages == 2
    assert len(first.context["page"].object_list) == 25
    second = owner_client.get(usage_url(workspace), {"page": 2})
    assert len(second.context["page"].object_list) == 6

    found = owner_client.get(usage_url(workspace), {"q": "@ava"})
    assert found.context["page"].paginator.count == 1
    assert [r.contact.username for r in found.context["page"].object_list] == ["ava.sun"]
    assert "campaign:7" in found.content.decode()
    assert f'href="/w/{workspace.pk}/activations.csv?q=%40ava"' in found.content.decode()


def test_a_too_long_search_shows_the_error_and_filters_nothing(owner_client, workspace, make_contacts):
    activate_many(workspace, make_contacts(workspace, 3), kind="campaign")
    response = owner_client.get(usage_url(workspace), {"q": "x" * 101})
    assert "Ensure this value has at most 100 characters" in response.content.decode()
    assert len(response.context["page"].object_list) == 3


def test_previous_months_show_quota_and_use(owner_client, workspace):
    last = (month_of() - datetime.timedelta(days=1)).replace(day=1)
    MonthlyUsage.objects.create(workspace=workspace, month=last, quota=100, activated=87)

    page = owner_client.get(usage_url(workspace)).content.decode()

    assert f"{last:%B %Y}" in page
    assert "<td class=\"num\">87</td><td class=\"num\">100</td>" in page


def test_csv_export_lists_this_months_activations_with_the_same_search(owner_client, workspace):
    ava = ContactFactory(workspace=workspace, username="ava.sun", name="=HYPERLINK(\"x\")")
    leo = ContactFactory(workspace=workspace, username="leo.moon", name="Leo")
    activate_many(workspace, [ava, leo], kind="scenario", ref="scenario:3")

    response = owner_client.get(reverse("activations_csv", kwargs={"workspace_id": workspace.pk}), {"q": "ava"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f"activations-{workspace.slug}-{month_of():%Y-%m}.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["activated_at", "contact_id", "instagram_id", "username", "name", "source",
                       "automation_kind", "automation", "automation_name"]
    assert len(rows) == 2
    assert rows[1][1:] == [str(ava.pk), ava.igsid, "ava.sun", "'=HYPERLINK(\"x\")", "dm", "scenario", "scenario:3",
                           "Scenario #3 (deleted)"]


def test_csv_export_refuses_a_bad_search(owner_client, workspace):
    response = owner_client.get(reverse("activations_csv", kwargs={"workspace_id": workspace.pk}), {"q": "x" * 101})
    assert response.status_code == 400


@pytest.mark.parametrize("name", ["usage", "activations_csv", "contacts"])
def test_outsiders_get_404_and_strangers_sign_in(outsider_client, client, workspace, name):
    url = reverse(name, kwargs={"workspace_id": workspace.pk})
    assert outsider_client.get(url).status_code == 404
    outsider_client.logout()
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_the_page_takes_a_fixed_number_of_queries(owner_client, workspace, make_contacts,
                                                   django_assert_num_queries, django_assert_max_num_queries):
    pro_subscription(workspace)
    quota_refresh(workspace=workspace)
    contacts = make_contacts(workspace, 600)
    activate_many(workspace, contacts[:5], kind="campaign")
    owner_client.get(usage_url(workspace))  # the session is warm, as for any signed-in user

    with CaptureQueriesContext(connection) as with_five:
        assert owner_client.get(usage_url(workspace)).status_code == 200
    activate_many(workspace, contacts[5:500], kind="scenario")
    assert ActivationRecord.objects.filter(workspace=workspace).count() == 500

    with django_assert_num_queries(len(with_five.captured_queries)):
        response = owner_client.get(usage_url(workspace))
    assert response.context["summary"].activated == 500
    assert len(with_five.captured_queries) <= 18  # 16, + the per-automation breakdown and their names
    with django_assert_max_num_queries(len(with_five.captured_queries) + 1):  # + the COUNT of the matches
        owner_client.get(usage_url(workspace), {"q": "lead", "page": 2})


def test_activation_at_is_shown_in_the_list(owner_client, workspace):
    contact = ContactFactory(workspace=workspace, username="mia")
    activate_many(workspace, [contact], kind="enrichment")
    record = ActivationRecord.objects.get(contact=contact)
    page = owner_client.get(usage_url(workspace)).content.decode()
    assert f'datetime="{timezone.localtime(record.activated_at).isoformat()}"' in page
    assert "Data enrichment" in page


def test_the_forecast_sits_next_to_the_meter_with_its_method(owner_client, workspace, make_contacts):
    activate_many(workspace, make_contacts(workspace, 30), kind="campaign")

    response = owner_client.get(usage_url(workspace))

    forecast = response.context["summary"].forecast
    page = response.content.decode()
    assert forecast.projected_activations >= 30
    assert f'data-testid="forecast-projected">{forecast.projected_activations:,}</div>' in page
    assert ("Method: Activations so far divided by days elapsed, times the days in the month "
            "(not capped: at the quota, automations pause).") in page
    expected_limit = f"{forecast.limit_date.day} {forecast.limit_date:%B}" if forecast.limit_date else "Not this month"
    assert f'data-testid="forecast-limit">{expected_limit}</div>' in page


def test_reservations_in_flight_are_shown_apart_and_left_out_of_the_csv(owner_client, workspace, make_contacts):
    contacts = make_contacts(workspace, 6)
    activate_many(workspace, contacts[:4], kind="campaign")
    activate_many(workspace, contacts[4:], kind="campaign", confirm=False)

    page = owner_client.get(usage_url(workspace)).content.decode()
    export = owner_client.get(reverse("activations_csv", kwargs={"workspace_id": workspace.pk}))

    assert '<span data-testid="activated">4</span>' in page
    assert '<strong class="num" data-testid="remaining">94</strong>' in page
    assert 'data-testid="in-flight"' in page and '<span class="num">2</span> in flight' in page
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode()
                                       if export.streaming else export.content.decode())))
    assert len(rows) == 1 + 4
