"""The local engine: one loop that runs a search graph on this machine.

A search graph is wide and shallow: shared prefix tasks (a PCA fitted on a
fold), then the (candidate, fold) tasks that read them.  The loop keeps, for
each task, how many unfinished tasks it waits for.  A finished task makes
its dependents ready; ready tasks start newest first (the final fits that
read a prefix run soon after it, and its output is freed once its last
reader is done), those made ready together in random order when the cost
model places them (its first timings are then a sample of their kind),
except in the calling thread alone ('sync'), where they start in
scikit-learn's order of fits, one at a time.  Each worker, thread
or process, holds one task ahead of the one it runs: it starts the next the
moment it is done, instead of waiting for this thread to wake up, which
takes the GIL from busy threads (up to a switch interval, 5 ms, a task: as
long as a small fit).  So up to 2 x ``workers`` tasks are handed out at once.  The loop thread is the
caller's; it sleeps until a task ends, a worker process speaks, the cost
model or a time limit wants a look, or ``threads.WAKE_SECONDS`` pass (so
that a Ctrl-C is seen).

Each task runs in one of three places:

- ``here``: in the calling thread, between two looks at the others (for
  glue tasks, ``scheduler='sync'``, and work too small to hand over);
- ``threads``: ``workers`` threads of this process, which share every
  intermediate result for free (both in ``threads``);
- ``processes``: ``workers`` worker processes (``processes``), which
  get their inputs sent (constants once per search, intermediates with
  each task or, from a megabyte, once each) but escape the GIL, isolate
  a crash and can be stopped.

Where each kind of task goes is the cost model's decision (``cost.Router``),
remade as measurements arrive; 'sync', 'threads' and 'processes' fix it.  A
result never depends on where its task ran: every place caps BLAS and
OpenMP to cores // workers threads and runs under the caller's
scikit-learn configuration, and a task reads its inputs, never writes them
(``_tasks``).

Why not dask's local scheduler, which an earlier version used: this loop
places each task by its kind, runs a task again when its process died
under another, stops one past its time limit, and keeps a few numbers per
task where ``dask.local`` keeps several sets.
"""

import collections
import heapq
import itertools
import random
import time

import joblib

from .. import _compat, _tasks
from . import CrashedWorker, FitTimeout, cost, limits, named
from .threads import Here, Inbox, Threads
from .processes import (Processes, Resend, TaskNotSendable, WorkerUnavailable, warm_count,
                        with_each_task, zygote_ready)

# A task past its time limit ends with its worker's own timer; if the worker
# is still there this much later, the loop kills it.
KILL_GRACE = 2.0


def run(graph, keys, kinds, scheduler, workers, options, hooks, cache=None):
    """Run ``keys`` of ``graph`` on ``workers`` local workers (see module doc)."""
    if options.fit_timeout and scheduler in ("sync", "threads"):
        raise ValueError(
            f"fit_timeout needs fits that can be stopped, which scheduler={scheduler!r} "
            "cannot do (a thread cannot be killed); use scheduler='processes' or the default."
        )
    if scheduler == "sync" or (scheduler is None and workers == 1 and not options.fit_timeout):
        fixed = "here"
    elif options.fit_timeout:
        fixed = "processes"
    else:
        fixed = scheduler  # None (the cost model decides), 'threads' or 'processes'
    if fixed == "here":
        workers = 1  # one task at a time, BLAS left as the caller set it
    reused = {}
    if cache:  # shared steps computed by an earlier run: values now, not tasks
        for key in graph.keys() & cache.keys():
            graph[key] = reused[key] = cache[key]
    loop = _Loop(graph, keys, kinds, workers, fixed, options, hooks)
    loop.kept = {} if cache is not None else None
    try:
        values = loop.run()
    finally:
        loop.close()
    if cache is not None:  # what this run used or made: the next run may need it
        cache.clear()
        cache.update(reused)
        cache.update(loop.kept)
    return values


