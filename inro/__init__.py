"""Project package: settings, URLs and the Celery app for the Inro metering core."""

from inro.celery import app as celery_app

__all__ = ["celery_app"]
