"""REST API plumbing shared by every app's endpoints, depending on no app.

The one error shape `{"error": {"code", "message", "fields"}}` for every failure, cursor
pagination, throttles, the schema class that documents the error statuses each operation can
return, and the base view. Token authentication, the workspace tenancy guard and `Idempotency-Key`
handling read accounts' tables, so they live in accounts.api_base.
"""

import re
from collections.abc import Mapping

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from django.http import Http404
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle

from inro.errors import ApplicationError
from inro.untrusted import UntrustedJSONError, first_unstorable, json_parse

# --- Request bodies -------------------------------------------------------------------------------

UNSTORABLE_MESSAGE = ("Remove the null character or the broken emoji (a lone surrogate) from this text: "
                      "it cannot be stored.")


class StrictJSONParser(JSONParser):
    """JSON bodies nested at most JSON_MAX_DEPTH levels, without NaN, and without a NUL or a lone
    surrogate in any string (keys included): a 400 before any view or database work.

    The body's size is already bounded by RequestBodyLimitMiddleware (API_MAX_BODY_BYTES).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding") or "utf-8"
        raw = stream.read() if stream is not None else b""
        try:
            data = json_parse(raw, encoding=encoding)
        except UntrustedJSONError as error:
            # "parse_error" as DRF names it (a stable code clients know); "too_deep" for nesting.
            code = "too_deep" if error.reason == "too_deep" else "parse_error"
            raise exceptions.ParseError(str(error), code=code) from None
        where = first_unstorable(data)
        if where is not None:
            raise exceptions.ValidationError({where: [UNSTORABLE_MESSAGE]})
        return data


# --- Strict input fields ----------------------------------------------------------------------------
# DRF's fields coerce: CharField takes 0 as "0", IntegerField takes "7" and 7.0. The API's bodies are
# JSON, so a wrong type is a client bug, answered with a 400 rather than guessed at; and each field's
# schema states what the server enforces (no NUL, not only spaces), so a client (or a fuzzer) that
# follows the schema is never refused.

_NO_NUL = r"^[^\x00]*$"
_SOME_TEXT = r"^[^\x00]*[^\s\x00][^\x00]*$"


class StrictSerializer(serializers.Serializer):
    # A request body: a JSON object with the listed fields only. An unknown field is a 400, not
    # silently ignored (a typo would otherwise look like success); the schema says
    # `additionalProperties: false` for every request body (schema_closed_request_bodies).
    # (A comment, not a docstring: drf-spectacular would show it on every request body.)

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in set(data) - set(self.fields))
            if unknown:
                raise exceptions.ValidationError({name: ["Unknown field: leave it out."] for name in unknown[:20]})
        return super().to_internal_value(data)


# Conditions between the fields of a request body that a serializer cannot state (e.g. "segment" is
# required when "audience" is "segment"), as JSON Schema keywords, by component name; the app that owns
# the serializer registers them (request_body_conditions) and the hook below puts them in the schema.
REQUEST_BODY_CONDITIONS: dict[str, list[dict]] = {}


def request_body_conditions(component: str, *conditions: dict) -> None:
    REQUEST_BODY_CONDITIONS.setdefault(component, [])
    REQUEST_BODY_CONDITIONS[component].extend(c for c in conditions if c not in REQUEST_BODY_CONDITIONS[component])


def schema_closed_request_bodies(result, generator, request, public):
    """drf-spectacular postprocessing hook: request bodies admit no properties besides theirs, and
    state the conditions between their fields that were registered."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component.setdefault("additionalProperties", False)
            if REQUEST_BODY_CONDITIONS.get(name):
                component["allOf"] = [*component.get("allOf", []), *REQUEST_BODY_CONDITIONS[name]]
    return result


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Enter text (a JSON string)."}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        blank_ok = self.allow_blank or not self.trim_whitespace
        self.validators.insert(0, RegexValidator(_NO_NUL if blank_ok else _SOME_TEXT,
                                                 message="Enter some text (not only spaces, no null character)."))

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictEmailField(serializers.EmailField):
    default_error_messages = {"invalid": "Enter a valid email address."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    # JSON numbers only: "7" and true are refused; 7.0 is the integer 7 (JSON Schema agrees).
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float) or (
                isinstance(data, float) and not data.is_integer()):
            self.fail("invalid")
        return super().to_internal_value(int(data))


