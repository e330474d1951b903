"""Tokens kept safe: encrypted at rest with rotating keys, and never in a log line, an admin page, an API
answer or a Sentry event, whatever the flow (connect, send, refresh, a rejected token, a failed call)."""

import datetime
import logging
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from contacts import instagram, instagram_connection, meta
from contacts.fakemeta import account_id_for
from contacts.messaging import send_message
from contacts.models import InstagramConnection
from contacts.tokens import TokenKeyError, token_decrypt, token_encrypt
from inro.sentry import scrub_breadcrumb, scrub_event
from tests.factories import ContactFactory, UserFactory, WorkspaceFactory, connect_instagram
from tests.instagram.helpers import connect, owner_client

pytestmark = pytest.mark.django_db


def test_tokens_are_encrypted_at_rest_and_keys_rotate(settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.INSTAGRAM_TOKEN_KEYS = [old_key]
    workspace = WorkspaceFactory()
    connection = connect_instagram(workspace, token="IGAArotatingtoken123")
    assert "IGAArotatingtoken123" not in connection.token_encrypted

    # A new key first: it encrypts, the old one still decrypts.
    settings.INSTAGRAM_TOKEN_KEYS = [new_key, old_key]
    assert token_decrypt(connection.token_encrypted) == "IGAArotatingtoken123"
    call_command("instagram_tokens_rotate", verbosity=0)
    connection.refresh_from_db()

    # Every token re-encrypted: the old key can go.
    settings.INSTAGRAM_TOKEN_KEYS = [new_key]
    assert token_decrypt(connection.token_encrypted) == "IGAArotatingtoken123"
    settings.INSTAGRAM_TOKEN_KEYS = [old_key]
    with pytest.raises(TokenKeyError):
        token_decrypt(connection.token_encrypted)


def test_no_key_or_a_malformed_key_is_a_configuration_error(settings):
    settings.INSTAGRAM_TOKEN_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="INSTAGRAM_TOKEN_KEYS is empty"):
        token_encrypt("IGAAsometoken")
    settings.INSTAGRAM_TOKEN_KEYS = ["not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured, match="Fernet keys"):
        token_encrypt("IGAAsometoken")


def test_production_settings_require_the_keys():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "inro.settings.production", "SECRET_KEY": "x" * 50,
           "ALLOWED_HOSTS": "inro.example", "STRIPE_SECRET_KEY": "sk", "STRIPE_WEBHOOK_SECRET": "wh",
           "META_APP_SECRET": "ms", "META_VERIFY_TOKEN": "mv", "META_APP_ID": "1",
           "DATABASE_URL": "postgres://u@127.0.0.1:5432/x"}
    env.pop("INSTAGRAM_TOKEN_KEYS", None)
    probe = [sys.executable, "-c", "import django; django.setup()"]
    missing = subprocess.run(probe, env=env, capture_output=True, text=True)  # noqa: S603
    assert missing.returncode != 0 and "INSTAGRAM_TOKEN_KEYS" in missing.stderr


def test_no_token_in_logs_admin_pages_api_answers_or_sentry_events(fake_meta, settings, caplog,
                                                                   django_capture_on_commit_callbacks):
    """Every flow that handles a token, with logs at DEBUG (urllib3 prints request lines there), then
    every place a token could show up is searched for every token value the flows used."""
    caplog.set_level(logging.DEBUG)
    settings.INSTAGRAM_SEND_BACKEND = "graph"
    workspace = WorkspaceFactory()
    client, _ = owner_client(workspace)
    with django_capture_on_commit_callbacks(execute=True):
        assert connect(client, workspace.pk, username="secret.brand").status_code == 200
        connection = InstagramConnection.objects.get(workspace=workspace)
        tokens = {token_decrypt(connection.token_encrypted)}
        contact = ContactFactory(workspace=workspace)
        assert send_message(workspace=workspace, contact=contact, text="hi", origin="automated").status == "sent"
        # Refresh (the token travels in the query string), then a token Meta rejects, then Meta down.
        InstagramConnection.objects.filter(pk=connection.pk).update(
            token_refreshed_at=timezone.now() - datetime.timedelta(days=2),
            token_expires_at=timezone.now() + datetime.timedelta(days=2))
        assert instagram.tokens_refresh_due()["refreshed"] == 1
        connection.refresh_from_db()
        tokens.add(token_decrypt(connection.token_encrypted))
        fake_meta.revoke("secret.brand")
        send_message(workspace=workspace, contact=contact, text="again", origin="automated", idempotency_key="k")
        settings.META_GRAPH_API_BASE = "http://127.0.0.1:9/v21.0"
        with pytest.raises(meta.MetaError) as failure:
            meta.token_refresh(access_token=next(iter(tokens)))
    assert len(tokens) == 2 and all(t.startswith("IGAA") for t in tokens)

    staff = UserFactory(is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(staff)
    pages = [
        admin.get("/admin/contacts/instagramconnection/").content.decode(),
        admin.get(f"/admin/contacts/instagramconnection/{connection.pk}/change/").content.decode(),
        client.get(f"/api/v1/workspaces/{workspace.pk}/instagram/").content.decode(),
        client.get(f"/w/{workspace.pk}/instagram/").content.decode(),
    ]
    assert "secret.brand" in pages[0] and "secret.brand" in pages[2]
    assert connection.token_encrypted not in "".join(pages)

    event = {
        "exception": {"values": [{"type": "MetaError", "value": f"token {next(iter(tokens))} refused"}]},
        "request": {"url": "https://inro.example/instagram/callback/",
                    "query_string": f"access_token={next(iter(tokens))}&grant_type=ig_refresh_token",
                    "headers": {"Authorization": f"Bearer {next(iter(tokens))}"}},
        "extra": {"note": f"Bearer {next(iter(tokens))}", "connection": {"access_token": next(iter(tokens))}},
    }
    crumb = {"category": "httplib", "data": {"url": f"https://graph.instagram.com/refresh_access_token"
                                                     f"?access_token={next(iter(tokens))}"}}
    scrubbed = f"{scrub_event(event, None)} {scrub_breadcrumb(crumb, None)}"

    logged = caplog.text + "".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "Graph API" in logged or "/me" in logged or "refresh" in logged  # the flows did log
    for token in tokens:
        for where, text in [("logs", logged), ("pages", "".join(pages)), ("sentry", scrubbed),
                            ("error", str(failure.value))]:
            assert token not in text, f"the token reached {where}"


def test_meta_errors_never_quote_the_secrets_of_the_call(settings, fake_meta):
    settings.META_APP_SECRET = "app-secret-value"
    token = fake_meta.issue_token(username="echo.brand", kind="short")
    settings.META_GRAPH_API_BASE = "http://127.0.0.1:9/v21.0"  # unreachable: requests quotes the URL

    with pytest.raises(meta.MetaError) as failure:
        meta.long_lived_token_exchange(short_lived_token=token)

    assert token not in str(failure.value) and "app-secret-value" not in str(failure.value)
    assert "ConnectionError calling /access_token" in str(failure.value)


def test_credentials_never_show_their_token_in_a_repr(fake_meta):
    workspace = WorkspaceFactory()
    connect_instagram(workspace, account_id=account_id_for("repr.brand"), token="IGAAreprtokenvalue")
    credentials = instagram_connection.connection_credentials(workspace_id=workspace.pk)
    assert "IGAAreprtokenvalue" not in repr(credentials)
    assert "IGAA" not in repr(meta.LongLivedToken(access_token="IGAAlongvalue", expires_in=5))
