"""Run a search graph on an existing engine: dask's local schedulers or dask.distributed.

dklearn has no scheduler of its own.  ``run(graph, keys, scheduler, n_jobs)``
picks one and returns the values of ``keys`` in order:

=====================  ==================================================
``scheduler``          engine
=====================  ==================================================
None                   the default dask.distributed Client if there is one
                       (as for dask collections), else the local default
'sync'                 ``dask.local.get_sync``: in this thread, in order
'threads'              ``dask.threaded.get`` with ``n_jobs`` threads
'processes'            ``dask.multiprocessing.get`` on a loky process pool
                       of ``n_jobs`` processes (data sent once to each)
a Client / 'tcp://..'  that cluster (``Client.get``, data scattered once)
=====================  ==================================================

``n_jobs=None`` or -1 means every core, 1 means sequential in this thread.

The local default is chosen by measurement, while the search runs.  Threads
share every intermediate result for free, and most of scikit-learn's heavy
work (BLAS, liblinear, libsvm, tree building) releases the GIL; but an
estimator that holds the GIL (MLPClassifier with small batches) runs no
faster on two threads than on one.  So the search starts on threads and a
watcher reads each worker thread's CPU clock (``_GilProbe``): if, after a
tenth of a second, they got less than 65% of their time on a core, enough
work remains to pay for starting processes, and the graph has nothing to
share between tasks (no pipeline prefix, so nothing to lose by moving), the
unfinished tasks move to processes.  Finished results are kept, and so are
those of the tasks running at the move, which finish on their threads while
the processes start: nothing is computed twice.  (Measured on 2 cores,
benchmarks/run.py: MLP, threads 2.2x slower than scikit-learn, processes
1.1x; PCA pipeline, threads 0.7x, processes 1.9x.)  When the tasks are long
(``SLOT_SECONDS``), the move starts one worker process fewer, and a thread
of this process takes its place (``_ThreadSlot``): that saves a worker's
start-up, a core-second of imports that a GIL-bound search otherwise loses
to scikit-learn's own process pool, and a thread running one long task at a
time holds the GIL without a rival.  While it works, this process's threads
are held to one core (``_OneCore``), so that those waking up for the GIL it
holds do not preempt the worker processes on theirs.

A graph that shares work (pipeline prefixes) does not move whole: its
intermediate results are free to share between threads and costly to
ship.  ``_SharedPool`` meters only its final (candidate, fold) fits; if they
are long and the GIL costs them more than a process start, one worker
process starts and from then on a thread of this process runs any task
while the process runs final fits only, their inputs pickled with them
(HistGradientBoosting behind a ColumnTransformer: 10% faster).  dask's
loop is not interrupted: only where new tasks go changes.

On threads, dask hands many independent tasks over a few at a time
(``thread_chunksize``): its loop holds the GIL for each hand-over, which
threads running small fits wait for.

BLAS threads are capped so that workers x BLAS threads <= cores: two
workers each running a 2-thread BLAS on 2 cores lose to either alone.

The client's memory is held near scikit-learn's own: a graph of
independent fits runs in chunks (``_chunks``), and each chunk's tasks leave
the graph once run, so that records replace tasks instead of joining them.
A process pool is shut down after the search's refit (``workers_linger``).

scikit-learn's configuration (``config_context``: metadata routing, array
API dispatch, ``transform_output``, ...) is thread-local; every worker thread
or process is started with the caller's, and on a cluster every task carries
it.
"""

import collections
import concurrent.futures
import contextlib
import os
import pickle
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import joblib
from threadpoolctl import threadpool_limits

from . import _tasks

LOCAL_SCHEDULERS = ("sync", "threads", "processes")


def n_workers(n_jobs):
    """Workers for ``n_jobs`` with scikit-learn's conventions, None meaning all cores."""
    cores = joblib.cpu_count()
    if n_jobs is None:
        return cores
    if n_jobs < 0:
        return max(cores + 1 + n_jobs, 1)
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive integer.")
    return n_jobs


def active_client():
    """The dask.distributed Client the user has made the default, if any.

    As for dask collections: a Client made with ``set_as_default=False`` is
    used only when passed explicitly.
    """
    import dask

    if dask.config.get("scheduler", None) not in ("dask.distributed", "distributed"):
        return None
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def check_scheduler(scheduler):
    """Validate ``scheduler`` early, with a message that says what is accepted."""
    if scheduler is None or scheduler in LOCAL_SCHEDULERS:
        return
    if isinstance(scheduler, str) and "://" in scheduler:
        return
    if hasattr(scheduler, "get") and hasattr(scheduler, "scheduler_info"):
        return
    raise ValueError(
        "scheduler must be None, 'sync', 'threads', 'processes', a scheduler "
        f"address such as 'tcp://127.0.0.1:8786', or a dask.distributed Client; "
        f"got {scheduler!r}."
    )


class Hooks:
    """What the search wants to hear from an engine while the graph runs.

    ``done(key, value)``: a requested key finished (for checkpoints and
    progress; called in the calling thread).  ``lost(key, error)``: the task
    of ``key`` kept killing the worker processes that ran it; returns the
    key's value (a failed-fit record) or raises.
    """

    def __init__(self, done=None, lost=None):
        self.done = done or (lambda key, value: None)
        self.lost = lost


