"""Meta's Instagram webhooks: the verification handshake and signed deliveries.

Also Meta's data deletion callback and its status page, through which a person asks Meta to have
their data erased here.

The POST view only checks and stores: size, signature (HMAC-SHA256 of the raw body with the app
secret), JSON shape. Processing happens in a Celery task after the 200, so Meta never waits on us.
"""

import base64
import binascii
import hashlib
import hmac

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from contacts import intake, services
from contacts.models import DataDeletionRequest
from inro.untrusted import UntrustedJSONError, json_parse, text_is_storable

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
    # META rather than request.headers: the latter builds a dict of every header on first use.
    if not signature_is_valid(body, request.META.get("HTTP_X_HUB_SIGNATURE_256")):
        return _error(403, "bad_signature", "The X-Hub-Signature-256 header does not match this body.")
    try:
        # Bounded nesting; the text is kept as sent (NUL, lone surrogates): intake cleans it where stored.
        payload = json_parse(body)
    except UntrustedJSONError as error:
        return _error(400, "malformed", f"The body is not valid UTF-8 JSON: {error}")
    if not isinstance(payload, dict):
        return _error(400, "malformed", "The body must be a JSON object.")
    intake.delivery_store(body=body, signature_valid=True)
    return HttpResponse("EVENT_RECEIVED", content_type="text/plain")


# --- Meta's data deletion callback (privacy) ----------------------------------------------------


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def parse_signed_request(signed_request: str) -> dict | None:
    """Meta's `signed_request`: base64url(HMAC-SHA256(payload part, app secret)) "." base64url(JSON).

    Returns the payload when the signature matches, else None. Raises ValueError when malformed.
    """
    encoded_signature, dot, encoded_payload = signed_request.partition(".")
    if not dot or not encoded_signature or not encoded_payload:
        raise ValueError("signed_request is not two base64url parts joined by a dot")
    try:
        signature = _b64url_decode(encoded_signature)
        payload = json_parse(_b64url_decode(encoded_payload))
    except (binascii.Error, ValueError) as error:
        raise ValueError("signed_request is not valid base64url JSON") from error
    if not isinstance(payload, dict):
        raise ValueError("signed_request payload is not a JSON object")
    secret = settings.META_APP_SECRET
    expected = hmac.new(secret.encode(), encoded_payload.encode(), hashlib.sha256).digest()
    if not secret or not hmac.compare_digest(expected, signature):
        return None
    if str(payload.get("algorithm", "")).upper() != "HMAC-SHA256":
        return None
    return payload


@csrf_exempt
@require_POST
def data_deletion_callback(request: HttpRequest) -> HttpResponse:
    signed_request = request.POST.get("signed_request", "")
    if not signed_request or len(signed_request) > 10_000:
        return _error(400, "malformed", "A signed_request form field is required.")
    try:
        payload = parse_signed_request(signed_request)
    except ValueError as error:
        return _error(400, "malformed", f"Malformed signed_request: {error}.")
    if payload is None:
        return _error(403, "bad_signature", "The signed_request signature does not match.")
    user_id = payload.get("user_id")
    if (isinstance(user_id, bool) or not isinstance(user_id, str | int) or not 0 < len(str(user_id)) <= 64
            or not text_is_storable(str(user_id))):
        return _error(400, "malformed", "The signed_request carries no usable user_id.")
    deletion = services.contact_erase_for_meta_user(user_id=str(user_id))
    path = reverse("instagram-data-deletion-status", args=[deletion.confirmation_code])
    return JsonResponse({"url": settings.SITE_URL.rstrip("/") + path,
                         "confirmation_code": deletion.confirmation_code})


@require_GET
def data_deletion_status(request: HttpRequest, code: str) -> HttpResponse:
    deletion = get_object_or_404(DataDeletionRequest, confirmation_code=code)
    return render(request, "contacts/data_deletion_status.html", {"deletion": deletion})
