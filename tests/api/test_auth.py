"""Token login per device, logout, password change revoking every device (sign-in limits: tests/security)."""

import datetime
import re

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.models import ApiToken, IdempotencyKey
from accounts.services import user_set_password
from accounts.tasks import purge_idempotency_keys
from inro.errors import ApplicationError
from tests.api.conftest import CheckedClient
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token/"
PASSWORD = "correct-horse-battery"


def login(client, email="ana@example.test", password=PASSWORD, **extra):
    return client.post(TOKEN_URL, {"email": email, "password": password, **extra}, format="json")


@pytest.fixture
def ana():
    return UserFactory(email="ana@example.test")


def test_login_returns_a_token_that_authenticates_and_is_stored_only_hashed(anonymous, ana):
    response = login(anonymous, name="Ana's iPhone")

    assert response.status_code == 200
    key = response.json()["token"]
    assert re.fullmatch(r"[0-9a-f]{40}", key)
    token = ApiToken.objects.get(user=ana)
    assert token.name == "Ana's iPhone"
    assert key not in token.key_hash

    anonymous.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    me = anonymous.get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["email"] == "ana@example.test"
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_email_is_case_insensitive_at_login(anonymous, ana):
    assert login(anonymous, email="Ana@Example.TEST").status_code == 200


def test_wrong_password_is_refused_and_creates_no_token(anonymous, ana):
    response = login(anonymous, password="wrong-password")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"error": {"code": "invalid_credentials",
                                         "message": "The email or password is not correct.", "fields": {}}}
    assert ApiToken.objects.count() == 0


def test_missing_fields_are_a_400_with_fields(anonymous):
    response = anonymous.post(TOKEN_URL, {"email": "not-an-email"}, format="json")

    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "invalid"
    assert set(body["fields"]) == {"email", "password"}


def test_several_devices_hold_tokens_at_once_and_logout_revokes_only_its_own(ana):
    phone, tablet = CheckedClient(), CheckedClient()
    for client in (phone, tablet):
        client.credentials(HTTP_AUTHORIZATION=f"Token {login(CheckedClient()).json()['token']}")

    assert phone.delete(TOKEN_URL).status_code == 204

    assert phone.get("/api/v1/me/").status_code == 401
    assert tablet.get("/api/v1/me/").status_code == 200
    assert ApiToken.objects.filter(user=ana).count() == 1


def test_no_token_is_401_with_the_auth_challenge_in_the_error_shape(anonymous):
    response = anonymous.get("/api/v1/me/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response.json()["error"]["fields"] == {}


@pytest.mark.parametrize("header", ["Token " + "0" * 40, "Token nonsense", "Token", "Bearer abc", "Token a b"])
def test_a_bad_token_is_401(anonymous, header):
    anonymous.credentials(HTTP_AUTHORIZATION=header)

    response = anonymous.get("/api/v1/me/")

    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_an_inactive_users_token_stops_working(api, owner):
    owner.is_active = False
    owner.save()

    assert api.get("/api/v1/me/").status_code == 401


def test_a_password_change_revokes_every_device(ana):
    phone, tablet = CheckedClient(), CheckedClient()
    for client in (phone, tablet):
        client.credentials(HTTP_AUTHORIZATION=f"Token {login(CheckedClient()).json()['token']}")

    user_set_password(user=ana, password="a-new-long-passphrase-2026")

    assert phone.get("/api/v1/me/").status_code == 401
    assert tablet.get("/api/v1/me/").status_code == 401
    assert ApiToken.objects.filter(user=ana).count() == 0
    ana.refresh_from_db()
    assert ana.check_password("a-new-long-passphrase-2026")


def test_a_password_changed_any_other_way_also_logs_out_every_device(ana):
    phone = CheckedClient()
    phone.credentials(HTTP_AUTHORIZATION=f"Token {login(CheckedClient()).json()['token']}")
    assert phone.get("/api/v1/me/").status_code == 200

    ana.set_password("changed-through-the-reset-page")  # as the reset page and the admin do
    ana.save()

    assert phone.get("/api/v1/me/").status_code == 401


def test_a_weak_new_password_is_refused_and_changes_nothing(ana):
    login(CheckedClient())

    with pytest.raises(ApplicationError) as error:
        user_set_password(user=ana, password="123")

    assert error.value.code == "invalid"
    assert "password" in error.value.fields
    ana.refresh_from_db()
    assert ana.check_password("correct-horse-battery")
    assert ApiToken.objects.filter(user=ana).count() == 1


def test_login_with_a_stale_token_in_the_headers_still_works(anonymous, ana):
    anonymous.credentials(HTTP_AUTHORIZATION="Token " + "f" * 40)

    assert login(anonymous).status_code == 200


def test_expired_idempotency_keys_are_purged_by_the_daily_job(owner):
    now = timezone.now()
    for key, age in (("old", datetime.timedelta(hours=25)), ("fresh", datetime.timedelta(hours=1))):
        IdempotencyKey.objects.create(user=owner, route="POST /x/", key=key, request_hash="h",
                                      created_at=now - age, response_status=200, response_body={})

    assert purge_idempotency_keys() == 1
    assert purge_idempotency_keys() == 0
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]
    assert PeriodicTask.objects.get(task="accounts.tasks.purge_idempotency_keys").enabled
