"""The web sign-in limits brute force: 5 failures per email and address in 15 minutes lock that pair
out (even the right password is refused) and the page says so; password validators are on."""

import pytest
from django.contrib.auth.password_validation import get_default_password_validators, validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"  # the factory's test password
LOCKED = ("Too many failed sign-in attempts for this email. For your security, sign-in is paused for 15 "
          "minutes; try again later or reset your password.")
WRONG = "That email and password don&#x27;t match an account. Check both and try again."


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def _sign_in(client, email, password, ip="203.0.113.7"):
    return client.post("/login/", {"username": email, "password": password}, REMOTE_ADDR=ip)


def test_five_failures_lock_the_email_from_that_address_and_the_page_says_so():
    user = UserFactory(email="ana@example.test")
    client = Client()
    for _ in range(5):
        response = _sign_in(client, "ana@example.test", "guess")
        assert response.status_code == 200 and WRONG in response.content.decode()

    locked = _sign_in(client, "ANA@example.test", PASSWORD)  # the right password, any case: still refused
    assert locked.status_code == 200
    assert LOCKED in locked.content.decode()
    assert "_auth_user_id" not in client.session

    # Another address, or another email from this address, is not affected.
    assert _sign_in(Client(), user.email, PASSWORD, ip="198.51.100.9").status_code == 302
    UserFactory(email="bo@example.test")
    assert _sign_in(Client(), "bo@example.test", PASSWORD).status_code == 302


def test_the_lock_lifts_after_the_window(settings):
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 1
    UserFactory(email="ana@example.test")
    for _ in range(5):
        _sign_in(Client(), "ana@example.test", "guess")
    assert "sign-in is paused" in _sign_in(Client(), "ana@example.test", PASSWORD).content.decode()
    cache.clear()  # what the expiry does after the window
    assert _sign_in(Client(), "ana@example.test", PASSWORD).status_code == 302


def test_a_success_resets_the_count():
    UserFactory(email="ana@example.test")
    for _ in range(4):
        _sign_in(Client(), "ana@example.test", "guess")
    assert _sign_in(Client(), "ana@example.test", PASSWORD).status_code == 302
    for _ in range(4):
        _sign_in(Client(), "ana@example.test", "guess")
    assert _sign_in(Client(), "ana@example.test", PASSWORD).status_code == 302


def test_password_validators_are_on():
    names = {type(v).__name__ for v in get_default_password_validators()}
    assert names == {"UserAttributeSimilarityValidator", "MinimumLengthValidator", "CommonPasswordValidator",
                     "NumericPasswordValidator"}
    for weak in ("password", "12345678", "short"):
        with pytest.raises(ValidationError):
            validate_password(weak)
    validate_password("a-long-and-unusual-passphrase-2026")
