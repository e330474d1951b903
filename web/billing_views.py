"""Billing pages: thin, they resolve input and call one service."""

import datetime
import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Membership
from accounts.selectors import membership_for_user
from billing import money, selectors
from billing.checkout import MAX_ADDON_PACKS, checkout_begin, checkout_session_verify, portal_start
from billing.models import CheckoutSession
from billing.months import billing_zone
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


def _packs_asked(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    if not raw.isdigit() or len(raw) > 3 or int(raw) > MAX_ADDON_PACKS:
        return None
    return int(raw)


@login_required
@require_GET
def overview(request: HttpRequest, workspace_id: int) -> HttpResponse:
    membership = membership_for_user(user=request.user, workspace_id=workspace_id)
    workspace = membership.workspace
    billing = selectors.billing_overview(workspace=workspace)
    owner = membership.can_manage_billing
    # Money read from Stripe (next charge, invoices, a pack change's price): owners only, like the
    # changes themselves (docs/roles.md).
    billing_money = money.billing_money(subscription=billing.subscription) if owner else None
    preview, preview_error = None, ""
    asked = _packs_asked(request.GET.get("packs")) if owner and "packs" in request.GET else None
    if owner and "packs" in request.GET and asked is None:
        preview_error = f"Add-on packs must be a whole number from 0 to {MAX_ADDON_PACKS}."
    elif asked is not None and asked != billing.addon_packs:
        try:
            preview = money.pack_change_preview(workspace=workspace, addon_packs=asked)
        except ApplicationError as error:
            preview_error = error.message
    return render(request, "billing/overview.html", {
        "workspace": workspace, "membership": membership, "billing": billing,
        "max_addon_packs": MAX_ADDON_PACKS, "money": billing_money, "preview": preview,
        "preview_error": preview_error, "asked_packs": asked,
        "monthly_total_cents": billing.plan.price_cents + billing.addon_packs * billing.plan.addon_pack_price_cents,
        "section": "billing",
        "quota_reset_day": billing.quota_resets_at.astimezone(billing_zone()).date(),
        "quota_last_day": (billing.quota_resets_at - datetime.timedelta(seconds=1)).astimezone(billing_zone()).date(),
        "reset_zone": billing_zone().key,
    })


@login_required
@require_POST
def cancel(request: HttpRequest, workspace_id: int) -> HttpResponse:
    """Cancel at the end of the paid period (`undo` takes a scheduled cancellation back)."""
    membership = _manager(request, workspace_id)
    undo = request.POST.get("undo") == "1"
    try:
        subscription = money.cancellation_set(workspace=membership.workspace, user=request.user, cancel=not undo)
    except ApplicationError as error:
        messages.error(request, error.message)
        return _back(workspace_id)
    end = subscription.current_period_end
    when = f"{end:%B} {end.day}" if end else "the end of the paid period"
    if undo:
        messages.success(request, f"Your {subscription.plan.name} plan goes on: it renews on {when}.")
    else:
        messages.success(request, f"Your {subscription.plan.name} plan ends on {when}, the end of the period you "
                                  "paid for; you keep it until then, and nothing more is charged.")
    return _back(workspace_id)


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
        waiting = selectors.quota_parts(workspace=membership.workspace).scheduled
        if waiting is not None and waiting.addon_packs == started.checkout.addon_packs:
            end = waiting.takes_effect_at
            messages.success(request, f"Add-on packs go down to {waiting.addon_packs} on {end:%B} {end.day}, the "
                                      "end of the period you paid for; until then you keep what you have.")
        else:
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
