from django.apps import AppConfig

from billing import hooks as billing_hooks
from contacts import hooks as contact_hooks


class AutomationsConfig(AppConfig):
    name = "automations"

    def ready(self) -> None:
        # The one place automations subscribes to billing and contacts (named hook points, not signals).
        # Not at the top: listeners and services import models, which need the app registry this
        # method waits for.
        from automations import listeners  # noqa: PLC0415
        from automations.services.engagement import engagement_probe  # noqa: PLC0415

        billing_hooks.on_headroom_raised(listeners.headroom_raised)
        billing_hooks.on_month_opened(listeners.month_opened)
        billing_hooks.on_engagement_probe(engagement_probe)
        contact_hooks.on_inbound_event(listeners.inbound_event)
        contact_hooks.on_instagram_connected(listeners.instagram_connected)
