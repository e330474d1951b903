"""`make bench`: (re)create the bench database, run every scenario, print one table, write RESULTS.md.

Each scenario is a script under bench/ that seeds what it needs and prints its own rows; this runner
collects them (BENCH_ROWS_FILE) into one table and writes bench/RESULTS.md with the machine, the
command, the date and the table, followed by bench/NOTES.md (what limited each figure, before/after).
Before each scenario the database is settled (VACUUM ANALYZE, CHECKPOINT), so one scenario's
leftover maintenance does not land in the next one's figures.

Environment:
  BENCH_DATABASE_URL  the bench database (default postgres://postgres@127.0.0.1:5432/inro_bench; its
                      name must start with inro_bench: it is dropped and created again)
  BENCH_KEEP_DB=1     keep the database instead of recreating it
  BENCH_SCENARIOS     comma list of scripts to run (default: all of SCENARIOS that exist)
  BENCH_RESULTS       where to write the results (default bench/RESULTS.md; "-" to skip)
  BENCH_SCRIPT_TIMEOUT  seconds a scenario script may run before it is stopped (default 1800)
  plus each script's own size variables (see the top of each script).
"""

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_URL, HEADERS, ROOT, Row, database_name, ensure_database, libpq_dsn, table

BENCH = Path(__file__).resolve().parent
# In the order of the results table's rows.
SCENARIOS = ["activation", "fanout", "intake", "usage", "rollover", "inbox", "meta_send", "load_mixed"]


def machine(load_at_start: tuple) -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    postgres = "unknown"
    import psycopg
    from common import libpq_dsn

    try:
        with psycopg.connect(libpq_dsn(), connect_timeout=5) as conn:
            postgres = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error as exc:  # only informative
        postgres = f"unknown ({exc.__class__.__name__})"
    return [
        f"- CPUs (nproc): {os.cpu_count()}; CPU model: {cpu}",
        f"- memory: {memory}",
        f"- Python {platform.python_version()} on {platform.platform()}",
        f"- PostgreSQL {postgres} on 127.0.0.1 (database `{database_name()}`), default settings",
        f"- load average (1, 5, 15 min) at the start: {', '.join(f'{x:.2f}' for x in load_at_start)};"
        f" at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (other work shares the machine)",
    ]


def run_script(script: str, env: dict) -> int:
    """Run one scenario script, stopped after BENCH_SCRIPT_TIMEOUT seconds (default 1800): SIGTERM
    first, so that it stops what it started (servers, workers), then SIGKILL a minute later."""
    timeout = int(os.environ.get("BENCH_SCRIPT_TIMEOUT", "1800"))
    process = subprocess.Popen([sys.executable, str(BENCH / f"{script}.py")], cwd=ROOT, env=env)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"   {script}: still running after {timeout} s, stopped", flush=True)
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return -1


def settle() -> None:
    """VACUUM ANALYZE and CHECKPOINT the bench database before a scenario, so the work the previous one
    left behind (autovacuum on the millions of rows the bulk gate writes, the checkpoint its WAL calls
    for) does not run inside the next one's timings: `make bench` once measured the fan-out right after
    the bulk gate at 9,198 recipients/s, and 11,196 alone."""
    import psycopg

    t0 = time.perf_counter()
    try:
        with psycopg.connect(libpq_dsn(), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
    except psycopg.Error as error:  # e.g. a role without the right to CHECKPOINT: measure anyway
        print(f"   (could not settle the database: {error})", flush=True)
        return
    print(f"   (database settled: VACUUM ANALYZE and CHECKPOINT in {time.perf_counter() - t0:.0f} s)", flush=True)


def main() -> int:
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    when = datetime.datetime.now(tz=datetime.UTC)
    wanted = [s.strip() for s in os.environ.get("BENCH_SCENARIOS", ",".join(SCENARIOS)).split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SCENARIOS]
    if unknown:
        print(f"Unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    scripts = [s for s in wanted if (BENCH / f"{s}.py").exists()]

    print(f"make bench: PostgreSQL database {database_name()} ({BENCH_URL})", flush=True)
    ensure_database(recreate=os.environ.get("BENCH_KEEP_DB") != "1")
    env = {**os.environ, "DATABASE_URL": BENCH_URL, "DJANGO_SETTINGS_MODULE": "inro.settings.local"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)

    rows: list[Row] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = Path(tmp) / "rows.jsonl"
        for script in scripts:
            print(f"\n== {script} ==", flush=True)
            settle()
            t0 = time.perf_counter()
            returncode = run_script(script, {**env, "BENCH_ROWS_FILE": str(rows_file)})
            print(f"   ({script}: {time.perf_counter() - t0:.0f} s)", flush=True)
            if returncode != 0:
                failed.append(script)
        if rows_file.exists():
            rows = [Row(**json.loads(line)) for line in rows_file.read_text().splitlines() if line.strip()]
    for script in failed:
        rows.append(Row(scenario=f"{script}: the script failed (see its output)", figure="—", reference="—",
                        ratio="—", target="—", met="**no**"))

    elapsed = time.perf_counter() - started
    rendered = table(rows)
    print("\n" + rendered)
    missed = sum(r.met not in ("yes", "—") for r in rows)
    print(f"\n{len(rows)} rows in {elapsed:.0f} s; targets missed: {missed}")

    target = os.environ.get("BENCH_RESULTS", str(BENCH / "RESULTS.md"))
    if target != "-":
        sizes = sorted(f"`{k}={v}`" for k, v in os.environ.items() if k.startswith("BENCH_") and k != "BENCH_ROWS_FILE")
        notes = BENCH / "NOTES.md"
        text = [
            "# Benchmark results",
            "",
            "Written by `make bench` (bench/run.py); do not edit by hand: notes go in bench/NOTES.md.",
            "",
            f"- date: {when:%Y-%m-%d %H:%M} UTC; total run time {elapsed:.0f} s",
            "- command: `make bench`" + (f" with {', '.join(sizes)}" if sizes else " (default sizes)"),
            *machine(load_at_start),
            "",
            "Each figure is paired with a reference measured in the same run (ratio = figure / reference for",
            "rates, reference / figure for times, so above 1 is better than the reference).",
            "",
            rendered,
            "",
        ]
        if notes.exists():
            text += [notes.read_text().rstrip(), ""]
        Path(target).write_text("\n".join(text), encoding="utf-8")
        print(f"Wrote {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    assert HEADERS
    sys.exit(main())
