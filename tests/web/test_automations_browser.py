"""In Chromium (Debian's, through Playwright): a customer builds, launches and watches automations from the
web; every page works on a phone (390×844) as on a laptop (1366×900), with no serious or critical axe-core
violation at either width. Screenshots of every page at both widths go to var/screenshots/.
"""

import datetime

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone

from automations.models import (
    Campaign,
    CampaignRecipient,
    EnrichmentJob,
    Integration,
    PausedAction,
    Scenario,
    ScenarioRun,
    Segment,
    SegmentMembership,
)
from automations.services import campaign_create, inbound_event_handle, scenario_create, segment_create
from billing.activation import usage
from billing.models import ActivationRecord
from billing.months import month_of
from contacts.hooks import InboundEvent
from contacts.models import Contact, Message, Tag
from tests.web import test_browser as chromium
from tests.web.test_browser import shot, sign_in

# The Chromium of the other browser tests, and their Free workspace with a month of traffic.
_async_unsafe_allowed, browser, brand = chromium._async_unsafe_allowed, chromium.browser, chromium.brand

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
SERIOUS = ("serious", "critical")


def new_page(browser, width: str):
    context = browser.new_context(viewport=WIDTHS[width], is_mobile=width == "phone", locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    return context, page, violations


def serious_violations(page) -> list[str]:
    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {', '.join(str(n['target']) for n in v['nodes'][:3])}"
            for v in results.response["violations"] if v["impact"] in SERIOUS]


@pytest.fixture
def automations(brand):
    """brand's workspace with one of each automation, a finished campaign and paused actions."""
    workspace, owner, contacts = brand
    segment = segment_create(workspace=workspace, name="Wholesale leads", rules={"tags_any": ["wholesale"]})
    integration = Integration.objects.create(workspace=workspace, name="Sunny CRM", url="http://127.0.0.1:9/hook")
    scenario = scenario_create(workspace=workspace, name="Price reply", trigger_type="dm_keyword",
                               trigger_config={"keywords": ["price"]},
                               steps=[{"type": "send_message", "text": "Our prices: sunny.test/prices"},
                                      {"type": "add_to_segment", "segment_id": segment.pk},
                                      {"type": "call_integration", "integration_id": integration.pk}])
    for index, status in enumerate(["completed"] * 3 + ["limited", "waiting"]):
        ScenarioRun.objects.create(scenario=scenario, workspace=workspace, contact=contacts[index],
                                   trigger_key=f"mid.{index}", status=status)
    draft = campaign_create(workspace=workspace, name="Serum restock", text="The vitamin C serum is back!")
    done = campaign_create(workspace=workspace, name="Black Friday", text="20% off everything today.")
    statuses = ["sent"] * 6 + ["limited"] * 3 + ["skipped_window"] * 3
    CampaignRecipient.objects.bulk_create([
        CampaignRecipient(campaign=done, contact=c, rank=i, status=s)
        for i, (c, s) in enumerate(zip(contacts[100:112], statuses, strict=True))])
    Campaign.objects.filter(pk=done.pk).update(status="done", recipients_count=12, sent_count=6, limited_count=3,
                                               skipped_window_count=3,
                                               launched_at=timezone.now() - datetime.timedelta(days=1),
                                               finished_at=timezone.now() - datetime.timedelta(days=1))
    for contact in contacts[106:109]:
        PausedAction.objects.create(workspace=workspace, contact=contact, kind="campaign", automation_ref=done.ref,
                                    action_type="campaign_message", dedupe_key=f"{done.ref}:contact:{contact.pk}",
                                    expires_at=timezone.now() + datetime.timedelta(hours=18))
    EnrichmentJob.objects.create(workspace=workspace, segment=segment, contact_ids=[c.pk for c in contacts[5:20]],
                                 status="done", enriched_count=12, limited_count=3, finished_at=timezone.now())
    return {"workspace": workspace, "owner": owner, "contacts": contacts, "segment": segment,
            "integration": integration, "scenario": scenario, "draft": draft, "done": done}


