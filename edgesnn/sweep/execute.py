"""Run a sweep's missing tasks on a local process pool or a Dask cluster, resumably.

``run_tasks(tasks, out, backend)`` is the one entry point (``edgesnn sweep`` and a
future ``edgesnn fit`` call it): it skips every task whose result file exists in
``out``, runs the others through ``task.run_task`` on the backend, and writes each
result file (atomically) in this process as it arrives, so workers need no access
to ``out`` (a Dask worker on another machine writes nothing).

Backends (both ``concurrent.futures`` executors to this loop):

- ``PoolBackend(n)``: ``ProcessPoolExecutor`` with ``n`` spawned workers, one numba
  thread each (``NUMBA_NUM_THREADS=1``), SIGINT ignored in the workers (this process
  decides when to stop). A worker that dies (killed, out of memory) breaks the pool:
  the pool is rebuilt and the tasks that were in flight are run again.
- ``DaskBackend``: ``--cluster local`` starts a ``dask.distributed.LocalCluster``
  (processes, one thread per worker); ``--scheduler ADDR`` connects to a running
  scheduler. Dask reruns a lost worker's task on another worker by itself; a task
  Dask gives up on (``KilledWorker``) is submitted again here.

A task that fails ``MAX_ATTEMPTS`` times by losing its worker stops the sweep with
one line naming it. Before fanning out, the kernels are compiled once in this
process, once per compiled signature (``task.warm_caches``): workers then load them
from numba's on-disk cache instead of all compiling together.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from pathlib import Path
from typing import Callable

from edgesnn.errors import EdgeSnnError

MAX_ATTEMPTS = 3


def cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells, else all)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


class SweepInterrupted(EdgeSnnError):
    """A sweep stopped by SIGINT or SIGTERM; every finished point is on disk."""

    def __init__(self, signal_name: str, done: int, total: int):
        self.signal_name, self.done, self.total = signal_name, done, total
        self.exit_code = 130 if signal_name == "SIGINT" else 143
        super().__init__(f"stopped by {signal_name}: {done} of {total} tasks are done and "
                         "saved")


class TaskFailed(EdgeSnnError):
    """A task failed (not a user error of the point: a lost worker again and again, a bug)."""


def _worker_init() -> None:
    import signal

    os.environ["NUMBA_NUM_THREADS"] = "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class PoolBackend:
    """A local ``ProcessPoolExecutor`` of ``workers`` spawned processes."""

    name = "pool"

    def __init__(self, workers: int | None = None):
        self.workers = max(1, int(workers or cores()))
        self._ex: cf.ProcessPoolExecutor | None = None

    def executor(self) -> cf.Executor:
        if self._ex is None:
            import multiprocessing as mp

            os.environ.setdefault("NUMBA_NUM_THREADS", "1")
            self._ex = cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                              initializer=_worker_init)
        return self._ex

    def start(self) -> None:
        """Nothing to check up front: the pool starts with the first task."""

    def broken(self, exc: BaseException) -> bool:
        from concurrent.futures.process import BrokenProcessPool

        return isinstance(exc, BrokenProcessPool)

    def reset(self) -> None:
        """Drop a broken pool (the next ``executor()`` starts a new one)."""
        self.close(kill=True)

    def worker_pids(self) -> list[int]:
        ex = self._ex
        return [p.pid for p in getattr(ex, "_processes", {}).values()] if ex else []

    def close(self, kill: bool = False) -> None:
        ex, self._ex = self._ex, None
        if ex is None:
            return
        if kill:
            for p in list(getattr(ex, "_processes", {}).values()):
                try:
                    p.terminate()
                except Exception:
                    pass
        ex.shutdown(wait=True, cancel_futures=True)

    def describe(self) -> str:
        return f"{self.workers} local worker{'s' if self.workers != 1 else ''}"


#: Dask's defaults cost a run about 20 % of its wall time on a 2-core machine (a
#: Yin-Yang point: 1.70 s in a pool worker, 2.07-2.19 s in a Dask worker, 1.76-1.86 s
#: in a Dask worker after ``tune_worker``):
#:
#: - the nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``; any such setting
#:   switches off glibc's dynamic mmap threshold, so every numpy array above 128 KiB
#:   is mapped and unmapped again, page faults and all (most of the cost);
#: - the statistical profiler samples every thread's stack every 10 ms, and the event
#:   loop's 20 ms tick wakes a thread that takes the GIL from the running task.
#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_worker(worker=None) -> list[str]:
    """Undo Dask's costly defaults (above) in a running worker, a ``LocalCluster``'s or one
    that its owner started for ``--scheduler``: fixed high malloc thresholds when
    the nanny set ``MALLOC_TRIM_THRESHOLD_`` (arrays up to 64 MiB from the heap, as
    glibc's dynamic threshold would give them), and the profiler and tick stopped.
    Returns what it changed (names), for the tests."""
    changed = []
    if os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            if libc.mallopt(_M_MMAP_THRESHOLD, 64 << 20) and libc.mallopt(_M_TRIM_THRESHOLD,
                                                                        128 << 20):
                changed.append("malloc")
        except (OSError, AttributeError):
            pass                      # not glibc: nothing to undo
    callbacks = getattr(worker, "periodic_callbacks", None) or {}
    for name in ("profile", "profile-cycle", "tick"):
        pc = callbacks.get(name)
        if pc is not None and pc.is_running():
            pc.stop()
            changed.append(name)
    return changed


def _tuning_plugin():
    from dask.distributed import WorkerPlugin

    class EdgesnnTuning(WorkerPlugin):
        """``tune_worker`` on every worker, those that join later included."""

        name = "edgesnn-tuning"

        def setup(self, worker):
            tune_worker(worker)

    return EdgesnnTuning()


class DaskBackend:
    """A Dask distributed client: a new ``LocalCluster`` or a running scheduler."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None):
        self.scheduler = scheduler
        self.local_workers = max(1, int(workers or cores()))
        self._client = None
        self._cluster = None
        self._ex = None
        self._threads, self._asked = 1, -1e9

    def _connect(self):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise EdgeSnnError("Dask is not installed: pip install 'edgesnn[cluster]' (or "
                               "\"dask[distributed]\") to use --cluster or --scheduler") from None
        os.environ.setdefault("NUMBA_NUM_THREADS", "1")
        if self.scheduler is None:
            self._cluster = LocalCluster(n_workers=self.local_workers, processes=True,
                                         threads_per_worker=1, dashboard_address=":0",
                                         silence_logs=40)
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(self.scheduler, timeout=20)
            except (OSError, TimeoutError) as exc:
                raise EdgeSnnError(f"--scheduler {self.scheduler}: cannot connect ({exc}); "
                                   "is 'dask scheduler' running there?") from None
        self._client.register_plugin(_tuning_plugin())

    def start(self) -> None:
        """Connect now (start the local cluster, reach the scheduler): a wrong address
        fails before anything is written."""
        if self._client is None:
            self._connect()

    @property
    def workers(self) -> int:
        """Threads of the cluster's workers (asked of the scheduler at most every 5 s:
        workers may join or leave a running cluster)."""
        import time

        if self._client is None:
            self._connect()
        now = time.monotonic()
        if now - self._asked > 5.0:
            self._threads = max(sum(self._client.nthreads().values()), 1)
            self._asked = now
        return self._threads

    def executor(self) -> cf.Executor:
        if self._client is None:
            self._connect()
        if self._ex is None:
            self._ex = self._client.get_executor(pure=False)
        return self._ex

    def broken(self, exc: BaseException) -> bool:
        return type(exc).__name__ == "KilledWorker"

    def reset(self) -> None:
        pass

    def close(self, kill: bool = False) -> None:
        if self._ex is not None:
            try:
                self._ex.shutdown(wait=False)
            except Exception:
                pass
            self._ex = None
        for obj in (self._client, self._cluster):
            if obj is not None:
                try:
                    obj.close()
                except Exception:
                    pass
        self._client = self._cluster = None

    def describe(self) -> str:
        if self.scheduler is None:
            return f"a local Dask cluster of {self.local_workers} workers"
        return f"the Dask scheduler at {self.scheduler}"


def float_fields(result: dict, baseline: dict | None) -> dict:
    """A fixed result with its float baseline's figures and the gaps (in points of
    accuracy, from the counts: ``100 * (float correct - fixed correct) / n``)."""
    r = dict(result)
    if baseline is None or baseline.get("status") != "ok" or r.get("status") != "ok":
        r["float"] = {"id": r.get("float_id"), "status": (baseline or {}).get("status")}
        r["gap_points"] = None
        r["validation_gap_points"] = None
        return r
    n = max(r["test_count"], 1)
    nv = max(r["validation_points"], 1)
    fv, xv = baseline["validation_accuracy"], r["validation_accuracy"]
    r["float"] = {"id": baseline["id"], "test_accuracy": baseline["test_accuracy"],
                  "test_correct": baseline["test_correct"], "validation_accuracy": fv}
    r["gap_points"] = 100 * (baseline["test_correct"] - r["test_correct"]) / n
    r["validation_gap_points"] = (None if fv is None or xv is None
                                  else 100 * (round(fv * nv) - round(xv * nv)) / nv)
    # the timing block last, so that a file reads figures first
    r["timing"] = r.pop("timing")
    return r


def run_tasks(tasks: list[dict], out: Path, backend, progress: Callable[[int], None] | None = None,
              stop: Callable[[], str | None] | None = None, warm: bool = True,
              poll: float = 0.25, note: Callable[[str], None] | None = None,
              drained: Callable[[], None] | None = None) -> dict[str, dict]:
    """Run the tasks of ``tasks`` that have no result file in ``out`` yet; return every
    result (finished before or now) by id.

    ``tasks``: ``jobs.Work.all()`` order (float baselines first). A fixed result is
    written once its float baseline is known (with ``float_fields``). ``stop()``
    returns a signal name when the user asked to stop: then nothing new is started, the
    workers are stopped, and ``SweepInterrupted`` is raised (every written file is
    complete). ``progress(1)`` is called per task finished now, ``note(text)`` when a
    worker was lost and its tasks are run again, ``drained()`` once when the last task
    has been handed out and fewer tasks run than this machine has cores (time for work
    of this process that the end needs, such as importing matplotlib).
    """
    from edgesnn.sweep import store
    from edgesnn.sweep.task import run_task, warm_caches

    out = Path(out)
    by_id = {t["id"]: t for t in tasks}
    results: dict[str, dict] = {}
    for t in tasks:
        p = store.result_path(out, t["kind"], t["id"])
        if p.exists():
            results[t["id"]] = store.read_json(p)
    todo = [t for t in tasks if t["id"] not in results]
    held: dict[str, list[dict]] = {}           # float id -> fixed results waiting for it
    total = len(tasks)

    def finish(result: dict) -> None:
        if result["kind"] == "float":
            store.write_result(out, result)
            results[result["id"]] = result
            for fixed in held.pop(result["id"], []):
                finish(fixed)
            if progress:
                progress(1)
            return
        fid = result["float_id"]
        if fid not in results:
            held.setdefault(fid, []).append(result)
            return
        r = float_fields(result, results[fid])
        store.write_result(out, r)
        results[r["id"]] = r
        if progress:
            progress(1)

    if not todo:
        return results
    if warm:
        warm_caches(todo)
    queue = list(todo)
    attempts: dict[str, int] = {}
    running: dict[cf.Future, dict] = {}
    try:
        while queue or running:
            name = stop() if stop else None
            if name:
                raise SweepInterrupted(name, sum(1 for i in by_id if i in results), total)
            ex = backend.executor()
            capacity = 2 * backend.workers
            while queue and len(running) < capacity:
                t = queue.pop(0)
                running[ex.submit(run_task, t)] = t
            if drained and not queue and min(len(running), backend.workers) < cores():
                drained()                  # nothing left to hand out, and a core is idle
                drained = None
            done, _ = cf.wait(list(running), timeout=poll, return_when=cf.FIRST_COMPLETED)
            lost: list[dict] = []
            for f in done:
                t = running.pop(f)
                try:
                    result = f.result()
                except BaseException as exc:          # noqa: BLE001 - sorted below
                    if backend.broken(exc) or isinstance(exc, cf.CancelledError):
                        lost.append(t)
                        continue
                    raise TaskFailed(f"task {t['id']} ({_what(t)}) failed: "
                                     f"{type(exc).__name__}: {exc}") from None
                finish(result)
            if lost:
                if backend.name == "pool":       # a broken pool fails every task in flight
                    lost += list(running.values())
                    running.clear()
                    backend.reset()
                if note:
                    note(f"a worker was lost; running its {len(lost)} unfinished task"
                         f"{'s' if len(lost) != 1 else ''} again")
                for t in lost:
                    attempts[t["id"]] = attempts.get(t["id"], 0) + 1
                    if attempts[t["id"]] >= MAX_ATTEMPTS:
                        raise TaskFailed(f"task {t['id']} ({_what(t)}) lost its worker "
                                         f"{MAX_ATTEMPTS} times; not retried")
                queue = lost + queue
    except BaseException:
        for f in running:
            f.cancel()
        backend.close(kill=True)
        raise
    return results


def _what(t: dict) -> str:
    from edgesnn.sweep.grid import describe

    if t["kind"] == "float":
        return f"float baseline, seed {t['seed']}"
    return f"{describe(tuple(map(tuple, t['point'])))}, seed {t['seed']}"
