"""Shared plumbing for the benchmark scripts: the bench database, Django set-up, seeding, the table.

Every script runs on its own PostgreSQL database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/inro_bench), never on DATABASE_URL, so a benchmark can't touch a
developer's data. Each scenario seeds its own workspaces under a fresh slug, so a script can be run
alone, again and again; `bench/run.py` (make bench) recreates the database first.

Rows of the table are `Row` objects; a script prints its own rows and, when BENCH_ROWS_FILE is set,
appends them there as JSON lines for `bench/run.py` to assemble the one table of RESULTS.md.
"""

import json
import os
import socket
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/inro_bench"
BENCH_URL = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)


def sizes(name: str, default: str) -> list[int]:
    """A comma-separated list of sizes from the environment, e.g. BENCH_BULK_SIZES=10000,100000."""
    raw = os.environ.get(name, default)
    try:
        values = [int(part.replace("_", "")) for part in raw.split(",") if part.strip()]
    except ValueError:
        sys.exit(f"{name} must be a comma-separated list of whole numbers, got {raw!r}")
    if not values or any(v <= 0 for v in values):
        sys.exit(f"{name} must list sizes above zero, got {raw!r}")
    return values


def integer(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        sys.exit(f"{name} must be a whole number, got {raw!r}")
    if value <= 0:
        sys.exit(f"{name} must be above zero, got {raw!r}")
    return value


def libpq_dsn(url: str = BENCH_URL) -> str:
    """A psycopg connection string for the bench database (raw-SQL references)."""
    parts = urlsplit(url)
    fields = {
        "host": parts.hostname or "127.0.0.1",
        "port": str(parts.port or 5432),
        "user": parts.username or "postgres",
        "dbname": parts.path.lstrip("/") or "inro_bench",
    }
    if parts.password:
        fields["password"] = parts.password
    return " ".join(f"{k}={v}" for k, v in fields.items())


def database_name(url: str = BENCH_URL) -> str:
    return urlsplit(url).path.lstrip("/")


def ensure_database(*, recreate: bool = False) -> None:
    """Create the bench database if missing (or drop and create it), from the `postgres` database."""
    import psycopg
    from psycopg import sql

    name = database_name()
    if not name.startswith("inro_bench"):
        sys.exit(f"Refusing to manage database {name!r}: the bench database's name starts with inro_bench.")
    admin = libpq_dsn().replace(f"dbname={name}", "dbname=postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and recreate:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = None
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def django_setup(*, migrate: bool = False) -> None:
    """Point Django at the bench database and set it up (in this process)."""
    os.environ["DATABASE_URL"] = BENCH_URL
    os.environ["DJANGO_SETTINGS_MODULE"] = "inro.settings.local"
    os.environ.setdefault("DEBUG", "false")
    import warnings

    import django

    warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collectstatic here
    django.setup()
    import logging

    logging.getLogger("billing").setLevel(logging.WARNING)  # bonus grants of the seeding are noise here
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


def run_token() -> str:
    return uuid.uuid4().hex[:8]


def new_workspace(label: str, *, quota: int | None = None):
    """A fresh workspace whose current month's quota is exactly `quota` (Pro plan + bonus grants).

    Returns the workspace; its usage row for this month is open.
    """
    from accounts.models import Workspace
    from billing.activation import usage
    from billing.models import Plan, Subscription
    from billing.services import bonus_grant

    token = run_token()
    workspace = Workspace.objects.create(name=f"bench {label} {token}", slug=f"bench-{label}-{token}")
    if quota is not None:
        pro = Plan.objects.get(code=Plan.PRO)
        if quota < pro.monthly_activations:
            raise ValueError("bench workspaces are on Pro: quota must be at least its base")
        Subscription.objects.create(workspace=workspace, plan=pro, status=Subscription.Status.ACTIVE)
        rest = quota - pro.monthly_activations
        while rest > 0:
            amount = min(rest, 1_000_000)
            bonus_grant(workspace=workspace, amount=amount, reason="benchmark quota", granted_by=None)
            rest -= amount
        snapshot = usage(workspace)
        assert snapshot.quota == quota, (snapshot.quota, quota)
    return workspace


def seed_contacts(workspace_id: int, count: int, *, prefix: str = "c") -> list[int]:
    """`count` contacts in one set-based INSERT; returns their ids in insertion order."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO contacts_contact (workspace_id, igsid, username, name, source, captured_at,"
            " last_inbound_at, email, phone, custom_fields, biography)"
            " SELECT %s, %s || g, 'lead_' || g, '', 'dm', now(), now(), '', '', '{}', ''"
            " FROM generate_series(1, %s) AS g ORDER BY g",
            [workspace_id, f"{prefix}{workspace_id}-", count],
        )
        cursor.execute("SELECT id FROM contacts_contact WHERE workspace_id = %s ORDER BY id", [workspace_id])
        ids = [row[0] for row in cursor.fetchall()]
    if len(ids) < count:
        raise RuntimeError("seeding lost contacts")
    return ids[-count:]


def vacuum_analyze(*tables: str) -> None:
    import psycopg

    with psycopg.connect(libpq_dsn(), autocommit=True) as conn:
        for table in tables:
            conn.execute(f"VACUUM ANALYZE {table}")


@dataclass
class Row:
    scenario: str
    figure: str
    reference: str
    ratio: str
    target: str
    met: str

    @staticmethod
    def verdict(ok: bool | None) -> str:
        return "—" if ok is None else ("yes" if ok else "**no**")


HEADERS = ("scenario", "figure", "reference", "ratio", "target", "met?")


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(" --- " for _ in HEADERS) + "|"]
    for row in rows:
        cells = (row.scenario, row.figure, row.reference, row.ratio, row.target, row.met)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def emit(rows: list[Row]) -> None:
    """Print the rows as a table, and hand them to `bench/run.py` when it asked for them."""
    print(table(rows), flush=True)
    target = os.environ.get("BENCH_ROWS_FILE")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(asdict(row)) + "\n")


def rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s" if seconds > 0 else "∞"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.2f} s"


def secs(seconds: float) -> str:
    return f"{seconds:,.3f} s"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


def redis_url(db: int) -> str | None:
    """redis://127.0.0.1:6379/<db> when a Redis server answers PING there, else None."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return f"redis://127.0.0.1:6379/{db}"
    except OSError:
        pass
    return None
