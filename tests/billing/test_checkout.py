"""Upgrades through Stripe Checkout, add-on changes, the portal, and who may do them."""

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client

from accounts.models import Membership
from billing.activation import usage
from billing.checkout import checkout_start
from billing.models import CheckoutSession, PlanChange, Subscription
from billing.months import month_of
from billing.stripe_client import BillingError
from inro.errors import ApplicationError
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def _checkout(client, workspace, packs="0", plan="pro"):
    return client.post(f"/w/{workspace.pk}/billing/checkout/", {"plan": plan, "addon_packs": packs})


def upgrade_to_pro(client, workspace, fake, deliver, packs: int = 0) -> Subscription:
    """The whole upgrade as a customer does it: form, Stripe Checkout paid, Stripe's webhooks."""
    response = _checkout(client, workspace, str(packs))
    session_id = response.url.rsplit("/", 1)[-1]
    deliver(*fake.checkout_complete(session_id))
    return Subscription.objects.get(workspace=workspace)


def test_upgrade_end_to_end_raises_quota_and_resumes_paused_actions(
        owner_client, workspace, owner, fake_stripe, deliver, headroom_calls):
    assert usage(workspace).quota == 100

    response = _checkout(owner_client, workspace, "2")

    row = CheckoutSession.objects.get(workspace=workspace)
    assert (row.status, row.kind, row.addon_packs, row.created_by) == ("open", "checkout", 2, owner)
    assert response.status_code == 302
    assert response.url == row.url == f"https://fake-stripe.invalid/checkout/pay/{row.stripe_session_id}"
    [call] = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert call["idempotency_key"] == f"checkout:{row.pk}"
    assert call["stripe_version"] == "2025-11-17.clover"  # pinned, whatever the account's default
    params = call["params"]
    assert params["mode"] == "subscription"
    assert params["client_reference_id"] == str(workspace.pk)
    assert params["metadata"] == {"workspace_id": str(workspace.pk), "checkout_id": str(row.pk), "addon_packs": "2"}
    assert params["subscription_data"]["metadata"]["workspace_id"] == str(workspace.pk)
    assert params["line_items"] == [{"price": "price_pro_local", "quantity": "1"},
                                    {"price": "price_addon_local", "quantity": "2"}]
    assert params["customer_email"] == owner.email
    assert params["success_url"] == (f"http://testserver/w/{workspace.pk}/billing/success/"
                                     "?session_id={CHECKOUT_SESSION_ID}")
    assert usage(workspace).quota == 100  # nothing changes before payment
    assert headroom_calls == []

    completed, created, paid = fake_stripe.checkout_complete(row.stripe_session_id)
    deliver(completed)

    assert usage(workspace).quota == 3000  # 1,000 + 2 packs x 1,000, at once (rule 8)
    assert headroom_calls == [{"workspace_id": workspace.pk, "month": month_of()}]

    deliver(created, paid)

    subscription = Subscription.objects.get(workspace=workspace)
    assert (subscription.plan.code, subscription.addon_packs, subscription.status) == ("pro", 2, "active")
    assert subscription.stripe_subscription_id == created["data"]["object"]["id"]
    assert subscription.stripe_customer_id == created["data"]["object"]["customer"]
    item = created["data"]["object"]["items"]["data"][0]
    assert int(subscription.current_period_end.timestamp()) == item["current_period_end"]
    assert usage(workspace).quota == 3000
    assert len(headroom_calls) == 1
    change = PlanChange.objects.get(workspace=workspace)
    assert (change.from_plan.code, change.from_addon_packs, change.to_plan.code, change.to_addon_packs) == (
        "free", 0, "pro", 2)
    assert change.source_event_id == completed["id"]
    row.refresh_from_db()
    assert row.status == "completed"

    page = owner_client.get(f"/w/{workspace.pk}/billing/success/?session_id={row.stripe_session_id}")
    assert page.status_code == 200
    assert "Your quota this month is now 3,000 activations" in page.content.decode()

    overview = owner_client.get(f"/w/{workspace.pk}/billing/").content.decode()
    assert ('<dd data-field="plan">Pro <span class="muted small" data-field="plan-price">$49 a month</span></dd>'
            in overview)
    assert ('<dd data-field="addon-packs">2 (+2,000 activations) <span class="muted small" data-field="pack-price">'
            '$29 a month each, 1,000 activations</span></dd>') in overview
    assert "Manage payment method on Stripe" in overview


