"""Billing pages: thin, they resolve input and call one service."""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Membership
from accounts.selectors import membership_for_user
from billing import selectors
from billing.checkout import MAX_ADDON_PACKS, checkout_begin, checkout_session_verify, portal_start
from billing.models import CheckoutSession
from billing.stripe_client import BillingError
from inro.errors import ApplicationError

logger = logging.getLogger(__name__)


def _manager(request: HttpRequest, workspace_id: int) -> Membership:
    membership = membership_for_user(user=request.user, workspace_id=workspace_id)  # 404 for outsiders
    if not membership.can_manage_billing:
        raise PermissionDenied("Only owners can change the plan or payment.")
    return membership


def _back(workspace_id: int) -> HttpResponse:
    return redirect("billing:overview", workspace_id=workspace_id)


@login_required
@require_GET
def overview(request: HttpRequest, workspace_id: int) -> HttpResponse:
    membership = membership_for_user(user=request.user, workspace_id=workspace_id)
    billing = selectors.billing_overview(workspace=membership.workspace)
    return render(request, "billing/overview.html", {
        "workspace": membership.workspace, "membership": membership, "billing": billing,
        "max_addon_packs": MAX_ADDON_PACKS,
    })


@login_required
@require_POST
def checkout(request: HttpRequest, workspace_id: int) -> HttpResponse:
    membership = _manager(request, workspace_id)
    raw_packs = (request.POST.get("addon_packs") or "0").strip()
    if not raw_packs.isdigit() or len(raw_packs) > 3:
        messages.error(request, f"Add-on packs must be a whole number from 0 to {MAX_ADDON_PACKS}.")
        return _back(workspace_id)
    try:
        started = checkout_begin(
            workspace=membership.workspace, user=request.user,
            plan_code=(request.POST.get("plan") or "").strip(), addon_packs=int(raw_packs),
        )
    except BillingError as error:
        messages.error(request, error.message)
        return _back(workspace_id)
    except ApplicationError as error:
        if error.status == 403:
            raise PermissionDenied(error.message) from error
        messages.error(request, error.message)
        return _back(workspace_id)
    if started.kind == "quantity":
        messages.success(request, f"Add-on packs changed to {started.checkout.addon_packs}.")
    elif started.kind == "unchanged":
        messages.info(request, "You already have that many add-on packs.")
    return redirect(started.url)


@login_required
@require_GET
def checkout_success(request: HttpRequest, workspace_id: int) -> HttpResponse:
    membership = membership_for_user(user=request.user, workspace_id=workspace_id)
    try:
        checkout_row = checkout_session_verify(
            workspace=membership.workspace, session_id=request.GET.get("session_id", "")[:255]
        )
    except ApplicationError as error:
        raise Http404("No such checkout.") from error
    done = checkout_row.status == CheckoutSession.Status.COMPLETED
    return render(request, "billing/checkout_success.html", {
        "workspace": membership.workspace, "checkout": checkout_row, "done": done,
        "billing": selectors.billing_overview(workspace=membership.workspace) if done else None,
    })


@login_required
@require_GET
def checkout_cancel(request: HttpRequest, workspace_id: int) -> HttpResponse:
    membership = membership_for_user(user=request.user, workspace_id=workspace_id)
    return render(request, "billing/checkout_cancel.html", {"workspace": membership.workspace})


@login_required
@require_POST
def portal(request: HttpRequest, workspace_id: int) -> HttpResponse:
    membership = _manager(request, workspace_id)
    try:
        url = portal_start(workspace=membership.workspace, user=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
        return _back(workspace_id)
    return redirect(url)
