"""End-to-end inbox: a signed Meta DM arrives while the inbox is open and shows without a reload; the API
lists it with one unread; opening it reads it for that member only; replying works, at 1366 and 390 px."""

import datetime
import json

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Membership
from accounts.services import api_token_create
from contacts.models import Contact, Message
from tests.contacts.conftest import sign
from tests.factories import ContactFactory, MembershipFactory, UserFactory, WorkspaceFactory
from tests.instagram.helpers import dm_payload
from tests.web.test_browser import _async_unsafe_allowed, browser, shot, sign_in  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
IG_ACCOUNT = "17841400000000555"


@pytest.fixture
def inbox_brand():
    owner = UserFactory(email="olga@inbox.test", full_name="Olga Owner")
    colleague = UserFactory(email="max@inbox.test", full_name="Max Member")
    workspace = WorkspaceFactory(name="Inbox Brand", instagram_account_id=IG_ACCOUNT)
    MembershipFactory(user=owner, workspace=workspace, role=Membership.Role.OWNER)
    MembershipFactory(user=colleague, workspace=workspace, role=Membership.Role.MEMBER)
    earlier = timezone.now() - datetime.timedelta(hours=2)
    known = ContactFactory(workspace=workspace, username="known.customer", name="Kim Known", last_inbound_at=earlier)
    Message.objects.create(workspace=workspace, contact=known, direction="in", origin="contact",
                           status="received", text="Thanks, got it!", created_at=earlier)
    return workspace, owner, colleague


def api_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user)[1]}")
    return client


def unread_of(user, workspace, contact) -> int:
    rows = api_for(user).get(f"/api/v1/workspaces/{workspace.pk}/conversations/").json()["results"]
    return next(row["unread"] for row in rows if row["contact"]["id"] == contact.pk)


def deliver_dm(sender: str, mid: str, text: str) -> None:
    body = json.dumps(dm_payload(IG_ACCOUNT, sender, mid, text)).encode()
    response = Client().post("/webhooks/instagram/", data=body, content_type="application/json",
                             HTTP_X_HUB_SIGNATURE_256=sign(body))
    assert response.status_code == 200


def no_sideways_scroll(page, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"the inbox scrolls sideways at {width}px ({scroll}px)"


@pytest.mark.parametrize("width", [1366, 390])
def test_a_dm_arrives_live_is_read_per_member_and_answered(browser, live_server, inbox_brand, width):  # noqa: F811
    workspace, owner, colleague = inbox_brand
    context = browser.new_context(viewport={"width": width, "height": 900}, is_mobile=width < 500,
                                  locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(20_000)
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    sign_in(page, live_server, owner.email, workspace)
    page.get_by_role("link", name="Inbox").click()
    page.wait_for_url(f"**/w/{workspace.pk}/inbox/")
    assert page.get_by_text("@known.customer").is_visible()
    no_sideways_scroll(page, width)
    page.evaluate("window.stillTheSamePage = true")  # gone if the page reloads

    deliver_dm("5557001", f"mid.live.{width}", "Is the blue one back in stock?")

    row = page.locator(".conversation-row", has_text="@").filter(has_text="Is the blue one back in stock?")
    row.wait_for()  # polled in, no reload
    assert page.evaluate("window.stillTheSamePage") is True
    assert row.get_by_test_id("unread").inner_text() == "1 unread"
    assert page.locator(".conversation-row").first.inner_text().count("Is the blue one") == 1  # newest first
    no_sideways_scroll(page, width)
    shot(page, f"inbox-{width}")
    person = Contact.objects.get(workspace=workspace, igsid="5557001")
    assert unread_of(owner, workspace, person) == 1
    assert unread_of(colleague, workspace, person) == 1

    row.get_by_role("link").click()
    page.wait_for_url(f"**/inbox/?c={person.pk}")
    assert page.get_by_test_id("thread").inner_text().count("Is the blue one back in stock?") == 1
    assert "Reply as usual until" in page.get_by_test_id("reply-window").inner_text()
    assert unread_of(owner, workspace, person) == 0  # read by the owner...
    assert unread_of(colleague, workspace, person) == 1  # ...and still unread for the colleague
    if width < 500:
        assert not page.locator(".inbox-list").is_visible()  # one pane at a time on a phone
        assert page.get_by_role("link", name="All conversations").is_visible()
    else:
        assert page.locator(".inbox-list").is_visible() and page.locator(".inbox-thread").is_visible()
    no_sideways_scroll(page, width)

    page.get_by_role("textbox", name="Message").fill("Yes! Back since this morning.")
    page.get_by_role("button", name="Reply").click()
    page.wait_for_url(f"**/inbox/?c={person.pk}")
    assert page.get_by_text(f"Reply sent to @{person.username}" if person.username else "Reply sent to").is_visible()
    reply = Message.objects.get(contact=person, direction="out")
    assert (reply.origin, reply.status, reply.tag, reply.sent_by) == ("manual", "sent", "", owner)
    shot(page, f"inbox-thread-{width}")
    context.close()
    assert violations == [], violations
