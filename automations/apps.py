from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    name = "automations"

    def ready(self) -> None:
        # The one place automations subscribes to billing and contacts (named hook points, not signals).
        from automations import listeners
        from billing import hooks as billing_hooks
        from contacts import hooks as contact_hooks

        billing_hooks.on_headroom_raised(listeners.headroom_raised)
        billing_hooks.on_month_opened(listeners.month_opened)
        contact_hooks.on_inbound_event(listeners.inbound_event)
        contact_hooks.on_instagram_connected(listeners.instagram_connected)