def test_return_page_applies_a_paid_session_before_the_webhook_and_the_webhook_changes_nothing(
        owner_client, workspace, fake_stripe, deliver, headroom_calls, django_capture_on_commit_callbacks):
    _checkout(owner_client, workspace, "1")
    row = CheckoutSession.objects.get(workspace=workspace)
    waiting = owner_client.get(f"/w/{workspace.pk}/billing/success/?session_id={row.stripe_session_id}")
    assert "Processing your payment" in waiting.content.decode()
    assert usage(workspace).quota == 100
    completed, created, paid = fake_stripe.checkout_complete(row.stripe_session_id)

    with django_capture_on_commit_callbacks(execute=True):
        page = owner_client.get(f"/w/{workspace.pk}/billing/success/?session_id={row.stripe_session_id}")

    assert "Your quota this month is now 2,000 activations" in page.content.decode()
    assert usage(workspace).quota == 2000
    assert len(headroom_calls) == 1
    deliver(completed, created, paid)
    assert usage(workspace).quota == 2000
    assert len(headroom_calls) == 1
    assert PlanChange.objects.filter(workspace=workspace).count() == 1
    assert PlanChange.objects.get(workspace=workspace).changed_by is not None


def test_return_page_of_another_workspace_is_404(owner_client, workspace, owner, fake_stripe):
    _checkout(owner_client, workspace, "0")
    row = CheckoutSession.objects.get(workspace=workspace)
    other = MembershipFactory(user=owner).workspace
    response = owner_client.get(f"/w/{other.pk}/billing/success/?session_id={row.stripe_session_id}")
    assert response.status_code == 404


def test_cancel_page_changes_nothing(owner_client, workspace, fake_stripe):
    _checkout(owner_client, workspace, "3")
    response = owner_client.get(f"/w/{workspace.pk}/billing/cancel/")
    assert response.status_code == 200
    assert "Nothing was charged" in response.content.decode()
    assert not Subscription.objects.filter(workspace=workspace).exists()
    assert usage(workspace).quota == 100
    assert CheckoutSession.objects.get(workspace=workspace).status == "open"