def test_every_page_at_both_widths_reads_without_overflow_or_serious_axe_violations(browser, live_server,
                                                                                  automations):
    w = automations["workspace"]
    base = f"/w/{w.pk}"
    pages = {
        "usage": "/", "inbox": "/inbox/", "contacts": "/contacts/",
        "contact": f"/contacts/{automations['contacts'][0].pk}/",
        "campaigns": "/campaigns/", "campaign-new": "/campaigns/new/",
        "campaign-draft": f"/campaigns/{automations['draft'].pk}/",
        "campaign-confirm": f"/campaigns/{automations['draft'].pk}/launch/",
        "campaign-done": f"/campaigns/{automations['done'].pk}/",
        "campaign-limited": f"/campaigns/{automations['done'].pk}/recipients/?status=limited",
        "scenarios": "/scenarios/", "scenario-new": "/scenarios/new/",
        "scenario": f"/scenarios/{automations['scenario'].pk}/",
        "scenario-edit": f"/scenarios/{automations['scenario'].pk}/edit/",
        "segments": "/segments/", "segment-new": "/segments/new/",
        "segment": f"/segments/{automations['segment'].pk}/",
        "integrations": "/integrations/", "integration": f"/integrations/{automations['integration'].pk}/",
        "billing": "/billing/", "instagram": "/instagram/",
    }
    problems = []
    for width, viewport in WIDTHS.items():
        context, page, csp = new_page(browser, width)
        page.goto(f"{live_server.url}/login/")
        problems += [f"login {width}: {v}" for v in serious_violations(page)]
        shot(page, f"login-{width}")
        sign_in(page, live_server, automations["owner"].email, w)
        for name, path in pages.items():
            page.goto(f"{live_server.url}{base}{path}")
            page.wait_for_load_state("load")
            problems += [f"{name} {width}: {v}" for v in serious_violations(page)]
            overflow = page.evaluate("document.documentElement.scrollWidth")
            if overflow > viewport["width"]:
                problems.append(f"{name} {width}: the page is {overflow}px wide in a {viewport['width']}px screen")
            shot(page, f"{name}-{width}")
        if width == "phone":
            # Every section is one tap away: each link of the navigation sits inside the screen, at the top.
            page.goto(f"{live_server.url}{base}/campaigns/")
            links = page.get_by_role("navigation", name="Workspace").get_by_role("link")
            assert links.count() == 9
            for index in range(links.count()):
                box = links.nth(index).bounding_box()
                assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844, (
                    links.nth(index).inner_text(), box)
            # The campaign table keeps its key columns on a phone: limited, skipped and the launch link.
            done = page.get_by_role("row").filter(has_text="Black Friday")
            for column in ("Limited", "Skipped"):
                cell = done.locator(f'td[data-label="{column}"]')
                box = cell.bounding_box()
                assert cell.get_by_role("link", name="3").is_visible() and box["x"] + box["width"] <= 390, column
            draft = page.get_by_role("row").filter(has_text="Serum restock")
            assert draft.get_by_role("link", name="Preview and launch").is_visible()
        context.close()
        assert csp == [], csp
    assert problems == [], "\n".join(problems)


