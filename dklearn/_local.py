"""The local default engine's executor: threads that hand work to processes.

dask's local scheduler (``dask.local.get_async``) runs a graph on any
executor's ``submit``.  ``HybridExecutor`` is the one the default engine
gives it.  Its tasks wait in one queue and are taken by *consumers*:

- a thread consumer runs the task in this process: intermediate results are
  shared for free, and most heavy scikit-learn code releases the GIL;
- a process consumer hands the task to a worker process and waits for its
  result.  The data entries of the graph (X, y, fit parameters) reach each
  worker once, memory-mapped at start-up (``_tasks.Shared``); a task ships
  only its own small arguments.

It starts with ``workers`` thread consumers and measures the CPU each gets
while it runs a task (its own CPU clock, so other threads of the process do
not count).  Code that holds the GIL (MLPClassifier with small batches) gets
about half a core per busy thread on two threads; threads in BLAS or Cython
get close to a whole one.  If the share is below ``STARVED_BELOW`` and
enough work remains, the thread consumers retire after their current task
and ``workers`` process consumers take over.  Nothing is abandoned or
computed twice: tasks already running finish on their threads, and their
results are kept.  (Keeping one thread consumer besides ``workers - 1``
processes was measured too: the GIL-bound thread starves this process's
other threads, the ones that feed the worker processes, and it was no
faster.)

Several tasks go to a worker process at once when tasks are cheap (about
``BATCH_SECONDS`` of work per trip), so the per-trip cost of pickling and
messages is paid once per batch.

A worker process that dies (segfault, ``os._exit``) breaks the run with
``BrokenProcessPool``; the caller (``_engines``) then finishes the search on
the crash-isolating process engine.
"""

import collections
import os
import pickle
import queue
import shutil
import tempfile
import threading
import time
import traceback
from concurrent.futures import Executor, Future

import joblib

from . import _tasks

# How long the threads run before the decision, and below which share of a
# core per busy thread they count as starved (two threads taking turns at
# the GIL get half a core each; threads in BLAS or Cython close to one).
PROBE_SECONDS = 0.1  # per thread, with every thread busy
TICK = 0.025
STARVED_BELOW = 0.8
# Moving is worth a worker start-up only for this much remaining thread work.
MOVE_ABOVE_SECONDS = 2.0
BATCH_SECONDS = 0.05
IN_FLIGHT = 2  # trips per worker process
# Tasks submitted per consumer while the probe is on (see _engines._run_local).
SLOTS_PER_WORKER = 8


