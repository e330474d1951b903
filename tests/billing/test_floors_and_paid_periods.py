"""Floors and bonuses that add up (rules 8, 12), and decreases that wait for the end of the paid period.

Each case is read on every surface: the usage page, the billing page, the API's usage/ and the admin's
workspace page tell the same story.
"""

import datetime

import pytest
from django.contrib import admin as django_admin
from django.test import Client
from django.urls import reverse

from accounts.models import Workspace
from billing.activation import activate_many, activation_confirm, activation_release, usage
from billing.models import MonthlyUsage, Plan, PlanChange, Subscription
from billing.services import bonus_grant, quota_refresh, spending_controls_update
from billing.subscriptions import scheduled_changes_apply_due
from tests.api.conftest import client_for, ws_url
from tests.billing.test_checkout import upgrade_to_pro

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def staff_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def small_pro(db):
    """Pro at 100 a month with packs of 10, so a test can fill it with a few contacts."""
    Plan.objects.filter(code=Plan.PRO).update(monthly_activations=100, addon_pack_size=10)


def surfaces(workspace, owner, staff_client, owner_client) -> dict:
    """What each surface says about this month's quota."""
    usage_page = owner_client.get(f"/w/{workspace.pk}/").content.decode()
    billing_page = owner_client.get(f"/w/{workspace.pk}/billing/").content.decode()
    api = client_for(owner).get(ws_url(workspace, "usage/")).json()
    admin = staff_client.get(reverse("admin:accounts_workspace_change", args=[workspace.pk])).content.decode()
    return {"usage": usage_page, "billing": billing_page, "api": api, "admin": admin}


def _end_pro_with(client, workspace, fake, deliver, make_contacts, activated: int, packs: int = 0):
    subscription = upgrade_to_pro(client, workspace, fake, deliver, packs=packs)
    activate_many(workspace, make_contacts(workspace, activated), kind="campaign")
    deliver(fake.subscription_cancel_at_period_end(subscription.stripe_subscription_id))
    deliver(fake.subscription_end(subscription.stripe_subscription_id))
    return Subscription.objects.get(workspace=workspace)


def test_bonus_after_the_floor_adds_its_full_amount_and_resumes(
        owner_client, staff_client, workspace, owner, fake_stripe, deliver, make_contacts, headroom_calls,
        admin_user, django_capture_on_commit_callbacks):
    subscription = _end_pro_with(owner_client, workspace, fake_stripe, deliver, make_contacts, 105)
    assert subscription.plan.code == "free"
    snapshot = usage(workspace)
    assert (snapshot.activated, snapshot.quota, snapshot.remaining) == (105, 105, 0)  # never below (rule 8)
    headroom_calls.clear()

    with django_capture_on_commit_callbacks(execute=True):
        bonus_grant(workspace=workspace, amount=2, reason="Sorry for the outage", granted_by=admin_user)

    snapshot = usage(workspace)
    assert (snapshot.quota, snapshot.remaining) == (107, 2)  # 0 remaining + 2 granted
    assert headroom_calls == [{"workspace_id": workspace.pk, "month": snapshot.month}]
    # Two more activations use exactly the bonus; refreshing the quota again gives nothing more.
    activate_many(workspace, make_contacts(workspace, 3), kind="scenario")
    quota_refresh(workspace=workspace)
    assert (usage(workspace).activated, usage(workspace).quota) == (107, 107)

    seen = surfaces(workspace, owner, staff_client, owner_client)
    note = "kept at 105: already used this month; +2 bonus this month"
    # The floor is called a floor (Free's 100 + 5 kept), the bonus is the 2 granted: 100 + 5 + 2 = 107.
    assert "<span>Kept at 105: already used this month</span><span>+5</span>" in seen["usage"]
    assert '<li data-testid="quota-bonus"><span>Bonus this month</span><span>+2</span></li>' in seen["usage"]
    assert f'107 of 107 activated <span data-field="quota-note">({note})</span>' in seen["billing"]
    assert '<dd data-field="plan-quota">100</dd>' in seen["billing"]  # Free's 100, explained beside it
    breakdown = seen["api"]["quota_breakdown"]
    assert (seen["api"]["quota"], seen["api"]["remaining"]) == (107, 0)
    assert (breakdown["plan_activations"], breakdown["kept_at"], breakdown["floor_added"], breakdown["bonus"],
            breakdown["held_by"], breakdown["note"]) == (100, 105, 5, 2, "floor", note)
    assert f"Quota 107: Free plan 100; {note}" in seen["admin"]


