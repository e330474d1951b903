"""Security headers on every response: CSP without inline scripts, nosniff, referrer, no framing."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import RequestFactory

from inro.middleware import ContentSecurityPolicyMiddleware, csp_exempt

pytestmark = pytest.mark.django_db


def test_every_response_carries_the_security_headers(client):
    response = client.get("/healthz")

    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["script-src"] == "'self'"  # no inline scripts, no eval, no third party
    assert "unsafe-eval" not in csp
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


def test_the_api_docs_page_runs_no_inline_script(client):
    """Swagger UI under the strict policy: every script is a same-origin file (split view, sidecar)."""
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all('src="' in attributes and not body.strip() for attributes, body in scripts)
    script_url = re.findall(r'<script src="([^"]*\?script=?)"', html)
    assert len(script_url) == 1
    init = client.get(script_url[0].replace("&amp;", "&"))
    assert init.status_code == 200 and "SwaggerUIBundle" in init.content.decode()


def test_no_template_has_an_inline_script_or_event_handler():
    """The policy forbids inline scripts: one in a template would silently not run in production."""

    root = Path(settings.BASE_DIR)
    templates = [p for p in root.rglob("*.html") if ".venv" not in p.parts and "staticfiles" not in p.parts
                 and "var" not in p.parts and "node_modules" not in p.parts]
    offences = []
    for path in templates:
        text = path.read_text()
        for match in re.finditer(r"<script(?![^>]*\bsrc=)[^>]*>", text):
            offences.append(f"{path.relative_to(root)}: inline {match.group(0)}")
        for match in re.finditer(r"<[^>]+\son(?:click|load|submit|change|input|error|mouse\w+|key\w+)\s*=", text):
            offences.append(f"{path.relative_to(root)}: event handler in {match.group(0)[:60]}")

    assert len(templates) > 5
    assert offences == []
