"""The Celery application: `celery -A inro worker` and `celery -A inro beat`."""

import os

from celery import Celery

import inro.observability  # noqa: F401  (request ids follow requests into tasks, in every process)
import inro.task_failures  # noqa: F401  (counts task failures in every worker)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inro.settings.local")

app = Celery("inro")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
