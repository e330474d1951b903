"""A hidden-input walk: every API operation (found through the URL resolver) and both webhooks get NUL
characters, lone surrogates, 2,000-deep nesting, a 20 MB body, wrong content types and ids past 64
bits. Every answer is a 4xx in the error shape, and nothing is written."""

import json

import pytest
from django.apps import apps
from django.conf import settings
from rest_framework.test import APIClient

from accounts.services import api_token_create
from automations.models import Integration
from automations.services import campaign_create, scenario_create, segment_create
from billing.fakestripe import sign_payload
from tests.api.conftest import openapi_schema
from tests.contacts.conftest import sign
from tests.factories import ContactFactory, FolderFactory, MembershipFactory, WorkspaceFactory
from tests.security.test_role_matrix import MATRIX, PUBLIC

pytestmark = pytest.mark.django_db

NUL_BODY = ('{"name": "a\\u0000", "text": "\\u0000", "email": "a\\u0000@x.test", "password": "\\u0000", '
            '"custom_fields": {"k": "\\u0000"}, "rules": {"tags_any": ["\\u0000"]}, "plan": "pro\\u0000", '
            '"contact_ids": [1], "tags": ["\\u0000"]}')
BODIES = {
    "nul": NUL_BODY,
    "surrogate": NUL_BODY.replace("\\u0000", "\\ud800"),
    "nul_key": '{"name\\u0000": "x"}',
    "deep": "[" * 2000 + "]" * 2000,
    "deep_object": '{"name": ' + '{"a": ' * 2000 + "1" + "}" * 2000 + "}",
    "huge_number": '{"contact_ids": [' + "9" * 5000 + "]}",
    "ids_past_64_bits": '{"contact_ids": [18446744073709551616], "folder": 18446744073709551616, '
                        '"segment": 18446744073709551616, "addon_packs": 18446744073709551616}',
}
WRONG_TYPES = [("text/plain", "name=x"), ("application/x-www-form-urlencoded", "name=x"),
               ("application/xml", "<name>x</name>"), ("multipart/form-data; boundary=x", "--x--")]
HOSTILE_QUERIES = ["search=%00", "tag=%00", "source=%00", "month=%00", "kind=%ED%A0%80", "folder=18446744073709551616",
                   "page_size=%00", "cursor=%00", "status=%00", "months=99999999999999999999999"]
MB20 = 20 * 1024 * 1024


def takes_body(method: str, template: str) -> bool:
    return "requestBody" in openapi_schema()["paths"][template].get(method.lower(), {})


def _snapshot():
    # Every table of the four apps, but the month's usage row a first read of the usage opens.
    return {model._meta.label: model.objects.count() for model in apps.get_models()
            if model._meta.app_label in ("accounts", "contacts", "billing", "automations")
            and model._meta.label != "billing.MonthlyUsage"}


@pytest.fixture
def world():
    workspace = WorkspaceFactory(instagram_account_id="17841400000000001")
    owner = MembershipFactory(workspace=workspace).user
    contact = ContactFactory(workspace=workspace)
    folder = FolderFactory(workspace=workspace)
    segment = segment_create(workspace=workspace, name="S", rules={})
    campaign = campaign_create(workspace=workspace, name="C", text="Hi")
    scenario = scenario_create(workspace=workspace, name="P", trigger_type="dm_keyword",
                               trigger_config={"keywords": ["x"]}, steps=[{"type": "send_message", "text": "x"}])
    integration = Integration.objects.create(workspace=workspace, name="I", url="http://127.0.0.1:9/hook")
    token, key = api_token_create(user=owner, name="walk")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    values = {"workspace_id": workspace.pk, "contact_id": contact.pk, "folder_id": folder.pk,
              "segment_id": segment.pk, "campaign_id": campaign.pk, "scenario_id": scenario.pk, "device_id": token.pk,
              "integration_id": integration.pk}
    return client, values


