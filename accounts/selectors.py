"""Reads for accounts, starting with the one tenancy guard every page and endpoint uses."""

from django.db.models import F
from django.http import Http404

from accounts.models import ApiToken, Membership, User, Workspace


def membership_for_user(*, user: User, workspace_id: int) -> Membership:
    """The user's membership in a live workspace; 404 (not 403) for outsiders, so ids don't leak."""
    if not user.is_authenticated:
        raise Http404("No such workspace.")
    membership = (
        Membership.objects.select_related("workspace")
        .filter(user=user, workspace_id=workspace_id, workspace__deleted_at__isnull=True)
        .first()
    )
    if membership is None:
        raise Http404("No such workspace.")
    return membership


def workspace_for_user(*, user: User, workspace_id: int) -> Workspace:
    return membership_for_user(user=user, workspace_id=workspace_id).workspace


def workspaces_of_user(*, user: User) -> list[Membership]:
    return list(
        Membership.objects.select_related("workspace")
        .filter(user=user, workspace__deleted_at__isnull=True)
        .order_by("workspace__name")
    )


def api_tokens_of_user(*, user: User) -> list[ApiToken]:
    """The user's devices (one API token each) that still work, most recently used first."""
    tokens = ApiToken.objects.filter(user=user).order_by(F("last_used_at").desc(nulls_last=True), "-created_at", "-id")
    return [token for token in tokens if not token.is_expired()]
