"""Money on the billing page: prices, the next charge, invoices, a priced pack change, cancelling at
the end of the paid period and taking it back, all from Stripe (the local stand-in speaks its API)."""

import datetime
import re

import pytest
from django.contrib.messages import get_messages

from billing.activation import usage
from billing.models import Subscription
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

DAY = 24 * 3600


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def billing_url(workspace, query=""):
    return f"/w/{workspace.pk}/billing/{query}"


def upgrade_to_pro(client, workspace, fake, deliver, packs: int = 0) -> Subscription:
    response = client.post(f"/w/{workspace.pk}/billing/checkout/", {"plan": "pro", "addon_packs": str(packs)})
    deliver(*fake.checkout_complete(response.url.rsplit("/", 1)[-1]))
    return Subscription.objects.get(workspace=workspace)


def test_the_page_shows_prices_the_next_charge_and_invoices(owner_client, workspace, fake_stripe, deliver):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=1)

    page = owner_client.get(billing_url(workspace)).content.decode()

    assert '<span class="muted small" data-field="plan-price">$49 a month</span>' in page
    assert "$29 a month each, 1,000 activations" in page
    assert '<dd data-field="monthly-total">$78' in page
    # Stripe's preview of the renewal: amount and the day it is charged.
    end = subscription.current_period_end
    assert '<span data-field="next-charge-amount">$78</span>' in page
    assert f'>{end.day} {end:%B %Y}</time>' in page
    assert "1 × Pro plan (at $49.00 / month)" in page and "1 × Add-on pack (at $29.00 / month)" in page
    # The invoice Stripe made at checkout, with its hosted page and PDF.
    [invoice] = fake_stripe.invoices.values()
    assert f'href="{invoice["hosted_invoice_url"]}"' in page and f'href="{invoice["invoice_pdf"]}"' in page
    assert '<span class="badge ok">Paid</span>' in page
    # Both dates explained: the period paid for and the quota month.
    assert "The period you pay for" in page and "The quota month" in page
    assert [c["path"] for c in fake_stripe.requests if c["path"].startswith("/v1/invoices")] == [
        "/v1/invoices/create_preview", "/v1/invoices"]


def test_more_packs_are_priced_before_anything_changes_then_charged_as_shown(owner_client, workspace, fake_stripe,
                                                                           deliver):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=1)
    remote = fake_stripe.subscriptions[subscription.stripe_subscription_id]
    for item in remote["items"]["data"]:  # half-way through the paid period: half the price
        item["current_period_start"] -= 15 * DAY
        item["current_period_end"] -= 15 * DAY

    page = owner_client.get(billing_url(workspace, "?packs=3")).content.decode()

    preview = re.search(r'data-field="charged-now">\$([0-9.]+)<', page)
    assert preview is not None and preview.group(1) == "29", page  # 2 packs x $29 x half a period
    assert "This month's quota rises at once to 4,000." in page
    assert '<strong data-field="preview-next-charge">$136</strong>' in page  # 49 + 3 x 29
    assert "Unused time on 1 × Add-on pack</span><span class=\"num\">−$14.50" in page
    assert Subscription.objects.get(pk=subscription.pk).addon_packs == 1  # a preview changes nothing
    assert not fake_stripe.calls("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")

    owner_client.post(f"/w/{workspace.pk}/billing/checkout/", {"plan": "pro", "addon_packs": "3"})

    assert (Subscription.objects.get(pk=subscription.pk).addon_packs, usage(workspace).quota) == (3, 4000)
    charged = [i for i in fake_stripe.invoices.values() if i["billing_reason"] == "subscription_update"]
    assert [i["amount_due"] for i in charged] == [2900]  # what the preview said
    page = owner_client.get(billing_url(workspace)).content.decode()
    assert "Pack change" in page


def test_fewer_packs_say_when_they_take_effect_and_that_nothing_is_charged(owner_client, workspace, fake_stripe,
                                                                          deliver):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=2)

    page = owner_client.get(billing_url(workspace, "?packs=0")).content.decode()

    end = subscription.current_period_end
    assert "Nothing is charged or refunded now. You keep 2 packs until" in page
    assert f"{end.day} {end:%B}, the end of the period you paid for" in page
    assert '<strong data-field="preview-next-charge">$49</strong>' in page