def run(graph, keys, scheduler=None, n_jobs=None, config=None, hooks=None):
    """Compute ``keys`` of ``graph``; return their values as a list.

    ``config`` is ``sklearn.get_config()`` of the caller, for the workers.
    The graph becomes the engine's: a search of independent fits, run in
    chunks, drops each chunk's tasks from it once they have run, so that
    the tasks (a few hundred bytes each) give way to the records as the
    search goes, instead of both being held at the end.
    """
    check_scheduler(scheduler)
    config = config or {}
    hooks = hooks or Hooks()
    auto = scheduler is None
    if scheduler is None:
        client = active_client()
        if client is not None:
            return _run_distributed(client, graph, keys, config, hooks)
        scheduler = "threads"
    if isinstance(scheduler, str) and "://" in scheduler:
        from distributed import Client

        with Client(scheduler, set_as_default=False) as client:
            return _run_distributed(client, graph, keys, config, hooks)
    if not isinstance(scheduler, str):
        return _run_distributed(scheduler, graph, keys, config, hooks)

    workers = n_workers(n_jobs)
    if scheduler == "sync" or workers == 1:
        import dask.local

        def run_sync(graph, keys):
            return list(dask.local.get_sync(graph, keys, callbacks=[_reporter(keys, hooks)]))

        return _in_chunks(graph, keys, run_sync)
    blas = max(joblib.cpu_count() // workers, 1)
    if scheduler == "threads":
        shares = auto and _shares_work(graph)
        if shares and not _has_callbacks(graph):
            return _run_shared(graph, keys, workers, blas, config, hooks)
        probe = None
        if auto and not shares:
            probe = _GilProbe(workers, len(keys),
                              processes=_Processes(graph, workers, blas, config))
        finished = {}
        pace = []  # thread-seconds per task of each chunk run so far

        def run_chunk(sub, chunk):
            start = time.perf_counter()
            size = thread_chunksize(len(chunk), workers, pace[-1] if pace else None)
            values = _run_threads(sub, chunk, workers, blas, config, hooks, probe,
                                  chunksize=size)
            pace.append((time.perf_counter() - start) * workers / max(len(chunk), 1))
            return values

        try:
            return _in_chunks(graph, keys, run_chunk, finished)
        except _ThreadsStarved:
            # What the threads finished is kept; only the rest moves.  Tasks
            # still running on threads finish there while the processes run
            # the others.
            finished.update(probe.results)
            probe.started.wait()  # the watcher starts them, in parallel
            if probe.failed is not None:
                raise probe.failed
            started, probe.processes = probe.processes, None
            return _run_processes(
                graph, keys, workers, blas, config, hooks, done=finished,
                seconds_per_task=probe.seconds_per_task, started=started,
                on_threads=probe.on_threads(), settle=lambda: probe.settle(hooks, finished),
            )
        finally:
            if probe is not None:
                probe.close()
    return _run_processes(graph, keys, workers, blas, config, hooks)


# dask's local schedulers keep a few kilobytes of state per task: a search of
# 50,000 independent fits runs as chunks of this many, so that the client's
# memory stays near scikit-learn's (10,000 candidates x 5 folds: 2,000-key
# chunks peaked 14 MB higher).  (Graphs that share work run whole.)  On a
# process pool, tasks travel in batches, so dask sees a few per chunk: its
# chunks are larger, since each chunk ends with idle workers and smaller
# ones make smaller batches (500 keys cost 5% more time there), but dask
# still unpacks every batched task (about 4 kB each while the chunk runs:
# 2,000 keys peaked 6 MB higher than 1,000).
CHUNK_KEYS = 500
POOL_CHUNK_KEYS = 2 * CHUNK_KEYS


def _in_chunks(graph, keys, run, finished=None):
    """``run(graph, keys)`` for each chunk; the values of ``keys``, in order."""
    finished = {} if finished is None else finished
    for sub, chunk in _chunks(graph, keys):
        finished.update(zip(chunk, run(sub, chunk)))
    return [finished[k] for k in keys]


def _chunks(graph, keys, size=None):
    """(graph, keys) pairs to run one after the other: chunks of independent fits.

    Each chunk's keys leave ``graph`` when the next chunk is asked for (and
    after the last): the caller has their values by then.
    """
    size = size or CHUNK_KEYS
    if len(keys) <= size or _shares_work(graph):
        yield dict(graph), list(keys)
        return
    from dask.optimization import cull

    for start in range(0, len(keys), size):
        # A key already run (requested twice) has left the graph: its value is in.
        chunk = [k for k in keys[start:start + size] if k in graph]
        if chunk:
            yield cull(graph, chunk)[0], chunk
        for key in chunk:  # a final task: nothing else in a chunked graph needs it
            graph.pop(key, None)


def _reporter(keys, hooks, finished=None):
    """A dask posttask callback passing requested keys' values to ``hooks.done``."""
    wanted = set(keys)

    def posttask(key, result, dsk, state, worker_id):
        if key in wanted:
            if finished is not None:
                finished[key] = result
            hooks.done(key, result)

    return (None, None, None, posttask, None)


def _shares_work(graph):
    """Whether tasks pass intermediate results (fitted prefixes) to each other."""
    return any(isinstance(k, str) and k.startswith(("fit-", "union-")) for k in graph)


class _ThreadsStarved(Exception):
    """Raised by the probe to abandon a threaded run that the GIL serializes."""


# Tasks at least this long (a lower bound measured on threads) run in a
# process pool of one process fewer plus a thread of this process
# (``_ThreadSlot``) after a move.
SLOT_SECONDS = 0.05


class _GilProbe:
    """Watches the CPU that busy worker threads get and decides, once, whether to move.

    A watcher thread waits ``probe_seconds`` from the first task handed to
    the pool, then reads each worker thread's own CPU clock (``_Meter``;
    other threads of the process, a dask client's event loop say, do not
    count) and divides their sum by that time x workers.  It needs no task to
    finish, so a search of slow GIL-bound fits (MLP: about a second each on
    two threads) can move long before the first one ends.  It moves when the
    share is below ``threshold`` and the remaining work, estimated from what
    is done, is worth a pool start.  The watcher itself needs the GIL to
    wake up, so it wakes up once: under GIL-bound fits, each wake-up took
    10-100 ms (it decided 0.2-0.35 s in with a 25 ms tick, 0.10-0.17 s in
    with one wake-up, MLPClassifier on 2 cores).

    To move, it fails one of the futures dask's loop waits for with
    ``_ThreadsStarved``, which wakes that loop in the calling thread.  Tasks
    still running on threads (``on_threads()``) finish in the background
    while the processes run the others; their results land in ``late`` and
    are not computed again.  ``results`` holds every key dask saw finish
    before the move (a posttask callback).
    """

    def __init__(self, workers, n_tasks, processes, probe_seconds=0.1, threshold=0.65,
                 move_above_seconds=1.0):
        # Measured here on 2 threads: MLPClassifier 0.52-0.53, DummyClassifier
        # 0.46 (the scheduler thread starves them), 1,000 small decision trees
        # 0.78-0.85 (threads win there); the threshold sits between, with margin.
        self.workers, self.n_tasks = workers, n_tasks
        self.processes = processes  # a _Processes, started at a decision to move
        self.probe_seconds, self.threshold = probe_seconds, threshold
        self.move_above_seconds = move_above_seconds
        self.lock = threading.Lock()
        self.meters = []  # one per worker thread
        self.waiting = set()  # futures handed to dask and not yet done
        self.running = set()  # the thread pool's futures behind them
        self.launched, self.results, self.late = set(), {}, {}
        self.requested = set()  # the keys of the chunk the threads run
        self.starved = False
        self.staying = False  # decided not to move
        self.seconds_per_task = None  # busy time per finished task, at the decision
        self.stop = threading.Event()
        self.started = threading.Event()  # set once the processes are started, or failed to
        self.failed = None  # why they could not be
        self.watcher = None  # started, with the clock, by the first task
        # Threads of the caller's, but the calling thread, which runs dask's
        # loop: a move does not hold them to one core.
        self.spare = {t.native_id for t in threading.enumerate()} - {threading.get_native_id()}

    # -- dask callbacks ---------------------------------------------------------

    def pretask(self, key, dsk, state):
        if not self.staying:
            self.launched.add(key)

    def posttask(self, key, result, dsk, state, worker_id):
        if not self.staying:
            self.results[key] = result

    def on_threads(self):
        """Keys handed to the threads that dask's loop did not see finish."""
        return self.launched.difference(self.results)

    # -- the pool's side -------------------------------------------------------

    def track(self, submit, fn, args, kwargs):
        """``submit(fn, ...)`` for dask, through a future the probe can fail."""
        if self.staying:  # decided: the threads keep the search, unwatched
            return submit(fn, *args, **kwargs)
        waiting = Future()
        with self.lock:
            if self.watcher is None:
                self.t0, self.process_cpu0 = time.perf_counter(), time.process_time()
                self.watcher = threading.Thread(target=self._watch, daemon=True,
                                                name="dklearn-gil-probe")
                self.watcher.start()
            if self.starved:  # moving: dask's loop is about to stop
                # These keys never reach a thread: the processes run them.
                self.launched.difference_update(_submitted_keys(args))
                waiting.set_exception(_ThreadsStarved())
                return waiting
            self.waiting.add(waiting)
            running = submit(_metered, self, fn, *args, **kwargs)
            self.running.add(running)
        running.add_done_callback(lambda done: self._settle(waiting, done))
        return waiting

    def _settle(self, waiting, running):
        with self.lock:
            self.running.discard(running)
            self.waiting.discard(waiting)
            if running.cancelled():
                waiting.cancel()
            elif running.exception() is not None:
                if not waiting.done():
                    waiting.set_exception(running.exception())
            else:
                if not waiting.done():
                    waiting.set_result(running.result())
                if self.starved:  # dask's loop may be gone: keep it here too
                    for key, (value, _), failed in running.result():
                        if not failed:
                            self.late[key] = value

    def meter(self):
        """A meter for the calling worker thread."""
        meter = _Meter()
        with self.lock:
            self.meters.append(meter)
        return meter

    # -- the watcher -------------------------------------------------------------

    def _watch(self):
        # One wake-up: under GIL-bound fits, each took this thread 10-100 ms.
        if self.stop.wait(self.probe_seconds):
            return  # the run ended first
        wall = time.perf_counter() - self.t0
        with self.lock:
            meters, done = list(self.meters), len(self.results)
        cpu = [m.cpu() for m in meters]
        if None in cpu:  # no per-thread clocks here: the whole process's, a little more
            cpu = [time.process_time() - self.process_cpu0]
        # Measured from the first task handed to the pool, for every thread:
        # a thread that waits for the GIL before its first task, or for the
        # scheduler between tasks, counts as starved too.
        share = sum(cpu) / (self.workers * wall)
        # A task so far took at least the busy time it had, finished or not.
        per_task = sum(m.busy() for m in meters) / max(done, 1)
        self.seconds_per_task = per_task if done else None
        remaining = max(self.n_tasks - done - self.workers, 0) * per_task
        if share < self.threshold and remaining > self.move_above_seconds:
            slot = None
            if per_task >= SLOT_SECONDS:
                slot = _ThreadSlot(self.processes.blas, self.processes.config,
                                   self.processes.data)
                # The slot waits for the tasks on these threads: no more
                # start there.  (Without a slot, the threads work on while
                # the processes start.)
                with self.lock:
                    self.starved = True
                    slot.hold(self.running)
            # Started here, now: the calling thread may wait a while for the
            # GIL these threads hold before it wakes up to move.
            try:
                self.processes.start(slot, one_core=True, spare=self.spare)
            except Exception as error:  # raised in the calling thread instead
                self.failed = error
            finally:
                self.started.set()
            with self.lock:
                self.starved = True
                for waiting in self.waiting:
                    if not waiting.done():
                        waiting.set_exception(_ThreadsStarved())
                        break
        else:  # the threads keep the search: what a move needs is no longer kept
            self.staying = True
            self.launched, self.results = set(), {}

    def close(self):
        """Stop the watcher; a pool that nobody took is shut down."""
        self.stop.set()
        if self.watcher is not None:
            self.watcher.join()
        if self.processes is not None:
            self.processes.abandon()
            self.processes = None

    def settle(self, hooks, reported):
        """Wait for the tasks still running on threads; their results, by key.

        Requested keys among them (of the chunk being run, ``requested``) not
        in ``reported`` are reported to ``hooks.done`` here, in the calling
        thread.
        """
        with self.lock:
            running = list(self.running)
        concurrent.futures.wait(running)
        with self.lock:
            late = dict(self.late)
        for key, value in late.items():
            if key in self.requested and key not in reported:
                hooks.done(key, value)
        return late


class _Meter:
    """Wall time a worker thread spent in tasks, and the CPU time it got."""

    def __init__(self):
        try:  # the calling thread's CPU clock, readable from other threads (POSIX)
            self.clock = time.pthread_getcpuclockid(threading.get_ident())
            self.cpu0 = time.clock_gettime(self.clock)
        except (AttributeError, OSError):
            self.clock = None
        self.spent, self.since = 0.0, None

    def begin(self):
        self.since = time.perf_counter()

    def end(self):
        self.spent += time.perf_counter() - self.since
        self.since = None

    def busy(self):
        since = self.since
        return self.spent + (time.perf_counter() - since if since is not None else 0.0)

    def cpu(self):
        """CPU seconds of the thread since the meter was made, or None."""
        if self.clock is None:
            return None
        try:
            return time.clock_gettime(self.clock) - self.cpu0
        except OSError:  # the thread has exited
            return None


class _MeteredPool(ThreadPoolExecutor):
    """A thread pool whose tasks a ``_GilProbe`` meters and may interrupt."""

    def __init__(self, workers, probe, **kwargs):
        super().__init__(workers, **kwargs)
        self.probe = probe

    def submit(self, fn, /, *args, **kwargs):
        return self.probe.track(super().submit, fn, args, kwargs)


_METERS = threading.local()


def _metered(owner, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, timed by the calling thread's meter of ``owner``
    (a ``_GilProbe`` or a ``_SharedPool``: ``owner.meter()`` makes it)."""
    mine = getattr(_METERS, "mine", None)
    if mine is None or mine[0] is not owner:
        mine = _METERS.mine = (owner, owner.meter())
    meter = mine[1]
    meter.begin()
    try:
        return fn(*args, **kwargs)
    finally:
        meter.end()


# A shared graph's final fits run in a process pool of one process fewer
# plus a thread of this process (``_SharedPool``) when the time they lose to
# the GIL on threads, estimated as remaining work x (1 / share - 1), is
# above this many seconds: a worker process takes about a core-second to
# start.  Fits that get this share of a core or more stay on threads
# whatever the work left: their inputs would be pickled for nothing.
# (Measured on 2 threads, share of final fits: HistGradientBoosting behind
# a ColumnTransformer 0.87, liblinear behind PCA 0.98.)
HYBRID_SECONDS = 1.0
HYBRID_SHARE = 0.93
# Final-task time per worker thread after which ``_SharedPool`` decides.
FINALS_PROBE_SECONDS = 0.1


class _SharedPool(concurrent.futures.Executor):
    """What dask submits a shared graph's tasks to by default: threads, then maybe a hybrid.

    Tasks start on ``workers`` threads, which read the data through
    ``Shared`` entries like a slot.  A watcher reads the CPU clocks of the
    threads while they run final (candidate, fold) tasks (``_TaskMeter``):
    prefix tasks, a ColumnTransformer's say, do not count.  Once the final
    tasks have run ``probe_seconds`` per thread, it decides, once: if they
    are long (``SLOT_SECONDS``) and the time the GIL costs them is worth a
    process start (``HYBRID_SECONDS``), one worker process starts and
    every task submitted from then on goes to a ``_Hybrid``: a thread of
    this process takes any task, the process final ones.  Nothing is
    interrupted or computed twice; dask's loop goes on as it was, and the
    prefixes stay shared in this process.
    """

    def __init__(self, workers, n_finals, processes, tick=0.025):
        self.workers, self.n_finals, self.processes = workers, n_finals, processes
        self.probe_seconds, self.tick = FINALS_PROBE_SECONDS, tick
        self._max_workers = workers  # read by dask
        self.threads = ThreadPoolExecutor(
            workers, initializer=_start_slot,
            initargs=(processes.blas, processes.config, processes.data),
        )
        self.lock = threading.Lock()
        self.meters = []
        self.running = set()  # thread futures not yet done
        self.router = None  # the _Hybrid, once decided
        self.staying = False  # decided against it: tasks go to the threads unwatched
        self.stop = threading.Event()
        self.watcher = None

    def submit(self, fn, /, *args, **kwargs):
        if self.staying:
            return self.threads.submit(fn, *args, **kwargs)
        with self.lock:
            router = self.router
            if router is None:
                if self.watcher is None:
                    self.watcher = threading.Thread(target=self._watch, daemon=True,
                                                    name="dklearn-finals-probe")
                    self.watcher.start()
                future = self.threads.submit(self._metered, fn, args, kwargs)
                self.running.add(future)
        if router is not None:
            return router.submit(fn, *args, **kwargs)
        future.add_done_callback(self._discard)
        return future

    def _discard(self, future):
        with self.lock:
            self.running.discard(future)

    def _metered(self, fn, args, kwargs):
        if not _final_key(args):
            return fn(*args, **kwargs)
        return _metered(self, fn, *args, **kwargs)

    def meter(self):
        """A meter of final tasks for the calling worker thread."""
        meter = _TaskMeter()
        with self.lock:
            self.meters.append(meter)
        return meter

    def _watch(self):
        while not self.stop.wait(self.tick):
            with self.lock:
                meters = list(self.meters)
            totals = [m.totals() for m in meters]
            if None in totals:  # no per-thread CPU clocks here: stay on threads
                self.staying = True
                return
            cpu, wall, done, cpu_done = (sum(t[i] for t in totals) for i in range(4))
            if wall <= 0 or wall < self.probe_seconds * self.workers:
                continue
            share = cpu / wall
            # CPU seconds per final task, or a lower bound while none has ended.
            per_task = cpu_done / done if done else cpu / self.workers
            remaining = max(self.n_finals - done - self.workers, 0) * per_task
            lost = remaining * (1 / share - 1) if share > 0 else float("inf")
            move = per_task >= SLOT_SECONDS and share < HYBRID_SHARE and lost > HYBRID_SECONDS
            # A lower bound can say "move" but not "stay": without a finished
            # task, HistGradientBoosting's fits looked half as long as they are.
            if move or done:
                break
        else:
            return  # the run ended first
        if not move:
            self.staying = True
            return
        procs = self.processes
        slot = _ThreadSlot(procs.blas, procs.config, procs.data)
        try:
            procs.start(slot)
        except Exception:  # the data cannot be written, say: threads do without
            slot.close()
            self.staying = True
            return
        with self.lock:
            # Two threads holding the GIL make one core: the slot waits for
            # the tasks still on these threads.
            slot.hold(self.running)
            self.router = procs.executor(self.n_finals - done, _Hybrid)

    def shutdown(self, wait=True, *, cancel_futures=False):
        self.threads.shutdown(wait=wait, cancel_futures=cancel_futures)

    def close(self, abandon=False):
        """Stop the watcher; shut the worker process down (at once if ``abandon``)."""
        self.stop.set()
        if self.watcher is not None:
            self.watcher.join()
        if abandon:
            self.processes.abandon()
        else:
            self.processes.close()


class _TaskMeter(_Meter):
    """CPU and wall time one worker thread spent in final tasks, the running one included."""

    def __init__(self):
        super().__init__()
        self.cpu_spent, self.done, self.cpu_since = 0.0, 0, None

    def begin(self):
        if self.clock is not None:
            self.cpu_since = self.cpu()
        super().begin()

    def end(self):
        if self.clock is not None:
            self.cpu_spent += self.cpu() - self.cpu_since
        self.done += 1
        self.cpu_since = None
        super().end()

    def totals(self):
        """(cpu, wall, finished tasks, cpu of the finished ones), or None without a clock."""
        if self.clock is None:
            return None
        since, now = self.cpu_since, self.cpu()  # the task may end meanwhile
        running = now - since if since is not None and now is not None else 0.0
        return self.cpu_spent + running, self.busy(), self.done, self.cpu_spent


def _has_callbacks(graph):
    """Whether final tasks carry scikit-learn fit callbacks (which hold the search)."""
    return any(
        type(task) is tuple and task and task[0] is _tasks.fit_and_score
        and task[4] is not None
        for task in graph.values()
    )


def _run_shared(graph, keys, workers, blas, config, hooks):
    """The local default for a graph that shares work (see ``_SharedPool``).

    If a worker process dies under a final fit, the pool is abandoned and
    what is left runs on processes alone (``_run_processes``), where a fit
    that kills its process is retried, then recorded as failed; it never
    runs in this process again.
    """
    procs = _Processes(graph, workers, blas, config)
    graph.update(procs.references())
    pool = _SharedPool(workers, len(keys), procs)
    finished = {}
    try:
        values = _run_threads(graph, keys, workers, blas, config, hooks, pool=pool,
                              finished=finished)
    except BaseException as error:  # Ctrl-C, a failing fit, a dead worker: stop it now
        pool.close(abandon=True)
        if not (isinstance(error, BrokenProcessPool) and pool.router is not None):
            raise
    else:
        pool.close()
        return values
    graph.update({k: _tasks.Const(v) for k, v in procs.data.items()})
    return _run_processes(graph, keys, workers, blas, config, hooks, done=finished)


# dask's threaded loop costs about 70 microseconds of this process's GIL
# per task it hands to a thread, time that the worker threads of a search of
# many small fits wait for.  dask can hand ready tasks over a few at a time
# (its ``chunksize``): for independent fits, groups small enough that each
# thread gets this many or more of them, so that the last group ends at most
# about 1/32 of a thread's work after the other thread's, and, once a chunk
# of the search has shown how long its tasks take, of at most this many
# seconds of work (long fits gain nothing from groups, and lose at the end).
# (1,000 decision trees on 2 threads: 3.8 s, against 3.95 s one at a time.)
THREAD_CHUNKS_PER_WORKER = 32
THREAD_CHUNK_SECONDS = 0.05


def thread_chunksize(n_keys, workers, seconds_per_task=None):
    """How many independent tasks dask hands a worker thread at once.

    ``seconds_per_task``: their mean length so far, if known.
    """
    return _group_size(n_keys, workers, THREAD_CHUNKS_PER_WORKER,
                       seconds_per_task, THREAD_CHUNK_SECONDS)


def _group_size(n_keys, workers, groups_per_worker, seconds_per_task, seconds_per_group):
    """Tasks per group: each worker gets ``groups_per_worker`` groups or more,
    and, when the tasks' length is known, a group holds about
    ``seconds_per_group`` of work (at least one task)."""
    most = max(n_keys // (workers * groups_per_worker), 1)
    if seconds_per_task is None:
        return most
    return min(most, max(int(seconds_per_group / max(seconds_per_task, 1e-6)), 1))


def _run_threads(graph, keys, workers, blas, config, hooks, probe=None, pool=None,
                 finished=None, chunksize=1):
    """Run on ``workers`` threads (or on ``pool``, which dask then submits to).

    ``finished``, if given, receives each requested key's value as it comes.
    ``chunksize`` is dask's: ready tasks handed to a thread at once.
    """
    import dask.threaded

    callbacks = [_reporter(keys, hooks, finished)]
    if probe is not None:
        callbacks.append((None, None, probe.pretask, probe.posttask, None))
        probe.requested = set(keys)
    if pool is None:
        options = dict(initializer=_start_thread, initargs=(blas, config))
        if probe is None:
            pool = ThreadPoolExecutor(workers, **options)
        else:
            pool = _MeteredPool(workers, probe, **options)
    try:
        # The BLAS cap is process-wide: it holds for every worker thread.
        with threadpool_limits(limits=blas):
            values = list(
                dask.threaded.get(graph, keys, pool=pool, num_workers=workers,
                                  callbacks=callbacks, chunksize=chunksize)
            )
    except BaseException:
        # Ctrl-C or a failure: return now; running fits end on their own.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return values


class CrashedWorker(RuntimeError):
    """A task was running in a worker process each time that process died."""


# A process-pool task costs about a millisecond of pickling and messages
# (measured: 10,000 one-millisecond fits took 1.6x longer on 2 processes than
# in one thread).  Cheap requested tasks are therefore sent in batches of
# about this many seconds of work, but never so few batches that a worker
# waits at the end.
BATCH_SECONDS = 0.1
BATCHES_PER_WORKER = 8


def batch_size(n_keys, workers, seconds_per_task=None, n_total=None):
    """How many of ``n_keys`` requested tasks to run per process-pool task.

    ``seconds_per_task`` is the mean measured on threads (None: unknown, in
    which case only searches of many tasks, ``n_total`` in all, are batched,
    by count).
    """
    if seconds_per_task is None and (n_total or n_keys) < 1000:
        return 1
    return _group_size(n_keys, workers, BATCHES_PER_WORKER, seconds_per_task, BATCH_SECONDS)


def _batched(graph, keys, size):
    """``graph`` with ``keys`` grouped ``size`` at a time under ``batch-`` keys.

    Returns the new graph and ``{batch key: member keys}``.  Members run
    inline in their batch's task, in order; their own entries are dropped.
    """
    if size <= 1:
        return graph, {}
    graph, batches = dict(graph), {}
    for start in range(0, len(keys), size):
        members = keys[start:start + size]
        key = f"batch-{start // size}-of-{len(keys)}-{members[0]}"
        graph[key] = (_tasks.batch, [graph.pop(k) for k in members])
        batches[key] = members
    return graph, batches


def _run_processes(graph, keys, workers, blas, config, hooks, attempts=2, seconds_per_task=None,
                   done=None, on_threads=(), settle=None, started=None):
    """Run on a process pool; a task that kills its process costs that task only.

    Data is memory-mapped by each process at start-up.  Cheap requested tasks go
    in batches (``batch_size``).  When a worker process dies (segfault,
    ``os._exit``, out of memory), the pool is replaced and the graph runs
    again, minus the results already in; a batch that was running is split
    into its members, and a task that was running at ``attempts`` deaths is
    given up on: a requested key gets ``hooks.lost``'s record, an
    intermediate one becomes a failed step for everything downstream.
    Ctrl-C kills the worker processes at once.

    ``done`` (filled in place) may hold results already in, which are not
    computed again.  For a search moving from threads: ``started`` is the
    ``_Processes`` the probe started.  ``on_threads`` are keys still running
    on threads: the pool runs everything else first, without waiting for
    them; then ``settle`` waits for the threads and returns their results,
    and whatever they did not deliver runs on the pool last.
    """
    done = {} if done is None else done  # one dict of every result: they add up to megabytes
    procs = started or _Processes(graph, workers, blas, config).start()
    # A thread slot runs BLAS in this process, where the cap is process-wide.
    capped = threadpool_limits(limits=blas) if procs.slot is not None else contextlib.nullcontext()
    try:
        with capped:
            graph.update(procs.references())
            on_threads = set(on_threads)
            first = [k for k in keys if k not in done and k not in on_threads]
            _run_pool(procs, graph, first, workers, hooks, attempts, seconds_per_task, done)
            if settle is not None:
                done.update(settle())
            last = [k for k in keys if k not in done]  # what the threads did not deliver
            if last:
                _run_pool(procs, graph, last, workers, hooks, attempts, seconds_per_task, done)
    except BaseException:  # Ctrl-C or a failing fit: stop the workers now
        procs.abandon()
        raise
    procs.close()
    return [done[k] for k in keys]


class _Processes:
    """A process pool whose workers memory-map the graph's data entries.

    Made cheaply (no file, no process) so that a probe can hold one it may
    never use; ``start()`` writes the data and starts the workers.  The data
    is written once and memory-mapped by every worker (as joblib
    does for scikit-learn): one copy in memory however many workers, and a
    start-up message of a few bytes, so workers start in parallel (a large
    start-up message makes loky start them one by one).  Tasks name the data
    through ``references()``.
    """

    def __init__(self, graph, workers, blas, config):
        # Not loky's constructor yet: it starts loky's resource tracker, a
        # process whose start-up takes a core for 0.2 s, which would make a
        # probe's threads look starved.  The data entries are picked out now,
        # in the caller's thread: the graph shrinks as threads run it.
        self.data = {k: v.value for k, v in graph.items() if isinstance(v, _tasks.Const)}
        self.workers, self.blas, self.config = workers, blas, config
        self.pool = self.folder = self.initargs = None
        # Found once per process, by writing test files: a few hundred GIL
        # hand-overs, which took a starved probe 0.2-0.3 s.
        tempfile.gettempdir()
        self.slot = None  # a _ThreadSlot standing in for one worker process
        self.dispatcher = None  # the _PoolAndSlot handing out tasks, if any
        self.confined = False  # whether this process is held to one core for the slot

    def references(self):
        """Graph entries that stand for the data, which the workers have already."""
        return {k: _tasks.Shared(k) for k in self.data}

    def start(self, slot=None, one_core=False, spare=()):
        """Write the data and start the workers; returns self.

        With a ``slot``, one worker is that thread of this process instead;
        ``one_core``: its tasks hold the GIL, so this process's threads, but
        those ``spare`` (native ids), are held to one core while it works
        (``_OneCore``).
        """
        cores = ONE_CORE.cores()
        if slot is not None and one_core:
            # First: held to one core, the threads still running GIL-bound
            # fits hand the GIL over at once to the thread starting the
            # pool, which else waited 0.3-0.5 s in all for it, at each of
            # the many calls here that let it go.
            self.confined = ONE_CORE.enter(spare)
        before = _children() if self.confined else set()
        self.folder = tempfile.mkdtemp(prefix="dklearn-")
        path = os.path.join(self.folder, "data.joblib")
        self.initargs = (self.blas, self.config, path, cores)
        joblib.dump(self.data, path)
        self.slot = slot
        self.pool = _process_pool(self.processes(), self.initargs)
        self.pool.submit(_tasks.unwrap, _tasks.Const(None))  # the workers start now
        if self.confined:  # the new processes inherited the one core: every core back
            for pid in _children() - before:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(pid, cores)
        return self

    def processes(self):
        return self.workers - (self.slot is not None)

    def executor(self, n_tasks, dispatcher=None):
        """What dask submits ``n_tasks`` to: the pool, and the slot if there is one.

        ``dispatcher`` is the class that hands tasks to both (``_PoolAndSlot``).
        """
        if self.slot is None:
            return self.pool
        dispatcher = dispatcher or _PoolAndSlot
        self.dispatcher = dispatcher(self.pool, self.slot, self.processes(), n_tasks)
        return self.dispatcher

    def drop_slot(self):
        """From now on every task runs in a worker process."""
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher = None
        if self.slot is not None:
            self.slot.close()
            self.slot = None
        if self.confined:
            ONE_CORE.leave()
            self.confined = False

    def close(self):
        self.drop_slot()
        pool, folder, self.pool, self.folder = self.pool, self.folder, None, None
        if pool is None:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            return
        lingering = getattr(_LINGERING, "pools", None)
        if lingering is not None:
            lingering.append((pool, folder))
        else:
            _retire(pool, folder)

    def abandon(self):
        self.drop_slot()
        if self.pool is not None:
            self.pool.shutdown(wait=False, kill_workers=True)
            self.pool = None
        self.close()


class _OneCore:
    """Holds this process's Python threads to one core while a GIL-bound slot works.

    A slot's fits hold the GIL (that is why the search moved).  Any other
    thread of this process that wakes up meanwhile (loky's manager thread
    on each result, dask's loop) waits for that GIL, and is woken again
    each time the slot's NumPy calls let go of it, to find it taken back:
    measured on 2 cores during an MLPClassifier search, loky's manager
    thread woke about 500 times a second, each time on the core of the
    worker process, which was preempted as often and lost 3-5% of its
    fits' speed.  With this process on one core, those wake-ups cost the
    slot only the GIL it was losing anyway, and the worker processes have
    the other cores to themselves.  A GIL-bound slot cannot use more than
    one core of this process anyway.  (MLP search of benchmarks/run.py, 6
    alternating runs: 7.09 s, against 7.24 s unheld and 7.37 s for
    scikit-learn.)

    Held to one core, the threads also hand the GIL over promptly: a thread
    that wakes up runs while the slot is off the core, not while it is
    holding the GIL on another.  So ``_Processes.start`` enters first, then
    starts the workers: the 0.3-0.5 s that start took under the GIL-bound
    threads of a move became 0.1 s (and the first fit in the worker process
    came 0.2-0.5 s sooner).  New child processes inherit the one core; they
    are given every core back at once, and a worker that loky starts later
    sets its own back (``_start_worker``).

    Only Python threads are held (the GIL's contenders; BLAS and OpenMP
    threads are capped anyway), and of those, not the ones that were there
    before the search but the calling thread: the caller's own threads go
    on as they were.  Nothing here lets the GIL go.  The core
    depends on the process id, so that searches in two processes rarely
    pick the same.  Uses nest: the last ``leave`` gives each thread its own
    mask back (threads started meanwhile get the process's).  Where
    affinity cannot be set (not Linux), nothing happens.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.users = 0
        self.saved = {}  # held thread id -> its mask before
        self.spared = set()  # ids of the caller's threads left alone
        self.mask = self.core = None  # the process's mask before; the core held to

    def cores(self):
        """This process's cores, as they were before any confinement (None if unknown)."""
        with self.lock:
            if self.mask is not None:
                return set(self.mask)
        try:
            return os.sched_getaffinity(0)
        except (AttributeError, OSError):
            return None

    def enter(self, spare=()):
        """Hold this process's Python threads, but those ``spare`` (native ids), to one core.

        Returns True if done (then call ``leave``).  No call here lets the
        GIL go (no file is read): under GIL-bound threads, each such call
        waited up to 0.1 s to get it back.
        """
        try:
            mask = os.sched_getaffinity(0)
        except (AttributeError, OSError):
            return False
        with self.lock:
            if self.users == 0:
                if len(mask) < 2:
                    return False
                # Two searches in two processes rarely pick the same core.
                cores = sorted(mask)
                self.mask, self.core = mask, {cores[os.getpid() % len(cores)]}
                self.saved, self.spared = {}, set()
            for tid in _python_threads():
                if tid in spare:
                    self.spared.add(tid)
                    continue
                if tid in self.saved:  # held by an outer use already
                    continue
                try:
                    self.saved[tid] = os.sched_getaffinity(tid)
                    os.sched_setaffinity(tid, self.core)
                except OSError:  # the thread has exited
                    pass
            self.users += 1
            return True

    def leave(self):
        with self.lock:
            self.users -= 1
            if self.users > 0:
                return
            saved, spared, self.saved, self.spared = self.saved, self.spared, {}, set()
            for tid in _python_threads():
                with contextlib.suppress(OSError):
                    if tid in saved:
                        os.sched_setaffinity(tid, saved[tid])
                    elif tid not in spared and os.sched_getaffinity(tid) == self.core:
                        os.sched_setaffinity(tid, self.mask)  # started by a held thread
            self.mask = self.core = None


def _children():
    """The ids of this process's child processes (Linux), or an empty set."""
    pids = set()
    with contextlib.suppress(OSError):
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError), open(f"/proc/self/task/{tid}/children") as f:
                pids.update(map(int, f.read().split()))
    return pids


def _python_threads():
    """The native ids of this process's Python threads (the GIL's contenders)."""
    return [t.native_id for t in threading.enumerate() if t.native_id is not None]


ONE_CORE = _OneCore()


class _ThreadSlot:
    """A thread of this process that stands in for one worker process.

    After a move from threads, when tasks are long (``SLOT_SECONDS``), one
    worker process fewer is started and this thread takes its place: it
    saves that process's start-up, about a core-second of imports, and a
    thread running one long task at a time is not starved by dask's loop.
    Tasks reach it pickled, as they reach a process, and read the data
    through ``Shared`` entries as there, here from the caller's own arrays.
    It is busy while the tasks still running on the probe's threads are
    (``hold``): two threads holding the GIL make one core.
    """

    def __init__(self, blas, config, data):
        self.threads = ThreadPoolExecutor(1, thread_name_prefix="dklearn-slot",
                                          initializer=_start_slot,
                                          initargs=(blas, config, data))
        self.holding = []  # futures that keep the thread busy
        self.freed = lambda: None  # called when one of them is done

    def hold(self, futures):
        self.holding = list(futures)
        for future in self.holding:
            future.add_done_callback(lambda _: self.freed())

    def free(self):
        return all(f.done() for f in self.holding)

    def run(self, fn, args, kwargs):
        future = self.threads.submit(fn, *args, **kwargs)
        self.hold([future])
        return future

    def close(self):
        # A task running here ends on its own; nobody waits for it.
        self.threads.shutdown(wait=False, cancel_futures=True)


class _PoolAndSlot(concurrent.futures.Executor):
    """A process pool plus a ``_ThreadSlot``, as one executor for dask.

    Each process has one task queued ahead in the pool, so that its next
    task is not held up by this process's GIL, which the slot's task holds
    most of the time.  The rest wait here, not in the pool's queue, and the
    last ``2 * processes + 1`` go to whichever worker is free first: queued
    in a process, one of them kept the slot idle at the end of an MLP
    search for the length of a fit.
    """

    def __init__(self, pool, slot, processes, n_tasks):
        self.pool, self.slot, self.processes = pool, slot, processes
        self.left = n_tasks  # not yet handed to the slot or a process
        self._max_workers = 2 * processes + 2  # read by dask: tasks handed out at once
        self.lock = threading.RLock()  # a done callback may run inside _dispatch
        self.waiting = collections.deque()
        self.sent = set()  # the pool's futures not yet done
        self.stopped = False
        slot.freed = self._dispatch

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        with self.lock:
            self.waiting.append((future, fn, args, kwargs))
        self._dispatch()
        return future

    def _dispatch(self):
        with self.lock:
            while self.waiting and not self.stopped:
                if self.slot.free():
                    future, fn, args, kwargs = self.waiting.popleft()
                    self.left -= 1
                    _pass_on(self.slot.run(fn, args, kwargs), future)
                elif len(self.sent) < self.processes or (
                        len(self.sent) < 2 * self.processes and self.left > 2 * self.processes + 1):
                    item = self._for_pool()
                    if item is None:
                        return
                    future, fn, args, kwargs = item
                    self.left -= 1
                    try:
                        inner = self.pool.submit(fn, *args, **kwargs)
                    except Exception as error:  # a broken pool: dask stops the run
                        future.set_exception(error)
                        continue
                    self.sent.add(inner)
                    inner.add_done_callback(self._left_pool)
                    self._from_pool(inner, item)
                else:
                    return

    def _for_pool(self):
        """The next waiting task a worker process may take (removed), or None."""
        return self.waiting.popleft()

    def _from_pool(self, inner, item):
        _pass_on(inner, item[0])

    def _left_pool(self, inner):
        with self.lock:
            self.sent.discard(inner)
        self._dispatch()

    def stop(self, timeout=1.0):
        """Hand out nothing more; return once the pool has taken what it was given.

        loky's ``shutdown(kill_workers=True)`` forgets the tasks it holds
        but not their ids, and its manager thread then dies on a KeyError
        (printed to stderr) if one was not yet in its call queue.  loky
        marks a task running when it moves it there, so this waits for
        that.
        """
        with self.lock:
            self.stopped = True
            sent = list(self.sent)
        deadline = time.monotonic() + timeout
        while any(not (f.running() or f.done()) for f in sent):
            if time.monotonic() > deadline:
                return
            time.sleep(0.001)


def _pass_on(inner, outer):
    """Settle ``outer`` as ``inner`` is settled."""

    def settle(inner):
        if inner.cancelled():
            outer.cancel()
        elif inner.exception() is not None:
            outer.set_exception(inner.exception())
        else:
            outer.set_result(inner.result())

    inner.add_done_callback(settle)


class _Hybrid(_PoolAndSlot):
    """The slot runs any task of a shared graph; the worker processes only final ones.

    A final task's inputs (the folds as fitted prefixes left them) travel
    to a process pickled with it, once per task; prefix tasks stay in this
    process, where their results are shared for free.  A task that loky
    cannot pickle runs in the slot instead, and from then on so does every
    task: the search stays as portable as on threads.
    """

    def __init__(self, pool, slot, processes, n_tasks):
        super().__init__(pool, slot, processes, n_tasks)
        self.pool_ok = True

    def _for_pool(self):
        if self.pool_ok:
            for i, item in enumerate(self.waiting):
                if _final_key(item[2]):
                    del self.waiting[i]
                    return item
        return None

    def _from_pool(self, inner, item):
        def settle(inner):
            error = None if inner.cancelled() else inner.exception()
            if isinstance(error, pickle.PicklingError):
                with self.lock:
                    self.pool_ok = False
                    self.left += 1
                    self.waiting.appendleft(item)
                self._dispatch()
            else:
                _pass_on(inner, item[0])

        inner.add_done_callback(settle)


def _submitted_keys(args):
    """The keys of the tasks in dask's ``batch_execute_tasks`` arguments."""
    return [task[0] for task in args[0]]


def _final_key(args):
    """Whether dask's ``batch_execute_tasks`` arguments run one (candidate, fold) task."""
    try:
        key = args[0][0][0]
    except (IndexError, TypeError, KeyError):
        return False
    return isinstance(key, str) and key.startswith("score-")


_LINGERING = threading.local()


@contextlib.contextmanager
def workers_linger():
    """Process pools done with inside this block are shut down at its end.

    A search refits the best candidate right after its graph has run; worker
    processes exiting meanwhile (and loky's threads here, which wait for
    them) took 0.25 s of a 0.45 s MLPClassifier refit on 2 cores.  Idle
    workers cost nothing.
    """
    outer = getattr(_LINGERING, "pools", None)
    _LINGERING.pools = []
    try:
        yield
    finally:
        pools, _LINGERING.pools = _LINGERING.pools, outer
        for pool, folder in pools:
            _retire(pool, folder)


def _retire(pool, folder):
    """Shut ``pool`` down and remove its data, without waiting here.

    The results are in: the workers' exit (0.2 s) needs no waiting for.
    But a worker still starting (a short search) reads the data file first,
    so the file goes once the workers are gone.
    """

    def remove_after():
        pool.shutdown(wait=True)
        shutil.rmtree(folder, ignore_errors=True)

    threading.Thread(target=remove_after, name="dklearn-pool-cleanup").start()


# A worker idle this long exits (loky starts another if work comes).  A
# client killed with SIGKILL cannot shut its pool down, and its workers,
# waiting for work that never comes, stayed up for good without this.
IDLE_WORKER_SECONDS = 60


def _process_pool(workers, initargs):
    from joblib.externals.loky.process_executor import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, timeout=IDLE_WORKER_SECONDS,
                               initializer=_start_worker, initargs=initargs)


def _run_pool(procs, graph, keys, workers, hooks, attempts, seconds_per_task, finished):
    """Run ``keys`` on ``procs.pool`` into ``finished``, replacing the pool when a worker dies.

    Results already in ``finished`` are not computed again.
    """
    deaths, suspects = {}, set()
    for sub, chunk in _chunks(graph, keys, POOL_CHUNK_KEYS):
        size = batch_size(len(chunk), workers, seconds_per_task, len(keys))
        sub, batches = _batched(sub, chunk, size)
        while True:
            if procs.pool is None:
                procs.pool = _process_pool(procs.processes(), procs.initargs)
            if _attempt(procs.executor, sub, chunk, batches, workers, hooks, finished, deaths,
                        suspects, attempts):
                break
            # A suspect must not run in this process: it may kill it too.
            procs.drop_slot()
            procs.pool.shutdown(wait=False, kill_workers=True)
            procs.pool = None


def _attempt(executor, graph, keys, batches, workers, hooks, finished, deaths, suspects,
             attempts):
    """Run what is left of ``keys`` on ``executor(n_tasks)``; False if a worker process died.

    A death breaks the whole pool, so every task in flight fails with it,
    the innocent too.  After a death, ``graph`` and ``batches`` are edited
    for the next attempt: a batch that was running is split into its
    members; when several tasks were running, each becomes a suspect and
    runs alone next time, before the others; a task running alone at its
    ``attempts``-th death is given up on.
    """
    import dask.multiprocessing

    Const = _tasks.Const
    wanted = set(keys)
    started, ended = set(), set()

    def record(key, value):
        finished[key] = value
        hooks.done(key, value)

    def posttask(key, result, dsk, state, worker_id):
        ended.add(key)
        if key in batches:
            for member, value in zip(batches[key], result):
                record(member, value)
        elif key in wanted:
            record(key, result)

    requested = list(batches) + [k for k in keys if k not in finished and k in graph]
    if not requested:
        return True
    current = {k: (_tasks.unwrap, Const(finished[k])) if k in finished else v
               for k, v in graph.items()}
    callbacks = [(None, None, lambda key, dsk, state: started.add(key), posttask, None)]
    # Suspects one per call (dask runs as many tasks as the pool has workers).
    parts = [[k] for k in requested if k in suspects]
    parts.append([k for k in requested if k not in suspects])
    try:
        for part in parts:
            if part:
                dask.multiprocessing.get(current, part, pool=executor(len(part)),
                                         num_workers=workers,
                                         chunksize=1, callbacks=callbacks)
        return True
    except BrokenProcessPool:
        pass
    running = started - ended
    for key in running:
        if key in batches:  # which member crashed is unknown: run each alone
            graph.update(zip(batches.pop(key), graph.pop(key)[1]))
            continue
        suspects.add(key)  # runs alone from now on
        if len(running) > 1:  # the culprit is one of them, which is unknown
            continue
        deaths[key] = deaths.get(key, 0) + 1
        if deaths[key] < attempts:
            continue
        error = CrashedWorker(
            f"The task {key!r} was running in a worker process each of the "
            f"{deaths[key]} times one died (segfault, os._exit or out of memory)."
        )
        value = hooks.lost(key, error) if hooks.lost else None
        if key in wanted:
            record(key, value)
        else:
            graph[key] = (_tasks.unwrap, Const(_tasks.Failed(f"CrashedWorker: {error}", 0.0)))
    for key in [k for k in batches if k in ended]:
        del batches[key], graph[key]  # its members are in ``finished``
    return False


def _set_sklearn_config(config):
    import sklearn

    sklearn.set_config(**config)


def _start_thread(blas, config):
    # OpenMP's thread count is a per-thread setting: the process-wide cap set
    # by the caller does not reach threads started later, so each worker
    # thread sets its own (else every HistGradientBoosting fit in every
    # worker thread starts an OpenMP team of one thread per core).
    threadpool_limits(limits=blas, user_api="openmp")
    _set_sklearn_config(config)


def _start_slot(blas, config, data):
    _start_thread(blas, config)
    _tasks.share_with_this_thread(data)


def _start_worker(blas, config, path, cores=None):  # pragma: no cover - in worker processes
    if cores and os.sched_getaffinity(0) != cores:
        # Started while the caller was held to one core: every thread back.
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cores)
    threadpool_limits(limits=blas)
    _set_sklearn_config(config)
    _tasks.receive_shared(joblib.load(path, mmap_mode="r"))


def _run_distributed(client, graph, keys, config, hooks, attempts=3):
    """Run on a dask.distributed cluster: data sent once, only records come back.

    The data entries of the graph (X, y, fit parameters) are scattered to the
    cluster once, and each worker that needs it fetches it once; fitted
    steps and transformed folds stay on the workers; only the final tasks'
    score records are gathered.  A task that raises fails fast: the search
    cancels the rest and re-raises.  A task that kills its workers until
    dask gives up (KilledWorker) is handed to ``hooks.lost``.  If every worker
    holding the data died, the unfinished part is submitted again, with the
    data inside the graph so that the scheduler can recreate it.  Inside tasks, joblib uses the same cluster (nested
    ``n_jobs``), seceding while it waits.
    """
    values = {}
    for attempt in range(attempts):
        remaining = [k for k in dict.fromkeys(keys) if k not in values]
        if not remaining:
            break
        # After a loss, the data travels inside the graph instead: the
        # scheduler can then recreate it on a new worker by itself, and a
        # fit that keeps killing workers ends as dask's KilledWorker.
        values.update(_submit(client, graph, remaining, config, hooks, scatter=attempt == 0))
    missing = [k for k in keys if k not in values]
    if missing:
        raise RuntimeError(
            f"The cluster lost the search's data {attempts} times (every worker that "
            f"held it died); {len(missing)} fits did not run. Check the workers' logs."
        )
    return [values[k] for k in keys]


def _submit(client, graph, keys, config, hooks, scatter=True):
    """One submission of ``keys``; returns the values it got (lost data: absent)."""
    from distributed import as_completed

    data = {k: v for k, v in graph.items() if isinstance(v, _tasks.Const)}
    # Not broadcast: a broadcast scatter replicates to every worker while the
    # scheduler's active memory manager (ReduceReplicas, on by default)
    # drops replicas, and it hung here in CI once in two runs, workers
    # spinning (dask/distributed#4907; dask/dask#11148).  Workers that need
    # the data fetch it from the one that has it, once each.
    #
    # Each submission's keys are its own, the data's included: a search run
    # again on the same client would otherwise scatter X under the key the
    # last one had just released, while the scheduler was still forgetting
    # it.  Caught once in 20-30 pairs of searches: the scheduler held
    # X as in memory, every worker as missing, and the search waited for good.
    # (dask/dask#9888 describes the same hazard for reused task keys.)  The
    # key's own name stays in front, for the dashboard.
    tag = os.urandom(4).hex()
    scattered = {}
    if data and scatter:
        sent = client.scatter({f"{k}-{tag}": v for k, v in data.items()}, hash=False)
        scattered = {k: sent[f"{k}-{tag}"] for k in data}
    settings = _tasks.Const({"sklearn": config, "joblib": "dask"})
    named = {key: f"{key}-{tag}" for key in graph if key not in scattered}
    ours = {name: key for key, name in named.items()}
    # Tasks name the scattered futures directly (not through an alias task,
    # whose output would live on one worker and be copied to the others).
    wrapped = {
        named[key]: _wrap(task, settings, _tasks.with_config, scattered, named)
        for key, task in graph.items()
        if key not in scattered
    }
    futures = client.get(wrapped, [named[k] for k in keys], sync=False)
    values = {}
    try:
        with client.as_current():  # as_completed looks for the current client
            # Results are fetched as they finish: a worker that dies later
            # (another fit crashing it) takes no finished result with it.
            for future, result in as_completed(futures, with_results=True, raise_errors=False):
                key = ours[future.key]
                if future.status == "finished":
                    values[key] = result
                    hooks.done(key, result)
                elif future.status == "error":
                    error = future.exception()
                    if hooks.lost is None or type(error).__name__ != "KilledWorker":
                        raise error
                    values[key] = hooks.lost(key, error)
                    hooks.done(key, values[key])
                # else 'cancelled': its input data was lost; submitted again.
    finally:
        client.cancel(futures)
        client.cancel(list(scattered.values()))
    return values


def _wrap(task, settings, with_config, futures, named):
    """Make every call of a task (nested ones too) run under ``settings``.

    References to scattered data become the futures themselves, and
    references to other tasks their names in this submission (``named``).
    """
    if isinstance(task, tuple) and task and callable(task[0]):
        args = (_wrap(a, settings, with_config, futures, named) for a in task[1:])
        return (with_config, settings, task[0], *args)
    if isinstance(task, list):
        return [_wrap(a, settings, with_config, futures, named) for a in task]
    if isinstance(task, str):
        if task in futures:
            return futures[task]
        return named.get(task, task)
    return task
