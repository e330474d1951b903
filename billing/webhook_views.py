"""Stripe's webhook endpoint: verified, size-limited, recorded once, handled by billing.webhooks."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import webhooks
from billing.models import StripeEvent
from billing.stripe_client import WebhookSignatureError
from inro.errors import ApplicationError


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    # Size first, before reading or parsing anything: Stripe events are a few kilobytes.
    limit = settings.STRIPE_WEBHOOK_MAX_BYTES
    too_large = JsonResponse({"error": {"code": "too_large", "message": f"Events are limited to {limit} bytes.",
                                          "fields": {}}},
                             status=413)
    try:
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
            return too_large
        if len(request.body) > limit:
            return too_large
    except ValueError:
        return JsonResponse({"error": {"code": "invalid", "message": "Bad Content-Length.", "fields": {}}}, status=400)
    except RequestDataTooBig:
        return too_large
    try:
        event = webhooks.stripe_event_receive(
            payload=request.body, signature_header=request.headers.get("Stripe-Signature", "")
        )
    except WebhookSignatureError as error:
        return JsonResponse({"error": {"code": error.code, "message": error.message, "fields": {}}}, status=400)
    except ApplicationError as error:
        return JsonResponse({"error": {"code": error.code, "message": error.message, "fields": {}}},
                            status=error.status)
    if event.status == StripeEvent.Status.FAILED:
        # 500 so Stripe retries; the error is on the event for staff.
        return JsonResponse({"received": True, "status": event.status}, status=500)
    return JsonResponse({"received": True, "status": event.status})
