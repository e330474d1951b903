"""The front door for request bodies: a size limit on the API and both webhooks (413, nothing read),
bounded JSON nesting (400), and no NUL or lone surrogate reaching the database from the API (400);
signed Meta and Stripe deliveries are never refused for their characters but cleaned where stored."""

import io
import json

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import api_token_create
from automations.models import Segment
from billing.fakestripe import sign_payload
from billing.models import StripeEvent
from contacts.models import CapturedEvent, Contact, Folder, Message, WebhookDelivery
from tests.api.conftest import client_for, ws_url
from tests.billing.conftest import signed_post
from tests.contacts.conftest import IG_ACCOUNT_ID, meta_fixture, sign
from tests.factories import ContactFactory, MembershipFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

def _error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


@pytest.fixture
def member():
    workspace = WorkspaceFactory()
    membership = MembershipFactory(workspace=workspace, role="member")
    client = APIClient()
    _, key = api_token_create(user=membership.user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client, workspace


# --- characters a database cannot store, refused at the API ----------------------------------------

def test_a_lone_surrogate_in_custom_fields_is_a_400_and_the_contact_is_unchanged(member):
    client, workspace = member
    contact = ContactFactory(workspace=workspace, custom_fields={"k": "before"})

    response = client.patch(ws_url(workspace, f"contacts/{contact.pk}/"), data='{"custom_fields": {"k": "\\ud800"}}',
                            content_type="application/json")

    error = _error_shape(response, 400)
    assert error["fields"] == {"custom_fields.k": [error["fields"]["custom_fields.k"][0]]}
    contact.refresh_from_db()
    assert contact.custom_fields == {"k": "before"}


def test_a_nul_in_a_segment_tag_is_a_400_and_no_segment_is_made(member):
    _, workspace = member
    admin = client_for(MembershipFactory(workspace=workspace, role="admin").user)

    response = admin.post(ws_url(workspace, "segments/"), data='{"name": "x", "rules": {"tags_any": ["a\\u0000"]}}',
                          content_type="application/json")

    assert _error_shape(response, 400)["fields"] == {"rules.tags_any.0": [
        "Remove the null character or the broken emoji (a lone surrogate) from this text: it cannot be stored."]}
    assert Segment.objects.count() == 0


@pytest.mark.parametrize("body", ['{"name": "a\\u0000b"}', '{"name\\u0000": "a"}', '{"name": "\\udfff"}'])
def test_nul_or_lone_surrogates_anywhere_in_a_body_are_a_400(member, body):
    client, workspace = member

    response = client.post(ws_url(workspace, "folders/"), data=body, content_type="application/json")

    _error_shape(response, 400)
    assert Folder.objects.count() == 0


def test_a_valid_emoji_is_accepted(member):
    client, workspace = member

    response = client.post(ws_url(workspace, "folders/"), data='{"name": "VIP \\ud83d\\ude00"}',
                           content_type="application/json")

    assert response.status_code == 201
    assert Folder.objects.get().name == "VIP \U0001f600"


def test_a_nul_in_a_query_parameter_is_a_400(member):
    client, workspace = member

    for query in ("search=%00", "tag=a%00", "cursor=%00"):
        _error_shape(client.get(ws_url(workspace, f"contacts/?{query}")), 400)


# --- nesting ---------------------------------------------------------------------------------------

def test_deep_nesting_on_the_login_is_a_400_without_a_token():
    response = APIClient().post("/api/v1/auth/token/", data="[" * 1000 + "]" * 1000, content_type="application/json")

    assert _error_shape(response, 400)["code"] == "too_deep"
    assert ApiToken.objects.count() == 0


def test_nesting_past_the_limit_is_a_400_even_when_python_could_parse_it(member, settings):
    client, workspace = member
    settings.JSON_MAX_DEPTH = 4

    response = client.post(ws_url(workspace, "folders/"), data='{"name": [[[["x"]]]]}', content_type="application/json")

    assert _error_shape(response, 400)["code"] == "too_deep"


@pytest.mark.parametrize("body", ["NaN", '{"name": Infinity}', "{", "\"\\ud800"])
def test_not_json_is_a_400(member, body):
    client, workspace = member

    _error_shape(client.post(ws_url(workspace, "folders/"), data=body, content_type="application/json"), 400)
    assert Folder.objects.count() == 0


# --- body size -------------------------------------------------------------------------------------

def test_an_11_mb_folder_create_is_a_413_and_nothing_is_made(member):
    client, workspace = member
    body = json.dumps({"name": "x" * (11 * 1024 * 1024)})

    response = client.post(ws_url(workspace, "folders/"), data=body, content_type="application/json")

    assert _error_shape(response, 413)["code"] == "too_large"
    assert Folder.objects.count() == 0


def test_an_11_mb_login_body_is_a_413_without_being_read():
    class Unreadable(io.BytesIO):
        def read(self, *args):
            raise AssertionError("the body was read")

    client = APIClient()
    response = client.generic("POST", "/api/v1/auth/token/", data=b"", content_type="application/json",
                              CONTENT_LENGTH=str(11 * 1024 * 1024), **{"wsgi.input": Unreadable()})

    assert _error_shape(response, 413)["code"] == "too_large"


def test_a_large_contact_ids_list_is_a_413(member):
    client, workspace = member
    folder = Folder.objects.create(workspace=workspace, name="VIP")
    body = json.dumps({"contact_ids": list(range(1, 2_000_000))})

    response = client.post(ws_url(workspace, f"folders/{folder.pk}/contacts/"), data=body,
                           content_type="application/json")

    _error_shape(response, 413)


def test_a_streamed_body_past_the_limit_is_a_413_and_read_no_further(member, settings):
    client, workspace = member
    settings.API_MAX_BODY_BYTES = 1000

    class Endless(io.RawIOBase):
        served = 0

        def read(self, size=-1):
            size = 4096 if size is None or size < 0 else size
            self.served += size
            assert self.served < 10_000, "read far past the limit"
            return b" " * size

    stream = Endless()
    response = client.generic("POST", ws_url(workspace, "folders/"), data=b"", content_type="application/json",
                              CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked",
                              **{"wsgi.input": stream, "wsgi.input_terminated": True})

    _error_shape(response, 413)
    assert stream.served <= 1001
    assert Folder.objects.count() == 0


def test_a_streamed_body_within_the_limit_is_used(member):
    client, workspace = member

    response = client.generic("POST", ws_url(workspace, "folders/"), data=b"", content_type="application/json",
                              CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked",
                              **{"wsgi.input": io.BytesIO(b'{"name": "Streamed"}'), "wsgi.input_terminated": True})

    assert response.status_code == 201
    assert Folder.objects.get().name == "Streamed"


def test_a_streamed_body_the_server_cannot_delimit_is_a_411(member):
    client, workspace = member

    response = client.generic("POST", ws_url(workspace, "folders/"), data=b"", content_type="application/json",
                              CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked",
                              **{"wsgi.input": io.BytesIO(b'{"name": "x"}')})

    _error_shape(response, 411)
    assert Folder.objects.count() == 0


@pytest.mark.parametrize("path", ["/webhooks/instagram/", "/webhooks/stripe/"])
def test_the_webhooks_refuse_a_20_mb_body_in_the_error_shape(client, path):
    response = client.post(path, data=b" " * (20 * 1024 * 1024), content_type="application/json")

    assert _error_shape(response, 413)["code"] == "too_large"


# --- signed deliveries: cleaned, never refused for their characters --------------------------------

def _meta_body_with(text: str) -> bytes:
    payload = meta_fixture("message_text")
    first = payload["entry"][0]["messaging"][0]
    first["message"]["text"] = text
    second = json.loads(json.dumps(first))
    second["sender"]["id"] = "9988776655"
    second["message"]["mid"] = "second-mid"
    second["message"]["text"] = "plain"
    payload["entry"][0]["messaging"].append(second)
    return json.dumps(payload).encode()  # ensure_ascii: "\u0000" and "\ud800" as JSON escapes


def test_a_signed_meta_delivery_with_a_nul_and_a_lone_surrogate_captures_every_sender(
        client, django_capture_on_commit_callbacks):
    WorkspaceFactory(instagram_account_id=IG_ACCOUNT_ID)
    body = _meta_body_with("Hi\x00 there \ud83d")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/webhooks/instagram/", data=body, content_type="application/json",
                               HTTP_X_HUB_SIGNATURE_256=sign(body))

    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.PROCESSED, delivery.error
    assert sorted(Contact.objects.values_list("igsid", flat=True)) == ["1122334455667788", "9988776655"]
    assert CapturedEvent.objects.count() == 2
    assert Message.objects.get(contact__igsid="1122334455667788").text == "Hi there \ufffd"