class StrictBooleanField(serializers.BooleanField):
    # JSON true and false only: DRF's BooleanField also takes 0, 1, "yes", "on"...
    default_error_messages = {"invalid": "Give true or false (a JSON boolean)."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


# --- Errors ---------------------------------------------------------------------------------------

class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. not_found, invalid, throttled.")
    message = serializers.CharField(help_text="What happened and what to do, for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per invalid input field (dotted paths for nested ones); empty otherwise.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def error_response(*, status: int, code: str, message: str, fields: dict | None = None, headers=None) -> Response:
    return Response({"error": {"code": code, "message": message, "fields": fields or {}}},
                    status=status, headers=headers)


def _flatten_fields(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested validation detail as {"field" or "field.0.sub": [messages]}."""
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for name, value in detail.items():
            fields.update(_flatten_fields(value, f"{prefix}.{name}" if prefix else str(name)))
    elif isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        for index, value in enumerate(detail):
            if value:
                fields.update(_flatten_fields(value, f"{prefix}.{index}" if prefix else str(index)))
    elif isinstance(detail, list):
        fields[prefix or "non_field_errors"] = [str(item) for item in detail]
    else:
        fields[prefix or "non_field_errors"] = [str(detail)]
    return fields


def exception_handler(exc, context):
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: every failure in one shape, with the right status."""
    if isinstance(exc, ApplicationError):
        return error_response(status=exc.status, code=exc.code, message=exc.message,
                              fields={k: [str(m) for m in (v if isinstance(v, list | tuple) else [v])]
                                      for k, v in exc.fields.items()})
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(serializers.as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found, or not in a workspace of yours.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django's 500 handling, logged with its traceback

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_fields(exc.detail)
        names = [name for name in fields if name != "non_field_errors"]
        if names:
            message = f"Some input is not valid ({', '.join(names)}); correct it and try again."
        else:
            message = " ".join(fields.get("non_field_errors", ["The request is not valid."]))
        return error_response(status=exc.status_code, code="invalid", message=message, fields=fields,
                              headers=headers)
    if isinstance(exc, exceptions.Throttled):
        wait = int(exc.wait) if exc.wait is not None else 60
        headers["Retry-After"] = str(max(wait, 1))
        return error_response(status=exc.status_code, code="throttled", headers=headers,
                              message=getattr(exc, "message", None)
                              or f"Too many requests. Try again in {max(wait, 1)} seconds.")
    code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
    return error_response(status=exc.status_code, code=code, message=str(exc.detail), headers=headers)


# --- Pagination -----------------------------------------------------------------------------------

class CursorPage(CursorPagination):
    """Opaque-cursor pages: stable under inserts, no COUNT(*) over a large table."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-id",)

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= self.max_page_size:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"Enter a whole number from 1 to {self.max_page_size}."]})
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_page_size})
            if parameter["name"] == self.cursor_query_param:
                # No query value may hold a NUL (RequestBodyLimitMiddleware answers 400): the schema says so.
                parameter["schema"].update({"pattern": "^[^\\x00]*$"})
        return parameters

    def decode_cursor(self, request):
        # A cursor is an opaque address of a page: one that does not decode names no page (404).
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.NotFound("There is no such page: use the next or previous link as given.") from None


def cursor_page(*ordering: str) -> type[CursorPage]:
    return type(f"CursorPage_{'_'.join(o.strip('-') for o in ordering)}", (CursorPage,), {"ordering": ordering})


# --- Throttles ------------------------------------------------------------------------------------

class UserThrottle(UserRateThrottle):
    """Per user (so per token holder), rate from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["user"]."""

    scope = "user"


# --- Schema ---------------------------------------------------------------------------------------

_ERROR_DESCRIPTIONS = {
    400: "Bad input: the fields say what to correct.",
    401: "No token, or a token that is not valid or was revoked.",
    403: "Your role in this workspace does not allow this (the role matrix: docs/roles.md).",
    404: "Not found, or not in a workspace of yours.",
    409: "Conflict with the current state (or an Idempotency-Key reused with another body).",
    406: "The Accept header asks for something other than JSON: accept application/json.",
    413: "The body is larger than the API accepts (API_MAX_BODY_BYTES, 256 KB by default).",
    415: "Send JSON (Content-Type: application/json).",
    502: "The payment provider failed or could not be reached; nothing was charged. Try again.",
    429: "Too many requests: see the Retry-After header.",
}


class ApiAutoSchema(AutoSchema):
    """Adds the error responses (one shape) that each operation can return to the generated schema."""

    def _get_request_body(self, direction="request"):
        # DELETE /folders/{id}/contacts/ takes {"contact_ids"}: document bodies a DELETE declares.
        if self.method == "DELETE" and getattr(self.view, "delete_has_body", False):
            self.method = "POST"
            try:
                return super()._get_request_body(direction)
            finally:
                self.method = "DELETE"
        return super()._get_request_body(direction)

    def error_statuses(self) -> set[int]:
        view, method = self.view, self.method
        statuses = {406, 429}
        has_body = method in ("POST", "PUT", "PATCH") or (
            method == "DELETE" and getattr(view, "delete_has_body", False))
        if has_body or method == "DELETE" or getattr(view, "pagination_class", None) is not None:
            statuses.add(400)  # a DELETE's body is parsed too, if one is sent (ApiView.check_body)
        if not any(isinstance(p, AllowAny) for p in view.get_permissions()):
            statuses.add(401)
        if "{" in self.path:
            statuses.add(404)
        if getattr(getattr(view, method.lower(), None), "idempotent", False):
            statuses.add(409)
        if has_body or method == "DELETE":
            statuses |= {413, 415}
        if method in getattr(view, "required_roles", {}):
            statuses.add(403)
        statuses |= set(getattr(view, "extra_error_statuses", {}).get(method, ()))
        return statuses

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status in sorted(self.error_statuses()):
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=_ERROR_DESCRIPTIONS[status]), str(status),
                    direction=direction,
                )
        return responses


IDEMPOTENCY_PARAMETER = OpenApiParameter(
    name="Idempotency-Key", location=OpenApiParameter.HEADER, required=False,
    type={"type": "string", "pattern": "^[!-~]{1,255}$", "minLength": 1, "maxLength": 255},
    description="Any unique string (e.g. a UUID), at most 255 printable characters. Sending the same "
                "key again within 24 hours returns the first answer and does nothing twice.",
)


# --- Views ----------------------------------------------------------------------------------------

class BaseApiView(GenericAPIView):
    # Base of every API view: JSON only, throttled per user, errors documented. The token
    # authentication is accounts' (accounts.api_base.ApiView); this base holds what needs no app.
    # (Comments, not docstrings, here: drf-spectacular would show a base class's docstring.)

    permission_classes = [IsAuthenticated]
    throttle_classes = [UserThrottle]
    parser_classes = [StrictJSONParser]
    renderer_classes = [JSONRenderer]  # JSON only: never DRF's HTML browsable pages under /api/
    schema = ApiAutoSchema()
    metadata_class = None  # the schema at /api/schema/ describes every endpoint; OPTIONS says only Allow
    # {"POST": (403, 409)}: statuses besides the common ones that an operation may return.
    extra_error_statuses: dict[str, tuple[int, ...]] = {}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.check_body(request)

    @staticmethod
    def check_body(request) -> None:
        # Any body of a POST, PUT, PATCH or DELETE is parsed (StrictJSONParser) before the view's work,
        # even one the operation ignores: NUL, lone surrogates, depth and content type are refused on
        # every operation alike. (A well-formed body sent to an operation that takes none is ignored, as
        # is any body of a GET.)
        if request.method in ("POST", "PUT", "PATCH", "DELETE") and int(request.META.get("CONTENT_LENGTH") or 0):
            request.data  # noqa: B018 - digits: RequestBodyLimitMiddleware checked the header

    def options(self, request, *args, **kwargs):
        """204 with the `Allow` header (finalize_response adds it): the methods this path answers."""
        return Response(status=204)



def validated_query(serializer_class: type[serializers.Serializer], request) -> dict:
    """The query parameters, validated. An empty one (`?month=`) is a 400 unless its field takes blank
    text: leaving a parameter out and sending it empty are not silently the same."""
    serializer = serializer_class(data=request.query_params)
    empty = {name: ["Leave this parameter out rather than sending it empty."]
             for name, field in serializer.fields.items()
             if request.query_params.get(name, None) == "" and not getattr(field, "allow_blank", False)}
    if empty:
        raise exceptions.ValidationError(empty)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class NotFoundView(BaseApiView):
    """Any other path under /api/: a 404 in the API's error shape, whatever the method."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []
    schema = None

    def dispatch(self, request, *args, **kwargs):
        self.args, self.kwargs, self.request = args, kwargs, self.initialize_request(request, *args, **kwargs)
        self.headers = self.default_response_headers
        response = self.handle_exception(exceptions.NotFound("There is no such API endpoint. See /api/docs/."))
        self.response = self.finalize_response(self.request, response, *args, **kwargs)
        return self.response
