"""Small helpers for the few raw SQL statements on hot paths: PostgreSQL arrays for the statements
that move whole batches, and a kept prepared cursor for the ones that run thousands of times a second."""

from collections.abc import Callable, Iterable

from django.conf import settings

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
    """Whether a hot path may keep prepared statements on `db`: PostgreSQL, the `setting` flag (default
    True) not turned off, and prepare_threshold not pinned to None in the database options
    (DATABASE_PGBOUNCER_TRANSACTION_POOLING: a pooler in transaction mode hands each transaction to
    any server connection, where our prepared statements do not exist)."""
    if db.vendor != "postgresql" or not getattr(settings, setting, True):
        return False
    options = db.settings_dict.get("OPTIONS") or {}
    return not ("prepare_threshold" in options and options["prepare_threshold"] is None)


def kept_server_cursor(db, attr: str, factory: Callable | None = None):
    """A psycopg cursor on `db`'s current connection, kept on the wrapper under `attr` and made anew
    for a new connection, on which `prepare=True` is honoured. Call only where
    `prepared_statements_allowed`; the caller translates errors (`db.wrap_database_errors`)."""
    import psycopg  # noqa: PLC0415 - PostgreSQL only

    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    raw = db.connection
    cursor = getattr(db, attr, None)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        if raw.prepare_threshold is None:
            raw.prepare_threshold = ONLY_EXPLICIT_PREPARE  # else psycopg ignores prepare=True
        cursor = (factory or psycopg.Cursor)(raw)
        setattr(db, attr, cursor)
    return cursor