@pytest.mark.parametrize("path", ["/webhooks/instagram/", "/webhooks/stripe/"])
def test_a_signed_body_nested_3000_deep_is_a_400(client, path):
    body = ('{"object": "instagram", "entry": ' + "[" * 3000 + "]" * 3000 + "}").encode()
    headers = {"HTTP_X_HUB_SIGNATURE_256": sign(body)}
    if "stripe" in path:
        headers = {"HTTP_STRIPE_SIGNATURE": sign_payload(body.decode(), settings.STRIPE_WEBHOOK_SECRET, None)}

    response = client.post(path, data=body, content_type="application/json", **headers)

    _error_shape(response, 400)
    assert WebhookDelivery.objects.count() == 0 and StripeEvent.objects.count() == 0


def test_a_signed_stripe_event_with_a_nul_and_a_lone_surrogate_is_stored_cleaned(client):
    event = {"id": "evt_nul\x00", "type": "customer.created", "created": 1764158400, "livemode": False,
             "data": {"object": {"id": "cus_1", "name": "Ana\x00 \udc00", "metadata": {"k\x00": "v"}}}}

    response = signed_post(client, event)

    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert stored.event_id == "evt_nul"
    assert stored.payload["data"]["object"]["name"] == "Ana \ufffd"
    assert stored.payload["data"]["object"]["metadata"] == {"k": "v"}