class _Job:
    __slots__ = ("key", "kind", "place", "started", "timeout", "first", "nbytes", "cores")

    def __init__(self, key, kind, place, timeout=None):
        self.key, self.kind, self.place = key, kind, place
        self.started = None  # when it starts, not when it is handed out
        self.timeout = timeout
        self.first = False  # the first task of its worker
        self.nbytes = None  # intermediate data it returns (for the cost model), if asked
        self.cores = None  # the cores it kept busy, if it ran alone on the threads

    @property
    def deadline(self):
        if self.timeout is None or self.started is None:
            return None
        return self.started + self.timeout


class _Loop:
    def __init__(self, graph, keys, kinds, workers, fixed, options, hooks):
        self.graph, self.keys, self.kinds, self.hooks = graph, keys, kinds, hooks
        self.workers, self.options, self.fixed = workers, options, fixed
        # A cap of every core is no cap: the caller's own limits stay.
        self.blas = joblib.cpu_count() // workers if workers > 1 else None
        self.wanted = set(keys)
        self.results = {}
        self.values = {}  # constants, and computed values some task still has to read
        self.readers = {}  # computed key -> tasks not yet finished that read it
        self.waiting = {}  # unfinished key -> unfinished tasks it waits for
        self.dependents = collections.defaultdict(list)
        self.deps = {}  # unfinished key -> the keys it reads
        self.ready = []  # tasks ready to start (see ``_Ready``), once the graph is indexed
        self.running = {}
        self.deaths = collections.Counter()
        self.here_only = set()  # tasks whose error only this process can raise as itself
        self.kept = None  # shared steps' values, kept for the next run
        self.failure = None  # (order, exception) of the first task, in order, that raised
        self.inbox = Inbox()
        self._index(keys)
        self.router = cost.Router(workers, fixed, _count_kinds(self.waiting, kinds),
                                  verbose=options.verbose)
        self.router.warm_workers(warm_count(self.blas))
        if zygote_ready():
            self.router.zygote_started(None)
        self.places = {"here": Here(self.inbox, self.blas, alone=self._may_catch_warnings)}

    # -- the graph ---------------------------------------------------------------

    def _index(self, keys):
        graph, memo, ready = self.graph, {}, []
        todo = list(dict.fromkeys(keys))
        seen = set(todo)
        while todo:
            key = todo.pop()
            task = graph[key]
            if not _tasks.is_task(task):
                self.values[key] = task
                continue
            deps = _tasks.dependencies(task, graph, memo)
            self.deps[key] = deps
            pending = 0
            for dep in deps:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
                if _tasks.is_task(graph[dep]):
                    pending += 1
                    self.dependents[dep].append(key)
            self.waiting[key] = pending
        for key, count in self.waiting.items():
            self.readers[key] = len(self.dependents.get(key, ()))
            if count == 0:
                ready.append(key)
        # Each task's place in the order asked for: its first reader's.
        order = self.order = {}
        for i, key in enumerate(dict.fromkeys(keys)):
            stack = [key]
            while stack:
                k = stack.pop()
                if k not in order and k in self.deps:
                    order[k] = i
                    stack.extend(self.deps[k])
        self.ready = _Ready(order, in_order=self.fixed == "here")
        if self.fixed is None:
            # Tasks of a kind start in random order: the first ones the cost model
            # times are a sample of the kind, where a grid's order (C or a bandwidth
            # rising, candidate by candidate) would show it the cheapest or dearest.
            # Sorted first: the graph's walk follows sets (hash seeds differ between
            # processes), and the same search should start its tasks alike in each.
            shuffle = random.Random(0).shuffle  # its own generator: the caller's is theirs
            ready.sort(key=lambda k: (order[k], k))
            shuffle(ready)
            for key in sorted(self.dependents):
                readers = self.dependents[key]
                readers.sort(key=lambda k: (order[k], k))
                shuffle(readers)
        else:
            ready.sort(key=lambda k: -order[k])  # the first asked for on top
        self.ready.extend(ready)

    def is_constant(self, key):
        return key not in self.readers

    def _finish(self, key, value):
        self.graph.pop(key, None)  # the task is no longer needed: its memory goes
        for dep in self.deps.pop(key):
            if dep in self.readers:
                self.readers[dep] -= 1
                if self.readers[dep] == 0:  # its last reader is done
                    released = self.values.pop(dep, None)
                    if "processes" in self.places:
                        self.places["processes"].forget(dep)
                    if self.kept is not None:  # for the next run
                        self.kept[dep] = released
        if key in self.wanted:
            self.results[key] = value
            self.hooks.done(key, value)
        if self.readers.get(key):
            self.values[key] = value
        for dependent in self.dependents.pop(key, ()):
            self.waiting[dependent] -= 1
            if self.waiting[dependent] == 0:
                self.ready.append(dependent)
        del self.waiting[key]

    # -- the loop ----------------------------------------------------------------

    def run(self):
        with limits.blas_cap(self.blas):  # a no-op without a cap
            while self.waiting:
                self._dispatch()
                if self.failure is not None and not self.running:
                    raise self.failure[1]
                self._wait()
        self.router.remember()
        return [self.results[k] for k in self.keys]

    def _dispatch(self):
        threads = self.places.get("threads")
        if self.router.moved():
            if "processes" not in self.places and self.router.wants_processes():
                self._open("processes")  # workers start now, not once a task is ready
            if threads is not None:
                # Tasks handed to threads ahead, of kinds that now go elsewhere: back.
                for key in threads.recall(self.router.leaves_threads):
                    self.router.ended(self.kinds.get(key))
                    self.ready.append(key)
        skipped, blocked = [], set()
        # A task ahead per worker, except in this thread alone: the next task is
        # chosen once the last one's dependents are ready (scikit-learn's order).
        ahead = 1 if self.fixed == "here" else 2
        while self.ready and len(self.running) < ahead * self.workers:
            key = self.ready.pop()
            if self.failure is not None and self.order[key] > self.failure[0]:
                continue  # a task raised: only those before it, in order, still run
            kind = self.kinds.get(key)
            if key in self.here_only:
                place = self.places["here"]
            else:
                place = None if kind in blocked else self._place(kind, key)
            if place is None:  # no worker free there yet (processes starting, or busy)
                skipped.append(key)
                if kind is not None and not self.router.places(kind):
                    blocked.add(kind)  # a probing kind: its other tasks wait too
                continue
            self._start(key, kind, place)
            if place.name == "here" and self._elsewhere():
                break  # what came meanwhile (a worker ready, a task done) is seen first
        self.ready.extend(reversed(skipped))

    def _may_catch_warnings(self):
        """Whether a task here may run under catch_warnings, as scikit-learn's loop runs
        each fit (from 1.7): only while no worker thread runs a task (see ``Here``)."""
        threads = self.places.get("threads")
        return _compat.EACH_FIT_CATCHES_WARNINGS and (threads is None or threads.busy == 0)

    def _elsewhere(self):
        """Whether threads or worker processes have tasks out or are starting: a task
        here keeps the loop from hearing them, so it runs one here at a time."""
        procs = self.places.get("processes")
        return (any(job.place.name != "here" for job in self.running.values())
                or (procs is not None and bool(procs.connections())))

    def _place(self, kind, key):
        for name in self.router.places(kind):
            place = self.places.get(name) or self._open(name)
            if place is not None and place.free(self._nbytes(key) if name == "processes" else 0):
                return place
        return None

    def _nbytes(self, key):
        """The intermediate data the task of ``key`` would send to a worker process."""
        inputs = {dep: self.values[dep] for dep in self.deps[key]}
        return _tasks.nbytes(list(with_each_task(inputs, self.is_constant).values()))

    def _open(self, name):
        if name == "threads":
            place = self.router.threads = Threads(self.inbox, self.workers, self.blas,
                                                   self.options.config)
        else:
            place = Processes(self.workers, self.blas, self.options.config, self.is_constant)
            try:
                place.launch(_modules(self.graph))
            except WorkerUnavailable as error:
                self.router.broken(error)  # raises unless threads can do the work
        self.places[name] = place
        return place

    def _start(self, key, kind, place):
        timeout = self.options.fit_timeout if place.name == "processes" and kind else None
        job = _Job(key, kind, place, timeout)
        values = self.values
        inputs = {dep: values[dep] for dep in self.deps[key]}
        if place.name != "processes" and self.router.measures(kind):
            job.nbytes = 0  # what it returns, counted when it ends
            if not self.router.knows_sending(kind):
                self.router.sending(kind, _pickling_seconds(self.graph[key], inputs,
                                                            self.is_constant))
        try:
            place.start(job, self.graph[key], inputs, timeout)
        except Resend:
            self.ready.append(key)
            return
        except (TaskNotSendable, WorkerUnavailable) as error:
            self.router.unavailable(kind, place.name, error)  # raises if fixed there
            self.ready.append(key)
            return
        self.running[key] = job
        self.router.started(kind)

    def _wait(self):
        now = time.perf_counter()
        wake = self.router.next_look()
        for job in self.running.values():
            deadline = job.deadline
            if deadline is not None and deadline + KILL_GRACE < wake:
                wake = deadline + KILL_GRACE
        timeout = None if wake == float("inf") else max(wake - now, 0.0)
        tick = self.router.tick()
        if tick is not None and (timeout is None or timeout > tick):
            timeout = tick
        else:
            tick = None
        procs = self.places.get("processes")
        conns = procs.connections() if procs is not None else []
        if not self.running and not conns:
            if self.ready:
                return  # a place became free (a pinned kind, say): dispatch again
            raise RuntimeError("dklearn's local engine has nothing to wait for")  # a bug
        on_threads = [job for job in self.running.values() if job.place.name == "threads"]
        look = time.perf_counter() + timeout if tick is not None else None
        events, ready_conns, late = self.inbox.wait(conns, timeout)
        if look is not None and late == late:  # the wait ran its course: a look at the GIL
            self.router.looked(late, [(job.kind, look - job.started) for job in on_threads
                                      if job.started is not None and job.started < look])
        if ready_conns:
            events.extend(procs.receive(ready_conns))
        for event in events:
            self._handle(*event)
        now = time.perf_counter()
        for job in [j for j in self.running.values()
                    if j.deadline is not None and now >= j.deadline + KILL_GRACE]:
            # Its own timer did not end it (a process stuck in the kernel?): kill it.
            for ahead in procs.stop(job):  # held by that worker, never started
                del self.running[ahead.key]
                self.router.ended(ahead.kind)
                self.ready.append(ahead.key)
            del self.running[job.key]
            self.router.ended(job.kind)
            self._timed_out(job, now)
        self.router.look(now)

    def _handle(self, job, outcome, value, wall, cpu):
        if job is None:  # news of the worker processes
            if outcome == "ready":
                self.router.warm_workers(self.places["processes"].ready_count())
            elif outcome == "zygote":
                self.router.zygote_started(value)
            else:  # they cannot start: raises unless threads can do the work
                self.router.broken(value)
            return
        del self.running[job.key]
        job.place.done(job)
        self.router.ended(job.kind)
        if outcome == "ok":
            if job.nbytes is not None:  # what it would send back from a worker process
                job.nbytes += _tasks.nbytes(value)
            if not job.first:  # a worker's first task also loads what the search sends once
                self.router.finished(job.kind, job.place.name, wall, cpu, job.nbytes,
                                     job.cores)
            self._finish(job.key, value)
        elif outcome == "error":
            # Raised once the tasks before it have run: the error scikit-learn's
            # loop, in order, would have met first.
            if self.failure is None or self.order[job.key] < self.failure[0]:
                self.failure = (self.order[job.key], value)
        elif outcome == "crashed" and job.deadline and time.perf_counter() >= job.deadline:
            self._timed_out(job, time.perf_counter())  # its timer ended it
        elif outcome == "crashed":
            self.router.crashed()
            self.deaths[job.key] += 1
            if self.deaths[job.key] < 2:  # bad luck, maybe: once more
                self.ready.append(job.key)
                return
            self._lost(job, CrashedWorker(
                f"{named(job.kind)} was running alone in a worker process each of the "
                f"{self.deaths[job.key]} times one died (a segfault, "
                "os._exit or running out of memory)."), wall)
        elif outcome == "unavailable":  # it never ran: its worker had left
            self.ready.append(job.key)
        elif outcome == "rerun here":  # it raised what a worker process cannot send back
            self.here_only.add(job.key)
            self.ready.append(job.key)
        elif outcome == "unsendable":
            self.router.unavailable(job.kind, job.place.name, value)  # raises if fixed
            self.ready.append(job.key)
        else:  # pragma: no cover
            raise AssertionError(outcome)

    def _timed_out(self, job, now):
        self._lost(job, FitTimeout(
            f"{named(job.kind)} ran longer than fit_timeout={self.options.fit_timeout} s "
            "and was stopped."), now - job.started)

    def _lost(self, job, error, elapsed):
        """A task stopped or crashed for good: its value says so, or the search raises."""
        if job.key in self.wanted:
            value = self.hooks.fail(job.key, error)
            value["fit_time"] = elapsed
        else:  # a shared step: every (candidate, fold) that reads it fails with it
            value = _tasks.Failed(f"{type(error).__name__}: {error}", elapsed,
                                  _tasks.failure_kind(error))
        self._finish(job.key, value)

    def close(self):
        aborted = bool(self.running)
        for place in self.places.values():
            place.close(abort=aborted)
        # ``Here`` holds a method of this loop: a cycle, which would keep the
        # search's data (folds, transformed folds) until a full collection.
        self.places.clear()
        self.values.clear()


