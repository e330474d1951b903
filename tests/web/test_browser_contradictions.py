"""In Chromium: each contradiction a customer read on the pages is gone, checked in the words the pages
show at 1366×900 and, where the layout changes what is read, 390×844.

Same rules as tests/web/test_browser.py (Debian's Chromium, never `playwright install`; no skip).
Screenshots of each page at both widths go to var/screenshots/ (contradiction-<page>-<width>.png).
"""

import calendar
import csv
import datetime
import re
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Membership, Workspace
from automations.models import Campaign, CampaignRecipient, PausedAction
from automations.services.campaigns import campaign_create
from automations.services.scenarios import scenario_create
from billing.activation import activate_many
from billing.integrity import usage_breakdown_rebuild
from billing.models import ActivationRecord, Subscription
from billing.months import month_of, month_start
from billing.services import quota_refresh
from contacts.models import Contact, Folder, FolderMembership
from tests.factories import ContactFactory, MembershipFactory, UserFactory, WorkspaceFactory, pro_subscription
from tests.web import test_browser as base
from web import usage_views
from web.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD

# The browser, its set-up, the Free workspace with a month of traffic and the helpers are the main
# browser tests' own.
_async_unsafe_allowed, browser, brand = base._async_unsafe_allowed, base.browser, base.brand
shot = base.shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = {"1366": {"width": 1366, "height": 900}, "390": {"width": 390, "height": 844}}
PASSWORD = "correct-horse-battery"


