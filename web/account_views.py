"""The customer web app's account pages and the workspace scoping every page goes through."""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy

from accounts.models import Membership
from accounts.selectors import membership_for_user, workspaces_of_user
from accounts.throttling import DEVICE_COOKIE
from web.account_forms import ResetForm, SignInForm

LAST_WORKSPACE_SESSION_KEY = "inro.last_workspace"


def workspace_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Login required, then the tenancy guard: outsiders get 404. The view gets the membership."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, workspace_id: int, *args, **kwargs) -> HttpResponse:
        membership = membership_for_user(user=request.user, workspace_id=workspace_id)
        if request.session.get(LAST_WORKSPACE_SESSION_KEY) != membership.workspace_id:
            request.session[LAST_WORKSPACE_SESSION_KEY] = membership.workspace_id  # "/" returns here
        return view(request, membership, *args, **kwargs)

    return wrapper


def render_workspace(
    request: HttpRequest, membership: Membership, template: str, context: dict, *, status: int = 200
) -> HttpResponse:
    """Render a workspace page with the navigation (workspace switcher, current section)."""
    memberships = workspaces_of_user(user=request.user)
    return render(
        request,
        template,
        {
            "membership": membership,
            "workspace": membership.workspace,
            "memberships": memberships,
            "can_manage": membership.can_manage,
            "can_manage_billing": membership.can_manage_billing,
            **context,
        },
        status=status,
    )


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The usage page of the workspace used last (or the first one); a plain page when there is none."""
    memberships = workspaces_of_user(user=request.user)
    if not memberships:
        return render(request, "accounts/no_workspace.html", {"memberships": []})
    last = request.session.get(LAST_WORKSPACE_SESSION_KEY)
    chosen = next((m for m in memberships if m.workspace_id == last), memberships[0])
    return redirect("usage", workspace_id=chosen.workspace_id)


class SignInView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        # This browser is now a trusted device: other people's failed attempts do not slow it down.
        response.set_cookie(DEVICE_COOKIE, form.device_key, max_age=settings.LOGIN_DEVICE_TRUST_DAYS * 86400,
                            secure=settings.SESSION_COOKIE_SECURE, httponly=True, samesite="Lax")
        return response


class SignOutView(auth_views.LogoutView):
    """POST only (Django 5): a link cannot sign anyone out behind their back."""


class ResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset_form.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    form_class = ResetForm
    success_url = reverse_lazy("password_reset_done")


class ResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class ResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("password_reset_complete")


class ResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"