def _check(problems, where, response):
    try:
        body = response.json()
        shaped = set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    except (ValueError, TypeError):
        shaped = False
    if not 400 <= response.status_code < 500 or not shaped:
        problems.append(f"{where}: {response.status_code} {response.content[:120]!r}")


def test_every_api_operation_refuses_hostile_input_in_the_error_shape_and_writes_nothing(world):
    client, values = world
    before = _snapshot()
    problems = []
    for method, template in sorted(set(MATRIX) | PUBLIC):
        if method == "DELETE" and template.startswith("/api/v1/auth/"):
            continue  # would log the walk out: a well-formed body (ids past 64 bits) is a valid logout
        path = template.format(**values)
        for name, body in BODIES.items():
            if method == "GET" or (name == "ids_past_64_bits" and not takes_body(method, template)):
                continue  # a GET's body, or well-formed JSON to an operation that takes none, is ignored
            _check(problems, f"{method} {path} [{name}]",
                   client.generic(method, path, body, content_type="application/json"))
        for content_type, body in WRONG_TYPES if method != "GET" else ():
            _check(problems, f"{method} {path} [{content_type}]", client.generic(method, path, body,
                                                                                content_type=content_type))
        _check(problems, f"{method} {path} [20 MB]", client.generic(method, path, b"[" + b" " * MB20 + b"]",
                                                                    content_type="application/json"))
        if method == "GET":
            for query in HOSTILE_QUERIES:
                response = client.get(f"{path}?{query}")
                if response.status_code != 200:  # a parameter the operation does not take is ignored
                    _check(problems, f"GET {path}?{query}", response)
        if "{" in template:
            beyond = template
            for name in values:
                beyond = beyond.replace("{" + name + "}", str(2**64))
            response = client.generic(method, beyond, "{}", content_type="application/json")
            _check(problems, f"{method} {beyond}", response)
    assert problems == [], "\n".join(problems)
    assert _snapshot() == before


def test_both_webhooks_refuse_hostile_input_in_the_error_shape_and_store_nothing(client):
    before = _snapshot()
    problems = []
    for path in ("/webhooks/instagram/", "/webhooks/stripe/"):
        for name, body in BODIES.items():  # unsigned: refused whatever the characters
            _check(problems, f"{path} [{name}]", client.post(path, data=body, content_type="application/json"))
        deep = ('{"object": "instagram", "entry": ' + "[" * 2000 + "]" * 2000 + "}").encode()
        signed = ({"HTTP_X_HUB_SIGNATURE_256": sign(deep)} if "instagram" in path else
                  {"HTTP_STRIPE_SIGNATURE": sign_payload(deep.decode(), settings.STRIPE_WEBHOOK_SECRET, None)})
        _check(problems, f"{path} [signed, 2000 deep]", client.post(path, data=deep, content_type="application/json",
                                                                    **signed))
        _check(problems, f"{path} [20 MB]", client.post(path, data=b" " * MB20, content_type="application/json"))
        for content_type, body in WRONG_TYPES:
            _check(problems, f"{path} [{content_type}]", client.post(path, data=body, content_type=content_type))
    assert problems == [], "\n".join(problems)
    assert _snapshot() == before


def test_a_signed_delivery_is_never_refused_for_its_characters(client, django_capture_on_commit_callbacks):
    body = json.dumps({"object": "instagram", "entry": [{"id": "17841400000000001", "messaging": [{
        "sender": {"id": "555\x00"}, "recipient": {"id": "17841400000000001"}, "timestamp": 1764158400000,
        "message": {"mid": "m\ud800", "text": "\x00\udfff"}}]}]}).encode()
    WorkspaceFactory(instagram_account_id="17841400000000001")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/webhooks/instagram/", data=body, content_type="application/json",
                               HTTP_X_HUB_SIGNATURE_256=sign(body))

    assert response.status_code == 200
    contact = apps.get_model("contacts", "Contact").objects.get()
    assert contact.igsid == "555"
    message = apps.get_model("contacts", "Message").objects.get(contact=contact)
    assert (message.text, message.meta_mid) == ("\ufffd", "m\ufffd")
