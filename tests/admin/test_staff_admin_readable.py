"""The staff admin reads like the product: Stripe events with their workspace and readable times,
replay results per event with the reason, names of automations, months as "December 2026", no
editable creation or deletion times and no bulk deletion of workspaces, correct plurals."""

import datetime
import re

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from automations.models import IntegrationDelivery, PausedAction
from automations.services.campaigns import campaign_create
from billing.activation import activate_many
from billing.models import StripeEvent, Subscription
from billing.months import month_of
from tests.factories import ContactFactory, UserFactory, WorkspaceFactory, pro_subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


def billing_staff(client):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="billing"))
    client.force_login(user)
    return client


def event(event_id, type_, obj, **fields):
    return StripeEvent.objects.create(event_id=event_id, type=type_, created=1795700000,
                                      payload={"id": event_id, "type": type_, "data": {"object": obj}}, **fields)


def test_stripe_events_show_their_workspace_and_readable_times(client, django_assert_max_num_queries):
    sunny, coffee = WorkspaceFactory(name="Sunny Skincare"), WorkspaceFactory(name="Corner Coffee")
    Subscription.objects.filter(pk=pro_subscription(sunny).pk).update(stripe_customer_id="cus_sunny",
                                                                       stripe_subscription_id="sub_sunny")
    event("evt_1", "customer.subscription.updated", {"object": "subscription", "id": "sub_sunny",
                                                      "customer": "cus_sunny"})
    event("evt_2", "invoice.paid", {"object": "invoice", "id": "in_1", "customer": "cus_sunny"})
    event("evt_3", "checkout.session.completed", {"object": "checkout.session", "id": "cs_1",
                                                   "client_reference_id": str(coffee.pk), "metadata": {}})
    event("evt_4", "customer.created", {"object": "customer", "id": "cus_nobody"})
    billing_staff(client)

    listing = client.get(reverse("admin:billing_stripeevent_changelist")).content.decode()

    sunny_link = f'<a href="{reverse("admin:accounts_workspace_change", args=[sunny.pk])}">Sunny Skincare</a>'
    assert listing.count(sunny_link) == 2
    assert f'<a href="{reverse("admin:accounts_workspace_change", args=[coffee.pk])}">Corner Coffee</a>' in listing
    moment = datetime.datetime.fromtimestamp(1795700000, tz=datetime.UTC)
    assert f"{moment.day} {moment:%b %Y, %H:%M:%S} UTC" in listing
    assert ">1795700000<" not in listing
    # The workspaces of a page of events are found in a fixed number of queries.
    for n in range(20):
        event(f"evt_more_{n}", "invoice.paid", {"object": "invoice", "id": f"in_{n}", "customer": "cus_sunny"})
    with django_assert_max_num_queries(12):
        client.get(reverse("admin:billing_stripeevent_changelist"))


def test_replay_reports_each_event_with_its_reason(client):
    first = event("evt_ignored", "invoice.paid", {"object": "invoice", "id": "in_9", "customer": "cus_unknown"},
                  status="failed")
    second = event("evt_unhandled", "customer.created", {"object": "customer", "id": "cus_2"}, status="failed")
    billing_staff(client)

    page = client.post(reverse("admin:billing_stripeevent_changelist"),
                       {"action": "replay_events", "_selected_action": [first.pk, second.pk]}, follow=True)

    text = page.content.decode()
    assert "Event evt_ignored (invoice.paid): ignored, invoice of a subscription not linked to any workspace." in text
    assert "Event evt_unhandled (customer.created): ignored, nothing here acts on this event type." in text
    assert "Replayed 2 events: 2 ignored." in text


def test_workspace_times_are_read_only_and_there_is_no_bulk_delete(staff_client):
    workspace = WorkspaceFactory(name="Sunny Skincare")
    created = workspace.created_at

    form = staff_client.get(reverse("admin:accounts_workspace_change", args=[workspace.pk])).content.decode()
    listing = staff_client.get(reverse("admin:accounts_workspace_changelist")).content.decode()

    assert 'name="created_at' not in form and 'name="deleted_at' not in form
    assert "Delete selected" not in listing
    assert staff_client.get(reverse("admin:accounts_workspace_delete", args=[workspace.pk])).status_code == 403
    staff_client.post(reverse("admin:accounts_workspace_change", args=[workspace.pk]), {
        "name": "Sunny Skincare", "slug": workspace.slug, "created_at_0": "2020-01-01", "created_at_1": "00:00",
        "deleted_at_0": "2020-01-02", "deleted_at_1": "00:00", "activation_reserve": "0",
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
    })
    workspace.refresh_from_db()
    assert (workspace.created_at, workspace.deleted_at) == (created, None)


def test_months_read_as_month_and_year(staff_client):
    workspace = WorkspaceFactory()
    activate_many(workspace, [ContactFactory(workspace=workspace)], kind="campaign")

    page = staff_client.get(reverse("admin:billing_monthlyusage_changelist")).content.decode()
    ledger = staff_client.get(reverse("admin:billing_activationrecord_changelist")).content.decode()

    label = month_of().strftime("%B %Y")
    assert f">{label}<" in page and f">{label}<" in ledger
    assert not re.search(r">[A-Z][a-z]{2}\. 1, \d{4}<", page + ledger)


def test_ledger_and_paused_actions_name_their_automation(staff_client):
    workspace = WorkspaceFactory()
    contact, other = ContactFactory(workspace=workspace), ContactFactory(workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Autumn launch", text="x")
    activate_many(workspace, [contact], kind="campaign", ref=campaign.ref)
    PausedAction.objects.create(workspace=workspace, contact=other, kind="campaign", automation_ref=campaign.ref,
                                action_type="campaign_message", dedupe_key="k")

    ledger = staff_client.get(reverse("admin:billing_activationrecord_changelist")).content.decode()
    paused = staff_client.get(reverse("admin:automations_pausedaction_changelist")).content.decode()
    export = staff_client.get(reverse("admin:billing_activationrecord_export"))

    assert f'Campaign “Autumn launch” <span style="color:#777">({campaign.ref})</span>' in ledger
    assert f'Campaign “Autumn launch” <span style="color:#777">({campaign.ref})</span>' in paused
    assert "Autumn launch" in b"".join(export.streaming_content).decode()


def test_integration_deliveries_are_spelled_right(staff_client):
    assert IntegrationDelivery._meta.verbose_name_plural == "integration deliveries"
    page = staff_client.get(reverse("admin:index")).content.decode()
    assert "Integration deliveries" in page and "deliverys" not in page