def test_bonus_granted_before_the_plan_ended_is_not_counted_twice(
        owner_client, staff_client, workspace, owner, fake_stripe, deliver, make_contacts, admin_user):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver)
    bonus_grant(workspace=workspace, amount=3, reason="Launch week", granted_by=admin_user)
    assert usage(workspace).quota == 1003
    activate_many(workspace, make_contacts(workspace, 104), kind="campaign")
    deliver(fake_stripe.subscription_cancel_at_period_end(subscription.stripe_subscription_id))
    deliver(fake_stripe.subscription_end(subscription.stripe_subscription_id))
    assert (usage(workspace).quota, usage(workspace).remaining) == (104, 0)

    bonus_grant(workspace=workspace, amount=2, reason="Goodwill", granted_by=admin_user)

    assert (usage(workspace).quota, usage(workspace).remaining) == (106, 2)
    seen = surfaces(workspace, owner, staff_client, owner_client)
    note = "kept at 104: already used this month; +5 bonus this month"
    # Free 100 + 1 held by the floor + 5 of bonuses = 106: the lines add up to the quota.
    assert "Kept at 104: already used this month</span><span>+1</span>" in seen["usage"]
    assert "<span>Bonus this month</span><span>+5</span>" in seen["usage"]
    assert f"104 of 106 activated <span data-field=\"quota-note\">({note})</span>" in seen["billing"]
    assert (seen["api"]["quota_breakdown"]["kept_at"], seen["api"]["quota_breakdown"]["floor_added"],
            seen["api"]["quota_breakdown"]["note"]) == (104, 1, note)
    assert f"Quota 106: Free plan 100; {note}" in seen["admin"]


def test_a_plan_above_the_floor_shows_no_floor(owner_client, workspace, fake_stripe, deliver, make_contacts,
                                               admin_user):
    _end_pro_with(owner_client, workspace, fake_stripe, deliver, make_contacts, 105)
    upgrade_to_pro(owner_client, workspace, fake_stripe, deliver)  # Pro again: 1000 is above 105

    assert usage(workspace).quota == 1000
    page = owner_client.get(f"/w/{workspace.pk}/").content.decode()
    assert "Kept at" not in page
    assert MonthlyUsage.objects.get(workspace=workspace).kept_at == 105  # kept, but it holds nothing now


def _reduce_packs(client, workspace, fake, deliver, small_packs: int, to: int) -> Subscription:
    upgrade_to_pro(client, workspace, fake, deliver, packs=small_packs)
    response = client.post(f"/w/{workspace.pk}/billing/checkout/", {"plan": "pro", "addon_packs": str(to)})
    assert response.status_code == 302
    return Subscription.objects.get(workspace=workspace)