def test_addon_quantity_change_mid_month_raises_quota_at_once_with_proration(
        owner_client, workspace, fake_stripe, deliver, headroom_calls, django_capture_on_commit_callbacks):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=1)
    assert usage(workspace).quota == 2000
    headroom_calls.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = _checkout(owner_client, workspace, "3")

    assert response.status_code == 302
    assert response.url == f"http://testserver/w/{workspace.pk}/billing/"
    assert "Add-on packs changed to 3." in _messages(response)
    assert fake_stripe.calls("POST", "/v1/checkout/sessions").__len__() == 1  # no second subscription
    [update] = fake_stripe.calls("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    row = CheckoutSession.objects.get(workspace=workspace, kind="quantity")
    assert update["idempotency_key"] == f"quantity:{row.pk}"
    addon_item = fake_stripe.subscriptions[subscription.stripe_subscription_id]["items"]["data"][1]
    assert update["params"] == {"items": [{"id": addon_item["id"], "quantity": "3"}],
                                "proration_behavior": "always_invoice"}
    assert usage(workspace).quota == 4000
    assert headroom_calls == [{"workspace_id": workspace.pk, "month": month_of()}]
    subscription.refresh_from_db()
    assert subscription.addon_packs == 3

    # Stripe's own event about the change arrives afterwards: it says the same, nothing moves.
    deliver(fake_stripe.subscription_updated_event(subscription.stripe_subscription_id))
    assert usage(workspace).quota == 4000
    assert len(headroom_calls) == 1
    history = list(PlanChange.objects.filter(workspace=workspace).order_by("id").values_list(
        "from_addon_packs", "to_addon_packs"))
    assert history == [(0, 1), (1, 3)]


def test_fewer_packs_wait_for_the_end_of_the_paid_period_and_are_not_prorated(
        owner_client, workspace, fake_stripe, deliver):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=3)
    assert usage(workspace).quota == 4000

    _checkout(owner_client, workspace, "1")

    [update] = fake_stripe.calls("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    assert update["params"]["proration_behavior"] == "none"
    subscription.refresh_from_db()
    # The three packs are paid for until the period's end: they stay in effect, one pack waits.
    assert (subscription.addon_packs, subscription.scheduled_addon_packs) == (3, 1)
    assert subscription.scheduled_for == subscription.current_period_end
    assert usage(workspace).quota == 4000


def test_first_pack_on_a_pro_subscription_adds_the_addon_item(owner_client, workspace, fake_stripe, deliver):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=0)
    assert usage(workspace).quota == 1000

    _checkout(owner_client, workspace, "2")

    [update] = fake_stripe.calls("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    assert update["params"]["items"] == [{"price": "price_addon_local", "quantity": "2"}]
    assert usage(workspace).quota == 3000


def test_stripe_error_on_session_creation_shows_a_message_and_leaves_nothing_half_created(
        owner_client, workspace, fake_stripe):
    fake_stripe.fail_next("POST", "/v1/checkout/sessions", status=500)

    response = _checkout(owner_client, workspace, "2")

    assert response.status_code == 302
    assert response.url == f"/w/{workspace.pk}/billing/"
    assert _messages(response) == [
        "Our payment provider could not process this request. Nothing was charged; please try again later "
        "or contact support if it keeps happening."
    ]
    row = CheckoutSession.objects.get(workspace=workspace)
    assert (row.status, row.stripe_session_id, row.url) == ("failed", "", "")
    assert "Nothing was charged" in row.error
    assert fake_stripe.sessions == {}
    assert not Subscription.objects.filter(workspace=workspace).exists()
    assert usage(workspace).quota == 100


def test_stripe_unreachable_says_so(owner_client, workspace, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens on the discard port
    settings.STRIPE_MAX_NETWORK_RETRIES = 0

    response = _checkout(owner_client, workspace, "0")

    assert _messages(response) == [
        "We could not reach our payment provider. Nothing was charged; please try again in a minute."
    ]
    assert CheckoutSession.objects.get(workspace=workspace).status == "failed"


def test_service_raises_billing_error_with_503_for_the_api(workspace, owner, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    with pytest.raises(BillingError) as raised:
        checkout_start(workspace=workspace, user=owner, plan_code="pro", addon_packs=1)
    assert (raised.value.status, raised.value.code) == (503, "billing_unavailable")
    assert isinstance(raised.value, ApplicationError)


@pytest.mark.parametrize("role", [Membership.Role.MEMBER])
def test_member_gets_403_on_checkout_and_portal_and_nothing_is_created(client, workspace, fake_stripe, role):
    member = MembershipFactory(workspace=workspace, role=role).user
    client.force_login(member)

    assert _checkout(client, workspace, "1").status_code == 403
    assert client.post(f"/w/{workspace.pk}/billing/portal/").status_code == 403
    with pytest.raises(ApplicationError) as raised:
        checkout_start(workspace=workspace, user=member, plan_code="pro", addon_packs=1)
    assert raised.value.status == 403
    assert CheckoutSession.objects.count() == 0
    assert fake_stripe.requests == []
    assert client.get(f"/w/{workspace.pk}/billing/").status_code == 200  # members may look


def test_only_owners_upgrade_an_admin_gets_403(client, workspace, fake_stripe):
    # The role matrix (docs/roles.md): admins run automations, owners manage billing.
    admin = MembershipFactory(workspace=workspace, role=Membership.Role.ADMIN).user
    client.force_login(admin)
    assert _checkout(client, workspace, "0").status_code == 403
    assert CheckoutSession.objects.count() == 0 and fake_stripe.requests == []


def test_outsider_gets_404_everywhere(client, workspace, fake_stripe):
    client.force_login(UserFactory())
    other_workspace = WorkspaceFactory()
    for target in (workspace, other_workspace):
        assert _checkout(client, target, "1").status_code == 404
        assert client.post(f"/w/{target.pk}/billing/portal/").status_code == 404
        assert client.get(f"/w/{target.pk}/billing/").status_code == 404
        assert client.get(f"/w/{target.pk}/billing/cancel/").status_code == 404
    assert CheckoutSession.objects.count() == 0
    assert fake_stripe.requests == []


def test_checkout_needs_csrf(workspace, owner, fake_stripe):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert _checkout(client, workspace, "1").status_code == 403
    assert CheckoutSession.objects.count() == 0


@pytest.mark.parametrize(("plan", "packs", "message"), [
    ("pro", "101", "Add-on packs must be a whole number from 0 to 100."),
    ("pro", "-1", "Add-on packs must be a whole number from 0 to 100."),
    ("pro", "two", "Add-on packs must be a whole number from 0 to 100."),
    ("free", "0", "This plan cannot be bought online."),
    ("enterprise", "0", "This plan cannot be bought online."),
])
def test_bad_checkout_input_gets_a_message_and_changes_nothing(owner_client, workspace, fake_stripe, plan, packs,
                                                               message):
    response = _checkout(owner_client, workspace, packs, plan=plan)
    assert response.status_code == 302
    assert _messages(response) == [message]
    assert CheckoutSession.objects.count() == 0
    assert fake_stripe.requests == []


def test_second_click_reuses_the_open_checkout(owner_client, workspace, fake_stripe):
    first = _checkout(owner_client, workspace, "1")
    second = _checkout(owner_client, workspace, "1")
    assert first.url == second.url
    assert CheckoutSession.objects.count() == 1
    assert len(fake_stripe.calls("POST", "/v1/checkout/sessions")) == 1


def test_portal_opens_a_stripe_billing_portal_session(owner_client, workspace, fake_stripe, deliver):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver)

    response = owner_client.post(f"/w/{workspace.pk}/billing/portal/")

    [portal] = fake_stripe.portal_sessions.values()
    assert response.status_code == 302
    assert response.url == portal["url"]
    assert portal["customer"] == subscription.stripe_customer_id
    assert portal["return_url"] == f"http://testserver/w/{workspace.pk}/billing/"


def test_portal_without_a_payment_account_says_upgrade_first(owner_client, workspace, fake_stripe):
    response = owner_client.post(f"/w/{workspace.pk}/billing/portal/")
    assert _messages(response) == ["There is no payment account yet: upgrade to Pro first."]
    assert fake_stripe.requests == []


@pytest.mark.django_db(transaction=True)
def test_local_row_is_committed_before_stripe_is_called_and_no_transaction_spans_the_call(workspace, owner,
                                                                                          fake_stripe):

    seen_by_stripe_time: list[tuple] = []

    def look_at_the_database(method, path, params):
        # Runs in the fake's server thread, on its own connection: it sees only committed rows.
        try:
            seen_by_stripe_time.append(tuple(CheckoutSession.objects.values_list("status", "stripe_session_id")))
        finally:
            connection.close()

    fake_stripe.before_request = look_at_the_database

    checkout_start(workspace=workspace, user=owner, plan_code="pro", addon_packs=1)

    assert seen_by_stripe_time == [(("pending", ""),)]
    assert CheckoutSession.objects.get().status == "open"


def test_stripe_error_on_quantity_change_keeps_packs_and_says_so(owner_client, workspace, fake_stripe, deliver):
    subscription = upgrade_to_pro(owner_client, workspace, fake_stripe, deliver, packs=1)
    fake_stripe.fail_next("POST", "/v1/subscriptions/", status=402, type_="card_error", message="Card declined.")

    response = _checkout(owner_client, workspace, "4")

    assert _messages(response) == [
        "Our payment provider could not process this request. Nothing was charged; please try again later "
        "or contact support if it keeps happening."
    ]
    subscription.refresh_from_db()
    assert subscription.addon_packs == 1
    assert usage(workspace).quota == 2000
    assert CheckoutSession.objects.get(workspace=workspace, kind="quantity").status == "failed"
    remote = fake_stripe.subscriptions[subscription.stripe_subscription_id]
    assert [item["quantity"] for item in remote["items"]["data"]] == [1, 1]
