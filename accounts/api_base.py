"""The API views' base over accounts: token authentication, the workspace guard, Idempotency-Key.

Every app's API views derive from ApiView or WorkspaceView here; the generic parts (the error
shape, pagination, throttles, the schema class) are in inro.api and need no app.
"""

import functools
import hashlib
import json
import re

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.crypto import constant_time_compare
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from accounts.models import ApiToken
from accounts.selectors import membership_for_user
from accounts.services import (
    api_token_hash,
    api_token_revoke,
    api_token_touch,
    idempotency_claim,
    idempotency_complete,
    idempotency_release,
)
from inro.api import BaseApiView

_TOKEN_KEY = re.compile(r"[0-9a-f]{40}")


class ApiTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>` over ApiToken (hashed keys, one per device).

    Subclassing DRF's class keeps `authenticate_header` (so a missing or bad token is a 401 with
    `WWW-Authenticate: Token`, not a 403) and drf-spectacular's token security scheme.
    """

    keyword = "Token"
    model = ApiToken

    def authenticate_credentials(self, key):
        token = None
        if _TOKEN_KEY.fullmatch(key):
            token = ApiToken.objects.select_related("user").filter(key_hash=api_token_hash(key)).first()
        if token is not None and not constant_time_compare(token.password_fingerprint,
                                                           token.user.get_session_auth_hash()):
            token = None  # the password changed since this device logged in
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("This token is not valid or was revoked. Log in again.")
        if token.is_expired():
            api_token_revoke(token=token)
            raise exceptions.AuthenticationFailed("This token expired (unused too long, or too old). Log in again.")
        api_token_touch(token=token)
        return token.user, token


class ApiView(BaseApiView):
    # Base of every API view: token auth over ApiToken, on inro.api's JSON-only, throttled base.
    # (Comments, not docstrings, here: drf-spectacular would show a base class's docstring.)

    authentication_classes = [ApiTokenAuthentication]


_ROLE_WORDS = {"admin": "owners and admins", "owner": "owners"}


class WorkspaceView(ApiView):
    # A view under /workspaces/{workspace_id}/: 404 unless the user is a member (the tenancy guard),
    # then 403 unless their role is at least the one `required_roles` names for the method (the role
    # matrix, docs/roles.md; a method not listed is open to every member). The schema documents the 403.

    required_roles: dict[str, str] = {}
    membership = None
    workspace = None

    def initial(self, request, *args, **kwargs):
        # DRF's own initial (authentication, permissions, throttles), then tenancy and role, then the
        # body: an outsider gets 404 and a role-less member 403 whatever they send.
        GenericAPIView.initial(self, request, *args, **kwargs)
        self.membership = membership_for_user(user=request.user, workspace_id=kwargs["workspace_id"])
        self.workspace = self.membership.workspace
        role = self.required_roles.get(request.method)
        if role is not None and not self.membership.has_role(role):
            raise exceptions.PermissionDenied(
                f"Only {_ROLE_WORDS[role]} of this workspace can do this. Ask one of them.")
        self.check_body(request)

    def require_manager(self, action: str) -> None:
        """Owners and admins only: a member gets 403 (after the 404 guard, so outsiders learn nothing)."""
        if not self.membership.can_manage:
            raise exceptions.PermissionDenied(f"Only owners and admins can {action}. Ask one of them.")


_KEY_CHARS = re.compile(r"[\x21-\x7e]{1,255}")


def _request_fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, cls=DjangoJSONEncoder, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def idempotent(handler):
    """Honour `Idempotency-Key` on a side-effecting POST: per user and route, 24 hours.

    The first request runs and its successful answer is stored; a repeat gets that answer back (with
    `Idempotent-Replayed: true`) and runs nothing; the same key with another body, or while the first
    is still running, is a 409. A failed first request frees the key for a retry.
    """

    @functools.wraps(handler)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return handler(self, request, *args, **kwargs)
        if not _KEY_CHARS.fullmatch(key):
            raise exceptions.ValidationError(
                {"Idempotency-Key": ["Use 1 to 255 printable ASCII characters without spaces, e.g. a UUID."]}
            )
        claim = idempotency_claim(user=request.user, route=f"{request.method} {request.path}", key=key,
                                  request_hash=_request_fingerprint(request))
        if claim.replay:
            return Response(claim.record.response_body, status=claim.record.response_status,
                            headers={"Idempotent-Replayed": "true"})
        try:
            response = handler(self, request, *args, **kwargs)
        except BaseException:
            idempotency_release(record=claim.record)
            raise
        if 200 <= response.status_code < 300:
            idempotency_complete(record=claim.record, status=response.status_code, body=response.data)
        else:
            idempotency_release(record=claim.record)
        return response

    wrapper.idempotent = True
    return wrapper