def test_fewer_packs_take_effect_at_the_stripe_renewal_never_below_activated(
        small_pro, owner_client, staff_client, workspace, owner, fake_stripe, deliver, make_contacts):
    subscription = _reduce_packs(owner_client, workspace, fake_stripe, deliver, 3, to=1)
    assert (subscription.addon_packs, subscription.scheduled_addon_packs) == (3, 1)
    end = subscription.current_period_end
    assert subscription.scheduled_for == end
    assert usage(workspace).quota == 130  # paid for until the period's end
    activate_many(workspace, make_contacts(workspace, 125), kind="campaign")

    seen = surfaces(workspace, owner, staff_client, owner_client)
    assert 'data-testid="quota-scheduled"' in seen["usage"]
    assert f"From {end.day} {end:%B}, the end of the period you paid for: Pro + 1 pack" in seen["usage"]
    assert (f'<span data-field="scheduled">(110 from {end:%B} {end.day}, {end.year}, the end of the period '
            "you paid for: Pro + 1 pack)</span>") in seen["billing"]
    scheduled = seen["api"]["quota_breakdown"]["scheduled_change"]
    assert (scheduled["addon_packs"], scheduled["monthly_activations"]) == (1, 110)
    assert datetime.datetime.fromisoformat(scheduled["takes_effect_at"].replace("Z", "+00:00")) == end
    assert "(end of the paid period): Pro + 1 packs" in seen["admin"]

    deliver(*fake_stripe.subscription_renew(subscription.stripe_subscription_id))

    subscription.refresh_from_db()
    assert (subscription.addon_packs, subscription.scheduled_for, subscription.scheduled_addon_packs) == (1, None,
                                                                                                        None)
    assert (usage(workspace).quota, usage(workspace).remaining) == (125, 0)  # 110 < 125: kept at 125 (rule 8)
    last = PlanChange.objects.filter(workspace=workspace).order_by("-id").first()
    assert (last.from_addon_packs, last.to_addon_packs) == (3, 1)
    seen = surfaces(workspace, owner, staff_client, owner_client)
    assert "Kept at 125: already used this month" in seen["usage"]
    assert 'data-testid="quota-scheduled"' not in seen["usage"]
    assert seen["api"]["quota_breakdown"]["scheduled_change"] is None
    assert seen["api"]["quota_breakdown"]["kept_at"] == 125
    assert "kept at 125: already used this month" in seen["billing"]
    assert "kept at 125: already used this month" in seen["admin"]
    assert scheduled_changes_apply_due(now=end + datetime.timedelta(days=1)) == []  # nothing left to apply


def test_the_beat_job_applies_a_due_decrease_when_the_renewal_event_is_late(
        small_pro, owner_client, workspace, fake_stripe, deliver):
    subscription = _reduce_packs(owner_client, workspace, fake_stripe, deliver, 3, to=0)
    end = subscription.scheduled_for

    assert scheduled_changes_apply_due(now=end - datetime.timedelta(seconds=1)) == []
    assert usage(workspace).quota == 130
    assert scheduled_changes_apply_due(now=end) == [workspace.pk]

    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.addon_packs, subscription.scheduled_for) == ("pro", 0, None)
    assert usage(workspace).quota == 100
    # The renewal event arriving afterwards changes nothing more.
    deliver(*fake_stripe.subscription_renew(subscription.stripe_subscription_id))
    assert usage(workspace).quota == 100
    assert PlanChange.objects.filter(workspace=workspace, to_addon_packs=0).count() == 1


def test_more_packs_while_a_decrease_waits_apply_at_once_and_drop_the_wait(
        small_pro, owner_client, workspace, fake_stripe, deliver, headroom_calls, django_capture_on_commit_callbacks):
    subscription = _reduce_packs(owner_client, workspace, fake_stripe, deliver, 3, to=1)
    assert subscription.scheduled_for is not None
    headroom_calls.clear()

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"/w/{workspace.pk}/billing/checkout/", {"plan": "pro", "addon_packs": "5"})

    subscription.refresh_from_db()
    assert (subscription.addon_packs, subscription.scheduled_for, subscription.scheduled_plan) == (5, None, None)
    assert usage(workspace).quota == 150
    assert len(headroom_calls) == 1