class HybridExecutor(Executor):
    """A ``concurrent.futures`` executor for ``dask.local.get_async``.

    ``start_thread(*thread_args)`` runs first in each thread consumer;
    worker processes start with ``start_process(*process_args, path)``, where
    ``path`` is a joblib file holding ``shared`` (data key -> value).
    ``n_tasks`` is the number of tasks the run has in all (to judge whether
    moving is worth it); ``probe=False`` keeps every task on threads.
    """

    def __init__(self, workers, start_thread, thread_args, start_process, process_args,
                 shared, n_tasks, probe=True):
        self.workers = workers
        self._start_thread, self._thread_args = start_thread, thread_args
        self._start_process, self._process_args = start_process, process_args
        self._shared = shared
        self._n_tasks = n_tasks
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._meters = []  # one per thread consumer
        self._done = 0  # tasks finished
        self._seconds_per_task = None  # measured on threads when moving
        self._pool = self._folder = None
        self._stop = threading.Event()
        self._closed = False
        self.moved = False
        for _ in range(workers):
            threading.Thread(target=self._consume_in_thread, daemon=True,
                             name="dklearn-thread").start()
        if probe and workers > 1:
            threading.Thread(target=self._watch, daemon=True, name="dklearn-probe").start()

    # -- the Executor interface ---------------------------------------------

    def submit(self, fn, /, *args, **kwargs):
        if self._closed:
            raise RuntimeError("cannot submit to a closed HybridExecutor")
        future = Future()
        self._queue.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait=True, *, cancel_futures=False, kill_workers=False):
        """Stop every consumer; with ``kill_workers``, kill the worker processes now.

        Threads cannot be stopped: a thread running a task finishes it in
        the background, then exits.
        """
        self._closed = True
        self._stop.set()
        while True:  # drop what is queued: nobody waits for it any more
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in range(2 * self.workers):  # more than there are consumers
            self._queue.put(None)
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait and not kill_workers, kill_workers=kill_workers)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    # -- consumers ----------------------------------------------------------

    def _consume_in_thread(self):
        self._start_thread(*self._thread_args)
        meter = _Meter()
        with self._lock:
            self._meters.append(meter)
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.moved:  # the process consumers take it
                self._queue.put(item)
                return
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            meter.begin()
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:  # get_async re-raises it
                future.set_exception(error)
            else:
                future.set_result(result)
            finally:
                meter.end()
                with self._lock:
                    self._done += _count(args)

    def _consume_in_process(self):
        with self._lock:
            pool = self._pool
        if pool is None:
            return
        try:
            pool.submit(_ready).result()  # take nothing before the worker can run it
        except BaseException:  # noqa: S110 - a broken pool fails the first batch below
            pass
        # Two trips in flight: the worker starts the next batch at once instead
        # of waiting for this process's threads to hand over the result and
        # send more (each hand-over waits for the GIL).
        in_flight = collections.deque()
        stopping = False
        while in_flight or not stopping:
            while not stopping and len(in_flight) < IN_FLIGHT:
                items = self._take_batch(block=not in_flight)
                if items is None:
                    stopping = True
                elif items:
                    calls = [(fn, self._for_process(args), kwargs) for _, fn, args, kwargs in items]
                    in_flight.append((items, pool.submit(run_in_process, calls)))
                else:
                    break
            if in_flight:
                self._deliver(*in_flight.popleft())

    def _deliver(self, items, trip):
        try:
            results = trip.result()
        except BaseException as error:  # BrokenProcessPool, pickling errors
            results = [(False, error)] * len(items)
        for (future, *_), (ok, value) in zip(items, results):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        with self._lock:
            self._done += sum(_count(args) for _, _, args, _ in items)

    def _for_process(self, args):
        """get_async's arguments for a worker process: data by reference, exceptions as text."""
        if not (args and isinstance(args[0], list)):
            return args
        tasks = [
            (key, as_shared(payload, self._shared), dumps, loads, os.getpid, pack_exception)
            for key, payload, dumps, loads, _, _ in args[0]
        ]
        return (tasks, *args[1:])

    def _take_batch(self, block=True):
        """Queued items for one trip to a worker process (None: stop; []: none queued)."""
        try:
            first = self._queue.get(block=block)
        except queue.Empty:
            return []
        if first is None:
            return None
        items = [first]
        size = 1
        if self._seconds_per_task:
            size = max(int(BATCH_SECONDS / self._seconds_per_task), 1)
        while len(items) < size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            items.append(item)
        return [item for item in items if item[0].set_running_or_notify_cancel()]

    # -- the move to processes ----------------------------------------------

    def _watch(self):
        """Sample the thread consumers every ``TICK`` until they are judged, once.

        Only ticks in which every thread consumer was running a task count:
        a thread alone gets the GIL to itself, and contention is the question.
        """
        judged = self._sample()
        if judged is None:
            return  # shut down first
        share, done, busy = judged
        # Tasks so far took at least the busy time they had, finished or not.
        per_task = busy / max(done, 1)
        if done:
            self._seconds_per_task = per_task  # sizes batches for the processes
        remaining = max(self._n_tasks - done - self.workers, 0) * per_task
        if share < STARVED_BELOW and remaining > MOVE_ABOVE_SECONDS:
            self._move()

    def _sample(self):
        """(CPU share per busy thread, tasks done, busy seconds), or None if shut down."""
        last, cpu_sum, busy_sum = None, 0.0, 0.0
        while not self._stop.wait(TICK):
            with self._lock:
                meters, done = list(self._meters), self._done
            now = [m.busy() for m in meters], _cpu(meters)
            if last is not None and len(meters) == self.workers and None not in now[1]:
                busy = [b - b0 for b, b0 in zip(now[0], last[0])]
                if min(busy) >= 0.9 * TICK:
                    busy_sum += sum(busy)
                    cpu_sum += sum(now[1]) - sum(last[1])
            last = now
            if busy_sum >= PROBE_SECONDS * self.workers and busy_sum > 0:
                return cpu_sum / busy_sum, done, sum(now[0])
        return None

    def _move(self):
        folder = tempfile.mkdtemp(prefix="dklearn-")
        path = os.path.join(folder, "data.joblib")
        # Written once, memory-mapped by every worker process: one copy in
        # memory however many workers, and a start-up message of a few bytes.
        joblib.dump(self._shared, path)
        from joblib.externals.loky.process_executor import ProcessPoolExecutor

        pool = ProcessPoolExecutor(
            self.workers, initializer=self._start_process,
            initargs=(*self._process_args, path),
        )
        with self._lock:
            if self._closed:
                pool.shutdown(wait=False, kill_workers=True)
                shutil.rmtree(folder, ignore_errors=True)
                return
            self._pool, self._folder = pool, folder
            self.moved = True
        for _ in range(self.workers):
            threading.Thread(target=self._consume_in_process, daemon=True,
                             name="dklearn-process").start()


