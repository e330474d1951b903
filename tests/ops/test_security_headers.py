"""Security headers on every response: CSP without inline scripts, nosniff, referrer, no framing."""

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from inro.middleware import ContentSecurityPolicyMiddleware, csp_exempt

pytestmark = pytest.mark.django_db


def test_every_response_carries_the_security_headers(client):
    response = client.get("/healthz")

    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_a_view_may_set_its_own_policy_or_opt_out(settings):
    settings.CONTENT_SECURITY_POLICY = "default-src 'self'"
    request = RequestFactory().get("/")

    def own(request):
        response = HttpResponse()
        response["Content-Security-Policy"] = "default-src 'none'"
        return response

    assert ContentSecurityPolicyMiddleware(own)(request)["Content-Security-Policy"] == "default-src 'none'"
    assert "Content-Security-Policy" not in ContentSecurityPolicyMiddleware(csp_exempt(lambda r: HttpResponse()))(
        request
    )
