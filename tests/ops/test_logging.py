"""Request ids on every log line of a request and of the tasks it queues; secrets never logged."""

import io
import json
import logging
import re
import time

import pytest
from celery.contrib.testing.worker import start_worker

from inro.celery import app as celery_app
from inro.observability import JsonFormatter, RedactSecretsFilter, RequestIdFilter
from tests.ops import tasks_for_tests


@pytest.fixture
def json_log():
    """What the production console handler would print for the test loggers, one JSON per line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactSecretsFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.ops")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_a_request_without_id_gets_a_new_one_in_the_response(client):
    response = client.get("/healthz")

    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_a_valid_incoming_id_is_kept(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a.91:0002")

    assert response["X-Request-ID"] == "lb-7f3a.91:0002"


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "<script>", "-leading-dash", "new\nline"])
def test_an_invalid_incoming_id_is_replaced(client, bad):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=bad)

    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


@pytest.mark.urls("tests.ops.tasks_for_tests")
def test_a_task_queued_by_a_request_logs_the_same_request_id(client, json_log, settings):
    """Through a real broker hop: published with the header, run by a worker thread."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.task_always_eager = False
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            response = client.get("/trace", HTTP_X_REQUEST_ID="req-abc-123")
            for _ in range(200):  # bounded wait for the worker to run the task
                if any(line["message"].startswith("task ran") for line in json_log()):
                    break
                time.sleep(0.05)
    finally:
        celery_app.conf.task_always_eager = True

    assert response.status_code == 200
    lines = json_log()
    assert [(line["message"], line["request_id"]) for line in lines] == [
        ("view handling /trace", "req-abc-123"),
        ("task ran for queued-by-view", "req-abc-123"),
    ]


def test_a_task_outside_any_request_logs_under_its_own_task_id(json_log):
    result = tasks_for_tests.log_request_id.apply(args=["beat"], task_id="task-id-42")

    assert result.get() == "beat"
    assert [(line["message"], line["request_id"]) for line in json_log()] == [("task ran for beat", "task-id-42")]


def test_secrets_are_redacted_from_arguments_messages_and_extras(json_log):
    logger = logging.getLogger("tests.ops.secrets")
    logger.info("login attempt %s", {"email": "ann@example.com", "password": "hunter2"})
    logger.info("calling Stripe with Authorization: Bearer sk_live_51abc and api_key=sk_live_51def")
    logger.info("webhook", extra={"signature": "t=1,v1=deadbeef", "payload": {"token": "EAAB123", "id": 7}})
    logger.info("%(user)s set client_secret=%(value)s", {"user": "ann", "value": "cs_999"})

    lines = json_log()
    text = json.dumps(lines)
    for secret in ("hunter2", "sk_live_51abc", "sk_live_51def", "deadbeef", "EAAB123", "cs_999"):
        assert secret not in text
    assert lines[0]["message"] == "login attempt {'email': 'ann@example.com', 'password': '[REDACTED]'}"
    assert lines[1]["message"] == "calling Stripe with Authorization: [REDACTED] and api_key=[REDACTED]"
    assert (lines[2]["signature"], lines[2]["payload"]) == ("[REDACTED]", {"token": "[REDACTED]", "id": 7})
    assert lines[3]["message"] == "ann set client_secret=[REDACTED]"


def test_json_lines_carry_level_logger_and_exception(json_log):
    logger = logging.getLogger("tests.ops.errors")
    try:
        raise ValueError("boom password=letmein")
    except ValueError:
        logger.exception("it failed")

    (line,) = json_log()
    assert (line["level"], line["logger"], line["message"], line["request_id"]) == (
        "ERROR", "tests.ops.errors", "it failed", "-")
    assert "ValueError: boom password=[REDACTED]" in line["exception"]
    assert "letmein" not in line["exception"]
