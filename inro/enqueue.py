"""Queue a Celery task by its registered name, so the code that queues never imports the tasks module.

Each app names its tasks in `<app>/enqueue.py`: its tasks module registers under those names (tasks
call services), and its services queue work through them (services never import tasks). The task
object comes from Celery's registry, so `.delay()` and `.apply_async()` behave as on the task itself:
run inline under CELERY_TASK_ALWAYS_EAGER, published to the broker otherwise.
"""

import threading

from celery import Task

from inro.celery import app

# Autodiscovery imports every app's tasks module on first need. In a threaded web worker several
# requests can need a task at once: without the lock, a second thread would look the name up while
# the first is still importing the module that registers it, and fail to queue.
_discovery = threading.Lock()


def registered_task(name: str) -> Task:
    """The registered task called `name`; autodiscovery registers every app's tasks on first need."""
    try:
        return app.tasks[name]
    except KeyError:
        with _discovery:
            app.loader.import_default_modules()
        return app.tasks[name]
