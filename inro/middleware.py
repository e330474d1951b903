"""Security headers Django does not set itself (a strict Content-Security-Policy), and the front door
that bounds request bodies on the API and the webhooks."""

import io
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from inro.untrusted import text_is_storable

CSP_HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware:
    """Send settings.CONTENT_SECURITY_POLICY on every response that has none (no inline scripts).

    A view may set its own header, or opt out with `csp_exempt` (e.g. a third-party docs page).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and CSP_HEADER not in response and not getattr(response, "csp_exempt", False):
            response[CSP_HEADER] = self.policy
        return response


def csp_exempt(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Leave this view's responses without the site-wide Content-Security-Policy."""

    @wraps(view)
    def wrapped(*args, **kwargs) -> HttpResponse:
        response = view(*args, **kwargs)
        response.csp_exempt = True
        return response

    return wrapped


# --- The front door for request bodies ----------------------------------------------------------

_CHUNK = 64 * 1024


def _error(status: int, code: str, message: str, fields: dict | None = None) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "fields": fields or {}}}, status=status)


def body_limit_for(path: str) -> int | None:
    """The most bytes a request body may hold on this path, or None where Django's own limits apply."""
    if path.startswith("/api/"):
        return settings.API_MAX_BODY_BYTES
    if path.startswith("/webhooks/instagram/"):
        return settings.META_WEBHOOK_MAX_BYTES
    if path.startswith("/webhooks/stripe/"):
        return settings.STRIPE_WEBHOOK_MAX_BYTES
    return None


class RequestBodyLimitMiddleware:
    """Bound every body sent to the API and the two webhooks before anything reads it.

    - A Content-Length above the path's limit (API_MAX_BODY_BYTES, META_WEBHOOK_MAX_BYTES,
      STRIPE_WEBHOOK_MAX_BYTES) is a 413 in the error shape; the body is not read at all.
    - A streamed body (Transfer-Encoding, no Content-Length) is read up to the limit and no further:
      past it, a 413; within it, the request goes on with the bytes read. When the server cannot
      say where such a body ends (no `wsgi.input_terminated`), it is refused with a 411.
    - Under /api/, a NUL in a query parameter is a 400 (a filter with it would be a database error).

    DRF reads bodies through the request stream, bypassing DATA_UPLOAD_MAX_MEMORY_SIZE: this is the
    only size check the API has.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = body_limit_for(request.path_info)
        if limit is not None:
            refused = self._refused(request, limit)
            if refused is not None:
                return refused
        return self.get_response(request)

    def _refused(self, request: HttpRequest, limit: int) -> HttpResponse | None:
        too_large = _error(413, "too_large", f"The request body is limited to {limit} bytes; send less.")
        declared = request.META.get("CONTENT_LENGTH") or ""
        if declared:
            if not declared.isdigit():
                return _error(400, "invalid", "The Content-Length header is not a number.")
            if int(declared) > limit:
                return too_large
        elif request.META.get("HTTP_TRANSFER_ENCODING"):
            if not request.META.get("wsgi.input_terminated"):
                return _error(411, "length_required", "Send a Content-Length header with the body.")
            body = self._read_streamed(request.META["wsgi.input"], limit)
            if body is None:
                return too_large
            request._stream = io.BytesIO(body)
            request.META["CONTENT_LENGTH"] = str(len(body))
        if request.path_info.startswith("/api/"):
            fields = {}
            for name, values in request.GET.lists():
                if not text_is_storable(name) or not all(text_is_storable(value) for value in values):
                    fields[name if text_is_storable(name) else "non_field_errors"] = [
                        "Remove the null character from this parameter."]
            if fields:
                return _error(400, "invalid", f"Some input is not valid ({', '.join(fields)}); correct it and "
                                              "try again.", fields)
        return None

    @staticmethod
    def _read_streamed(stream, limit: int) -> bytes | None:
        """The streamed body, or None as soon as it passes `limit` bytes (nothing more is read)."""
        chunks, size = [], 0
        while True:
            chunk = stream.read(min(_CHUNK, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return None
