"""docs/deploy.md lists every environment variable the settings read, so operators miss none."""

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
TEST_ONLY = {"TEST_CELERY_BROKER_URL"}


def test_every_environment_variable_is_in_the_deploy_table():
    read = set()
    for path in (ROOT / "inro" / "settings").glob("*.py"):
        if path.name != "test.py":
            read |= set(re.findall(r"""env(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]+)["']""", path.read_text()))
    table = (ROOT / "docs" / "deploy.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", table, flags=re.M))
    documented |= set(re.findall(r"^\| `[A-Z_]+` / `([A-Z][A-Z0-9_]+)`", table, flags=re.M))

    assert sorted(read - documented - TEST_ONLY) == []
    assert {"DATABASE_URL", "SECRET_KEY", "SENTRY_DSN", "METRICS_TOKEN", "BILLING_TIME_ZONE"} <= documented
