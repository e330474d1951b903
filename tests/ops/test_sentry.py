"""Sentry: initialised with Django and Celery integrations and no personal data, only with a DSN."""

import os
import subprocess
import sys
from unittest import mock

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

from inro.sentry import configure_sentry

DSN = "https://public@sentry.invalid/1"


def test_without_a_dsn_nothing_is_initialised():
    with mock.patch.object(sentry_sdk, "init") as init:
        assert configure_sentry(dsn="", environment="production", release="", traces_sample_rate=0.0) is False

    init.assert_not_called()
    assert not sentry_sdk.get_client().is_active()  # the test settings run without SENTRY_DSN


def test_with_a_dsn_the_sdk_starts_with_django_and_celery_and_no_pii():
    with mock.patch.object(sentry_sdk, "init") as init:
        assert configure_sentry(dsn=DSN, environment="staging", release="abc123", traces_sample_rate=0.1) is True

    init.assert_called_once()
    options = init.call_args.kwargs
    assert (options["dsn"], options["environment"], options["release"]) == (DSN, "staging", "abc123")
    assert options["send_default_pii"] is False
    assert (options["max_request_body_size"], options["include_local_variables"]) == ("never", False)
    assert options["traces_sample_rate"] == 0.1
    kinds = {type(integration) for integration in options["integrations"]}
    assert {DjangoIntegration, CeleryIntegration} <= kinds


def test_settings_start_sentry_only_when_the_environment_has_a_dsn():
    """Real settings import in a fresh interpreter; the SDK is active but sends nothing (no transport)."""
    probe = (
        "import django, sentry_sdk; django.setup(); "
        "client = sentry_sdk.get_client(); "
        "print(client.is_active(), client.options['send_default_pii'], client.options['dsn'] or '-')"
    )
    base_env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    base_env["DJANGO_SETTINGS_MODULE"] = "inro.settings.test"
    run = [sys.executable, "-c", probe]  # our own interpreter and a fixed script
    without = subprocess.run(run, env=base_env, capture_output=True, text=True, check=True)  # noqa: S603
    # A DSN on a reserved, unresolvable domain: even a stray event could not leave the machine.
    with_dsn = subprocess.run(  # noqa: S603
        run, env={**base_env, "SENTRY_DSN": DSN}, capture_output=True, text=True, check=True
    )

    assert without.stdout.split() == ["False", "None", "-"]  # the inactive client has no options
    assert with_dsn.stdout.split() == ["True", "False", DSN]
