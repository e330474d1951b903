"""Production settings on a real sign-in: session and CSRF cookies are Secure (and the session one
HttpOnly), HSTS, nosniff, X-Frame-Options and CSP are on the response. Runs a separate process with
DJANGO_SETTINGS_MODULE=inro.settings.production against the test database."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from tests.factories import UserFactory
from tests.faults import conftest as faults  # its test_database_url(), not collected here as a test

pytestmark = [pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import json
import django
django.setup()
from django.test import Client
client = Client()
page = client.get("/login/", secure=True)
token = page.cookies["csrftoken"].value
response = client.post("/login/", {"username": "prod@example.test", "password": "correct-horse-battery",
                                   "csrfmiddlewaretoken": token}, secure=True, HTTP_REFERER="https://testserver/login/")
cookies = {name: {"secure": bool(c["secure"]), "httponly": bool(c["httponly"]), "samesite": c["samesite"]}
           for name, c in list(page.cookies.items()) + list(response.cookies.items())}
print(json.dumps({"status": response.status_code, "cookies": cookies, "headers": dict(response.headers)}))
"""


def test_production_cookies_and_headers_on_a_real_sign_in():
    user = UserFactory(email="prod@example.test")
    # A hash production's hashers read (the test settings hash with MD5 only).
    user.password = PBKDF2PasswordHasher().encode("correct-horse-battery", "prodsalt1234", iterations=1000)
    user.save(update_fields=["password"])
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "inro.settings.production", "DATABASE_URL": faults.test_database_url(),
        "SECRET_KEY": "x" * 60, "ALLOWED_HOSTS": "testserver", "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_x", "META_APP_SECRET": "meta_x", "META_VERIFY_TOKEN": "verify_x",
        "META_APP_ID": "1234", "INSTAGRAM_TOKEN_KEYS": "7ZwohmafExGyKSqOAgCyQUzrrHsgTjvnt7SzE77tbGA=",
        "LOG_LEVEL": "ERROR",
    }
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True,  # noqa: S603
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["status"] == 302  # signed in
    assert out["cookies"]["sessionid"] == {"secure": True, "httponly": True, "samesite": "Lax"}
    assert out["cookies"]["csrftoken"]["secure"] is True
    headers = out["headers"]
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
