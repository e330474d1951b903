"""Sign-in limits, shared by the web form and the API: failures count per email across every address
and per address; past the free ones each attempt waits, the wait doubling; a device that signed in
before is not slowed by anyone else's failures; nothing is a hard lock a stranger can set."""

import pytest
from django.contrib.auth.password_validation import get_default_password_validators, validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from accounts import throttling
from accounts.models import ApiToken
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"  # the factory's test password
WRONG = "That email and password don&#x27;t match an account. Check both and try again."
TOKEN_URL = "/api/v1/auth/token/"


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock(monkeypatch):
    """The limiter's clock, moved by hand."""
    now = [1_800_000_000.0]
    monkeypatch.setattr(throttling, "_now", lambda: now[0])

    class Clock:
        def advance(self, seconds):
            now[0] += seconds

    return Clock()


@pytest.fixture
def ana():
    return UserFactory(email="ana@example.test")


def _web(email, password, ip="203.0.113.7", client=None):
    return (client or Client()).post("/login/", {"username": email, "password": password}, REMOTE_ADDR=ip)


def _api(email, password, ip="203.0.113.7", device_key=None):
    headers = {"HTTP_INRO_DEVICE": device_key} if device_key else {}
    return APIClient().post(TOKEN_URL, {"email": email, "password": password}, format="json", REMOTE_ADDR=ip,
                            **headers)


def test_five_free_failures_then_the_right_password_must_wait_and_the_page_says_so(ana, clock):
    for _ in range(5):
        response = _web("ana@example.test", "guess")
        assert response.status_code == 200 and WRONG in response.content.decode()

    waiting = _web("ANA@example.test", PASSWORD)  # the right password, any case: not even checked yet

    assert waiting.status_code == 200
    assert "Too many failed sign-in attempts. For your security, wait 2 seconds" in waiting.content.decode()
    clock.advance(2)
    assert _web("ana@example.test", PASSWORD).status_code == 302  # a wait, not a lock


def test_the_wait_doubles_with_each_failure_up_to_the_cap(ana, clock, settings):
    settings.LOGIN_DELAY_MAX_SECONDS = 16
    for _ in range(5):
        _api("ana@example.test", "guess")
    waits = []
    for _ in range(6):
        refused = _api("ana@example.test", "guess")
        assert refused.status_code == 429
        waits.append(int(refused["Retry-After"]))
        clock.advance(waits[-1])
        assert _api("ana@example.test", "guess").status_code == 401  # its turn: checked, and wrong

    assert waits == [2, 4, 8, 16, 16, 16]


def test_an_email_slowed_on_the_web_is_slowed_in_the_api_too_and_the_other_way(ana, clock):
    for _ in range(5):
        _web("ana@example.test", "guess")

    response = _api("ana@example.test", PASSWORD)

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert "wait 2 seconds" in response.json()["error"]["message"]
    assert ApiToken.objects.count() == 0

    cache.clear()
    for _ in range(5):
        _api("ana@example.test", "guess")
    assert "wait 2 seconds" in _web("ana@example.test", PASSWORD).content.decode()


def test_failures_spread_over_many_addresses_still_count_for_the_email(ana, clock):
    for n in range(5):
        assert _api("ana@example.test", "guess", ip=f"198.51.100.{n}").status_code == 401

    assert _api("ana@example.test", PASSWORD, ip="192.0.2.200").status_code == 429
    assert _web("ana@example.test", PASSWORD, ip="192.0.2.201").status_code == 200


def test_a_forged_forwarded_for_header_does_not_reset_anything(ana, clock):
    client = APIClient()
    for n in range(5):
        client.post(TOKEN_URL, {"email": "ana@example.test", "password": "guess"}, format="json",
                    HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")

    response = client.post(TOKEN_URL, {"email": "ana@example.test", "password": PASSWORD}, format="json",
                           HTTP_X_FORWARDED_FOR="10.0.0.99")

    assert response.status_code == 429


def test_the_owners_trusted_device_signs_in_whatever_strangers_do(ana, clock):
    device_key = _api("ana@example.test", PASSWORD, ip="192.0.2.1").json()["device_key"]
    browser = Client()
    assert _web("ana@example.test", PASSWORD, client=browser).status_code == 302
    browser.post("/logout/")
    for n in range(40):  # an attacker, from everywhere, as slowly as they must
        clock.advance(1000)
        _api("ana@example.test", f"guess-{n}", ip=f"198.51.100.{n}")

    assert _api("ana@example.test", PASSWORD, ip="192.0.2.1", device_key=device_key).status_code == 200
    assert _web("ana@example.test", PASSWORD, client=browser).status_code == 302  # the device cookie
    # A new device still waits for its turn.
    assert _api("ana@example.test", PASSWORD, ip="192.0.2.1").status_code == 429


def test_a_trusted_device_for_another_user_is_not_trusted(ana, clock):
    bob_key = _api(UserFactory(email="bob@example.test").email, PASSWORD).json()["device_key"]
    for _ in range(5):
        _api("ana@example.test", "guess")

    assert _api("ana@example.test", PASSWORD, device_key=bob_key).status_code == 429
    assert _api("ana@example.test", PASSWORD, device_key="forged:key").status_code == 429


def test_people_behind_one_shared_address_are_not_refused_for_a_colleagues_failures(ana, clock):
    colleagues = [UserFactory(email=f"staff{n}@example.test") for n in range(3)]
    for _ in range(12):  # one person at the office keeps getting their password wrong
        _api("ana@example.test", "guess", ip="192.0.2.50")
        clock.advance(3600)

    for colleague in colleagues:
        assert _api(colleague.email, PASSWORD, ip="192.0.2.50").status_code == 200


def test_an_address_spraying_many_emails_is_slowed(clock, settings):
    settings.LOGIN_FREE_FAILURES_PER_ADDRESS = 10
    UserFactory(email="target@example.test")
    for n in range(10):
        assert _api(f"nobody{n}@example.test", "guess", ip="198.51.100.66").status_code == 401

    assert _api("target@example.test", PASSWORD, ip="198.51.100.66").status_code == 429
    assert _api("target@example.test", PASSWORD, ip="198.51.100.67").status_code == 200


def test_a_success_resets_the_emails_count(ana, clock):
    for _ in range(4):
        _web("ana@example.test", "guess")
    assert _web("ana@example.test", PASSWORD).status_code == 302
    for _ in range(4):
        _web("ana@example.test", "guess")
    assert _web("ana@example.test", PASSWORD).status_code == 302


def test_requests_arriving_together_when_a_wait_ends_get_one_turn(clock):
    for _ in range(5):
        throttling.failed(email="ana@example.test", ip="198.51.100.1")
    clock.advance(2)

    first = throttling.wait_seconds(email="ana@example.test", ip="198.51.100.2")
    second = throttling.wait_seconds(email="ana@example.test", ip="198.51.100.3")  # before the first is counted

    assert (first, second) == (0, 1)


def test_password_validators_are_on():
    names = {type(v).__name__ for v in get_default_password_validators()}
    assert names == {"UserAttributeSimilarityValidator", "MinimumLengthValidator", "CommonPasswordValidator",
                     "NumericPasswordValidator"}
    for weak in ("password", "12345678", "short"):
        with pytest.raises(ValidationError):
            validate_password(weak)
    validate_password("a-long-and-unusual-passphrase-2026")
