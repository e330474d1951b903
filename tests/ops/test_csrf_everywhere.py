"""CSRF on every form: no view skips Django's CSRF check except signed machine-to-machine webhooks."""

import pytest
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authentication import SessionAuthentication
from rest_framework.views import APIView

# Callers that cannot hold a CSRF token; each authenticates otherwise: Meta and Stripe sign the body
# (HMAC), Meta's data-deletion callback signs `signed_request`, scenario webhooks need a secret header
# (a browser cannot add one cross-site without a CORS preflight, which is never granted).
SIGNED_WEBHOOK_PREFIXES = ("webhooks/", "hooks/scenarios/")
# The offline demo's stand-ins for Stripe's and Meta's APIs: 404 everywhere unless FAKE_STRIPE_ENABLED /
# FAKE_META_ENABLED, which only local settings (DEBUG) set; the tests below prove they are off here.
DEMO_ONLY_PREFIXES = ("_fake_stripe/", "_fake_meta/")


def walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def test_csrf_middleware_is_on():
    assert "django.middleware.csrf.CsrfViewMiddleware" in settings.MIDDLEWARE


@pytest.mark.parametrize("route,callback", list(walk(get_resolver().url_patterns)))
def test_no_view_is_exempt_from_csrf_unless_it_is_a_signed_webhook(route, callback):
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if isinstance(view_class, type) and issubclass(view_class, APIView):
        # DRF marks its views exempt and enforces CSRF itself for session-authenticated requests;
        # any other authentication must be a token header a browser never sends on its own.
        classes = view_class.authentication_classes
        sessions = [c for c in classes if issubclass(c, SessionAuthentication)]
        assert all(c.enforce_csrf is SessionAuthentication.enforce_csrf for c in sessions), route
        return
    if getattr(callback, "csrf_exempt", False):
        assert route.startswith(SIGNED_WEBHOOK_PREFIXES + DEMO_ONLY_PREFIXES), f"{route} skips CSRF"


@pytest.mark.django_db
def test_the_demo_stripe_stand_in_is_off_outside_local_settings(client):
    assert getattr(settings, "FAKE_STRIPE_ENABLED", False) is False
    assert client.post("/_fake_stripe/v1/customers", data="x=1", content_type="text/plain").status_code == 404


@pytest.mark.django_db
def test_the_demo_meta_stand_in_is_off_outside_local_settings(client):
    assert getattr(settings, "FAKE_META_ENABLED", False) is False
    assert client.post("/_fake_meta/api/oauth/access_token", data={"code": "x"}).status_code == 404
    assert client.get("/_fake_meta/oauth/authorize?client_id=x").status_code == 404
