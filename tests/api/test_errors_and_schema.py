"""One error shape everywhere; the OpenAPI schema validates; the docs page serves its own assets."""

import pytest
import yaml
from django.core.management import call_command

from inro.api import UserThrottle
from tests.api.conftest import ws_url

pytestmark = pytest.mark.django_db


def test_an_unknown_api_path_is_a_404_in_the_error_shape(api):
    response = api.post("/api/v1/nothing-here/", {}, format="json")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "fields": {},
                                         "message": "There is no such API endpoint. See /api/docs/."}}


def test_a_method_not_allowed_is_a_405_in_the_error_shape(api, workspace):
    response = api.delete(ws_url(workspace, "usage/"))

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_options_answers_with_the_allow_header(api, workspace):
    me = api.options("/api/v1/me/")
    folders = api.options(ws_url(workspace, "folders/"))

    assert me.status_code == 204 and me["Allow"] == "GET, HEAD, OPTIONS"
    assert folders.status_code == 204 and folders["Allow"] == "GET, POST, HEAD, OPTIONS"


def test_a_non_json_body_is_a_415_in_the_error_shape(api, workspace):
    response = api.post(ws_url(workspace, "folders/"), "name=VIP", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_malformed_json_is_a_400(api, workspace):
    response = api.post(ws_url(workspace, "folders/"), "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_a_workspace_id_beyond_bigint_is_a_404_not_a_crash(api):
    assert api.get("/api/v1/workspaces/99999999999999999999999/usage/").status_code == 404
    assert api.get("/api/v1/workspaces/9223372036854775808/usage/").status_code == 404  # one above


def test_ids_beyond_bigint_are_a_404_on_the_pages_too(client):
    # Refused by the path itself, before any query.
    for path in ("/w/9223372036854775808/", "/w/1/campaigns/99999999999999999999/", f"/w/1/contacts/{'9' * 20}/"):
        assert client.get(path).status_code == 404, path
    assert client.get("/w/9223372036854775807/").status_code == 302  # the largest id: to the login page


def test_the_user_rate_limit_answers_429_with_retry_after(api, settings, workspace):
    UserThrottle.THROTTLE_RATES = {**UserThrottle.THROTTLE_RATES, "user": "3/min"}
    try:
        statuses = [api.get(ws_url(workspace, "usage/")).status_code for _ in range(4)]
        last = api.get("/api/v1/me/")
    finally:
        del UserThrottle.THROTTLE_RATES
    assert statuses == [200, 200, 200, 429]
    assert last.status_code == 429
    assert int(last["Retry-After"]) >= 1


def test_the_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))

    schema = yaml.safe_load(out.read_text())
    assert schema["openapi"].startswith("3.")
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    usage = schema["paths"]["/api/v1/workspaces/{workspace_id}/usage/"]["get"]
    assert set(usage["responses"]) == {"200", "401", "404", "406", "429"}
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]


def test_the_schema_is_served(anonymous):
    response = anonymous.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    assert "/api/v1/auth/token/" in response.json()["paths"]


def test_the_docs_page_uses_vendored_assets_not_a_cdn(anonymous):
    response = anonymous.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()
