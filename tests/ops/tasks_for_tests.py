"""A task and a view used only by the ops tests: a request that logs and queues work."""

import logging

from celery import shared_task
from django.http import HttpRequest, JsonResponse
from django.urls import path

logger = logging.getLogger("tests.ops.trace")


@shared_task(name="tests.ops.log_request_id")
def log_request_id(label: str) -> str:
    logger.info("task ran for %s", label)
    return label


@shared_task(name="tests.ops.always_fails")
def always_fails() -> None:
    raise RuntimeError("this task always fails")


def log_and_queue(request: HttpRequest) -> JsonResponse:
    logger.info("view handling %s", request.path)
    log_request_id.delay("queued-by-view")
    return JsonResponse({"queued": True})


urlpatterns = [path("trace", log_and_queue)]
