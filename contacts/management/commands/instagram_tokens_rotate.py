"""Re-encrypt every stored Instagram token under the first key of INSTAGRAM_TOKEN_KEYS (key rotation:
docs/deploy.md). Safe to run again; run it after deploying a new first key, before dropping the old."""

from django.core.management.base import BaseCommand

from contacts.instagram import tokens_reencrypt


class Command(BaseCommand):
    help = "Re-encrypt every Instagram token under the first key of INSTAGRAM_TOKEN_KEYS."

    def handle(self, *args, **options) -> None:
        count = tokens_reencrypt()
        self.stdout.write(f"Re-encrypted {count} Instagram token(s) under the first key.")
