"""Small helpers for the few raw SQL statements that move whole batches (PostgreSQL arrays)."""

from collections.abc import Iterable


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
