"""End-to-end: Debian's Chromium driven by Playwright against the live server.

Never `playwright install`: the browser is the system's /usr/bin/chromium (CI installs it with apt).
A missing browser fails these tests loudly instead of skipping them. Each run saves screenshots of
the main pages under var/screenshots/ for review.
"""

import csv
import datetime
import os
import random
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import sync_playwright

from accounts.models import Membership
from automations.models import Campaign, PausedAction, Scenario, ScenarioRun
from automations.services.campaign_fanout import campaign_send
from automations.services.campaigns import campaign_create
from billing import stripe_client
from billing.activation import activate_many, history_import, usage
from billing.models import ActivationRecord, MonthlyUsage
from billing.months import month_of, month_start, previous_month
from contacts.models import Contact, Folder, FolderMembership, Message, Tag
from tests.factories import ContactFactory, MembershipFactory, UserFactory, WorkspaceFactory

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
PASSWORD = "correct-horse-battery"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIRST = ["ava", "leo", "mia", "noah", "zoe", "liam", "ivy", "omar", "nina", "theo", "sara", "yuki", "ines", "hugo"]
LAST = ["sun", "moon", "rain", "stone", "field", "brook", "vale", "reed"]


@pytest.fixture(scope="module", autouse=True)
def _async_unsafe_allowed():
    """Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls from a
    thread with a running loop unless told it is safe (it is: the loop only drives the browser).
    Set for this module only: the deploy check elsewhere in the suite must not see it."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser(_async_unsafe_allowed):
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install it with `apt-get install -y chromium` "
                    "(.ci/run does). Browser tests never skip.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    # The site's Content-Security-Policy allows no inline style or script: any violation is a bug.
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    yield page
    context.close()
    assert violations == [], violations


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def brand():
    """A Free workspace (quota 100) with a realistic spread of contacts, activations and history."""
    rng = random.Random(5)  # test data
    owner = UserFactory(email="dana@sunny.test", full_name="Dana Demo")
    workspace = WorkspaceFactory(name="Sunny Skincare")
    MembershipFactory(user=owner, workspace=workspace, role=Membership.Role.OWNER)
    MembershipFactory(user=owner, workspace=WorkspaceFactory(name="Corner Coffee"), role=Membership.Role.ADMIN)
    sources = [choice for choice, _ in Contact.Source.choices]
    contacts = []
    for index in range(160):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        contacts.append(ContactFactory(
            workspace=workspace, username=f"{first}.{last}{index}", name=f"{first.title()} {last.title()}",
            source=rng.choice(sources),
        ))
    folder = Folder.objects.create(workspace=workspace, name="VIP")
    FolderMembership.objects.bulk_create([FolderMembership(folder=folder, contact=c) for c in contacts[:12]])
    tag = Tag.objects.create(workspace=workspace, name="wholesale")
    tag.contacts.add(*contacts[5:20])
    last_month = previous_month(month_of())
    history_import(workspace, month=last_month, entries=[
        (c.pk, month_start(last_month) + datetime.timedelta(days=i % 27, hours=3), "campaign", "campaign:3")
        for i, c in enumerate(contacts[100:187])
    ])
    kinds = ["campaign"] * 5 + ["scenario"] * 3 + ["segmentation", "enrichment", "integration"]
    for kind in set(kinds):
        batch = [c for i, c in enumerate(contacts[:60]) if kinds[i % len(kinds)] == kind]
        activate_many(workspace, batch, kind=kind, ref=f"{kind}:{len(kind)}")
    # Spread this month's activations over the days so far, as a month of real traffic would be.
    today = timezone.now()
    elapsed = max((today - month_start(month_of())).days, 0)
    for record in ActivationRecord.objects.filter(workspace=workspace, month=month_of()):
        day = rng.randint(0, elapsed)
        when = min(month_start(month_of()) + datetime.timedelta(days=day, hours=rng.randint(8, 20)), today)
        ActivationRecord.objects.filter(pk=record.pk).update(activated_at=when)
    Message.objects.create(workspace=workspace, contact=contacts[0], direction="in", origin="contact",
                           status="received", text="Hi! Is the vitamin C serum back in stock?")
    return workspace, owner, contacts


def sign_in(page, live_server, email: str, workspace=None) -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/w/*/")
    if workspace is not None and not page.url.endswith(f"/w/{workspace.pk}/"):
        page.goto(f"{live_server.url}/w/{workspace.pk}/")


def test_sign_in_and_read_the_meter(page, live_server, brand):
    workspace, owner, _ = brand
    page.goto(f"{live_server.url}/login/")
    assert page.evaluate("document.activeElement.id") == "id_username"  # the email field has the focus
    shot(page, "login")
    sign_in(page, live_server, owner.email)
    # Two workspaces: "/" opens the first by name; the switcher goes to the other one.
    assert page.locator(".switcher summary").inner_text() == "Corner Coffee"
    page.locator(".switcher summary").click()
    page.keyboard.press("Escape")  # app.js: the menu closes like a menu
    assert page.locator("details.switcher").get_attribute("open") is None
    page.locator(".switcher summary").click()
    page.get_by_role("link", name="Sunny Skincare").click()
    page.wait_for_url(f"**/w/{workspace.pk}/")
    page.keyboard.press("Tab")  # keyboard users get the skip link first, and it shows
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert page.locator(".skip-link").bounding_box()["x"] >= 0

    meter = page.get_by_role("meter", name="Activated contacts this month")
    row = MonthlyUsage.objects.get(workspace=workspace, month=month_of())
    records = ActivationRecord.objects.filter(workspace=workspace, month=month_of()).count()
    assert records == row.activated == 60
    assert meter.get_attribute("aria-valuenow") == str(records)
    assert meter.get_attribute("aria-valuemax") == str(row.quota) == "100"
    assert page.get_by_test_id("activated").inner_text() == "60"
    assert page.get_by_test_id("remaining").inner_text() == "40"
    assert page.get_by_test_id("database-total").inner_text() == "160"
    assert page.get_by_test_id("not-activated").inner_text() == "100"
    assert "resets " in page.locator("#meter-title + p").inner_text()
    page.evaluate("document.fonts.ready")
    shot(page, "usage")

    page.get_by_role("link", name="Contacts").click()
    page.wait_for_url(f"**/w/{workspace.pk}/contacts/")
    assert page.get_by_test_id("database-total").inner_text() == "160"
    shot(page, "contacts")
    page.get_by_label("This month").select_option("no")
    page.get_by_role("button", name="Filter").click()
    assert page.get_by_test_id("result-count").inner_text() == "100"

    page.get_by_label("Source").select_option("api")
    page.get_by_label("Search").fill("x" * 101)  # the browser stops at maxlength: the server never sees it
    assert len(page.get_by_label("Search").input_value()) == 100


def test_reach_the_limit_see_the_banner_and_act_by_hand(page, live_server, brand):
    workspace, owner, contacts = brand
    activate_many(workspace, contacts[60:100], kind="scenario", ref="scenario:9")
    assert usage(workspace).limit_reached
    sign_in(page, live_server, owner.email, workspace)

    banner = page.get_by_test_id("limit-banner")
    assert banner.is_visible()
    assert "reached your limit of 100 activated contacts" in banner.inner_text()
    assert page.locator(".meter.limit").count() == 1
    shot(page, "limit-banner")

    # A manual DM at the limit is sent and creates no activation (rule 6).
    newcomer = contacts[150]
    records_before = ActivationRecord.objects.filter(workspace=workspace).count()
    page.goto(f"{live_server.url}/w/{workspace.pk}/contacts/{newcomer.pk}/")
    page.get_by_role("button", name="Send message").click()  # empty: the error sits under the field
    assert page.locator("#id_text_error").inner_text() == "Write a message before sending."
    assert page.get_by_role("textbox", name="Message").get_attribute("aria-invalid") == "true"
    assert not Message.objects.filter(contact=newcomer).exists()
    page.get_by_role("textbox", name="Message").fill("Thanks for writing! Here is your discount code.")
    page.get_by_role("button", name="Send message").click()
    page.wait_for_url("**#conversation")
    assert page.get_by_text("Message sent to").is_visible()
    page.get_by_label("Folder", exact=True).select_option(label="VIP")
    page.get_by_role("button", name="Add to folder").click()
    assert "VIP" in page.get_by_test_id("contact-folders").inner_text()
    assert Message.objects.filter(contact=newcomer, origin="manual", status="sent").count() == 1
    assert not ActivationRecord.objects.filter(contact=newcomer, month=month_of()).exists()
    assert ActivationRecord.objects.filter(workspace=workspace).count() == records_before
    assert usage(workspace).activated == 100
    shot(page, "contact")


def test_upgrade_through_checkout_raises_the_quota(page, live_server, brand, monkeypatch):
    """Free at its limit -> Pro with 2 packs through (fake) Stripe Checkout -> the meter has room again."""
    workspace, owner, contacts = brand
    activate_many(workspace, contacts[60:100], kind="scenario")
    opened = {}

    def checkout_session_create(*, params, idempotency_key):  # the Stripe boundary, nothing else
        opened.update(params)
        return {"id": "cs_test_web", "url": "https://checkout.stripe.com/c/pay/cs_test_web"}

    def checkout_session_retrieve(*, session_id):
        return {"id": session_id, "mode": "subscription", "status": "complete", "payment_status": "paid",
                "subscription": "sub_web", "customer": "cus_web"}

    monkeypatch.setattr(stripe_client, "checkout_session_create", checkout_session_create)
    monkeypatch.setattr(stripe_client, "checkout_session_retrieve", checkout_session_retrieve)

    def fake_checkout(route):
        success = urlsplit(opened["success_url"].replace("{CHECKOUT_SESSION_ID}", "cs_test_web"))
        back = f"{live_server.url}{success.path}?{success.query}"
        route.fulfill(status=200, content_type="text/html",
                      body=f'<title>Stripe Checkout</title><h1>Fake Stripe Checkout</h1><a href="{back}">Pay</a>')

    page.route("https://checkout.stripe.com/**", fake_checkout)
    sign_in(page, live_server, owner.email, workspace)
    assert page.get_by_test_id("limit-banner").is_visible()

    form = page.get_by_test_id("upgrade-form")
    form.get_by_label("Add-on packs").fill("2")
    form.get_by_role("button", name="Upgrade with Stripe").click()
    page.wait_for_url("https://checkout.stripe.com/c/pay/cs_test_web")
    assert page.title() == "Stripe Checkout"
    assert [(item["price"], item["quantity"]) for item in opened["line_items"]] == [
        (settings.STRIPE_PRICE_PRO, 1), (settings.STRIPE_PRICE_ADDON_PACK, 2)]
    assert opened["metadata"]["workspace_id"] == str(workspace.pk)

    page.get_by_role("link", name="Pay").click()
    page.wait_for_url(f"**/w/{workspace.pk}/billing/success/**")
    shot(page, "checkout-success")
    page.goto(f"{live_server.url}/w/{workspace.pk}/")
    meter = page.get_by_role("meter", name="Activated contacts this month")
    assert meter.get_attribute("aria-valuemax") == "3000"  # Pro 1,000 + 2 packs x 1,000, mid-month (rule 8)
    assert page.get_by_test_id("remaining").inner_text() == "2,900"
    assert page.get_by_test_id("limit-banner").count() == 0
    assert (usage(workspace).quota, usage(workspace).activated) == (3000, 100)
    shot(page, "usage-pro")
    page.goto(f"{live_server.url}/w/{workspace.pk}/billing/")
    shot(page, "billing")


def test_campaign_preview_then_launch(page, live_server, brand):
    workspace, owner, contacts = brand
    draft = campaign_create(workspace=workspace, name="Serum restock", text="The vitamin C serum is back!")
    done = campaign_create(workspace=workspace, name="Black Friday", text="20% off everything today.")
    Campaign.objects.filter(pk=done.pk).update(status="done", recipients_count=140, sent_count=38,
                                               limited_count=90, skipped_window_count=12,
                                               launched_at=timezone.now() - datetime.timedelta(days=2))
    scenario = Scenario.objects.create(workspace=workspace, name="PRICE keyword", trigger_type="dm_keyword")
    for index, status in enumerate(["completed"] * 5 + ["limited"] * 2 + ["waiting"]):
        ScenarioRun.objects.create(scenario=scenario, workspace=workspace, contact=contacts[index],
                                   trigger_key=f"mid.{index}", status=status)
    for contact in contacts[100:104]:
        PausedAction.objects.create(workspace=workspace, contact=contact, kind="campaign",
                                    automation_ref=done.ref, action_type="campaign_message",
                                    dedupe_key=f"{done.ref}:contact:{contact.pk}",
                                    expires_at=timezone.now() + datetime.timedelta(hours=18))
    sign_in(page, live_server, owner.email, workspace)
    assert page.get_by_test_id("paused-waiting").inner_text() == "4"

    page.get_by_role("link", name="Campaigns").click()
    page.wait_for_url(f"**/w/{workspace.pk}/campaigns/")
    assert page.get_by_test_id("paused-total").inner_text() == "4 waiting"
    shot(page, "campaigns")
    page.get_by_role("link", name="Serum restock").click()
    preview = page.get_by_test_id("launch-preview")
    assert page.get_by_test_id("preview-audience").inner_text() == "160"
    assert page.get_by_test_id("preview-activate").inner_text() == "40"  # the headroom: 100 - 60
    shot(page, "campaign-preview")
    preview.get_by_role("link", name="Review and launch: 100 reached now, 60 paused, 0 outside the window").click()
    assert Campaign.objects.get(pk=draft.pk).status == "draft"  # a confirmation first
    page.get_by_role("button", name="Confirm: message 100 now").click()
    assert page.get_by_text("“Serum restock” is going out now.").is_visible()
    assert Campaign.objects.get(pk=draft.pk).launched_by == owner

    page.get_by_role("link", name="Scenarios").click()
    page.wait_for_url(f"**/w/{workspace.pk}/scenarios/")
    assert page.get_by_role("cell", name="PRICE keyword").is_visible()
    shot(page, "scenarios")


def test_set_a_cap_see_the_reason_raise_it_and_see_paused_actions_resume(page, live_server, brand):
    workspace, owner, contacts = brand
    sign_in(page, live_server, owner.email, workspace)
    controls = page.get_by_test_id("controls-form")

    controls.get_by_label("Monthly cap").fill("62")
    controls.get_by_role("button", name="Save controls").click()

    assert page.get_by_text("Saved: a cap of 62, 0 kept for people who write to you.").is_visible()
    assert page.get_by_test_id("quota").inner_text() == "62"
    assert page.get_by_test_id("remaining").inner_text() == "2"
    assert (page.get_by_test_id("cap-note").inner_text().strip()
            == "· your cap of 62 sets the quota (your plan allows 100)")
    assert page.get_by_test_id("quota-cap").inner_text().split() == ["Your", "cap", "62"]
    assert usage(workspace).quota == 62

    # A campaign to five new contacts: two fit under the cap, three wait.
    folder = Folder.objects.create(workspace=workspace, name="Newsletter")
    FolderMembership.objects.bulk_create([FolderMembership(folder=folder, contact=c) for c in contacts[100:105]])
    campaign = campaign_create(workspace=workspace, name="Cap test", text="Hello", audience="folder", folder=folder)
    Campaign.objects.filter(pk=campaign.pk).update(status="sending", launched_at=timezone.now())
    campaign_send(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    assert (campaign.sent_count, campaign.limited_count) == (2, 3)

    page.goto(f"{live_server.url}/w/{workspace.pk}/")
    banner = page.get_by_test_id("limit-banner")
    assert "You've reached your cap of 62 activated contacts" in banner.inner_text()
    assert "Your plan allows 100: they resume by themselves when you raise or clear your cap" in banner.inner_text()
    assert page.get_by_test_id("paused-waiting").inner_text() == "3"
    assert "when you raise or clear your cap of 62" in page.get_by_test_id("resume-words").inner_text()
    shot(page, "cap-reached")

    controls = page.get_by_test_id("controls-form")
    assert controls.get_by_label("Monthly cap").input_value() == "62"
    controls.get_by_label("Monthly cap").fill("70")
    controls.get_by_role("button", name="Save controls").click()

    assert page.get_by_text("Saved: a cap of 70, 0 kept for people who write to you.").is_visible()
    assert page.get_by_test_id("limit-banner").count() == 0
    assert page.get_by_test_id("paused-banner").count() == 0  # all three resumed and were sent
    assert page.get_by_test_id("activated").inner_text() == "65"
    assert page.get_by_test_id("remaining").inner_text() == "5"
    campaign.refresh_from_db()
    assert (campaign.sent_count, campaign.limited_count) == (5, 0)

    controls = page.get_by_test_id("controls-form")
    controls.get_by_label("Monthly cap").fill("")  # no cap: the plan's quota again
    controls.get_by_role("button", name="Save controls").click()
    assert page.get_by_text("Saved: no cap, 0 kept for people who write to you.").is_visible()
    assert page.get_by_test_id("quota").inner_text() == "100"
    assert page.get_by_test_id("cap-note").count() == 0
    shot(page, "cap-cleared")


def test_export_the_csv(page, live_server, brand):
    workspace, owner, _ = brand
    sign_in(page, live_server, owner.email, workspace)

    with page.expect_download() as download_info:
        page.get_by_test_id("csv-link").click()
    download = download_info.value
    assert download.suggested_filename == f"activations-{workspace.slug}-{month_of():%Y-%m}.csv"
    with open(download.path(), newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:4] == ["activated_at", "contact_id", "instagram_id", "username"]
    expected = set(ActivationRecord.objects.filter(workspace=workspace, month=month_of())
                   .values_list("contact_id", flat=True))
    assert {int(row[1]) for row in rows[1:]} == expected and len(rows) == 61


def test_small_screens_get_the_same_page(browser, live_server, brand):
    workspace, owner, _ = brand
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, live_server, owner.email, workspace)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    shot(page, "usage-mobile")
    context.close()
