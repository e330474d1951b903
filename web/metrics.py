"""The Prometheus endpoint `/metrics`: what an operator watches, computed at scrape time.

Figures come from the database (current month only, on indexed columns) or from counters kept in
the shared cache (task failures happen in worker processes; the web process serves the scrape, so a
process-local counter would not do: set CACHE_URL to Redis in production). Protected by a bearer
token, METRICS_TOKEN: without one the endpoint does not exist (404).
"""

import datetime
import hmac
import logging
from collections.abc import Iterator
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db.models import Count, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from inro.celery import app as celery_app
from inro.task_failures import failure_counts

logger = logging.getLogger(__name__)


def task_failure_counts() -> dict[str, int]:
    celery_app.loader.import_default_modules()  # every app's tasks, so each has a series (0 until it fails)
    return failure_counts(sorted(name for name in celery_app.tasks if not name.startswith("celery.")))


# --- Figures read from the database at scrape time ----------------------------------------------


def _model(app_label: str, name: str) -> Any:
    """A model of another app when it is installed (apps ship independently), else None."""
    try:
        return apps.get_model(app_label, name)
    except LookupError:
        return None


class InroCollector(Collector):
    def collect(self) -> Iterator[Any]:
        from billing.models import AutomationKind, MonthlyUsage
        from billing.months import month_of
        from billing.selectors import activations_by_kind_everywhere

        month = month_of()
        usage_rows = MonthlyUsage.objects.filter(month=month)
        totals = usage_rows.aggregate(activated=Sum("activated"), quota=Sum("quota"), workspaces=Count("id"))

        gauge = GaugeMetricFamily("inro_activations_month", "Contacts activated in the current billing month.")
        gauge.add_metric([], totals["activated"] or 0)
        yield gauge

        by_kind = activations_by_kind_everywhere(month=month)
        gauge = GaugeMetricFamily(
            "inro_activations_month_by_kind", "Activations this month by automation kind.", labels=["kind"]
        )
        for kind in AutomationKind.values:
            gauge.add_metric([kind], by_kind.get(kind, 0))
        yield gauge

        gauge = GaugeMetricFamily("inro_quota_month", "Sum of this month's quotas of the workspaces with usage.")
        gauge.add_metric([], totals["quota"] or 0)
        yield gauge

        gauge = GaugeMetricFamily(
            "inro_workspaces_at_limit", "Workspaces that reached their quota this month (automations paused)."
        )
        gauge.add_metric([], usage_rows.filter(limit_reached_at__isnull=False).count())
        yield gauge

        counter = CounterMetricFamily("inro_task_failures", "Celery task failures, by task.", labels=["task"])
        for name, count in task_failure_counts().items():
            counter.add_metric([name], count)
        yield counter

        yield from self.collect_other_apps()

    def collect_other_apps(self) -> Iterator[Any]:
        """Paused actions, webhook deliveries and Stripe events, each only if its app is installed."""
        from django.db.models import Avg, F, Min
        from django.utils import timezone

        from billing.months import month_of, month_start

        now = timezone.now()
        PausedAction = _model("automations", "PausedAction")  # noqa: N806
        if PausedAction is not None:
            waiting = dict(
                PausedAction.objects.filter(status="waiting").values_list("kind").annotate(n=Count("id"))
                .values_list("kind", "n")
            )
            gauge = GaugeMetricFamily(
                "inro_paused_actions_waiting", "Automated actions paused at the quota, waiting for headroom.",
                labels=["kind"],
            )
            for kind, count in sorted(waiting.items()):
                gauge.add_metric([kind], count)
            yield gauge
            # The gate refuses only at the quota (rule 4); each refusal is kept as a paused action.
            refused = PausedAction.objects.filter(created_at__gte=month_start(month_of(now)))
            gauge = GaugeMetricFamily(
                "inro_refusals_month", "Actions refused at the quota this month, by kind and by what became of "
                "them (waiting, resumed, expired, cancelled).", labels=["kind", "status"],
            )
            for kind, status, count in (
                refused.values("kind", "status").annotate(n=Count("id")).values_list("kind", "status", "n")
                .order_by("kind", "status")
            ):
                gauge.add_metric([kind, status], count)
            yield gauge

        WebhookDelivery = _model("contacts", "WebhookDelivery")  # noqa: N806
        if WebhookDelivery is not None:
            gauge = GaugeMetricFamily(
                "inro_webhook_deliveries", "Instagram webhook deliveries waiting (pending) or failed.",
                labels=["status"],
            )
            for status in ("pending", "failed"):
                gauge.add_metric([status], WebhookDelivery.objects.filter(status=status).count())
            yield gauge
            oldest = WebhookDelivery.objects.filter(status="pending").aggregate(at=Min("received_at"))["at"]
            gauge = GaugeMetricFamily(
                "inro_webhook_oldest_pending_seconds", "Age of the oldest unprocessed delivery (0: none)."
            )
            gauge.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
            yield gauge
            recent = WebhookDelivery.objects.filter(
                status="processed", received_at__gte=now - datetime.timedelta(minutes=5),
                processed_at__isnull=False,
            )
            lag = recent.aggregate(lag=Avg(F("processed_at") - F("received_at")))["lag"]
            gauge = GaugeMetricFamily(
                "inro_webhook_processing_lag_seconds",
                "Mean time from receipt to processing of deliveries received in the last 5 minutes.",
            )
            gauge.add_metric([], lag.total_seconds() if lag else 0.0)
            yield gauge

        StripeEvent = _model("billing", "StripeEvent")  # noqa: N806
        if StripeEvent is not None:
            gauge = GaugeMetricFamily(
                "inro_stripe_events", "Stripe events failed, or received and not handled yet.", labels=["status"]
            )
            for status in ("failed", "received"):
                gauge.add_metric([status], StripeEvent.objects.filter(status=status).count())
            yield gauge


def render_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InroCollector())
    return generate_latest(registry)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are disabled.")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        response = HttpResponse("A bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return HttpResponse("Wrong metrics token.\n", status=403, content_type="text/plain")
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
