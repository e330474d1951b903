"""The workspace's Instagram page (connect, reconnect, disconnect) and Business Login's callback.

Mounted by web/instagram_urls.py: /w/<id>/instagram/ and /instagram/callback/ (the redirect URI
registered with Meta: SITE_URL + /instagram/callback/).
"""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Membership
from contacts import instagram
from web.account_views import render_workspace, workspace_view


@workspace_view
def instagram_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    return render_workspace(request, membership, "contacts/instagram.html", {
        "section": "instagram",
        "connection": instagram.connection_for(workspace=membership.workspace),
    })


@require_POST
@workspace_view
def instagram_connect(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Owners and admins: off to Instagram's consent page (a link good for 10 minutes, once)."""
    if not membership.can_manage:
        messages.error(request, "Only the workspace's owners and admins can connect its Instagram account.")
        return redirect("instagram", workspace_id=membership.workspace_id)
    return redirect(instagram.connect_url(workspace=membership.workspace, user=request.user))


@require_POST
@workspace_view
def instagram_disconnect(request: HttpRequest, membership: Membership) -> HttpResponse:
    if not membership.can_manage:
        messages.error(request, "Only the workspace's owners and admins can disconnect its Instagram account.")
    elif instagram.connection_disconnect(workspace=membership.workspace):
        messages.success(request, "Instagram account disconnected: its access token was deleted.")
    else:
        messages.info(request, "No Instagram account was connected.")
    return redirect("instagram", workspace_id=membership.workspace_id)


@require_GET
def instagram_callback(request: HttpRequest) -> HttpResponse:
    """Where Instagram sends the browser back after consent (signed-in or not: the state says who)."""
    try:
        connection = instagram.connection_complete(
            code=request.GET.get("code", ""), state=request.GET.get("state", ""),
            error=request.GET.get("error", ""),
        )
    except instagram.ConnectRefused as refused:
        return render(request, "contacts/instagram_result.html",
                      {"ok": False, "message": refused.message, "code": refused.code}, status=400)
    return render(request, "contacts/instagram_result.html", {"ok": True, "connection": connection})
