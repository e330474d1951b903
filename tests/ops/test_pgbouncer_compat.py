"""PgBouncer in transaction mode: the switch turns off prepared statements, and the code keeps no
session-level state (docs/scaling.md)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
APPS = ["accounts", "billing", "contacts", "automations", "inro"]
SESSION_STATE = [
    (re.compile(r"pg_(try_)?advisory_lock(_shared)?\s*\(", re.I), "session advisory lock: use pg_advisory_xact_lock"),
    (re.compile(r"""["']\s*SET\s+(?!LOCAL\b)(SESSION\s+)?[a-z_]+\s*(=|TO\b)""", re.I), "SET without LOCAL"),
    (re.compile(r"""["']\s*(LISTEN|UNLISTEN)\s""", re.I), "LISTEN/NOTIFY"),
    (re.compile(r"CREATE\s+TEMP(ORARY)?\s+TABLE", re.I), "temporary table"),
    (re.compile(r"WITH\s+HOLD", re.I), "cursor WITH HOLD"),
]


def test_no_session_level_state_in_application_code():
    offences = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            text = path.read_text()
            for pattern, what in SESSION_STATE:
                for match in pattern.finditer(text):
                    line = text.count("\n", 0, match.start()) + 1
                    offences.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert offences == []


def test_the_guard_catches_what_it_should():
    bad = ['cursor.execute("SELECT pg_advisory_lock(42)")', "cursor.execute('SET statement_timeout = 5')",
           'cursor.execute("LISTEN jobs")']
    good = ['cursor.execute("SET LOCAL statement_timeout = 5")', 'f"UPDATE {_USAGE} SET activated = activated + 1"',
            'cursor.execute("SELECT pg_advisory_xact_lock(42)")']
    caught = [any(p.search(code) for p, _ in SESSION_STATE) for code in bad + good]
    assert caught == [True, True, True, False, False, False]


@pytest.mark.django_db
def test_transaction_pooling_switch_turns_off_prepared_statements_and_server_side_cursors():
    probe = (
        "import django; django.setup(); from django.db import connection; "
        "c = connection.cursor(); c.execute('SELECT 1'); "
        "print(connection.connection.prepare_threshold, "
        "connection.settings_dict.get('DISABLE_SERVER_SIDE_CURSORS', False))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "inro.settings.test"}
    run = [sys.executable, "-c", probe]  # our own interpreter, a fixed script
    default = subprocess.run(run, env=env, capture_output=True, text=True, check=True, cwd=ROOT)  # noqa: S603
    pooled = subprocess.run(  # noqa: S603
        run, env={**env, "DATABASE_PGBOUNCER_TRANSACTION_POOLING": "true"}, capture_output=True, text=True,
        check=True, cwd=ROOT,
    )

    # Django 5.2 already binds client-side without preparing; the switch pins it and adds the cursors.
    assert default.stdout.split() == ["None", "False"]
    assert pooled.stdout.split() == ["None", "True"]
