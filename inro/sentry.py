"""Error reporting to Sentry when SENTRY_DSN is set; without it, nothing is initialised or sent."""

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration


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
    )
    return True