class _Ready:
    """Tasks ready to start, newest first (a stack), or ``in_order``: by the place in
    the order asked for of their first reader, which is scikit-learn's order of fits
    when tasks run one at a time in this thread (what a fit draws from NumPy's
    global random state, or prints, comes in its order)."""

    def __init__(self, order, in_order):
        self.order, self.in_order = order, in_order
        self.items = []
        self.count = itertools.count()  # ties: first come, first out

    def append(self, key):
        if self.in_order:
            heapq.heappush(self.items, (self.order[key], next(self.count), key))
        else:
            self.items.append(key)

    def extend(self, keys):
        for key in keys:
            self.append(key)

    def pop(self):
        return heapq.heappop(self.items)[-1] if self.in_order else self.items.pop()

    def __len__(self):
        return len(self.items)


def _pickling_seconds(task, inputs, is_constant):
    """How long this thread takes to pickle the task as it would go to a worker process."""
    import cloudpickle

    start = time.perf_counter()
    try:
        cloudpickle.dumps((task, with_each_task(inputs, is_constant)))
    except Exception:  # noqa: BLE001 - it will not go: the cost model hears that then
        return 0.0
    return time.perf_counter() - start


def _count_kinds(waiting, kinds):
    return collections.Counter(kinds.get(key) for key in waiting)


def _modules(graph):
    """The modules of the estimators the graph's tasks fit (for the zygote to import)."""
    seen, modules = set(), set()
    for task in graph.values():
        if _tasks.is_task(task) and len(task) > 1 and isinstance(task[1], _tasks.Const):
            cls = type(task[1].value)
            if cls not in seen:
                seen.add(cls)
                modules.update(_estimator_modules(task[1].value))
    return {m for m in modules if m != "__main__" and not m.startswith("__")}


def _estimator_modules(estimator):
    found = {type(estimator).__module__}
    if hasattr(estimator, "get_params") and not isinstance(estimator, type):
        try:
            params = estimator.get_params(deep=True)
        except Exception:  # noqa: BLE001
            return found
        found.update(type(v).__module__ for v in params.values() if hasattr(v, "get_params"))
    return found
