"""Meta's Instagram webhooks: the verification handshake and signed deliveries (issue 3).

The POST view only checks and stores: size, signature (HMAC-SHA256 of the raw body with the app
secret), JSON shape. Processing happens in a Celery task after the 200, so Meta never waits on us.
"""

import hashlib
import hmac
import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from contacts import intake

SIGNATURE_PREFIX = "sha256="


def signature_is_valid(body: bytes, header: str | None) -> bool:
    secret = settings.META_APP_SECRET
    if not secret or not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len(SIGNATURE_PREFIX):].strip().lower())


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "fields": {}}}, status=status)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def instagram_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _handshake(request)
    return _delivery(request)


def _handshake(request: HttpRequest) -> HttpResponse:
    token = request.GET.get("hub.verify_token", "")
    expected = settings.META_VERIFY_TOKEN
    if (
        request.GET.get("hub.mode") == "subscribe"
        and expected
        and hmac.compare_digest(token.encode(), expected.encode())
        and "hub.challenge" in request.GET
    ):
        return HttpResponse(request.GET["hub.challenge"], content_type="text/plain")
    return HttpResponse("Verification failed.", status=403, content_type="text/plain")


def _delivery(request: HttpRequest) -> HttpResponse:
    limit = settings.META_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _error(400, "invalid", "The Content-Length header is not a number.")
    if declared > limit:
        return _error(413, "too_large", f"Deliveries are limited to {limit} bytes.")
    try:
        body = request.body
    except RequestDataTooBig:
        return _error(413, "too_large", f"Deliveries are limited to {limit} bytes.")
    if len(body) > limit:
        return _error(413, "too_large", f"Deliveries are limited to {limit} bytes.")
    if not signature_is_valid(body, request.headers.get("X-Hub-Signature-256")):
        return _error(403, "bad_signature", "The X-Hub-Signature-256 header does not match this body.")
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _error(400, "malformed", "The body is not valid UTF-8 JSON.")
    if not isinstance(payload, dict):
        return _error(400, "malformed", "The body must be a JSON object.")
    intake.delivery_store(body=body, signature_valid=True)
    return HttpResponse("EVENT_RECEIVED", content_type="text/plain")