def test_a_bad_pack_count_is_refused_in_words(owner_client, workspace, fake_stripe, deliver):
    upgrade_to_pro(owner_client, workspace, fake_stripe, deliver)
    page = owner_client.get(billing_url(workspace, "?packs=abc")).content.decode()
    assert "Add-on packs must be a whole number from 0 to 100." in page


def test_cancel_at_period_end_then_undo_in_place(owner_client, workspace, fake_stripe, deliver):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver)
    end = subscription.current_period_end

    response = owner_client.post(f"/w/{workspace.pk}/billing/cancel-at-period-end/")

    assert response.status_code == 302
    assert Subscription.objects.get(pk=subscription.pk).cancel_at_period_end is True
    assert fake_stripe.subscriptions[subscription.stripe_subscription_id]["cancel_at_period_end"] is True
    page = owner_client.get(billing_url(workspace)).content.decode()
    # Not a green "Active": it ends, and says when.
    assert f'<span class="badge warning" data-field="status-badge">Ends on {end.day} {end:%B}</span>' in page
    assert 'data-testid="next-charge"' not in page  # nothing more is charged
    assert "Keep Pro: undo the cancellation" in page
    usage_page = owner_client.get(f"/w/{workspace.pk}/").content.decode()
    assert f'data-testid="plan-badge">Ends on {end.day} {end:%B}</span>' in usage_page

    owner_client.post(f"/w/{workspace.pk}/billing/cancel-at-period-end/", {"undo": "1"})

    assert Subscription.objects.get(pk=subscription.pk).cancel_at_period_end is False
    assert fake_stripe.subscriptions[subscription.stripe_subscription_id]["cancel_at_period_end"] is False
    page = owner_client.get(billing_url(workspace)).content.decode()
    assert '<span class="badge ok" data-field="status-badge">Active</span>' in page


def test_a_canceled_plan_is_not_green(owner_client, workspace, fake_stripe, deliver):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver)
    Subscription.objects.filter(pk=subscription.pk).update(status=Subscription.Status.CANCELED)
    page = owner_client.get(billing_url(workspace)).content.decode()
    assert '<span class="badge " data-field="status-badge">Canceled</span>' in page


@pytest.mark.parametrize("role", ["admin", "member"])
def test_money_and_cancellation_are_for_owners(client, workspace, owner, fake_stripe, deliver, role):
    client.force_login(owner)
    upgrade_to_pro(client, workspace, fake_stripe, deliver)
    other = MembershipFactory(workspace=workspace, role=role, user=UserFactory(email=f"{role}@example.test")).user
    client.force_login(other)
    before = len(fake_stripe.requests)

    page = client.get(billing_url(workspace, "?packs=4")).content.decode()
    refused = client.post(f"/w/{workspace.pk}/billing/cancel-at-period-end/")

    assert "Only the workspace's owners can change the plan and see its invoices." in page
    assert 'data-testid="invoices"' not in page and 'data-testid="pack-preview"' not in page
    assert refused.status_code == 403
    assert len(fake_stripe.requests) == before  # nothing read from or sent to Stripe
    assert Subscription.objects.get(workspace=workspace).cancel_at_period_end is False


def test_stripe_down_leaves_the_page_up_with_a_sentence(owner_client, workspace, fake_stripe, deliver):
    upgrade_to_pro(owner_client, workspace, fake_stripe, deliver)
    fake_stripe.fail_next("POST", "/v1/invoices/create_preview")
    fake_stripe.fail_next("GET", "/v1/invoices")

    response = owner_client.get(billing_url(workspace))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Stripe could not be reached just now, so the next charge cannot be shown" in page
    assert "so your invoices cannot be shown" in page


def test_cancelling_says_what_happens(owner_client, workspace, fake_stripe, deliver):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver)
    response = owner_client.post(f"/w/{workspace.pk}/billing/cancel-at-period-end/")
    end = subscription.current_period_end.astimezone(datetime.UTC)
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message == (f"Your Pro plan ends on {end:%B} {end.day}, the end of the period you paid for; you keep it "
                       "until then, and nothing more is charged.")
