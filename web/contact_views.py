"""The contacts pages of the customer web app: the database with filters, a contact's page, and the
manual actions taken from it (send a DM, add to a folder). Manual actions never go through the
activation gate, so they work at any quota state (docs/product.md rule 6)."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Membership
from billing import selectors as billing_selectors
from billing.months import month_of
from contacts import messaging, services
from contacts import selectors as contact_selectors
from contacts.models import Contact, Message
from inro.errors import ApplicationError
from web.account_views import render_workspace, workspace_view
from web.contact_forms import ContactFilterForm, FolderAddForm, MessageForm

PAGE_SIZE = 50


@workspace_view
def contact_list_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    workspace = membership.workspace
    folders = list(contact_selectors.folder_list(workspace=workspace))
    tags = list(contact_selectors.tag_list(workspace=workspace))
    form = ContactFilterForm(request.GET or None, folders=folders, tags=tags)
    filters = form.filters()
    contacts = contact_selectors.contact_list(
        workspace=workspace, search=filters.get("q"), source=filters.get("source"),
        folder_id=filters.get("folder"), tag=filters.get("tag"),
    )
    if "activated" in filters:
        contacts = billing_selectors.contacts_filter_activated(
            contacts, workspace=workspace, activated=filters["activated"] == "yes"
        )
    database_total = billing_selectors.database_contact_count(workspace=workspace)
    paginator = Paginator(contacts.prefetch_related("tags"), PAGE_SIZE)
    if not filters:
        paginator.count = database_total  # the same COUNT(*): run it once on a big database
    page = paginator.get_page(request.GET.get("page"))
    rows = list(page.object_list)
    activated_ids = set(
        billing_selectors.contacts_filter_activated(
            Contact.objects.filter(workspace=workspace, pk__in=[c.pk for c in rows]), workspace=workspace,
            activated=True,
        ).values_list("pk", flat=True)
    ) if rows else set()
    query = request.GET.copy()
    query.pop("page", None)
    return render_workspace(request, membership, "contacts/list.html", {
        "section": "contacts",
        "form": form,
        "filtered": bool(filters),
        "page": page,
        "rows": [(contact, contact.pk in activated_ids) for contact in rows],
        "database_total": database_total,
        "page_query": query.urlencode(),
        "folders": folders,
    }, status=400 if form.is_bound and form.errors else 200)


def _contact_or_404(membership: Membership, contact_id: int) -> Contact:
    contact = contact_selectors.contact_get(workspace=membership.workspace, contact_id=contact_id)
    if contact is None:
        raise Http404("No such contact.")
    return contact


def _contact_page(request: HttpRequest, membership: Membership, contact: Contact, *,
                  message_form: MessageForm | None = None, folder_form: FolderAddForm | None = None,
                  folders: list | None = None, status: int = 200) -> HttpResponse:
    workspace = membership.workspace
    folders = folders if folders is not None else list(contact_selectors.folder_list(workspace=workspace))
    activations = billing_selectors.contact_activations(workspace=workspace, contact=contact)
    current = month_of()
    return render_workspace(request, membership, "contacts/detail.html", {
        "section": "contacts",
        "contact": contact,
        "activations": activations,
        "activated_now": next((a for a in activations if a.month == current), None),
        "conversation": contact_selectors.contact_messages(contact=contact),
        "contact_folders": [m.folder for m in contact.folder_memberships.select_related("folder").order_by(
            "folder__name")],
        "contact_tags": list(contact.tags.all()),
        "window_closes_at": messaging.messaging_window_closes_at(contact),
        "window_open": messaging.window_is_open(contact),
        "message_form": message_form or MessageForm(),
        "folder_form": folder_form or FolderAddForm(folders=folders),
        "summary": billing_selectors.usage_summary(workspace=workspace),
    }, status=status)


@workspace_view
def contact_page(request: HttpRequest, membership: Membership, contact_id: int) -> HttpResponse:
    return _contact_page(request, membership, _contact_or_404(membership, contact_id))


@require_POST
@workspace_view
def contact_message(request: HttpRequest, membership: Membership, contact_id: int) -> HttpResponse:
    """Send a DM by hand: a manual action, never counted and never blocked by the quota (rule 6)."""
    contact = _contact_or_404(membership, contact_id)
    form = MessageForm(request.POST)
    if not form.is_valid():
        return _contact_page(request, membership, contact, message_form=form, status=400)
    try:
        message = services.message_send_manual(
            contact=contact, text=form.cleaned_data["text"], sent_by=request.user
        ).message
    except ApplicationError as error:
        # The form's one field: the refusal (bad text, or Meta's reply window closed) shows next to it.
        form.add_error("text", error.message)
        return _contact_page(request, membership, contact, message_form=form, status=error.status)
    if message.status == Message.Status.FAILED:
        messages.error(request, f"Instagram refused the message: {message.error or 'no reason given'}. "
                                "Try again in a moment.")
    else:
        messages.success(request, f"Message sent to {contact}.")
    return redirect(reverse("contact", kwargs={"workspace_id": membership.workspace_id, "contact_id": contact.pk})
                    + "#conversation")


@require_POST
@workspace_view
def contact_folder_add(request: HttpRequest, membership: Membership, contact_id: int) -> HttpResponse:
    """Add the contact to a folder (or a new one) by hand: manual, works at any quota state."""
    contact = _contact_or_404(membership, contact_id)
    folders = list(contact_selectors.folder_list(workspace=membership.workspace))
    form = FolderAddForm(request.POST, folders=folders)
    if form.is_valid():
        try:
            if form.cleaned_data.get("new_folder"):
                folder = services.folder_create(workspace=membership.workspace, name=form.cleaned_data["new_folder"])
            else:
                folder = next(f for f in folders if f.pk == form.cleaned_data["folder"])
            added = services.folder_add_contacts(folder=folder, contact_ids=[contact.pk], added_by=request.user)
        except ApplicationError as error:
            for field, problems in error.fields.items():
                form.add_error("new_folder" if field == "name" else None, problems)
            if not error.fields:
                form.add_error(None, error.message)
        else:
            messages.success(request, f"Added {contact} to {folder.name}." if added
                             else f"{contact} was already in {folder.name}.")
            return redirect("contact", workspace_id=membership.workspace_id, contact_id=contact.pk)
    return _contact_page(request, membership, contact, folder_form=form, folders=folders, status=400)
