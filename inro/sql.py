"""Small helpers for the few raw SQL statements on hot paths: PostgreSQL arrays for the statements
that move whole batches, and for the ones that run thousands of times a second, a kept prepared
psycopg cursor (the gate) or a statement run straight through libpq (the webhook store)."""

from collections.abc import Callable, Iterable

import psycopg
from django.conf import settings
from psycopg import errors as pg_errors
from psycopg.pq import ExecStatus

# A prepare threshold no query reaches: statements are prepared only where asked (prepare=True), as
# Django keeps psycopg's automatic preparing off (prepare_threshold None).
ONLY_EXPLICIT_PREPARE = 2**31 - 1


def pg_array(values: Iterable[int | str | None]) -> str:
    """A PostgreSQL array literal, e.g. '{1,2,NULL}', to pass as one parameter cast to `bigint[]` or
    `text[]`. psycopg adapts a Python list element by element, which costs more than the statement
    itself for arrays of thousands of ids; this is one join. Strings are quoted and escaped."""
    items = []
    for value in values:
        if value is None:
            items.append("NULL")
        elif isinstance(value, int) and not isinstance(value, bool):
            items.append(str(value))
        elif isinstance(value, str):
            items.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            raise TypeError(f"{value!r} cannot go into an array of ids or texts.")
    return "{" + ",".join(items) + "}"


def prepared_statements_allowed(db, setting: str) -> bool:
    """Whether a hot path may keep prepared statements on `db`: the `setting` flag (default True) not
    turned off, and prepare_threshold not pinned to None in the database options
    (DATABASE_PGBOUNCER_TRANSACTION_POOLING: a pooler in transaction mode hands each transaction to
    any server connection, where our prepared statements do not exist)."""
    if not getattr(settings, setting, True):
        return False
    options = db.settings_dict.get("OPTIONS") or {}
    return not ("prepare_threshold" in options and options["prepare_threshold"] is None)


def _live_connection(db):
    """`db`'s psycopg connection, opened if need be, after the checks Django's own cursor() makes
    (health check, thread sharing): for the hot paths that go around Django's cursor."""
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    return db.connection


def kept_server_cursor(db, attr: str, factory: Callable | None = None):
    """A psycopg cursor on `db`'s current connection, kept on the wrapper under `attr` and made anew
    for a new connection, on which `prepare=True` is honoured. Call only where
    `prepared_statements_allowed`; the caller translates errors (`db.wrap_database_errors`)."""
    raw = _live_connection(db)
    cursor = getattr(db, attr, None)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        if raw.prepare_threshold is None:
            raw.prepare_threshold = ONLY_EXPLICIT_PREPARE  # else psycopg ignores prepare=True
        cursor = (factory or psycopg.Cursor)(raw)
        setattr(db, attr, cursor)
    return cursor


class LibpqStatement:
    """One statement prepared once per connection and run straight through libpq (psycopg's `pgconn`):
    parameters go as text-format bytes, rows come back as bytes. For a statement that runs thousands of
    times a second, psycopg's cursor machinery (query conversion, adapters, prepare bookkeeping, row
    loading) cost more client CPU than the round trip itself (bench/NOTES.md, "Webhook intake").

    Use only where `usable(db)`: prepared statements allowed, nothing logging or
    wrapping queries, and `db` in autocommit outside any atomic block. Bypassing psycopg also bypasses
    its lazy BEGIN, so inside a transaction the statement would commit on its own: callers fall back
    to Django's cursor there. Errors are psycopg's own classes, raised inside `db.wrap_database_errors`
    so Django sees its usual exceptions and marks a broken connection for closing.
    """

    def __init__(self, name: str, sql: str, *, setting: str):
        self.name = name.encode()
        self.sql = sql.encode()
        self.setting = setting
        self._prepared_on = f"_libpq_prepared_{name}"

    def usable(self, db) -> bool:
        return (
            not db.queries_logged
            and not db.execute_wrappers
            and not db.in_atomic_block
            and prepared_statements_allowed(db, self.setting)
            and db.get_autocommit()
        )

    def rows(self, db, params: list[bytes]) -> list[tuple[bytes | None, ...]]:
        raw = _live_connection(db)
        pgconn = raw.pgconn
        with db.wrap_database_errors:
            for attempt in (1, 2):
                if getattr(db, self._prepared_on, None) is not raw:
                    self._prepare(pgconn, raw)
                    setattr(db, self._prepared_on, raw)
                result = pgconn.exec_prepared(self.name, params)
                if result.status in (ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK):
                    return [tuple(result.get_value(row, column) for column in range(result.nfields))
                            for row in range(result.ntuples)]
                error = pg_errors.error_from_result(result, encoding=raw.info.encoding)
                # psycopg may DEALLOCATE ALL on this connection (its own prepared-statement cache
                # clearing): prepare again once.
                if attempt == 1 and isinstance(error, pg_errors.InvalidSqlStatementName):
                    setattr(db, self._prepared_on, None)
                    continue
                raise error
        raise AssertionError("unreachable")  # pragma: no cover

    def _prepare(self, pgconn, raw) -> None:
        result = pgconn.prepare(self.name, self.sql)
        if result.status != ExecStatus.COMMAND_OK:
            error = pg_errors.error_from_result(result, encoding=raw.info.encoding)
            if not isinstance(error, pg_errors.DuplicatePreparedStatement):  # prepared before we lost track
                raise error
