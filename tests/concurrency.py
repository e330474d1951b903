"""Running a job in parallel threads, each on its own database connection (PostgreSQL tests)."""

import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import connections


def run_in_parallel(workers: int, job) -> list:
    """Run job(i) in `workers` threads released together; each thread closes its own connection."""
    barrier = threading.Barrier(workers)

    def wrapped(i):
        try:
            barrier.wait(timeout=30)
            return job(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(wrapped, range(workers)))
