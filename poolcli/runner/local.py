"""The local executor: worker processes on this machine, each fed task indices over its own pipe.

Workers are forked after the parent has loaded (or compiled once) the job's machine code and
while the prefetcher inflates the first PNGs, so they start with both in memory; with GNU
OpenMP, which aborts a forked child, they come from a clean fork server instead.
"""

from __future__ import annotations

import glob
import os
import signal
import sys

from .. import io
from ..jobs import Job
from .banded import probe_streams
from .prefetch import Prefetcher
from .records import FileResult, Settings, Task
from .work import process_file
from .workers import die_with_parent, setup_worker, warm


def _work(conn, tasks: list[Task], job: Job, settings: Settings, stop, parent: int | None, prefetched=None) -> None:
    """A worker process: run the task indices that arrive on ``conn``, in order, and send back
    ``(index, FileResult)``; ``None``, the parent's ``stop`` flag or a closed pipe ends it."""
    # The parent owns interruption: a worker finishes the file in hand, then is told to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, _parent_gone)
    try:
        die_with_parent(parent, signal.SIGHUP)
        _serve(conn, tasks, job, settings, stop, prefetched)
    except _ParentGone:  # the file in hand is abandoned; write_output removed its temp file
        os._exit(1)


def _serve(conn, tasks: list[Task], job: Job, settings: Settings, stop, prefetched) -> None:
    settings = setup_worker(settings)
    while True:
        try:
            i = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if i is None or stop.value:
            return
        task = tasks[i]
        ahead = prefetched.take(task) if prefetched is not None else None
        res = process_file(task, job, settings, inflated=ahead)
        if ahead is not None:
            prefetched.release(task)
        try:
            conn.send((i, res))
        except OSError:  # the parent is gone
            return


class _ParentGone(BaseException):
    """The process that started this worker died (SIGKILL, the OOM killer, a CI time-out)."""


def _parent_gone(signum, frame):
    raise _ParentGone


class LocalExecutor:
    """Runs tasks on ``jobs`` worker processes of this machine (see :class:`_Pool`)."""

    def __init__(self, jobs: int):
        self.jobs = jobs

    def run(self, tasks: list[Task], job: Job, settings: Settings, results: list, on_result) -> None:
        warm_ms, ctx, prefetched = _prepare_workers(job, tasks, settings)
        try:
            _Pool(ctx, tasks, job, settings, results, on_result, warm_ms, prefetched).run(self.jobs)
        finally:
            if prefetched is not None:
                prefetched.close()


def _prepare_workers(job: Job, tasks: list[Task], settings: Settings):
    """(warm-up ms, the multiprocessing context for workers, the :class:`Prefetcher` or None):
    the parent compiles (once) or loads ``job``'s code, while the prefetcher inflates the first
    PNGs on the other core; workers forked afterwards start with both in memory."""
    import multiprocessing as mp

    if "numba" in sys.modules:
        import numba

        forkable = numba.config.THREADING_LAYER == "workqueue"
    else:  # Numba reads the same variable when it is imported
        forkable = os.environ.get("NUMBA_THREADING_LAYER") == "workqueue"
    prefetcher = None
    if forkable:  # images that will stream are read by their worker, band by band
        whole = [t for t in tasks if probe_streams(t, job, settings) is None]
        prefetcher = Prefetcher(whole, settings.max_pixels, settings.skip_existing) if whole else None
    try:
        warm_ms = warm(job, tasks[0].fmt)
    finally:
        if prefetcher is not None:
            prefetcher.stop()
    if forkable:  # Numba's workqueue threads survive fork(): workers start at once
        return warm_ms, mp.get_context("fork"), prefetcher
    # GNU OpenMP aborts a forked child: workers come from a clean server process instead
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["poolcli.runner.local", "poolcli.api", "poolcli.engine.convolve",
                                "poolcli.engine.pool"])
    return warm_ms, ctx, None


