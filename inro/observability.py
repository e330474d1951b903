"""Request ids, JSON log lines and secret redaction; the request id follows a request into its tasks.

The id lives in a context variable: the middleware sets it for a request (from a valid `X-Request-ID`
or a new one), Celery's `before_task_publish` copies it into the headers of every task the request
queues, and `task_prerun` restores it in the worker, so one id ties a request to all its work.
"""

import contextvars
import datetime
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from celery import signals
from django.http import HttpRequest, HttpResponse

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
TASK_HEADER = "inro_request_id"
# Ids from outside are echoed into logs and headers: accept only short, plain tokens.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def current_request_id() -> str | None:
    return request_id_var.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Give each request an id (the caller's when valid), log with it, and return it in a header."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else new_request_id()
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


# --- Celery: carry the id from the publisher into the worker --------------------------------------

_task_tokens: dict[str, contextvars.Token] = {}


@signals.before_task_publish.connect(dispatch_uid="inro.observability.publish_request_id")
def _publish_request_id(headers: dict | None = None, **kwargs: Any) -> None:
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


@signals.task_prerun.connect(dispatch_uid="inro.observability.restore_request_id")
def _restore_request_id(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    # Header from the publisher; else the caller's id (eager run in the same context); else the task
    # id, so the logs of a scheduled task still share one id.
    inherited = getattr(getattr(task, "request", None), TASK_HEADER, None)
    request_id = inherited or request_id_var.get() or task_id
    if task_id and request_id:
        _task_tokens[task_id] = request_id_var.set(str(request_id))


@signals.task_postrun.connect(dispatch_uid="inro.observability.clear_request_id")
def _clear_request_id(task_id: str | None = None, **kwargs: Any) -> None:
    token = _task_tokens.pop(task_id, None) if task_id else None
    if token is not None:
        try:
            request_id_var.reset(token)
        except ValueError:  # set in another context (thread pools): just clear it
            request_id_var.set(None)


# --- Logging --------------------------------------------------------------------------------------


class RequestIdFilter(logging.Filter):
    """Stamp every record with the current request id ("-" outside a request or task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get() or "-"
        return True


SENSITIVE_KEY = re.compile(
    r"pass(word|wd)?|secret|token|authorization|signature|api[_-]?key|cookie|session|csrf|card|cvc",
    re.IGNORECASE,
)
REDACTED = "[REDACTED]"
# key=value, key: value, "key": "value" in free text; a "Bearer"/"Basic" scheme is swallowed too.
_SENSITIVE_PAIR = re.compile(
    r"(?P<key>[\w-]*(?:pass(?:word|wd)?|secret|token|authorization|signature|api[_-]?key)[\w-]*)"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?:(?:Bearer|Basic|Token)\s+)?(?P<value>[^\s\"'&,;}]+)",
    re.IGNORECASE,
)


# Meta's Instagram user tokens ("IGAA…", "IGQV…") wherever they appear, key or no key.
INSTAGRAM_TOKEN = re.compile(r"\bIG(?:AA|QV)[A-Za-z0-9_\-.]{8,}")


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of `value` with the values of sensitive-looking keys replaced, recursively."""
    if _depth > 5:
        return value
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and SENSITIVE_KEY.search(k) else redact(v, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v, _depth + 1) for v in value)
    if isinstance(value, str):
        value = _SENSITIVE_PAIR.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", value)
        return INSTAGRAM_TOKEN.sub(REDACTED, value)
    return value


_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class RedactSecretsFilter(logging.Filter):
    """Secrets never reach a log line: redact arguments, the message and `extra=` fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if isinstance(record.args, Mapping):
                record.args = redact(record.args)
            elif record.args:
                record.args = tuple(redact(arg) for arg in record.args)
            message = record.getMessage()
        except Exception:  # a malformed call must still log something, and never crash the caller
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        for key in set(vars(record)) - _STANDARD_ATTRS:
            record.__dict__[key] = REDACTED if SENSITIVE_KEY.search(key) else redact(record.__dict__[key])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key in set(vars(record)) - _STANDARD_ATTRS:
            entry.setdefault(key, record.__dict__[key])
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)