class _Meter:
    """Wall time a consumer thread spent in tasks, and the CPU time it got."""

    def __init__(self):
        self._clock = _thread_clock()
        self._cpu0 = time.clock_gettime(self._clock) if self._clock is not None else None
        self._busy, self._since = 0.0, None

    def begin(self):
        self._since = time.perf_counter()

    def end(self):
        self._busy += time.perf_counter() - self._since
        self._since = None

    def busy(self):
        since = self._since
        return self._busy + (time.perf_counter() - since if since is not None else 0.0)

    def cpu(self):
        """CPU seconds this thread used since it started (None: not measurable here)."""
        if self._clock is None:
            return None
        try:
            return time.clock_gettime(self._clock) - self._cpu0
        except OSError:  # the thread has exited
            return None


def _cpu(meters):
    """CPU seconds of each consumer thread, or the process's if threads have no clocks."""
    cpu = [m.cpu() for m in meters]
    if None in cpu:  # no per-thread clocks here: the whole process, a little more
        return [time.process_time()]
    return cpu


def _thread_clock():
    """The calling thread's CPU clock, readable from other threads (POSIX only)."""
    try:
        return time.pthread_getcpuclockid(threading.get_ident())
    except (AttributeError, OSError):
        return None


def _count(args):
    """Tasks in one ``submit`` of get_async (a list of per-task argument tuples)."""
    return len(args[0]) if args and isinstance(args[0], list) else 1


def _ready():
    return True


# -- in the worker process ----------------------------------------------------


def run_in_process(calls):
    """Run calls of ``get_async``'s task function in a worker process; [(ok, result or error)]."""
    out = []
    for fn, args, kwargs in calls:
        try:
            out.append((True, fn(*args, **kwargs)))
        except BaseException as error:
            out.append((False, _picklable(error)))
    return out


def pack_exception(error, dumps):
    """get_async's ``pack_exception`` in a worker process: the traceback as text."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return dumps((_picklable(error), text))


def _picklable(error):
    try:
        pickle.dumps(error)
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def raise_exception(error, tb=None):
    """get_async's ``raise_exception``: the task's own exception, whichever consumer ran it.

    From a thread ``tb`` is the traceback; from a worker process it is its text,
    kept as a note.
    """
    if isinstance(tb, str):
        if hasattr(error, "add_note"):  # Python >= 3.11
            error.add_note(f"Raised in a dklearn worker process:\n{tb}")
        raise error
    raise error.with_traceback(tb)


def as_shared(payload, shared):
    """A task's (task, data) with its data entries replaced by ``Shared`` references."""
    task, data = payload
    return task, {k: _tasks.Shared(k) if k in shared else v for k, v in data.items()}
