"""A threaded web worker queues tasks from several requests at once, before any task module is imported.

The first requests of a fresh gunicorn worker used to race Celery's autodiscovery: one thread imported
the tasks modules while the others looked the names up, found nothing, and failed to queue (a webhook's
drain nudge was lost that way). Checked in a fresh interpreter, where no tasks module is imported yet.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import threading
import django

django.setup()
from inro.enqueue import registered_task

names = ["contacts.tasks.drain_instagram_deliveries", "automations.tasks.campaign_send",
         "billing.tasks.roll_over_month", "automations.tasks.scenario_run_execute"] * 4
barrier = threading.Barrier(len(names))
failures = []


def queue(name):
    barrier.wait()
    try:
        registered_task(name)
    except Exception as error:
        failures.append(repr(error))


threads = [threading.Thread(target=queue, args=(name,)) for name in names]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(failures), failures[:1])
"""


def test_sixteen_threads_find_their_tasks_in_a_fresh_process():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "inro.settings.local"}
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True,  # noqa: S603
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "0 []", done.stdout
