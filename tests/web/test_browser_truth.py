"""In Chromium: the contradictions a customer saw are gone, at 1366×900 and 390×844.

Same rules as tests/web/test_browser.py (Debian's Chromium, never `playwright install`; no skip).
Screenshots of every page touched here at both widths go to var/screenshots/ (name-1366.png,
name-390.png).
"""

import datetime
import re

import pytest
from django.utils import timezone

from accounts.models import Membership
from automations.models import PausedAction
from automations.services.campaigns import campaign_create
from automations.services.scenarios import scenario_create
from billing.activation import activate_many
from billing.fakestripe.server import FakeStripeServer
from billing.models import StripeEvent, Subscription
from billing.services import quota_refresh
from tests.factories import ContactFactory, MembershipFactory, UserFactory, WorkspaceFactory, pro_subscription
from tests.web import test_browser as base

# The browser, its set-up and the helpers are the main browser tests' own.
_async_unsafe_allowed, browser = base._async_unsafe_allowed, base.browser
shot, sign_in = base.shot, base.sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = {"1366": {"width": 1366, "height": 900}, "390": {"width": 390, "height": 844}}
PASSWORD = "correct-horse-battery"


def open_page(browser, size: str):
    context = browser.new_context(viewport=SIZES[size], is_mobile=size == "390", locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    return context, page, violations


def at_both_sizes(browser, live_server, email, check):
    """Sign in and run `check(page, size)` at each width; no CSP violation, no sideways scroll."""
    for size in SIZES:
        context, page, violations = open_page(browser, size)
        try:
            sign_in(page, live_server, email)
            check(page, size)
            assert violations == [], violations
        finally:
            context.close()


def no_sideways_scroll(page, size):
    """Nothing in the page's content reaches past the screen's right edge (the navigation bar's own
    phone layout is checked with the navigation)."""
    wide = page.evaluate("""() => [...document.querySelectorAll('main *')]
        .filter(e => !e.closest('.table-wrap, svg') && e.getBoundingClientRect().right > window.innerWidth + 1)
        .slice(0, 5).map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}px`)""")
    assert wide == [], f"content past the right edge at {size}px: {wide}"


@pytest.fixture
def coffee():
    """Corner Coffee as the issue found it: Free, 92 of 100 used, a reserve of 8 for conversations, and
    a loyalty broadcast whose 12 messages were paused with their 24-hour window closing tomorrow."""
    owner = UserFactory(email="dana@coffee.test", full_name="Dana Demo")
    workspace = WorkspaceFactory(name="Corner Coffee", activation_reserve=8)
    MembershipFactory(user=owner, workspace=workspace, role=Membership.Role.OWNER)
    contacts = [ContactFactory(workspace=workspace, username=f"guest{i}", name=f"Guest {i}") for i in range(104)]
    hours = scenario_create(workspace=workspace, name="Opening hours", trigger_type="dm_keyword",
                            trigger_config={"keywords": ["hours"]},
                            steps=[{"type": "send_message", "text": "7am to 6pm"}])
    activate_many(workspace, contacts[:92], kind="scenario", ref=hours.ref)
    loyalty = campaign_create(workspace=workspace, name="Loyalty card", text="Your 10th coffee is on us")
    for contact in contacts[92:]:
        PausedAction.objects.create(
            workspace=workspace, contact=contact, kind="campaign", automation_ref=loyalty.ref,
            action_type="campaign_message", dedupe_key=f"{loyalty.ref}:contact:{contact.pk}",
            expires_at=timezone.now() + datetime.timedelta(hours=20), payload={"needs_window": True},
        )
    return workspace, owner, contacts[0]


def test_the_usage_page_says_what_the_reserve_and_the_pace_mean(browser, live_server, coffee):
    workspace, owner, _ = coffee

    def check(page, size):
        page.goto(f"{live_server.url}/w/{workspace.pk}/")
        assert page.get_by_test_id("remaining").inner_text() == "8"
        assert "8 kept for people who write to you: campaigns may use 0" in page.get_by_test_id(
            "reserve-note").inner_text()
        words = page.get_by_test_id("resume-words").inner_text()
        assert "The 12 paused campaign messages do not resume" in words
        assert "resuming" not in words and "There is room" not in words
        assert "they expire then, not sent, unless there is room sooner" in words
        chip = page.get_by_test_id("paused-chip").inner_text()
        assert chip.startswith("Loyalty card: 12 (12 expire from")
        # 92 % used: amber, and the badge says the limit's day at this pace, never "On track".
        badge = page.get_by_test_id("level-badge").inner_text()
        assert badge != "On track" and ("at this pace" in badge or badge == "Over 80%")
        # The activated list names the scenario, not "scenario:<id>".
        if size == "1366":
            assert page.get_by_test_id("automation-name").first.inner_text() == "Opening hours"
        # The cumulative chart against the quota, with its sentence.
        assert "past the quota of 100" in page.get_by_test_id("cumulative-summary").inner_text() or \
            "within the quota" in page.get_by_test_id("cumulative-summary").inner_text()
        assert page.locator("svg .quota-line").count() == 1
        no_sideways_scroll(page, size)
        page.evaluate("document.fonts.ready")
        shot(page, f"usage-reserve-{size}")

        page.goto(f"{live_server.url}/w/{workspace.pk}/campaigns/")
        fates = page.get_by_test_id("paused-fate").all_inner_texts()
        assert len(fates) == 12 and all(f.startswith("Expires") and "not sent after that" in f for f in fates)
        assert set(page.get_by_test_id("paused-automation").all_inner_texts()) == {"Loyalty card"}
        shot(page, f"campaigns-paused-{size}")

    at_both_sizes(browser, live_server, owner.email, check)


def test_the_contact_page_names_its_automation(browser, live_server, coffee):
    workspace, owner, contact = coffee

    def check(page, size):
        page.goto(f"{live_server.url}/w/{workspace.pk}/contacts/{contact.pk}/")
        assert page.get_by_test_id("activation-automation").inner_text() == "Opening hours"
        assert "scenario:" not in page.locator("main").inner_text()
        no_sideways_scroll(page, size)
        shot(page, f"contact-{size}")

    at_both_sizes(browser, live_server, owner.email, check)


@pytest.fixture
def stripe(settings, live_server):
    server = FakeStripeServer().start()
    settings.SITE_URL = live_server.url  # where billing sends the customer back
    settings.STRIPE_API_BASE = server.base_url
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    yield server.fake
    server.stop()


@pytest.fixture
def sunny(stripe):
    """Sunny Skincare on Pro with one pack, subscribed ten days ago (Stripe knows it, with its invoice)."""
    owner = UserFactory(email="dana@sunny.test", full_name="Dana Demo")
    workspace = WorkspaceFactory(name="Sunny Skincare")
    MembershipFactory(user=owner, workspace=workspace, role=Membership.Role.OWNER)
    now = timezone.now()
    start, end = now - datetime.timedelta(days=10), now + datetime.timedelta(days=20)
    stripe.subscription_adopt(subscription_id="sub_sunny", customer_id="cus_sunny",
                              items=[("price_pro_local", 1), ("price_addon_local", 1)],
                              period_start=int(start.timestamp()), period_end=int(end.timestamp()),
                              metadata={"workspace_id": str(workspace.pk)})
    subscription = pro_subscription(workspace, addon_packs=1)
    Subscription.objects.filter(pk=subscription.pk).update(
        stripe_customer_id="cus_sunny", stripe_subscription_id="sub_sunny", current_period_start=start,
        current_period_end=end)
    quota_refresh(workspace=workspace)
    return workspace, owner, end


def test_the_billing_page_shows_money_and_prices_a_change_before_it(browser, live_server, sunny, stripe):
    workspace, owner, end = sunny
    sizes = ["390", "1366"]  # the phone reads; then the desktop also changes packs and cancels

    def check(page, size):
        page.goto(f"{live_server.url}/w/{workspace.pk}/billing/")
        assert page.locator('[data-field="plan-price"]').inner_text() == "$49 a month"
        assert page.locator('[data-field="next-charge-amount"]').inner_text() == "$78"
        assert page.locator('[data-field="next-charge-date"]').inner_text() == f"{end.day} {end:%B %Y}"
        assert page.get_by_role("link", name=re.compile("View invoice FAKE-")).count() == 1
        assert page.get_by_role("link", name=re.compile("PDF of invoice FAKE-")).count() == 1
        assert "The quota month" in page.get_by_test_id("two-dates").inner_text()
        assert page.locator('[data-field="status-badge"]').inner_text() == "Active"
        no_sideways_scroll(page, size)
        shot(page, f"billing-{size}")

        page.get_by_label("Add-on packs").fill("3")
        page.get_by_role("button", name="Preview the price").click()
        preview = page.get_by_test_id("pack-preview")
        charged = page.locator('[data-field="charged-now"]').inner_text()
        assert charged.startswith("$") and "This month's quota rises at once to 4,000." in preview.inner_text()
        assert Subscription.objects.get(workspace=workspace).addon_packs == 1  # nothing changed yet
        no_sideways_scroll(page, size)
        shot(page, f"billing-preview-{size}")
        if size == "1366":
            page.get_by_role("button", name=f"Confirm and pay {charged} now").click()
            page.wait_for_url(f"**/w/{workspace.pk}/billing/")
            assert Subscription.objects.get(workspace=workspace).addon_packs == 3
            assert "Pack change" in page.get_by_test_id("invoices").inner_text()
            paid = [i["amount_due"] for i in stripe.invoices.values() if i["billing_reason"] == "subscription_update"]
            assert [f"${cents / 100:,.2f}".removesuffix(".00") for cents in paid] == [charged]

            page.get_by_role("button", name="Cancel at the end of the paid period").click()
            page.wait_for_url(f"**/w/{workspace.pk}/billing/")
            badge = page.locator('[data-field="status-badge"]')
            assert badge.inner_text() == f"Ends on {end.day} {end:%B}"
            assert "warning" in badge.get_attribute("class")
            assert page.get_by_test_id("next-charge").count() == 0
            shot(page, "billing-cancelled-1366")
            page.goto(f"{live_server.url}/w/{workspace.pk}/")
            assert page.get_by_test_id("plan-badge").inner_text() == f"Ends on {end.day} {end:%B}"
            page.goto(f"{live_server.url}/w/{workspace.pk}/billing/")
            page.get_by_role("button", name="Keep Pro: undo the cancellation").click()
            page.wait_for_url(f"**/w/{workspace.pk}/billing/")
            assert page.locator('[data-field="status-badge"]').inner_text() == "Active"

    for size in sizes:
        context, page, violations = open_page(browser, size)
        try:
            sign_in(page, live_server, owner.email)
            check(page, size)
            assert violations == [], violations
        finally:
            context.close()


def test_staff_read_stripe_events_with_their_workspace(browser, live_server, sunny):
    workspace, _, _ = sunny
    UserFactory(email="staff@inro.test", is_staff=True, is_superuser=True)
    StripeEvent.objects.create(
        event_id="evt_demo_1", type="invoice.paid", created=int(timezone.now().timestamp()), status="processed",
        payload={"id": "evt_demo_1", "type": "invoice.paid",
                 "data": {"object": {"object": "invoice", "id": "in_1", "customer": "cus_sunny"}}},
    )
    for size in SIZES:
        context, page, _ = open_page(browser, size)
        try:
            page.goto(f"{live_server.url}/admin/login/")
            page.get_by_label("Email").fill("staff@inro.test")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.goto(f"{live_server.url}/admin/billing/stripeevent/")
            assert page.get_by_role("link", name="Sunny Skincare").count() == 1
            assert " UTC" in page.locator("td.field-created_at_label").first.inner_text()
            shot(page, f"admin-stripe-events-{size}")
        finally:
            context.close()
