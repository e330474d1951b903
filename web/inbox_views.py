"""The inbox page: conversations newest first, one open conversation with the reply form.

Live by short polling rather than server-sent events: the page asks `…/inbox/live/` every few seconds
with `If-None-Match`; while nothing changed the answer is a 304 with no body, after one indexed query.
An SSE stream would hold a web worker (gunicorn's sync workers) per open tab for as long as it stays
open, and long-lived responses are cut by proxies and transaction poolers; polling costs one short
request per tab and uses the same ETag the mobile app's API polls with (bench/NOTES.md has the figures).

Opening a conversation marks it read for the member who opened it, and only for them. Replies go through
the manual DM path (`contacts.services.message_send_manual`): never counted, never blocked by the quota
(docs/product.md rule 6), within Meta's reply window, shown here by the same function that enforces it.
"""

import datetime

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import Membership
from contacts import selectors as contact_selectors
from contacts import services as contact_services
from contacts.models import Contact, Conversation, Message
from inro.errors import ApplicationError
from web import inbox
from web.account_views import render_workspace, workspace_view
from web.contact_forms import MessageForm

PAGE_SIZE = 50
POLL_SECONDS = 4
FILTERS = {
    "unread": ("Unread", {"unread": True}),
    "waiting": ("Waiting for a reply", {"waiting": True}),
    "limited": ("Limited", {"limited": True}),
}


def _filters(request: HttpRequest) -> tuple[str, str, dict]:
    """The page's filter (one of FILTERS or "") and source, as conversation_list arguments."""
    show = request.GET.get("show", "")
    show = show if show in FILTERS else ""
    source = request.GET.get("source", "")
    source = source if source in Contact.Source.values else ""
    arguments = dict(FILTERS[show][1]) if show else {}
    if source:
        arguments["source"] = source
    return show, source, arguments


def _before(request: HttpRequest) -> inbox.Since | None:
    return inbox.Since.parse(request.GET.get("before", ""))


def _list_context(request: HttpRequest, membership: Membership, now: datetime.datetime) -> dict:
    show, source, arguments = _filters(request)
    rows = inbox.conversation_list(membership=membership, **arguments)
    before = _before(request)
    if before is not None:
        rows = rows.filter(last_activity_at__lte=before.activity_at).exclude(
            last_activity_at=before.activity_at, contact_id__gte=before.message_id)
    page = list(rows[: PAGE_SIZE + 1])
    more = len(page) > PAGE_SIZE
    page = inbox.conversation_rows_complete(membership=membership, rows=page[:PAGE_SIZE])
    query = {"show": show, "source": source}
    base = "&".join(f"{k}={v}" for k, v in query.items() if v)
    older = None
    if more:
        last = page[-1]
        older = f"?{base + '&' if base else ''}before={inbox.Since(last.last_activity_at, last.contact_id).token()}"
    return {
        "rows": [_row(row, now) for row in page],
        "show": show,
        "source": source,
        "filter_query": base,
        "older_query": older,
    }


def _row(conversation: Conversation, now: datetime.datetime) -> dict:
    message, contact = conversation.last_message, conversation.contact
    return {
        "contact": contact,
        "conversation": conversation,
        "message": message,
        "sender": inbox.sender_of(message),
        "waiting": message is not None and message.direction == Message.Direction.INBOUND,
        "window": inbox.reply_window_of(contact, now=now),
    }


def _thread_context(membership: Membership, contact: Contact | None, now: datetime.datetime) -> dict:
    if contact is None:
        return {"open": None}
    return {
        "open": contact,
        "thread": contact_selectors.contact_messages(contact=contact),
        "window": inbox.reply_window_of(contact, now=now),
    }


def _open_contact(request: HttpRequest, membership: Membership) -> Contact | None:
    raw = request.GET.get("c", "")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise Http404("No such conversation.")
    contact = contact_selectors.contact_get(workspace=membership.workspace, contact_id=int(raw))
    if contact is None:
        raise Http404("No such conversation.")
    return contact


def _live_url(workspace_id: int, request: HttpRequest) -> str:
    query = request.GET.urlencode()
    return reverse("inbox_live", kwargs={"workspace_id": workspace_id}) + (f"?{query}" if query else "")


def _page(request: HttpRequest, membership: Membership, contact: Contact | None, *,
          form: MessageForm | None = None, status: int = 200) -> HttpResponse:
    now = timezone.now()
    context = {**_list_context(request, membership, now), **_thread_context(membership, contact, now)}
    return render_workspace(request, membership, "inbox/inbox.html", {
        "section": "inbox",
        **context,
        "form": form or MessageForm(),
        "sources": Contact.Source.choices,
        "filters": [(key, label) for key, (label, _) in FILTERS.items()],
        "live_url": _live_url(membership.workspace_id, request),
        "poll_seconds": POLL_SECONDS,
    }, status=status)


@workspace_view
def inbox_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    contact = _open_contact(request, membership)
    if contact is not None:
        contact_services.conversation_mark_read(membership=membership, contact=contact)
    return _page(request, membership, contact)


@workspace_view
def inbox_live(request: HttpRequest, membership: Membership) -> HttpResponse:
    """What the page polls: the list (and the open conversation's messages) as HTML, with an ETag; 304
    while nothing changed."""
    now = timezone.now()
    contact = _open_contact(request, membership)
    context = {"workspace": membership.workspace, **_list_context(request, membership, now),
               **_thread_context(membership, contact, now)}
    html = render_to_string("inbox/_live.html", context, request=request)
    etag = inbox.etag_for(html.encode())
    if inbox.if_none_match(request.headers.get("If-None-Match"), etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(html)
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


@require_POST
@workspace_view
def inbox_reply(request: HttpRequest, membership: Membership, contact_id: int) -> HttpResponse:
    """A member's reply from the inbox: the manual DM path (rule 6), within Meta's reply window."""
    contact = contact_selectors.contact_get(workspace=membership.workspace, contact_id=contact_id)
    if contact is None:
        raise Http404("No such conversation.")
    form = MessageForm(request.POST)
    if form.is_valid():
        try:
            result = contact_services.message_send_manual(contact=contact, text=form.cleaned_data["text"],
                                                          sent_by=request.user)
        except ApplicationError as error:
            form.add_error("text", error.message)
            return _page(request, membership, contact, form=form, status=error.status)
        if result.status == Message.Status.FAILED:
            messages.error(request, f"Instagram refused the message: {result.message.error or 'no reason given'}.")
        else:
            messages.success(request, f"Reply sent to {contact}" + (
                " as a human agent's reply." if result.message.tag else "."))
        return redirect(reverse("inbox", kwargs={"workspace_id": membership.workspace_id}) + f"?c={contact.pk}")
    return _page(request, membership, contact, form=form, status=400)