class _Pool:
    """Worker processes, each fed task indices over its own pipe and answering on it.

    Every worker has up to ``AHEAD`` indices sent to it, so it never waits for the parent; the
    parent only moves indices and results (no task or job is pickled per file: forked workers
    inherit them).  The first unanswered index of a worker that dies (killed, or out of
    memory) is the file it was working on: that file is run again at the end, alone in a
    fresh worker, and fails only if it kills that one too; the worker's other indices go back
    to the queue and a fresh worker takes its place.  SIGINT or SIGTERM sets ``stop``: workers
    finish the file in hand and quit, queued files are dropped, and KeyboardInterrupt is raised
    once the finished results are in.
    """

    AHEAD = 2

    def __init__(self, ctx, tasks, job, settings, results, on_result, warm_ms: float, prefetched=None):
        self.ctx, self.tasks, self.job, self.settings, self.prefetched = ctx, tasks, job, settings, prefetched
        self.results, self.on_result, self.warm_ms = results, on_result, warm_ms
        self.stop = ctx.RawValue("b", 0)
        # a forked worker's parent is this process; a fork server's worker's is the server
        self.parent = os.getpid() if ctx.get_start_method() == "fork" else None
        self.sent: dict = {}  # parent end of a worker's pipe → (process, indices sent, unanswered)
        self.interrupted = 0  # signals received

    # -- workers

    def _start(self):
        from collections import deque

        mine, theirs = self.ctx.Pipe()
        proc = self.ctx.Process(
            target=_work,
            args=(theirs, self.tasks, self.job, self.settings, self.stop, self.parent, self.prefetched),
            daemon=True,
        )
        proc.start()
        theirs.close()
        self.sent[mine] = (proc, deque())
        return mine

    def _feed(self, conn, todo) -> None:
        """Top the worker behind ``conn`` up to AHEAD indices from ``todo``; with none left
        for it, tell it to quit.  A worker that died meanwhile is noticed by the loop."""
        _, sent = self.sent[conn]
        try:
            # a second index only while there are more files left than workers: the last
            # ones go to whichever worker is free first
            while todo and not self.interrupted and (not sent or len(sent) < self.AHEAD and len(todo) > len(self.sent)):
                sent.append(todo.popleft())
                conn.send(sent[-1])
            if not sent or self.interrupted:
                conn.send(None)
        except OSError:
            pass

    def _record(self, res: FileResult) -> None:
        res.compile_ms += self.warm_ms  # the warm-up is charged to the first file
        self.warm_ms = 0.0
        self.results.append(res)
        self.on_result(res)

    # -- the loop

    def run(self, jobs: int) -> None:
        from collections import deque

        todo = deque(range(len(self.tasks)))
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        old = {sig: signal.signal(sig, self._interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        old_wakeup = signal.set_wakeup_fd(wake_w)
        try:
            for _ in range(min(jobs, len(todo))):
                self._feed(self._start(), todo)
            suspects = self._loop(todo, wake_r, respawn=True)
            while suspects and not self.interrupted:  # each alone, in a fresh worker
                one = deque([suspects.pop(0)])
                self._feed(self._start(), one)
                for i in self._loop(one, wake_r, respawn=False):
                    task = self.tasks[i]
                    res = FileResult(input=task.source, output=task.dest)
                    res.error = f"{task.source}: the worker process died on it (killed, or out of memory)"
                    self._record(res)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in old.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
            self._kill_all()
        if self.interrupted:
            raise KeyboardInterrupt

    def _interrupt(self, signum, frame) -> None:
        # No exception here: it could land in the middle of reading a result.  The wake-up
        # fd makes the loop's wait return, and the loop stops the workers.
        self.interrupted += 1
        self.stop.value = 1

    def _loop(self, todo, wake_r: int, *, respawn: bool) -> list[int]:
        """Collect results until every worker has quit; returns the indices whose worker died
        on them."""
        from multiprocessing.connection import wait

        died: list[int] = []
        while self.sent:
            ready = wait([*self.sent, wake_r])
            if wake_r in ready:
                os.read(wake_r, 512)
                if not self.interrupted:  # another signal with a Python handler: not ours
                    continue
                todo.clear()
                if self.interrupted > 1:  # a second Ctrl-C: stop waiting for files in hand
                    self._kill_all()
                    return died
                for conn in self.sent:
                    self._feed(conn, todo)  # tells each worker to quit after its file
                continue
            for conn in ready:
                proc, sent = self.sent[conn]
                try:
                    i, res = conn.recv()
                except (EOFError, OSError):  # the worker quit, or died
                    del self.sent[conn]
                    conn.close()
                    proc.join()
                    if proc.exitcode:  # killed: it may have left a temporary file
                        _remove_orphans([self.tasks[k] for k in sent], proc.pid)
                    if sent and not self.interrupted:  # it died on sent[0]; the rest never started
                        died.append(sent.popleft())
                        todo.extendleft(reversed(sent))
                        if respawn and todo:
                            self._feed(self._start(), todo)
                    continue
                sent.remove(i)
                self._record(res)
                self._feed(conn, todo)
        return died

    def _kill_all(self) -> None:
        """Kill the workers still running (a second Ctrl-C, or an error in the parent), wait
        for them, and remove the temporary files they leave."""
        for conn, (proc, sent) in list(self.sent.items()):
            proc.kill()
            proc.join()
            conn.close()
            _remove_orphans([self.tasks[k] for k in sent], proc.pid)
        self.sent.clear()


def _remove_orphans(tasks: list[Task], pid: int) -> None:
    """Delete the temporary files the dead worker ``pid`` may have left beside the outputs of
    ``tasks`` (their names carry the pid of the process writing them)."""
    for folder in {os.path.dirname(os.path.abspath(t.dest)) for t in tasks if t.dest != "-"}:
        for tmp in glob.glob(os.path.join(glob.escape(folder), f"{glob.escape(io.temp_prefix(pid))}*.tmp")):
            try:
                os.unlink(tmp)
            except OSError:
                pass


