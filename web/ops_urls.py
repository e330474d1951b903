"""Operations routes: health probes and the Prometheus scrape endpoint."""

from django.urls import path

from inro import health
from web import metrics

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
]
