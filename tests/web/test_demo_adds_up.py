"""The demo data adds up: this month's activations spread over the days elapsed, every reference a
real automation of the workspace with what it did, the demo subscription known to the local Stripe
stand-in (its portal answers), and the usage emails link to the workspace's own page."""

import datetime

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Workspace
from automations.models import ScenarioRun, SegmentMembership, UsageAlert
from automations.names import automation_names
from automations.services.alerts import usage_alert_send
from billing.activation import activate_many, usage
from billing.fakestripe import FakeStripe
from billing.fakestripe import views as fake_views
from billing.models import ActivationRecord, Subscription
from billing.months import billing_zone, month_of
from billing.selectors import activations_per_day
from tests.factories import ContactFactory, MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def seed():
    call_command("seed_demo", contacts=300)
    return Workspace.objects.get(slug="sunny-skincare"), Workspace.objects.get(slug="corner-coffee")


def test_this_months_activations_are_spread_over_the_days_elapsed():
    sunny, _ = seed()
    now = timezone.now()
    days = activations_per_day(workspace=sunny)
    today = now.astimezone(billing_zone()).date()

    assert sum(n for _, n in days) == usage(sunny).activated
    records = ActivationRecord.objects.filter(workspace=sunny, month=month_of())
    assert not records.filter(activated_at__gt=now).exists()
    if today.day > 1:  # on the 1st every activation is today's, as it would be
        busy_days = [day for day, n in days if n]
        assert len(busy_days) >= min(today.day, 2)
        assert max(n for _, n in days) < usage(sunny).activated  # not all on one day


def test_every_reference_is_a_real_automation_with_what_it_did():
    sunny, coffee = seed()

    for workspace in (sunny, coffee):
        refs = set(ActivationRecord.objects.filter(workspace=workspace).values_list("automation_ref", flat=True))
        names = automation_names(refs, workspace_id=workspace.pk)
        assert refs and all(names[ref].exists for ref in refs), {r: str(n) for r, n in names.items()}
        current = ActivationRecord.objects.filter(workspace=workspace, month=month_of())
        for ref in {r for r in current.values_list("automation_ref", flat=True) if r.startswith("scenario:")}:
            activated = current.filter(automation_ref=ref).count()
            runs = ScenarioRun.objects.filter(scenario_id=int(ref.split(":")[1]), engaged=True).count()
            assert runs >= activated, ref
        for ref in {r for r in current.values_list("automation_ref", flat=True) if r.startswith("segment:")}:
            assert SegmentMembership.objects.filter(automation_ref=ref).count() >= current.filter(
                automation_ref=ref).count()


def test_the_demo_subscription_is_known_to_the_stripe_stand_in(client, settings, monkeypatch):
    sunny, _ = seed()
    settings.FAKE_STRIPE_ENABLED = True
    stripe = FakeStripe(hosted_base="http://testserver/_fake_stripe")
    monkeypatch.setattr(fake_views, "_fake", stripe)
    subscription = Subscription.objects.get(workspace=sunny)
    assert (subscription.stripe_customer_id, subscription.stripe_subscription_id) == ("cus_demo", "sub_demo")

    portal = client.post("/_fake_stripe/v1/billing_portal/sessions",
                         "customer=cus_demo&return_url=http%3A%2F%2Ftestserver%2F",
                         content_type="application/x-www-form-urlencoded", HTTP_AUTHORIZATION="Bearer sk_test_x")
    preview = client.post("/_fake_stripe/v1/invoices/create_preview",
                          "customer=cus_demo&subscription=sub_demo",
                          content_type="application/x-www-form-urlencoded", HTTP_AUTHORIZATION="Bearer sk_test_x")
    invoices = client.get("/_fake_stripe/v1/invoices", {"customer": "cus_demo"},
                          HTTP_AUTHORIZATION="Bearer sk_test_x")

    assert portal.status_code == 200, portal.content  # was a 404 "No such customer", a 502 for the owner
    assert preview.status_code == 200 and preview.json()["amount_due"] == 4900 + 2900  # Pro + its one pack
    [invoice] = invoices.json()["data"]
    assert client.get(invoice["hosted_invoice_url"].removeprefix("http://testserver")).status_code == 200
    pdf = client.get(invoice["invoice_pdf"].removeprefix("http://testserver"))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF-1.4")
    page = client.get(portal.json()["url"].removeprefix("http://testserver"))
    assert page.status_code == 200 and invoice["number"] in page.content.decode()


def test_usage_emails_link_to_the_workspaces_page(settings):
    settings.SITE_URL = "https://app.inro.test"
    workspace = WorkspaceFactory(name="Sunny Skincare")
    MembershipFactory(workspace=workspace, user=UserFactory(email="dana@sunny.test"), role="owner")
    activate_many(workspace, ContactFactory.create_batch(80, workspace=workspace), kind="campaign")
    alert = UsageAlert.objects.get_or_create(workspace=workspace, month=month_of(), threshold=80)[0]

    assert usage_alert_send(alert_id=alert.pk, now=timezone.now() + datetime.timedelta(seconds=1))

    [message] = mail.outbox
    assert f"https://app.inro.test/w/{workspace.pk}/\n" in message.body
    assert f"https://app.inro.test/w/{workspace.pk}/billing/" in message.body
    assert "https://app.inro.test/\n" not in message.body