def test_a_customer_builds_launches_and_watches_a_campaign_and_a_scenario_from_the_web(browser, live_server, brand):
    workspace, owner, contacts = brand
    context, page, csp = new_page(browser, "desktop")
    sign_in(page, live_server, owner.email, workspace)
    activated_before = usage(workspace).activated  # 60 of 100

    # A campaign: drafted, previewed, confirmed, then watched.
    page.get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").click()
    form = page.get_by_test_id("campaign-form")
    form.get_by_label("Name").fill("Winter glow")
    form.get_by_label("Message").fill("Our winter kit is here: 15% off this week.")
    form.get_by_label("Audience").select_option(label="A folder")
    form.get_by_label("Folder").select_option(label="VIP")
    form.get_by_role("button", name="Save as draft").click()
    page.wait_for_url("**/campaigns/*/")
    assert page.get_by_test_id("preview-audience").inner_text() == "12"
    review = page.get_by_test_id("review-launch")
    assert review.inner_text() == "Review and launch: 12 reached now, 0 paused, 0 outside the window"
    review.click()
    confirm = page.get_by_test_id("launch-confirm")
    assert confirm.get_by_test_id("confirm-reached").inner_text() == "12"
    shot(page, "flow-campaign-confirm")
    campaign = Campaign.objects.get(name="Winter glow")
    assert campaign.status == "draft"  # nothing went out before the confirmation
    confirm.get_by_role("button", name="Confirm: message 12 now").click()
    assert page.get_by_text("“Winter glow” is going out now.").is_visible()
    page.reload()
    delivery = page.get_by_test_id("delivery")
    assert delivery.is_visible()
    campaign.refresh_from_db()
    assert (campaign.status, campaign.recipients_count, campaign.sent_count) == ("done", 12, 12)
    assert "12" in delivery.inner_text()
    shot(page, "flow-campaign-done")

    # A scenario: built with a keyword trigger and two steps, then watched as it runs.
    page.get_by_role("link", name="Scenarios").click()
    page.get_by_role("link", name="New scenario").click()
    form = page.get_by_test_id("scenario-form")
    form.get_by_label("Name", exact=True).fill("Price reply")
    form.get_by_role("combobox", name="Trigger").select_option("dm_keyword")
    form.get_by_label("Keywords").fill("price, how much")
    step = form.get_by_test_id("step-1")
    step.get_by_role("combobox", name="Step", exact=True).select_option("send_message")
    step.get_by_label("Message or question").fill("Our prices: sunny.test/prices")
    assert not step.get_by_label("Tag").is_visible()  # only the inputs of the chosen step show
    step = form.get_by_test_id("step-2")
    step.get_by_role("combobox", name="Step", exact=True).select_option("add_tag")
    step.get_by_label("Tag").fill("asked-price")
    form.get_by_role("button", name="Save the scenario").click()
    page.wait_for_url("**/scenarios/*/")
    assert page.get_by_test_id("scenario-state").inner_text() == "On"
    scenario = Scenario.objects.get(name="Price reply")
    asker = contacts[150]  # never activated this month
    Message.objects.create(workspace=workspace, contact=asker, direction="in", origin="contact",
                           status="received", text="What's the price?")
    inbound_event_handle(InboundEvent(workspace_id=workspace.pk, contact_id=asker.pk, type="message",
                                      occurred_at=timezone.now(), text="What's the price?", meta_id="mid.price.1"))
    page.reload()
    runs = page.get_by_test_id("runs")
    assert runs.get_by_role("link", name=f"@{asker.username}").is_visible()
    assert runs.get_by_text("Completed").is_visible()
    assert ScenarioRun.objects.get(scenario=scenario).status == "completed"
    assert ActivationRecord.objects.get(contact=asker, month=month_of()).kind == "scenario"
    shot(page, "flow-scenario-watched")

    # A segment run and an enrichment job, started from the segments' pages, each through the gate.
    Tag.objects.create(workspace=workspace, name="newsletter").contacts.add(*contacts[120:130])
    Tag.objects.create(workspace=workspace, name="press").contacts.add(*contacts[130:135])
    page.get_by_role("link", name="Segments").click()
    page.get_by_role("link", name="New segment").click()
    form = page.get_by_test_id("segment-form")
    form.get_by_label("Name").fill("Newsletter")
    form.get_by_label("Has any of these tags").fill("newsletter")
    form.get_by_role("button", name="Save the segment").click()
    page.wait_for_url("**/segments/*/")
    assert page.get_by_test_id("segment-size").inner_text() == "10"
    page.get_by_role("button", name="Run the segmentation now").click()
    page.reload()
    assert page.get_by_test_id("last-run").inner_text().endswith(": 10 placed, 0 limited")
    newsletter = Segment.objects.get(name="Newsletter")
    assert SegmentMembership.objects.filter(segment=newsletter).count() == 10
    assert set(ActivationRecord.objects.filter(workspace=workspace, month=month_of(), kind="segmentation",
                                               automation_ref=newsletter.ref).values_list("contact_id", flat=True)
               ) == {c.pk for c in contacts[120:130]}

    press = segment_create(workspace=workspace, name="Press", rules={"tags_any": ["press"]})
    page.goto(f"{live_server.url}/w/{workspace.pk}/segments/{press.pk}/")
    page.get_by_role("button", name="Enrich its 5 contacts").click()
    assert page.get_by_test_id("jobs").get_by_role("cell", name="Done").is_visible()
    job = EnrichmentJob.objects.get(segment=press)
    assert (job.enriched_count, job.limited_count) == (5, 0)
    assert Contact.objects.filter(pk__in=job.contact_ids, enriched_at__isnull=False).count() == 5
    assert ActivationRecord.objects.filter(contact__in=contacts[130:135], month=month_of(), kind="enrichment",
                                           automation_ref=job.ref).count() == 5
    # The campaign reached contacts already counted this month (free); the scenario, the run and the job
    # each counted the new ones, once.
    assert usage(workspace).activated == activated_before + 1 + 10 + 5
    shot(page, "flow-segment-run-and-enrichment")
    context.close()
    assert csp == [], csp
