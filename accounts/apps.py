from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and workspaces"

    def ready(self) -> None:
        from inro import checks  # noqa: F401, PLC0415 - deploy checks register in ready(), once apps are loaded
