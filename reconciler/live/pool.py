"""Reading many objects at once on a backend: how many reads it takes in flight, and the
reads themselves on that many threads (the reader's per-object reads, the sizes the licence note
needs). A backend that batches sends reads made at the same time together."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler.live.backend import Backend

Rows = list[dict[str, Any]]
Task = tuple[str, str]  # (id, what to read)


def read_width(backend: Backend, workers: int) -> int:
    """How many reads to keep in flight on ``backend`` for a tenant allowing ``workers``."""
    # A backend that answers in-process (sandbox, snapshot) says so with concurrency 1:
    # threads would only contend for its lock.
    workers = max(1, min(workers, getattr(backend, "concurrency", workers) or workers))
    # A backend that sends several reads in one request keeps that many per slot in flight.
    return workers * max(1, getattr(backend, "batch_size", 1))


def read_all(tasks: list[Task], read: Callable[[Task], tuple[Task, Rows]], workers: int,
             progress: Callable[[str, int, int], None] | None = None) -> dict[Task, Rows]:
    """Every task's answer, read on ``workers`` threads (in this one for 1); the first error
    is raised, as reading one after another would."""
    results: dict[Task, Rows] = {}
    if not tasks:
        return results
    answers: Iterator[tuple[Task, Rows]]
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    answers = pool.map(read, tasks) if pool is not None else map(read, tasks)
    try:
        for done, (task, value) in enumerate(answers, start=1):
            results[task] = value
            if progress is not None:
                progress(task[0], done, len(tasks))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return results
