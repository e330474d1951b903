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

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import Membership
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
    from playwright.sync_api import sync_playwright

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
    yield page
    context.close()


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def brand():
    """A Free workspace (quota 100) with a realistic spread of contacts, activations and history."""
    rng = random.Random(5)  # noqa: S311 - test data
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
    shot(page, "login")
    sign_in(page, live_server, owner.email)
    # Two workspaces: "/" opens the first by name; the switcher goes to the other one.
    assert page.locator(".switcher summary").inner_text() == "Corner Coffee"
    page.locator(".switcher summary").click()
    page.get_by_role("link", name="Sunny Skincare").click()
    page.wait_for_url(f"**/w/{workspace.pk}/")

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


def test_start_an_upgrade(page, live_server, brand):
    workspace, owner, _ = brand
    sign_in(page, live_server, owner.email, workspace)

    form = page.get_by_test_id("upgrade-form")
    form.get_by_label("Add-on packs").fill("2")
    with page.expect_request(lambda r: r.method == "POST" and "/billing/checkout/" in r.url) as posted:
        form.get_by_role("button", name="Upgrade with Stripe").click()
    request = posted.value
    assert request.url == f"{live_server.url}/w/{workspace.pk}/billing/checkout/"
    fields = dict(pair.split("=", 1) for pair in request.post_data.split("&"))
    assert (fields["plan"], fields["addon_packs"]) == ("pro", "2")
    assert fields["csrfmiddlewaretoken"]


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
