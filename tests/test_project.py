"""Project-level promises: demo data is idempotent, production settings pass the deploy check."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from accounts.models import User, Workspace
from billing.activation import usage
from billing.models import ActivationRecord, MonthlyUsage
from contacts.models import Contact

ROOT = Path(__file__).resolve().parent.parent
# The checks below never connect: a PostgreSQL URL nothing listens on makes that plain.
UNREACHED_DATABASE = "postgres://inro@127.0.0.1:1/inro"


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_consistent():
    call_command("seed_demo", contacts=300)
    counts = (Contact.objects.count(), ActivationRecord.objects.count(), MonthlyUsage.objects.count())
    call_command("seed_demo", contacts=300)

    assert (Contact.objects.count(), ActivationRecord.objects.count(), MonthlyUsage.objects.count()) == counts
    assert User.objects.get(email="owner@demo.inro.test").check_password("demo-password-2026")
    near = usage(Workspace.objects.get(slug="corner-coffee"))
    assert (near.activated, near.quota) == (92, 100)
    sources = set(Contact.objects.values_list("source", flat=True))
    assert sources == {choice for choice, _ in Contact.Source.choices}
    for row in MonthlyUsage.objects.all():
        assert row.activated == ActivationRecord.objects.filter(workspace=row.workspace, month=row.month).count()


def test_production_settings_pass_the_deploy_check():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "inro.settings.production",
        "SECRET_KEY": "x" * 20 + "a-long-random-production-secret-key-value-1234567890",
        "ALLOWED_HOSTS": "app.inro.example",
        "STRIPE_SECRET_KEY": "sk_live_example",
        "STRIPE_WEBHOOK_SECRET": "whsec_example",
        "META_APP_SECRET": "meta-secret-example",
        "META_VERIFY_TOKEN": "meta-verify-example",
        "META_APP_ID": "1234",
        "INSTAGRAM_TOKEN_KEYS": "7ZwohmafExGyKSqOAgCyQUzrrHsgTjvnt7SzE77tbGA=",
        "DATABASE_URL": UNREACHED_DATABASE,
        "CACHE_URL": "rediscache://127.0.0.1:6379/1",
    }
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout

    # Without a shared cache, the deploy check says what would break and how to fix it.
    del env["CACHE_URL"]
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "inro.W001" in result.stderr + result.stdout and "CACHE_URL" in result.stderr + result.stdout


def test_a_database_other_than_postgresql_is_refused_at_start():
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="inro.settings.local", DATABASE_URL="mysql://inro@127.0.0.1:1/inro")
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "DATABASE_URL must name a PostgreSQL database" in result.stderr


def test_production_settings_refuse_to_start_without_secrets():
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "STRIPE_SECRET_KEY"}}
    env |= {"DJANGO_SETTINGS_MODULE": "inro.settings.production", "ALLOWED_HOSTS": "x.example",
            "DATABASE_URL": UNREACHED_DATABASE}
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
