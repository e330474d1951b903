"""`make run`: the web server, a Celery worker and beat on the PostgreSQL server inro.devdb chooses,
and every one of them stopped again however `make run` is stopped.

Each child runs in a process group of its own, so a signal to `make run`'s group (Ctrl-C, a process
manager's SIGTERM, SIGHUP from a closing terminal) reaches this supervisor alone, which then stops
them: SIGTERM to each child (to the web server's whole group), a few seconds' wait, then SIGKILL for
every group still there (a Celery worker can hang in its warm shutdown). The embedded PostgreSQL
server, if this command started it, is stopped last. A second Ctrl-C skips the wait.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

from inro import devdb

HOST, PORT = "127.0.0.1", 8000
STOP_GRACE_SECONDS = 8
DEMO_LOGINS = ("owner@demo.inro.test", "staff@demo.inro.test")
DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - seed_demo's demo password, printed on purpose
VAR = devdb.ROOT / "var"

_signals: list[float] = []  # when each stop signal arrived (time.monotonic)


def _note_signal(_signum, _frame) -> None:
    _signals.append(time.monotonic())


def _hurried() -> bool:
    """A second stop signal a second or more after the first (Ctrl-C again): skip the wait. GNU make
    passes its own SIGTERM on to us, so one signal to the group can arrive twice at once."""
    return len(_signals) > 1 and _signals[-1] - _signals[0] >= 1


def _die_with_parent() -> None:
    """In the child before exec: be sent SIGKILL if the supervisor itself dies without cleaning up
    (killed with SIGKILL). Linux only; elsewhere the normal stop path is all there is."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _start(command: list[str], env: dict, log_name: str | None = None) -> subprocess.Popen:
    output = open(VAR / log_name, "ab") if log_name else None  # noqa: SIM115 - the child keeps it
    try:
        return subprocess.Popen(  # noqa: S603 - the fixed commands of this module
            command, env=env, cwd=devdb.ROOT, stdout=output, stderr=output, stdin=subprocess.DEVNULL,
            process_group=0, preexec_fn=_die_with_parent,
        )
    finally:
        if output is not None:
            output.close()


def _stop(children: dict[str, subprocess.Popen], *, whole_group: tuple[str, ...] = ()) -> None:
    """SIGTERM to each child (to its whole process group for those named in `whole_group`: the dev
    server's autoreloader does not pass it on), wait, then SIGKILL every group still there."""
    for name, child in children.items():
        with contextlib.suppress(ProcessLookupError):
            (os.killpg if name in whole_group else os.kill)(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and not _hurried():
        if all(child.poll() is not None and not _group_alive(child.pid) for child in children.values()):
            break
        time.sleep(0.1)
    for name, child in children.items():
        if child.poll() is None or _group_alive(child.pid):
            devdb.say(f"make run: the {name} did not stop in time; killed.")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
    for child in children.values():
        child.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _run_step(command: list[str], env: dict) -> bool:
    """Run migrate or seed_demo to the end (or until a stop signal); True if it succeeded."""
    child = _start(command, env)
    while child.poll() is None:
        if _signals:
            _stop({command[2]: child}, whole_group=(command[2],))
            return False
        time.sleep(0.1)
    return child.returncode == 0


def _queues(env: dict) -> str:
    """The default queue and the conversational one (inro.settings.base reads the same variables)."""
    queues = [env.get("CELERY_TASK_DEFAULT_QUEUE") or "celery"]
    conversation = env.get("CELERY_CONVERSATION_QUEUE", "conversation")
    if conversation and conversation not in queues:
        queues.append(conversation)
    return ",".join(queues)


def main() -> int:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _note_signal)
    server = devdb.choose()
    try:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.setdefault("DJANGO_SETTINGS_MODULE", "inro.settings.local")
        if not server.url:
            server.ensure_database(devdb.RUN_DATABASE)
            env["DATABASE_URL"] = server.url_for(devdb.RUN_DATABASE)
            devdb.say(f"make run: using {server.description}, database {devdb.RUN_DATABASE}")
        else:
            devdb.say(f"make run: using {server.description}")
        for directory in ("broker", "broker-processed", "broker-control"):
            (VAR / directory).mkdir(parents=True, exist_ok=True)
        manage = [sys.executable, "manage.py"]
        if not (_run_step([*manage, "migrate", "--noinput"], env) and _run_step([*manage, "seed_demo"], env)):
            return 1
        devdb.say("Starting Celery worker and beat (logs in var/worker.log, var/beat.log)...")
        children = {
            # One worker for both queues here (production runs a worker line per queue: Procfile).
            "Celery worker": _start([sys.executable, "-m", "celery", "-A", "inro", "worker", "--loglevel=INFO",
                                     "--concurrency=2", f"--queues={_queues(env)}"], env, "worker.log"),
            "Celery beat": _start([sys.executable, "-m", "celery", "-A", "inro", "beat", "--loglevel=INFO",
                                   f"--schedule={VAR / 'celerybeat-schedule'}"], env, "beat.log"),
            "web server": _start([*manage, "runserver", f"{HOST}:{PORT}"], env),
        }
        devdb.say(f"\n  Inro is running at http://{HOST}:{PORT}/  (admin: http://{HOST}:{PORT}/admin/)")
        devdb.say(f"  Demo logins: {DEMO_LOGINS[0]} (workspace owner) and {DEMO_LOGINS[1]} (staff),"
                   f" password {DEMO_PASSWORD}")
        devdb.say("  Stop with Ctrl-C.\n")
        try:
            while not _signals and all(child.poll() is None for child in children.values()):
                time.sleep(0.2)
        finally:
            devdb.say("make run: stopping the web server, the worker and beat...")
            # A Celery worker stops its own pool processes (warm shutdown); the SIGKILL is for a hang.
            _stop(children, whole_group=("web server",))
        return 0 if _signals else 1
    finally:
        server.stop()
        devdb.say("make run: stopped.")


if __name__ == "__main__":
    sys.exit(main())
