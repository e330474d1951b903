"""Inbound webhook that lets an outside system trigger a scenario for one contact."""

import hmac
import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from automations.models import Scenario
from automations.services import scenario_webhook_fire
from contacts.models import Contact
from inro.errors import ApplicationError

SECRET_HEADER = "X-Inro-Scenario-Secret"  # noqa: S105 - a header name, not a secret
MAX_BODY_BYTES = 64 * 1024


def _error(status: int, code: str, message: str, fields: dict | None = None) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "fields": fields or {}}}, status=status)


@csrf_exempt
@require_POST
def scenario_webhook(request: HttpRequest, scenario_id: int) -> JsonResponse:
    scenario = Scenario.objects.filter(
        pk=scenario_id, trigger_type=Scenario.Trigger.WEBHOOK, workspace__deleted_at__isnull=True
    ).first()
    if scenario is None:
        return _error(404, "not_found", "No such scenario.")
    if not hmac.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), scenario.webhook_secret.encode()):
        return _error(403, "forbidden", f"Missing or wrong {SECRET_HEADER} header.")
    if len(request.body) > MAX_BODY_BYTES:
        return _error(400, "invalid", "The body is too large.")
    try:
        body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "invalid_json", "The body is not valid JSON.")
    if not isinstance(body, dict):
        return _error(400, "invalid", "The body must be a JSON object.")
    contact_id, username = body.get("contact_id"), body.get("username")
    event_id, data = body.get("event_id", ""), body.get("data", {})
    contacts = Contact.objects.filter(workspace_id=scenario.workspace_id)
    if isinstance(contact_id, int) and not isinstance(contact_id, bool):
        contact = contacts.filter(pk=contact_id).first()
    elif isinstance(username, str) and username.strip().lstrip("@"):
        contact = contacts.filter(username__iexact=username.strip().lstrip("@")).order_by("id").first()
    else:
        return _error(400, "invalid", "Give contact_id (a number) or username.",
                      {"contact_id": ["Required unless username is given."]})
    if not isinstance(event_id, str) or len(event_id) > 200:
        return _error(400, "invalid", "event_id must be a string of at most 200 characters.")
    if not isinstance(data, dict):
        return _error(400, "invalid", "data must be a JSON object.")
    if contact is None:
        return _error(404, "contact_not_found", "No such contact in this workspace.")
    try:
        run = scenario_webhook_fire(scenario=scenario, contact=contact, event_id=event_id, data=data)
    except ApplicationError as error:
        return _error(error.status, error.code, error.message, error.fields)
    if run is None:
        return JsonResponse({"status": "duplicate"}, status=200)
    run.refresh_from_db()
    return JsonResponse({"status": "accepted", "run_id": run.pk, "run_status": run.status}, status=202)
