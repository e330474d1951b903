"""The stand-in served in-process under /_fake_meta/ for the offline demo (`make run`, DEBUG only):
a consent page (pick the account, Allow or Deny) and the API calls of contacts/meta.py. Every view
answers 404 unless settings.FAKE_META_ENABLED, which only local settings set."""

import json
from urllib.parse import parse_qsl

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt

from contacts.fakemeta import FakeMeta

_fake: FakeMeta | None = None


def fake() -> FakeMeta:
    """One stand-in per process; its tokens are signed with the SECRET_KEY, so they outlive restarts."""
    global _fake
    if _fake is None:
        _fake = FakeMeta(app_id=settings.META_APP_ID, app_secret=settings.META_APP_SECRET,
                         signing_secret=settings.SECRET_KEY)
    return _fake


def _enabled() -> None:
    if not getattr(settings, "FAKE_META_ENABLED", False):
        raise Http404("The Meta stand-in is not enabled.")


def consent_page(request: HttpRequest) -> HttpResponse:
    _enabled()
    query = request.GET.dict()
    decision = query.pop("decision", "")
    username = query.pop("username", "").strip().lstrip("@")[:30]
    if decision in ("allow", "deny") and (username or decision == "deny"):
        location = fake().authorize_redirect(query, username=username or "brand", allow=decision == "allow")
        if location is None:
            return HttpResponseBadRequest("Invalid authorization request (client_id, redirect_uri, response_type).")
        return redirect(location)
    return render(request, "contacts/fake_meta_consent.html", {"query": query, "scopes": query.get("scope", "")})


@csrf_exempt
def api(request: HttpRequest, path: str) -> HttpResponse:
    _enabled()
    body, form = None, {}
    raw = request.body.decode() if request.method in ("POST", "DELETE") else ""
    if "json" in (request.content_type or ""):
        body = json.loads(raw or "null")
    elif raw:
        form = dict(parse_qsl(raw))
    status, payload = fake().handle(request.method, f"/{path}", request.GET.dict(), form,
                                    request.headers.get("Authorization", ""), body)
    return JsonResponse(payload, status=status)
