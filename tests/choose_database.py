"""Prints the DATABASE_URL `make test` uses: DATABASE_URL when set, else PostgreSQL on 127.0.0.1:5432
when it answers (creating the database `inro` if missing), else a SQLite file in var/."""

import os
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent


def choose() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    try:

        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=2, autocommit=True
        ) as connection:
            if connection.execute("SELECT 1 FROM pg_database WHERE datname = 'inro'").fetchone() is None:
                connection.execute("CREATE DATABASE inro")
        return "postgres://postgres@127.0.0.1:5432/inro"
    except Exception:  # any failure means: no usable PostgreSQL here
        (ROOT / "var").mkdir(exist_ok=True)
        return f"sqlite:///{ROOT / 'var' / 'test.sqlite3'}"


if __name__ == "__main__":
    sys.stdout.write(choose() + "\n")
