from django.apps import AppConfig


class WebConfig(AppConfig):
    """The interface layer: the customer web pages, their URLs, /metrics and the demo data command.

    It sits above every domain app (automations, billing, contacts, accounts) and may import any of
    them; none of them imports it (the import contract in pyproject.toml checks this).
    """

    name = "web"
    verbose_name = "Web pages"