def open_page(browser, size: str):
    context = browser.new_context(viewport=SIZES[size], is_mobile=size == "390", locale="en-GB",
                                  accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    return context, page, violations


def sign_in(page, live_server, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/w/*/")


def at_sizes(browser, live_server, email, check, sizes=tuple(SIZES), password=PASSWORD):
    """Sign in and run `check(page, size)` at each width; no Content-Security-Policy violation."""
    for size in sizes:
        context, page, violations = open_page(browser, size)
        try:
            sign_in(page, live_server, email, password)
            check(page, size)
            assert violations == [], violations
        finally:
            context.close()


def customer(name: str, email: str):
    owner = UserFactory(email=email, full_name="Dana Demo")
    workspace = WorkspaceFactory(name=name)
    MembershipFactory(user=owner, workspace=workspace, role=Membership.Role.OWNER)
    return workspace, owner


def main_text(page) -> str:
    return page.locator("main").inner_text()


@pytest.fixture
def at(monkeypatch):
    """The usage page's clock (its view and the forecast) set to `moment`; records keep their own times."""

    def set_moment(moment):
        monkeypatch.setattr(usage_views, "timezone", SimpleNamespace(now=lambda: moment))
        monkeypatch.setattr("billing.selectors.timezone", SimpleNamespace(now=lambda: moment))
        return moment

    return set_moment


# 1. Paused campaign messages whose window closes before the reset are said to expire ----------------


@pytest.fixture
def winter_sale():
    """Free at 100 of 100; the finished "Winter sale" left 3 messages paused whose 24-hour window
    closes in 20 hours, long before the quota resets."""
    workspace, owner = customer("Corner Coffee", "dana@coffee.test")
    contacts = [ContactFactory(workspace=workspace, username=f"guest{i}", name=f"Guest {i}") for i in range(103)]
    hours = scenario_create(workspace=workspace, name="Opening hours", trigger_type="dm_keyword",
                            trigger_config={"keywords": ["hours"]},
                            steps=[{"type": "send_message", "text": "7am to 6pm"}])
    activate_many(workspace, contacts[:100], kind="scenario", ref=hours.ref)
    sale = campaign_create(workspace=workspace, name="Winter sale", text="-30% on everything")
    CampaignRecipient.objects.bulk_create([
        CampaignRecipient(campaign=sale, contact=c, rank=i, status="limited") for i, c in enumerate(contacts[100:])])
    Campaign.objects.filter(pk=sale.pk).update(status="done", recipients_count=3, limited_count=3,
                                               launched_at=timezone.now() - datetime.timedelta(hours=2),
                                               finished_at=timezone.now() - datetime.timedelta(hours=2))
    for contact in contacts[100:]:
        PausedAction.objects.create(
            workspace=workspace, contact=contact, kind="campaign", automation_ref=sale.ref,
            action_type="campaign_message", dedupe_key=f"{sale.ref}:contact:{contact.pk}",
            expires_at=timezone.now() + datetime.timedelta(hours=20), payload={"needs_window": True},
        )
    return workspace, owner, sale


def test_paused_messages_whose_window_closes_first_are_said_to_expire(browser, live_server, winter_sale):
    workspace, owner, sale = winter_sale

    def check(page, size):
        page.goto(f"{live_server.url}/w/{workspace.pk}/")
        words = page.get_by_test_id("resume-words").inner_text()
        assert "they expire then, not sent, unless there is room sooner" in words, words
        chip = page.get_by_test_id("paused-chip").inner_text()
        assert chip.startswith("Winter sale: 3 (3 expire from"), chip
        shot(page, f"contradiction-usage-expiring-{size}")

        page.goto(f"{live_server.url}/w/{workspace.pk}/campaigns/")
        fates = page.get_by_test_id("paused-fate").all_inner_texts()
        assert len(fates) == 3, fates
        for fate in fates:
            assert fate.startswith("Expires") and "not sent after that" in fate, fate
            assert "quota resets" not in fate, fate
        shot(page, f"contradiction-campaigns-expiring-{size}")

        page.goto(f"{live_server.url}/w/{workspace.pk}/campaigns/{sale.pk}/")
        next_steps = page.get_by_test_id("what-next").inner_text()
        assert "3 limited at your quota" in next_steps
        # Their windows all close before the reset: they expire, and the reset is no promise for them.
        assert "they expire then, not sent" in next_steps, next_steps
        assert "the quota resets" not in next_steps and "go out by themselves" not in next_steps, next_steps
        shot(page, f"contradiction-campaign-expiring-{size}")

    at_sizes(browser, live_server, owner.email, check)


# 2. The badge follows the forecast; the projection shows the packs that cover it ------------------


def test_the_badge_says_the_limit_date_at_this_pace_and_the_packs_that_cover_it(browser, live_server, at):
    workspace, owner = customer("Sunny Skincare", "dana@sunny.test")
    pro_subscription(workspace)
    quota_refresh(workspace=workspace)
    activate_many(workspace, ContactFactory.create_batch(600, workspace=workspace), kind="campaign")
    start = month_start(month_of())
    at(start + datetime.timedelta(days=6))  # 100 a day: the quota of 1,000 goes on day 10, 3,000 or so by the end
    limit_day = start.date() + datetime.timedelta(days=10)
    limit_words = f"{limit_day.day} {limit_day:%B}"

    def check(page, size):
        page.goto(f"{live_server.url}/w/{workspace.pk}/")
        badge = page.get_by_test_id("level-badge")
        assert badge.inner_text() == f"Limit on {limit_words} at this pace"
        assert "ok" not in badge.get_attribute("class").split()
        assert "On track" not in main_text(page)
        assert page.get_by_test_id("warning-banner").get_by_role("heading").inner_text() == (
            f"At this pace you reach the limit on {limit_words}")
        assert page.get_by_test_id("forecast-limit").inner_text() == limit_words
        projected = int(page.get_by_test_id("forecast-projected").inner_text().replace(",", ""))
        assert projected > 2900, projected  # the pace, not capped at the quota of 1,000
        packs = -(-(projected - 1000) // 1000)
        assert page.get_by_test_id("forecast-cover").inner_text().startswith(
            f"To cover this pace: {packs} more add-on packs of 1,000 (${29 * packs} a month)")
        shot(page, f"contradiction-forecast-{size}")

    at_sizes(browser, live_server, owner.email, check)


# 3. The chart: cumulative activations against the quota, the forecast to the month's end, daily bars -


def test_the_chart_shows_the_quota_line_the_forecast_and_the_daily_bars(browser, live_server, at):
    workspace, owner = customer("Sunny Skincare", "dana@sunny.test")
    activate_many(workspace, ContactFactory.create_batch(12, workspace=workspace), kind="campaign")
    start = month_start(month_of())
    records = list(ActivationRecord.objects.filter(workspace=workspace).order_by("pk"))
    for index, record in enumerate(records):  # 4 on each of the first three days
        ActivationRecord.objects.filter(pk=record.pk).update(
            activated_at=start + datetime.timedelta(days=index // 4, hours=10))
    usage_breakdown_rebuild(workspace_id=workspace.pk, month=month_of())  # the per-day counts follow
    at(start + datetime.timedelta(days=3))  # 4 a day: about 120 by the month's end, past the quota of 100

    def check(page, size):
        page.goto(f"{live_server.url}/w/{workspace.pk}/")
        chart = page.get_by_test_id("cumulative-chart")
        summary = page.get_by_test_id("cumulative-summary").inner_text()
        assert summary.startswith("12 so far; at this pace ") and "past the quota of 100 on" in summary, summary
        # What a screen reader hears: the chart's name carries its description and the summary.
        svg = chart.get_by_role("img", name=re.compile("Will you run out this month?"))
        assert svg.count() == 1
        expect(svg).to_have_accessible_name(re.compile(
            "the quota of 100 as a horizontal line, and the current pace carried on to the month's end"))
        description = " ".join(chart.locator("desc").text_content().split())
        assert "the quota of 100 as a horizontal line" in description
        assert "the current pace carried on to the month's end as a dashed line" in description
        assert summary in description
        assert chart.locator("svg text.quota-label").text_content() == "Quota 100"
        legend = chart.locator(".chart-legend").inner_text()
        assert "Activated so far" in legend and "At the current pace (4 a day)" in legend and "Quota" in legend
        # The forecast runs to the month's end and rises above the quota line.
        quota_y = float(chart.locator("line.quota-line").get_attribute("y1"))
        forecast = [tuple(map(float, p.split(","))) for p in
                    chart.locator("polyline.forecast-line").get_attribute("points").split()]
        even_end = chart.locator("polyline.even").get_attribute("points").split()[-1]
        assert forecast[-1][0] == float(even_end.split(",")[0])  # the last day of the month
        assert forecast[-1][1] < quota_y  # above the line: past the quota
        assert len(chart.locator("polyline.actual-line").get_attribute("points").split()) >= 4

        daily = page.locator("section", has=page.get_by_role("heading", name="Activations per day"))
        assert "12 in " in daily.locator(".card-head p").inner_text()
        bars = daily.locator("svg rect.bar")
        days_in_month = calendar.monthrange(month_of().year, month_of().month)[1]
        assert bars.count() == days_in_month
        assert daily.get_by_role("img", name=re.compile("Activations per day")).count() == 1
        daily.get_by_text("Show as a table").click()
        counts = [int(n) for n in daily.locator("table tbody tr td.num").all_inner_texts()]
        assert counts[:3] == [4, 4, 4] and sum(counts) == 12
        # Their own scale: the busiest day (4) reaches the top tick, not a tenth of the quota's 100.
        ticks = daily.locator("svg > text[text-anchor='end']").all_text_contents()
        assert int(ticks[-1]) < 100, ticks
        shot(page, f"contradiction-chart-{size}")

    at_sizes(browser, live_server, owner.email, check)


# 4. "Launch to N" no longer claims N: the preview's three figures, a confirmation, what next --------


@pytest.fixture
def launch(brand):
    """brand (Free, 60 of 100 used) and a draft to its 130-contact folder: 60 already active, 52 new
    inside the 24-hour window (40 fit, 12 pause), 18 whose window closed three days ago."""
    workspace, owner, contacts = brand
    audience = contacts[:130]
    Contact.objects.filter(pk__in=[c.pk for c in audience[112:]]).update(
        last_inbound_at=timezone.now() - datetime.timedelta(days=3))
    folder = Folder.objects.create(workspace=workspace, name="Winter list")
    FolderMembership.objects.bulk_create([FolderMembership(folder=folder, contact=c) for c in audience])
    draft = campaign_create(workspace=workspace, name="Winter glow", text="Our winter kit: 15% off.",
                            audience="folder", folder=folder)
    return workspace, owner, draft


def test_launch_states_who_is_reached_asks_first_and_the_result_links_to_the_rest(browser, live_server, launch):
    workspace, owner, draft = launch
    campaign_url = f"{live_server.url}/w/{workspace.pk}/campaigns/{draft.pk}/"

    def check(page, size):
        page.goto(campaign_url)
        assert page.get_by_test_id("preview-audience").inner_text() == "130"
        assert page.get_by_test_id("preview-outside").inner_text() == "18"
        assert page.get_by_test_id("preview-limited").inner_text() == "12"
        review = page.get_by_test_id("review-launch")
        assert review.inner_text() == "Review and launch: 100 reached now, 12 paused, 18 outside the window"
        assert "Launch to 130" not in main_text(page)
        shot(page, f"contradiction-launch-preview-{size}")
        review.click()
        page.wait_for_url(f"**/campaigns/{draft.pk}/launch/")
        confirm = page.get_by_test_id("launch-confirm")
        assert [confirm.get_by_test_id(f"confirm-{k}").inner_text() for k in ("reached", "paused", "outside")] == [
            "100", "12", "18"]
        assert Campaign.objects.get(pk=draft.pk).status == "draft"  # one click did not launch
        shot(page, f"contradiction-launch-confirm-{size}")
        if size == "390":
            confirm.get_by_role("link", name="Not now").click()
            page.wait_for_url(f"**/campaigns/{draft.pk}/")
            assert Campaign.objects.get(pk=draft.pk).status == "draft"
            return
        confirm.get_by_role("button", name="Confirm: message 100 now").click()
        assert page.get_by_text("“Winter glow” is going out now.").is_visible()
        campaign = Campaign.objects.get(pk=draft.pk)
        assert (campaign.status, campaign.sent_count, campaign.limited_count, campaign.skipped_window_count) == (
            "done", 100, 12, 18)

    at_sizes(browser, live_server, owner.email, check, sizes=("390", "1366"))

    def finished(page, size):
        page.goto(campaign_url)
        assert page.get_by_test_id("limited-count").inner_text() == "12"
        assert page.get_by_test_id("skipped-count").inner_text() == "18"
        next_steps = page.get_by_test_id("what-next")
        assert next_steps.get_by_role("button", name="Follow up when they next write").is_visible()
        assert next_steps.get_by_role("link", name="Upgrade or add packs").is_visible()
        shot(page, f"contradiction-launch-done-{size}")
        for link, heading, count in (("See the limited contacts", "Limited", 12),
                                     ("See the skipped contacts", "Skipped", 18)):
            page.goto(campaign_url)
            page.get_by_test_id("what-next").get_by_role("link", name=link).click()
            page.wait_for_url("**/recipients/?status=*")
            assert page.get_by_role("heading", level=1).inner_text().startswith(heading)
            assert page.locator(".page-head p").inner_text().startswith(f"{count} contacts of “Winter glow”")
            rows = page.get_by_test_id("recipients").locator("tbody tr")
            assert rows.count() == count
            assert all(text.startswith("@") for text in rows.locator("td").first.all_inner_texts())
            shot(page, f"contradiction-launch-{heading.lower()}-{size}")

    at_sizes(browser, live_server, owner.email, finished)


# 5. The billing page's status badge: "Ends on …" in amber, never a green "Canceled" ---------------


def green(page) -> str:
    """The background of the green "Active" badge, as the page's stylesheet draws it."""
    return page.evaluate("""() => { const b = document.createElement('span'); b.className = 'badge ok';
        document.body.appendChild(b); const c = getComputedStyle(b).backgroundColor; b.remove(); return c; }""")


def test_a_plan_ending_or_canceled_is_not_a_green_active(browser, live_server):
    workspace, owner = customer("Sunny Skincare", "dana@sunny.test")
    subscription = pro_subscription(workspace)
    end = timezone.now() + datetime.timedelta(days=9)
    Subscription.objects.filter(pk=subscription.pk).update(cancel_at_period_end=True, current_period_end=end,
                                                           current_period_start=end - datetime.timedelta(days=30))
    ends = f"Ends on {end.day} {end:%B}"

    def ending(page, size):
        page.goto(f"{live_server.url}/w/{workspace.pk}/billing/")
        badge = page.locator('[data-field="status-badge"]')
        assert badge.inner_text() == ends
        classes = badge.get_attribute("class").split()
        assert "warning" in classes and "ok" not in classes
        assert badge.evaluate("b => getComputedStyle(b).backgroundColor") != green(page)
        assert "Active" not in page.locator('[data-field="status"]').inner_text()
        shot(page, f"contradiction-billing-ending-{size}")
        page.goto(f"{live_server.url}/w/{workspace.pk}/")
        assert page.get_by_test_id("plan-badge").inner_text() == ends
        assert "ok" not in page.get_by_test_id("plan-badge").get_attribute("class").split()

    at_sizes(browser, live_server, owner.email, ending)

    Subscription.objects.filter(pk=subscription.pk).update(status=Subscription.Status.CANCELED,
                                                           cancel_at_period_end=False)

    def canceled(page, size):
        page.goto(f"{live_server.url}/w/{workspace.pk}/billing/")
        badge = page.locator('[data-field="status-badge"]')
        assert badge.inner_text() == "Canceled"
        assert "ok" not in badge.get_attribute("class").split()
        assert badge.evaluate("b => getComputedStyle(b).backgroundColor") != green(page)
        shot(page, f"contradiction-billing-canceled-{size}")

    at_sizes(browser, live_server, owner.email, canceled)


# 6. Names, not references: the paused chip, the activated list and the CSV -------------------------


def test_the_usage_page_and_its_csv_name_the_automations(browser, live_server):
    workspace, owner = customer("Sunny Skincare", "dana@sunny.test")
    contacts = [ContactFactory(workspace=workspace, username=f"mia{i}", name=f"Mia {i}") for i in range(102)]
    launch = campaign_create(workspace=workspace, name="Autumn launch", text="Our serum is here")
    welcome = scenario_create(workspace=workspace, name="Welcome", trigger_type="new_contact",
                              steps=[{"type": "send_message", "text": "Hi"}])
    activate_many(workspace, contacts[:60], kind="campaign", ref=launch.ref)
    activate_many(workspace, contacts[60:100], kind="scenario", ref=welcome.ref)
    for contact in contacts[100:]:
        PausedAction.objects.create(workspace=workspace, contact=contact, kind="campaign", automation_ref=launch.ref,
                                    action_type="campaign_message", dedupe_key=f"{launch.ref}:contact:{contact.pk}")
    refs = {launch.ref, welcome.ref}

    def check(page, size):
        page.goto(f"{live_server.url}/w/{workspace.pk}/")
        assert page.get_by_test_id("paused-chip").inner_text() == "Autumn launch: 2"
        text = main_text(page)
        assert not any(ref in text for ref in refs), [ref for ref in refs if ref in text]
        assert "campaign:" not in text and "scenario:" not in text
        per_automation = page.get_by_test_id("per-automation").inner_text()
        assert "Autumn launch" in per_automation and "Welcome" in per_automation
        if size == "1366":  # the phone's list keeps contact, time and kind; the name column is the desktop's
            names = page.get_by_test_id("automation-name").all_inner_texts()
            assert len(names) == 25 and set(names) <= {"Autumn launch", "Welcome"} and "Welcome" in names
            with page.expect_download() as download_info:
                page.get_by_test_id("csv-link").click()
            with open(download_info.value.path(), newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            assert len(rows) == 100
            assert {(row["automation"], row["automation_name"]) for row in rows} == {
                (launch.ref, "Autumn launch"), (welcome.ref, "Welcome")}
        shot(page, f"contradiction-names-{size}")

    at_sizes(browser, live_server, owner.email, check)


# 7. The seeded demo adds up ---------------------------------------------------------------------


def cell_number(row, label: str) -> int:
    return int(row.locator(f'td[data-label="{label}"]').inner_text().replace(",", "") or 0)


def test_the_seeded_demo_adds_up_on_its_pages(browser, live_server):
    call_command("seed_demo", contacts=300)

    def check(page, size):
        for slug in ("sunny-skincare", "corner-coffee"):
            workspace_pages(page, f"{live_server.url}/w/{Workspace.objects.get(slug=slug).pk}", f"{slug}-{size}")

    at_sizes(browser, live_server, DEMO_EMAIL, check, password=DEMO_PASSWORD)


def workspace_pages(page, base_url: str, name: str) -> None:
    """This month's activations spread over the days so far; each automation the usage page names is on
    its own page with what it did."""
    page.goto(f"{base_url}/")
    activated = int(page.get_by_test_id("activated").inner_text().replace(",", ""))
    daily = page.locator("section", has=page.get_by_role("heading", name="Activations per day"))
    daily.get_by_text("Show as a table").click()
    counts = [int(n.replace(",", "")) for n in daily.locator("table tbody tr td.num").all_inner_texts()]
    assert sum(counts) == activated > 0
    # Spread over the days elapsed (one row per day so far): more than one day once a day has passed.
    busy = [n for n in counts if n]
    assert len(busy) >= min(len(counts), 2), counts
    if len(counts) > 1:
        assert max(counts) < activated, counts

    items = page.get_by_test_id("per-automation").locator("li .row > span")
    named = {}
    for index in range(items.count()):
        item = items.nth(index)
        kind = item.locator(".muted").inner_text()
        named[item.inner_text().removesuffix(kind).strip()] = kind
    assert named and not any("demo data" in n or "deleted" in n or ":" in n for n in named), named
    assert set(named.values()) <= {"Campaign", "Scenario", "Segment", "Integration", "Data enrichment"}
    assert "Scenario" in named.values()
    for chip in page.get_by_test_id("paused-chip").all_inner_texts():  # paused campaign messages, by name
        named.setdefault(chip.split(": ")[0], "Campaign")
    shot(page, f"contradiction-demo-usage-{name}")

    pages = {"Campaign": ("campaigns", "Sent"), "Scenario": ("scenarios", "Runs"),
             "Segment": ("segments", "Contacts now"), "Integration": ("integrations", "Delivered")}
    for kind, (path, column) in pages.items():
        wanted = [automation for automation, k in named.items() if k == kind]
        if not wanted:
            continue
        page.goto(f"{base_url}/{path}/")
        for automation in wanted:
            row = page.locator("tbody tr").filter(has=page.get_by_role("link", name=automation, exact=True))
            assert row.count() == 1, (kind, automation)
            assert cell_number(row, column) > 0, (kind, automation, row.inner_text())
        shot(page, f"contradiction-demo-{path}-{name}")
