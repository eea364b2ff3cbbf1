"""Batches on a Dask cluster (contract §8): the same per-file job as the local pool, scheduled by
``dask.distributed`` in chunks of files.

A sibling of :class:`poolcli.runner.local.LocalExecutor` with the same shape: the planner and
the per-file work (:func:`poolcli.runner.work.process_file`) know nothing of it; it only sends
chunks of tasks to workers and hands their :class:`~poolcli.runner.records.FileResult` rows back
as they complete.  A worker loads (or
compiles once) the job's machine code before its first chunk, through a worker plugin; a chunk
whose worker dies is retried on another (outputs are written atomically, so a chunk that ran
half-way before is simply written again).  Paths must be readable and writable by the workers.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Callable

from ..errors import UsageError
from .records import FileResult, Settings
from .work import process_file
from .workers import setup_worker, warm

INSTALL_HINT = "pip install 'poolcli[dask]'"
RETRIES = 3  # a chunk survives this many dead workers


def available() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> None:
    """UsageError, saying how to install it, when dask.distributed is missing."""
    if not available():
        raise UsageError(f"--executor dask needs dask.distributed: {INSTALL_HINT}")


def chunk_size(files: int, workers: int) -> int:
    """Files per task: about four tasks per worker (so a slow or dead worker delays little),
    and at least 8 files per task once there are many, so the scheduler's ≈ 1 ms per task stays
    well under a millisecond per file; at most 64."""
    per_worker = math.ceil(files / max(1, 4 * workers))
    return max(1, min(64, max(per_worker, 8 if files >= 16 * workers else 1)))


def _run_chunk(tasks, job, settings: Settings) -> list:
    """On a worker: run a chunk of tasks, one compute thread each (the worker's own threads
    run the other chunks); malloc tuned as the local pool's workers (measured 2x the compute
    time without it)."""
    settings = setup_worker(settings)
    return [process_file(task, job, settings) for task in tasks]


try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # without dask this module is only asked whether it is available
    WorkerPlugin = object


class LoadCompiledCode(WorkerPlugin):
    """Load (or compile once) the job's machine code when a worker starts or joins, before its
    first chunk."""

    def __init__(self, job, fmt: str):
        self.job, self.fmt = job, fmt
        self.name = f"poolcli-warm-{uuid.uuid4().hex[:8]}"

    def setup(self, worker) -> None:
        warm(self.job, self.fmt)


class DaskExecutor:
    """Runs tasks on an existing cluster (``scheduler`` is its address, ``tcp://HOST:PORT``) or,
    without one, on an in-process local cluster of ``jobs`` worker threads."""

    def __init__(self, scheduler: str | None, jobs: int):
        require()
        self.scheduler, self.jobs = scheduler, jobs

    def _client(self):
        from distributed import Client

        for name in ("distributed", "tornado", "bokeh"):  # their logs would reach stderr
            logging.getLogger(name).setLevel(logging.CRITICAL)
        if self.scheduler:
            try:
                return Client(self.scheduler, timeout="10s")
            except Exception as exc:  # noqa: BLE001 - a bad address or a peer that is not a scheduler
                why = " ".join(str(exc).split())[:200] or exc.__class__.__name__
                raise UsageError(f"--scheduler {self.scheduler}: cannot reach the Dask scheduler ({why})") from None
        return Client(processes=False, n_workers=1, threads_per_worker=self.jobs, dashboard_address=None)

    def run(self, tasks, job, settings: Settings, results: list, on_result: Callable) -> None:
        """Run ``tasks``, appending each file's result to ``results`` and passing it to
        ``on_result`` as chunks complete; KeyboardInterrupt cancels what has not run."""
        from distributed import as_completed

        client = self._client()
        futures = []
        try:
            client.register_plugin(LoadCompiledCode(job, tasks[0].fmt))
            workers = max(1, len(client.scheduler_info().get("workers", {})))
            size = chunk_size(len(tasks), workers)
            run_id = uuid.uuid4().hex[:12]
            chunks = {}
            for i in range(0, len(tasks), size):
                chunk = tasks[i : i + size]
                future = client.submit(_run_chunk, chunk, job, settings, retries=RETRIES, pure=False,
                                       key=f"poolcli-{run_id}-{i // size}")  # fmt: skip
                chunks[future.key] = chunk
                futures.append(future)
            for future in as_completed(futures):
                try:
                    rows = future.result()
                except Exception as exc:  # noqa: BLE001 - the chunk's workers kept dying (KilledWorker, …)
                    why = f"the Dask workers running it failed ({exc.__class__.__name__})"
                    rows = [FileResult(input=t.source, output=t.dest, error=f"{t.source}: {why}")
                            for t in chunks[future.key]]  # fmt: skip
                for row in rows:
                    results.append(row)
                    on_result(row)
        except KeyboardInterrupt:
            client.cancel(futures, force=True)
            raise
        finally:
            client.close(timeout=10)


def scheduler_from_env(value: str | None) -> str | None:
    """``--scheduler``, else ``POOLCLI_SCHEDULER``, else None (an in-process cluster)."""
    return value or os.environ.get("POOLCLI_SCHEDULER") or None
