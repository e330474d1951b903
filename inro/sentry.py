"""Error reporting to Sentry when SENTRY_DSN is set; without it, nothing is initialised or sent."""

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from inro.observability import REDACTED, SENSITIVE_KEY, redact


def configure_sentry(*, dsn: str, environment: str, release: str, traces_sample_rate: float) -> bool:
    """Initialise the SDK for web and worker processes; returns whether it did."""
    if not dsn:
        return False
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        traces_sample_rate=traces_sample_rate,
        # Contacts' handles, emails, IPs and messages are personal data (Meta's rules): never sent.
        # Webhook bodies quote people's messages and stack locals hold contacts: neither leaves.
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        integrations=[DjangoIntegration(), CeleryIntegration(monitor_beat_tasks=False), LoggingIntegration()],
        # Secrets (Instagram tokens, the app secret, API keys) never leave in an event or a breadcrumb.
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
    )
    return True


def scrub_event(event: dict, hint: dict | None = None) -> dict:
    """The event with every sensitive-looking value and every Instagram token replaced (recursively:
    exception messages, breadcrumbs, request headers and query strings, extra data)."""
    return _scrub(event)


def scrub_breadcrumb(crumb: dict, hint: dict | None = None) -> dict:
    return _scrub(crumb)


def _scrub(value, depth: int = 0):
    if depth > 12:
        return value
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and SENSITIVE_KEY.search(k) else _scrub(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, depth + 1) for v in value)
    if isinstance(value, str):
        return redact(value)
    return value
