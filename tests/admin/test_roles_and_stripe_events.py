"""Staff roles (support vs billing) and the Stripe event log with its idempotent replay."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from billing.models import Plan, StripeEvent
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def staff_in(group_name: str):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=group_name))
    return user


PLAN_FORM = {
    "code": "pro", "name": "Pro", "monthly_activations": "5000", "price_cents": "4900", "currency": "usd",
    "addon_pack_size": "1000", "addon_pack_price_cents": "2900", "stripe_price_id": "price_x",
    "stripe_addon_price_id": "price_y", "is_public": "on", "sort_order": "1",
}


def test_support_cannot_edit_plans_but_billing_can(client):
    pro = Plan.objects.get(code="pro")
    url = reverse("admin:billing_plan_change", args=[pro.pk])

    client.force_login(staff_in("support"))
    assert client.post(url, PLAN_FORM).status_code == 403
    pro.refresh_from_db()
    assert pro.monthly_activations == 1000

    client.force_login(staff_in("billing"))
    assert client.post(url, PLAN_FORM).status_code == 302
    pro.refresh_from_db()
    assert pro.monthly_activations == 5000


def test_support_can_open_the_bonus_form_billing_cannot(client):
    workspace = WorkspaceFactory()
    url = reverse("admin:accounts_workspace_grant_bonus", args=[workspace.pk])

    client.force_login(staff_in("support"))
    assert client.get(url).status_code == 200
    client.force_login(staff_in("billing"))
    assert client.get(url).status_code == 403


def test_stripe_event_list_payload_and_replay(client):
    event = StripeEvent.objects.create(
        event_id="evt_test_replay", type="customer.created", status=StripeEvent.Status.FAILED, created=1795700000,
        error="RuntimeError: database went away", payload={"id": "evt_test_replay", "type": "customer.created",
                                                          "data": {"object": {"id": "cus_1"}}},
    )
    client.force_login(staff_in("billing"))

    listing = client.get(reverse("admin:billing_stripeevent_changelist"), {"status__exact": "failed"})
    detail = client.get(reverse("admin:billing_stripeevent_change", args=[event.pk]))
    replay = client.post(reverse("admin:billing_stripeevent_changelist"),
                         {"action": "replay_events", "_selected_action": [event.pk]}, follow=True)

    assert "evt_test_replay" in listing.content.decode() and "database went away" in listing.content.decode()
    assert "cus_1" in detail.content.decode()
    assert "Replayed 1 events: 1 ignored." in replay.content.decode()
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("ignored", 1)


def test_support_cannot_replay_stripe_events(client):
    event = StripeEvent.objects.create(event_id="evt_x", type="customer.created", status="failed", payload={},
                                       created=1795700000)
    client.force_login(staff_in("support"))

    client.post(reverse("admin:billing_stripeevent_changelist"),
                {"action": "replay_events", "_selected_action": [event.pk]})

    event.refresh_from_db()
    assert (event.status, event.attempts) == ("failed", 0)
