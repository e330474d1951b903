"""Tokens with a life: idle and absolute expiry; a user lists their devices and logs any of them out."""

import datetime

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import api_token_create, device_name_from_user_agent
from accounts.tasks import purge_idempotency_keys
from tests.api.conftest import CheckedClient
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

IPHONE_SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/17.1 Mobile/15E148 Safari/604.1")


def _client(key: str) -> CheckedClient:
    client = CheckedClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _age(token: ApiToken, *, created_days: float, used_days: float | None) -> None:
    now = timezone.now()
    ApiToken.objects.filter(pk=token.pk).update(
        created_at=now - datetime.timedelta(days=created_days),
        last_used_at=None if used_days is None else now - datetime.timedelta(days=used_days))


def test_a_token_unused_for_the_idle_period_stops_working(settings):
    settings.API_TOKEN_IDLE_DAYS = 60
    token, key = api_token_create(user=UserFactory())
    _age(token, created_days=90, used_days=60.01)

    response = _client(key).get("/api/v1/me/")

    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_a_token_in_use_keeps_working_until_its_absolute_expiry(settings):
    settings.API_TOKEN_IDLE_DAYS, settings.API_TOKEN_MAX_AGE_DAYS = 60, 365
    token, key = api_token_create(user=UserFactory())
    _age(token, created_days=364, used_days=1)
    assert _client(key).get("/api/v1/me/").status_code == 200

    _age(token, created_days=365.01, used_days=0.01)
    assert _client(key).get("/api/v1/me/").status_code == 401


def test_the_daily_job_deletes_expired_tokens():
    user = UserFactory()
    fresh, _ = api_token_create(user=user)
    idle, _ = api_token_create(user=user)
    old, _ = api_token_create(user=user)
    never_used, _ = api_token_create(user=user)
    _age(idle, created_days=100, used_days=61)
    _age(old, created_days=400, used_days=0)
    _age(never_used, created_days=61, used_days=None)

    assert purge_idempotency_keys() == 3
    assert list(ApiToken.objects.values_list("pk", flat=True)) == [fresh.pk]


def test_devices_are_listed_with_their_name_from_the_user_agent(anonymous):
    user = UserFactory(email="ana@example.test")
    phone = CheckedClient().post("/api/v1/auth/token/", {"email": user.email, "password": "correct-horse-battery"},
                                 format="json", HTTP_USER_AGENT=IPHONE_SAFARI).json()
    named, _ = api_token_create(user=user, name="Ana's iPad", user_agent="Inro/2.4 (iPad; iPadOS 17)")
    api_token_create(user=UserFactory())  # someone else's

    response = _client(phone["token"]).get("/api/v1/auth/devices/")

    assert response.status_code == 200
    devices = response.json()["results"]
    assert [(d["id"], d["name"], d["current"]) for d in devices] == [
        (phone["device_id"], "Safari on iPhone", True), (named.pk, "Ana's iPad", False)]
    assert devices[0]["user_agent"] == IPHONE_SAFARI
    assert devices[0]["last_used_at"] is not None and devices[1]["last_used_at"] is None
    assert devices[0]["created_at"] and devices[0]["expires_at"]


@pytest.mark.parametrize(("user_agent", "name"), [
    (IPHONE_SAFARI, "Safari on iPhone"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile "
     "Safari/537.36", "Chrome on Android"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0", "Firefox on Windows"),
    ("Inro/2.4 (iPhone; iOS 17.1)", "Inro on iPhone"),
    ("okhttp/4.12.0", "okhttp"),
    ("", "Unknown device"),
])
def test_device_names_read_from_user_agents(user_agent, name):
    assert device_name_from_user_agent(user_agent) == name


def test_a_user_logs_another_device_out(anonymous):
    user = UserFactory()
    _, mine = api_token_create(user=user)
    lost, lost_key = api_token_create(user=user, name="Lost phone")

    response = _client(mine).delete(f"/api/v1/auth/devices/{lost.pk}/")

    assert response.status_code == 204
    assert _client(lost_key).get("/api/v1/me/").status_code == 401
    assert _client(mine).get("/api/v1/me/").status_code == 200


def test_another_users_device_is_a_404_and_stays_logged_in():
    _, mine = api_token_create(user=UserFactory())
    theirs, their_key = api_token_create(user=UserFactory())

    response = _client(mine).delete(f"/api/v1/auth/devices/{theirs.pk}/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert _client(their_key).get("/api/v1/me/").status_code == 200


def test_devices_need_a_token(anonymous):
    assert anonymous.get("/api/v1/auth/devices/").status_code == 401
    assert anonymous.delete("/api/v1/auth/devices/1/").status_code == 401