def test_an_immediate_cancellation_keeps_the_plan_until_the_paid_period_ends(
        small_pro, owner_client, workspace, fake_stripe, deliver, make_contacts):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=2)
    activate_many(workspace, make_contacts(workspace, 20), kind="campaign")

    deliver(fake_stripe.subscription_end(subscription.stripe_subscription_id))  # cancelled now, paid to the end

    subscription.refresh_from_db()
    end = subscription.current_period_end
    assert (subscription.plan.code, subscription.addon_packs, subscription.status) == ("pro", 2, "canceled")
    assert (subscription.scheduled_plan.code, subscription.scheduled_for) == ("free", end)
    assert usage(workspace).quota == 120
    page = owner_client.get(f"/w/{workspace.pk}/billing/").content.decode()
    assert "the end of the period you paid for: Free)" in page

    assert scheduled_changes_apply_due(now=end) == [workspace.pk]
    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.addon_packs) == ("free", 0)
    assert usage(workspace).quota == 100


def test_a_subscription_ended_unpaid_does_not_wait(small_pro, owner_client, workspace, fake_stripe, deliver):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=2)
    deliver(*fake_stripe.invoice_payment_failed(subscription.stripe_subscription_id))

    deliver(fake_stripe.subscription_end(subscription.stripe_subscription_id))  # retries exhausted

    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.scheduled_for) == ("free", None)
    assert usage(workspace).quota == 100


def test_staff_setting_a_cap_in_the_admin_refreshes_the_quota(workspace, admin_user, rf, make_contacts):
    activate_many(workspace, make_contacts(workspace, 30), kind="scenario")
    model_admin = django_admin.site._registry[Workspace]
    edited = Workspace.objects.get(pk=workspace.pk)
    edited.monthly_cap, edited.activation_reserve = 20, 4

    class ChangedForm:
        changed_data = ["monthly_cap", "activation_reserve"]

    model_admin.save_model(rf.post("/"), edited, ChangedForm(), change=True)

    workspace.refresh_from_db()
    assert (workspace.monthly_cap, workspace.activation_reserve) == (20, 4)
    assert (usage(workspace).quota, usage(workspace).remaining) == (30, 0)  # the cap, never below activated


def test_the_billing_page_says_fewer_packs_wait(small_pro, owner_client, workspace, fake_stripe, deliver):
    upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=3)

    response = owner_client.post(f"/w/{workspace.pk}/billing/checkout/", {"plan": "pro", "addon_packs": "1"},
                                 follow=True)

    end = Subscription.objects.get(workspace=workspace).scheduled_for
    page = response.content.decode()
    assert (f"Add-on packs go down to 1 on {end:%B} {end.day}, the end of the period you paid for; until then you "
            "keep what you have.") in page
    assert '<dd data-field="addon-packs">3 (+30 activations) <span class="muted small"' in page


def test_a_lower_cap_with_reservations_in_flight_holds_them_and_floors_only_what_is_confirmed(
    workspace, make_contacts,
):
    activate_many(workspace, make_contacts(workspace, 30), kind="scenario")
    in_flight = make_contacts(workspace, 2)
    held = activate_many(workspace, in_flight, kind="campaign", ref="campaign:9", confirm=False)
    assert len(held.held) == 2

    spending_controls_update(workspace=workspace, monthly_cap=10)

    # The reservations keep their headroom (activated + reserved <= quota): none is taken away mid-send.
    snapshot = usage(workspace)
    assert (snapshot.quota, snapshot.activated, snapshot.in_flight, snapshot.remaining) == (32, 30, 2, 0)

    activation_confirm(workspace_id=workspace.pk, month=held.month, contact_ids=[in_flight[0].pk],
                       kind="campaign", ref="campaign:9", reason="sent")
    activation_release(workspace_id=workspace.pk, month=held.month, contact_ids=[in_flight[1].pk],
                       ref="campaign:9", reason="failed")
    quota_refresh(workspace=workspace)

    # Settled, the quota is the cap held at what was really charged.
    snapshot = usage(workspace)
    assert (snapshot.quota, snapshot.activated, snapshot.in_flight, snapshot.remaining) == (31, 31, 0, 0)
