"""The schema is the contract: every answer under /api/ is in the error shape, OPTIONS works where Allow
says so, 406 and 413 are documented, query parameters are validated (empty is a 400, never a filter),
strings and integers are strict, and the schema states what the server enforces."""

import pytest
from rest_framework.test import APIClient

from accounts.models import Membership
from contacts.models import Folder, FolderMembership
from tests.api.conftest import client_for, openapi_schema, ws_url
from tests.factories import ContactFactory, FolderFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def _shape(response, status):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    return response.json()["error"]


@pytest.mark.parametrize("path", ["/api/v1/me/%0A", "/api/%0A", "/api/v1/%0Aworkspaces/1/usage/", "/api/v1/x%0D%0Ay/"])
def test_a_newline_in_an_api_path_is_a_404_in_the_error_shape(api, path):
    assert _shape(api.get(path), 404)["code"] == "not_found"


def test_an_unacceptable_accept_header_is_a_406_in_the_error_shape_and_documented(api, workspace):
    response = api.get(ws_url(workspace, "usage/"), HTTP_ACCEPT="text/html")

    assert _shape(response, 406)["code"] == "not_acceptable"
    for path in openapi_schema()["paths"].values():
        for operation in path.values():
            assert "406" in operation["responses"]


def test_413_is_documented_for_every_operation_with_a_body():
    for path in openapi_schema()["paths"].values():
        for method, operation in path.items():
            if "requestBody" in operation:
                assert "413" in operation["responses"], (method, operation["operationId"])


def test_options_works_wherever_allow_lists_it(api, workspace):
    not_allowed = api.put(ws_url(workspace, "folders/"), {}, format="json")
    allow = [m.strip() for m in not_allowed["Allow"].split(",")]

    assert "OPTIONS" in allow
    response = api.options(ws_url(workspace, "folders/"))
    assert response.status_code == 204 and response["Allow"] == not_allowed["Allow"]


@pytest.mark.parametrize("query", [
    "activations/?month=", "activations/?kind=", "contacts/?source=", "contacts/?folder=", "contacts/?tag=",
    "contacts/?activated=", "paused-actions/?status=", "usage/history/?months=", "contacts/?page_size=",
])
def test_an_empty_query_parameter_is_a_400_not_a_silent_filter(api, workspace, query):
    name = query.split("?")[1].rstrip("=")

    assert name in _shape(api.get(ws_url(workspace, query)), 400)["fields"]


def test_a_cursor_that_does_not_decode_names_no_page(api, workspace):
    assert _shape(api.get(ws_url(workspace, "activations/?cursor=garbage")), 404)["code"] == "not_found"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("folders/", {"name": 0}, "name"),
    ("folders/", {"name": True}, "name"),
    ("folders/", {"name": ["VIP"]}, "name"),
    ("folders/", {"name": "   "}, "name"),
    ("folders/", {"name": "VIP", "colour": "red"}, "colour"),
    ("segments/", {"name": 12}, "name"),
    ("campaigns/", {"name": "X", "text": 1}, "text"),
    ("campaigns/", {"name": "X", "text": "Hi", "audience": "folder", "folder": "1"}, "folder"),
    ("campaigns/", {"name": "X", "text": "Hi", "audience": "folder", "folder": 1.5}, "folder"),
    ("billing/checkout/", {"plan": "pro", "addon_packs": "1"}, "addon_packs"),
    ("billing/checkout/", {"plan": "enterprise"}, "plan"),
])
def test_strings_integers_and_fields_are_strict(api, workspace, path, body, field):
    assert field in _shape(api.post(ws_url(workspace, path), body, format="json"), 400)["fields"]
    assert Folder.objects.count() == 0


def test_an_invalid_contact_ids_body_is_a_400_even_for_a_folder_that_is_not_there(api, workspace):
    response = api.post(ws_url(workspace, "folders/999999/contacts/"), {"contact_ids": "all"}, format="json")

    assert _shape(response, 400)["fields"].keys() == {"contact_ids"}


def test_contact_ids_as_strings_are_refused(api, workspace):
    folder = FolderFactory(workspace=workspace)
    contact = ContactFactory(workspace=workspace)

    response = api.post(ws_url(workspace, f"folders/{folder.pk}/contacts/"), {"contact_ids": [str(contact.pk)]},
                        format="json")

    assert _shape(response, 400)["fields"].keys() == {"contact_ids.0"}
    assert FolderMembership.objects.count() == 0


def test_the_schema_states_the_checkout_plan_and_the_segment_rules_as_the_server_checks_them():
    schemas = openapi_schema()["components"]["schemas"]

    plan = schemas["CheckoutRequestRequest"]["properties"]["plan"]["allOf"][0]["$ref"]
    assert schemas[plan.rsplit("/", 1)[-1]]["enum"] == ["pro"]
    rules = schemas["SegmentWriteRequest"]["properties"]["rules"]
    assert rules["additionalProperties"] is False
    assert set(rules["properties"]) == {"sources", "tags_any", "tags_all", "tags_none", "captured_after",
                                        "captured_before", "last_inbound_after", "last_inbound_before",
                                        "custom_fields", "activated_this_month"}
    assert rules["properties"]["sources"]["items"]["enum"] == ["dm", "organic_post", "paid_ad", "collaboration",
                                                              "story", "import", "api"]
    for name, component in schemas.items():
        if name.endswith("Request"):
            assert component["additionalProperties"] is False, name


@pytest.mark.parametrize("rules", [
    {"colour": "red"}, {"sources": ["nowhere"]}, {"sources": [{}]}, {"tags_any": []}, {"tags_any": ["  "]},
    {"captured_after": "2026-02-30T25:00:00Z"},
    {"custom_fields": {"a\n": "x"}}, {"activated_this_month": "yes"},
])
def test_segment_rules_outside_the_schema_are_a_400(workspace, rules):
    admin = client_for(MembershipFactory(workspace=workspace, role=Membership.Role.ADMIN).user)

    response = admin.post(ws_url(workspace, "segments/"), {"name": "S", "rules": rules}, format="json")

    _shape(response, 400)


def test_the_webhooks_answer_in_the_error_shape_too(client):
    assert set(client.post("/webhooks/stripe/", data="{}", content_type="application/json").json()["error"]) == {
        "code", "message", "fields"}
    assert APIClient().get("/api/nothing/").json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("moment", "stored"), [
    ("3572-11-24T08:07:39+19:16", "3572-11-23T12:51:39+00:00"),
    ("9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59.999999+00:00"),
    ("0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00+00:00"),
])
def test_segment_moments_with_any_offset_are_stored_in_utc_and_counted(api, workspace, moment, stored):
    response = api.post(ws_url(workspace, "segments/"), {"name": "S", "rules": {"captured_after": moment}},
                        format="json")

    assert response.status_code == 201, response.content
    assert response.json()["rules"] == {"captured_after": stored}
    assert response.json()["size"] == 0
