"""Running a batch: tasks → results, on whichever executor.

- :mod:`~poolcli.runner.plan`: inputs → tasks (names, templates, the check of every file a run
  writes);
- :mod:`~poolcli.runner.work`: one file's work, whole, and :mod:`~poolcli.runner.banded`, band by
  band;
- executors, siblings of one shape (``run(tasks, job, settings, results, on_result)``):
  :class:`~poolcli.runner.local.LocalExecutor` (a pool of worker processes, with the
  :mod:`~poolcli.runner.prefetch` helper) and :class:`~poolcli.runner.dask.DaskExecutor`;
- :mod:`~poolcli.runner.execute`: a whole command's run, from its options to its report.

Nothing here prints: progress and per-file outcomes go to an ``on_result`` callback, so the CLI
decides how to show them and tests can pass their own.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .records import FileResult, Settings, Task

if TYPE_CHECKING:  # importing poolcli.runner (for --help's options) imports no NumPy
    from ..jobs import Job

__all__ = ["Executor", "FileResult", "Interrupted", "Settings", "Task", "run"]


class Executor(Protocol):
    """What runs a batch's files: appends each file's result to ``results`` and passes it to
    ``on_result`` as it completes; KeyboardInterrupt stops it cleanly."""

    def run(self, tasks: list[Task], job: Job, settings: Settings, results: list,
            on_result: Callable[[FileResult], None]) -> None: ...  # fmt: skip


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the results so far are in ``results``."""

    def __init__(self, results: list[FileResult]):
        super().__init__("interrupted")
        self.results = results


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def executor_for(name: str, jobs: int, scheduler: str | None = None) -> Executor:
    """The executor ``--executor`` names: ``local`` (``jobs`` worker processes) or ``dask`` (a
    cluster at ``scheduler``, or an in-process one of ``jobs`` threads)."""
    if name == "dask":
        from .dask import DaskExecutor

        return DaskExecutor(scheduler, jobs)
    from .local import LocalExecutor

    return LocalExecutor(jobs)


def run(
    tasks: list[Task], job, settings: Settings | None = None, *, jobs: int = 1, executor: str = "local",
    scheduler: str | None = None, on_result: Callable[[FileResult], None] = lambda r: None, **options,
) -> list[FileResult]:  # fmt: skip
    """Run every task; ``jobs`` > 1 uses that many worker processes, one compute thread each
    (``executor="dask"``: a Dask cluster at ``scheduler``, or an in-process one of ``jobs``
    threads, see :mod:`poolcli.runner.dask`).  ``settings`` (or its fields as keyword
    ``options``: ``max_pixels=…, png_level=…``) say how each file is read and written.

    Raises :class:`Interrupted` (holding the results so far) on SIGINT/SIGTERM after in-flight
    files have finished or been discarded; no temporary file is left behind.
    """
    from ..engine import runtime
    from ..jobs import as_job
    from .work import process_file
    from .workers import codecs_ahead, join, reuse_freed_memory

    job = as_job(job)
    settings = settings if settings is not None else Settings(**options)
    results: list[FileResult] = []
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    if len(tasks) > 1:
        reuse_freed_memory()  # inherited by the helper and the workers this process forks
    # standard input is this process's: a worker process reads /dev/null there
    if executor == "dask":
        here = [t for t in tasks if t.source == "-"]
    elif runtime.engine_choice() == "numpy":
        here = list(tasks)  # a small job on NumPy forms: less work in all than starting workers
    else:
        here = [t for t in tasks if jobs <= 1 or len(tasks) <= 1 or t.source == "-"]
    helper = codecs_ahead(here[0].fmt) if here else None  # an empty cache: the codec compiled beside
    try:
        for task in here:
            res = process_file(task, job, settings)
            results.append(res)
            on_result(res)
        join(helper)
        rest = [t for t in tasks if t.source != "-"] if len(here) < len(tasks) else []
        if rest:
            executor_for(executor, jobs, scheduler).run(rest, job, settings, results, on_result)
        return results
    except KeyboardInterrupt:
        raise Interrupted(results) from None
    finally:
        join(helper)
        signal.signal(signal.SIGTERM, old_term)
