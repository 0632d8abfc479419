"""Run a search graph on a dask.distributed cluster: coarse tasks, data sent once.

dklearn has no cluster of its own: dask's scheduler places the tasks, dask's
workers run them, dask restarts a worker that died.  What dklearn decides is
what a dask task is:

- The (candidate, fold) tasks that read the same intermediate results (a
  fitted prefix's fold) form a group.  A group is cut into chunks so that
  the cluster gets about ``CHUNKS_PER_THREAD`` tasks per worker thread: few
  enough that the scheduler's cost per task (about a millisecond) is paid
  rarely, even for 100,000 candidates, and enough that uneven fits even out
  (the last chunks end within about a quarter of a thread's share of the
  work).  A chunk is one dask task, which runs its fits one after the other
  and returns their records.
- A step that only one chunk reads is computed inside that chunk: the
  prefix and the fits that use it run on the same worker, and the
  transformed fold never travels.  A step that several chunks read is a dask
  task of its own, its result fetched once by each worker that needs it.
- The graph's constants (X, y, folds, fit parameters, scorers) travel once,
  inside the graph, as tasks that return them: one worker computes each,
  the others fetch it from there, and if every worker holding it dies the
  scheduler computes it again.  (Scattered data is lost for good with its
  workers; a finished chunk whose result died with them is then recomputed
  by dask from data that no longer exists, and its future waits forever:
  seen once in some 30 CI runs of a crash test.)  Only records come back,
  as each chunk finishes, so a worker dying later takes no finished result
  with it.

A chunk that killed the workers that ran it (dask's ``KilledWorker``) is
submitted again one fit per task, one at a time: dask counts every task on
a dying worker, innocent or not, and a fit is recorded as crashed only if
it killed a worker running it alone.  With ``fit_timeout``, a chunk whose
fit runs too long returns at once what it finished; dklearn restarts that
worker through dask (``Client.restart_workers``: dask recomputes whatever
else was on it, as for any lost worker) and submits the rest again.  A
shared step past the limit is returned as stopped, and so is each chunk
that reads it: its fits are stopped fits, as in the local engine.

What a chunk's fits print and warn comes back with their records and is
printed and warned again in the caller, as the local engine's worker
processes do, where every worker runs one task at a time: catching it
replaces the process's ``sys.stdout`` and warning filters, which tasks in
other threads would share.  With several threads per worker it stays in
the workers' logs.  What the graph holds besides data (the estimators,
scorers, fit parameters) is pickled here with the code of the user's
functions whole, so that a traceback in a worker names their files.

What the workers run (``run_group``, the chunk's steps in turn) is at the
end of this module; dask's workers import it, and ``_tasks`` with it.

A search inside a task (a dklearn search in a cross-validation, itself on
the cluster) runs in that task's thread: waiting in a worker's thread for
tasks of its own, it would hold the very threads they need.
"""

import asyncio
import concurrent.futures
import contextlib
import hashlib
import math
import os
import pickle
import threading
import time

from .. import _joblib, _tasks
from . import CrashedWorker, FitTimeout, named

# Dask tasks per worker thread (see the module doc).
CHUNKS_PER_THREAD = 4
# Where an error raised in a chunk carries what its fits said.
SAID = "_dklearn_said"


def run(client, graph, keys, kinds, options, hooks, attempts=3):
    """Compute ``keys`` of ``graph`` on the cluster of ``client``; their values, in order."""
    values = {}
    threads = max(sum(client.nthreads().values()), 1)
    pending = list(dict.fromkeys(keys))
    fruitless = 0
    while pending:
        plan = _Plan(graph, pending, threads)
        got, suspects, stopped = _submit(client, graph, plan, options, hooks)
        values.update(got)
        _stop(client, stopped, values, kinds, hooks, options)
        for key in suspects:  # each alone, one after the other
            _alone(client, graph, key, threads, values, kinds, options, hooks, attempts)
        before, pending = len(pending), [k for k in pending if k not in values]
        fruitless = 0 if len(pending) < before else fruitless + 1
        if fruitless >= attempts:
            raise RuntimeError(
                f"The cluster cancelled the search's tasks {attempts} times in a row; "
                f"{len(pending)} fits did not run. Check the scheduler's and workers' logs."
            )
    return [values[k] for k in keys]


def _alone(client, graph, key, threads, values, kinds, options, hooks, attempts):
    """Run ``key`` alone: its value, or a failed fit if it kills its worker again."""
    for _ in range(attempts):
        got, crashed, stopped = _submit(client, graph, _Plan(graph, [key], threads),
                                        options, hooks)
        values.update(got)
        _stop(client, stopped, values, kinds, hooks, options)
        if crashed:
            values[key] = hooks.fail(key, CrashedWorker(
                f"{named(kinds.get(key))} was running alone on a dask worker each time one "
                "died (KilledWorker)."))
            hooks.done(key, values[key])
        if key in values:
            return


def _stop(client, stopped, values, kinds, hooks, options):
    """Restart the workers still running fits past their limit; record those fits (which
    raises first with error_score='raise', so the restart comes before)."""
    for address in {address for _, _, address, _ in stopped}:
        try:
            client.restart_workers([address])
        except Exception as error:  # noqa: BLE001 - a worker without a nanny, say
            import warnings

            warnings.warn(
                f"dklearn could not restart the dask worker {address} running a fit past "
                f"fit_timeout ({type(error).__name__}: {error}); the fit goes on there. "
                "Workers started with a nanny (dask's default) can be restarted.",
                RuntimeWarning,
            )
    for key, elapsed, address, step in stopped:  # step: the task past the limit
        values[key] = _timed_out(hooks, key, kinds.get(step), elapsed, options)
        hooks.done(key, values[key])


def _timed_out(hooks, key, kind, elapsed, options):
    record = hooks.fail(key, FitTimeout(
        f"{named(kind)} ran longer than fit_timeout={options.fit_timeout} s and was "
        "stopped (its worker restarted)."))
    record["fit_time"] = elapsed
    return record


class _Plan:
    """The dask tasks for ``keys``: chunks of final tasks, and the shared steps they read."""

    def __init__(self, graph, keys, threads):
        memo = {}
        self.deps = {}
        order = []  # every task needed, dependencies first
        seen = set()

        def visit(key):
            stack = [(key, False)]
            while stack:
                k, expanded = stack.pop()
                if expanded:
                    order.append(k)
                    continue
                if k in seen or not _tasks.is_task(graph[k]):
                    continue
                seen.add(k)
                self.deps[k] = _tasks.dependencies(graph[k], graph, memo)
                stack.append((k, True))
                stack.extend((d, False) for d in self.deps[k])

        for key in keys:
            visit(key)
        wanted = set(keys)
        # Final tasks that read the same intermediate results form a group.
        groups = {}
        for key in keys:
            reads = frozenset(d for d in self.deps.get(key, ()) if d in self.deps)
            groups.setdefault(reads, []).append(key)
        size = max(1, math.ceil(len(keys) / (CHUNKS_PER_THREAD * threads)))
        self.chunks = [members[i:i + size] for members in groups.values()
                       for i in range(0, len(members), size)]
        # A step read by one chunk only runs inside it.
        readers = {}
        for index, chunk in enumerate(self.chunks):
            for key in chunk:
                for dep in self._upstream(key):
                    readers.setdefault(dep, set()).add(index)
        self.inside = [set() for _ in self.chunks]
        for dep, chunks in readers.items():
            if len(chunks) == 1 and dep not in wanted:
                self.inside[next(iter(chunks))].add(dep)
        self.shared = [k for k in order if k not in wanted and len(readers.get(k, ())) > 1]
        self.order = {k: i for i, k in enumerate(order)}

    def _upstream(self, key):
        out, stack = set(), list(self.deps.get(key, ()))
        while stack:
            dep = stack.pop()
            if dep in self.deps and dep not in out:
                out.add(dep)
                stack.extend(self.deps[dep])
        return out

    def chunk_plan(self, index, graph):
        """(steps, outputs, the keys it reads from outside) of chunk ``index``."""
        inside = self.inside[index]
        chunk = self.chunks[index]
        steps = sorted(inside | set(chunk), key=self.order.get)
        reads = set()
        for key in steps:
            reads.update(d for d in self.deps[key] if d not in inside)
        return [(k, graph[k]) for k in steps], list(chunk), sorted(reads)


def _submit(client, graph, plan, options, hooks):
    """One submission: (values, keys of chunks that killed workers, stopped fits)."""
    import warnings

    from distributed import as_completed

    data = {k: v for k, v in graph.items() if not _tasks.is_task(v)}
    # Each submission's keys are its own, the data's included: a search run
    # again on the same client would otherwise send X under the key the last
    # one had just released, while the scheduler was still forgetting it
    # (caught once in 20-30 pairs of searches: the search waited for good;
    # dask/dask#9888 describes the same hazard for reused keys).  The key's
    # own name stays in front, for the dashboard.
    tag = os.urandom(4).hex()
    # joblib inside a task (an estimator's own n_jobs) runs on this cluster,
    # n_jobs=None as one job (see dklearn._joblib).
    settings = _tasks.Const({"sklearn": options.config,
                             "joblib": {"backend": _joblib.IN_CLUSTER_TASKS, "n_jobs": 1}})
    names = {k: f"{k}-{tag}" for k in data}
    dask_graph = {names[k]: (unwrap, _literal(v)) for k, v in data.items()}
    for key in plan.shared:
        names[key] = f"{key}-{tag}"
    for key in plan.shared:
        steps = [(key, graph[key])]
        reads = sorted(set(plan.deps[key]))
        # run_group returns its outputs (and what they said): this one's value is
        # its first.  Past its limit, its readers return its Stopped, which stops
        # their fits.
        dask_graph[names[key]] = (first_output, _group_task(
            settings, steps, [key], reads, names, options.fit_timeout))
    # What the fits print and warn comes back with their records, where a worker
    # runs one task at a time (``_tasks.Said``); elsewhere it stays in its log.
    nthreads = client.nthreads().values()
    filters = (_tasks.Const((list(warnings.filters), _tasks.this_process()))
               if nthreads and all(n == 1 for n in nthreads) else None)
    chunk_names = []
    for index in range(len(plan.chunks)):
        steps, outputs, reads = plan.chunk_plan(index, graph)
        first = graph_name(outputs[0])
        name = f"{first}-chunk{index}-{tag}"
        chunk_names.append(name)
        dask_graph[name] = _group_task(settings, steps, outputs, reads, names,
                                       options.fit_timeout, filters)
    with warnings.catch_warnings():
        # dask suggests scattering large data instead: see the module doc.
        warnings.filterwarnings("ignore", message="Sending large graph")
        futures = client.get(dask_graph, chunk_names, sync=False)
    chunk_of = {f.key: i for i, f in zip(range(len(futures)), futures)}
    values, suspects, stopped = {}, [], []
    try:
        with client.as_current():  # as_completed looks for the current client
            # Results are fetched here, not by as_completed(with_results=True):
            # a finished chunk whose worker then died is computed again, and
            # if that run is a KilledWorker, as_completed's fetch raises inside
            # dask and never yields the future (the search waited for good:
            # seen in 2 of about 60 runs of the crash test under load).
            for future in as_completed(futures):
                chunk = plan.chunks[chunk_of[future.key]]
                try:
                    result = future.result()
                except (concurrent.futures.CancelledError, asyncio.CancelledError):
                    # cancelled by someone else: submitted again
                    continue
                except Exception as error:
                    for said in error.__dict__.pop(SAID, ()):  # see ``run_group``
                        _tasks.repeat(said)
                    if type(error).__name__ != "KilledWorker":
                        raise
                    if len(chunk) == 1 and len(plan.chunks) == 1:
                        return values, list(chunk), stopped  # alone already: crashed
                    suspects.extend(chunk)
                    continue
                if isinstance(result, Stopped):
                    for said in result.said:
                        _tasks.repeat(said)
                    for key, value in result.done.items():
                        values[key] = value
                        hooks.done(key, value)
                    if result.key in chunk:
                        stopped.append((result.key, result.elapsed, result.address,
                                        result.key))
                    else:  # a step inside the chunk, or a shared one: each fit that read it
                        for key in chunk:
                            if key not in values:
                                stopped.append((key, result.elapsed, result.address,
                                                result.key))
                    continue
                records, each_said = result
                for said in each_said:
                    _tasks.repeat(said)
                for key, value in zip(chunk, records):
                    values[key] = value
                    hooks.done(key, value)
    finally:
        client.cancel(futures)
    return values, suspects, stopped


def graph_name(key):
    """The part of a key the dashboard shows: what the task does and for which class."""
    return "-".join(key.split("-")[:2])


def _literal(value):
    """Data as dask sends it (arrays without copies); the rest (scorers, fit
    parameters, a splitter's folds) by the pickler that keeps the code of the
    user's functions whole, so that their tracebacks name their files, as in
    scikit-learn's."""
    inner = value.value if isinstance(value, _tasks.Const) else value
    if type(inner).__module__.partition(".")[0] in ("numpy", "pandas", "scipy"):
        return _tasks.Const(value)
    return Packed(_tasks.dumps(value))


def _group_task(settings, steps, outputs, reads, names, limit, filters=None):
    return (run_group, settings, _literal((steps, outputs)),
            _tasks.Const(list(reads)), [names[k] for k in reads], limit, filters)


# ---------------------------------------------------------------------------
# What the cluster's workers run
# ---------------------------------------------------------------------------


class Packed:
    """A literal the caller pickled (``dumps``), loaded where a task reads it."""

    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data

    @property
    def value(self):
        return pickle.loads(self.data)

    def __reduce__(self):
        return (Packed, (self.data,))

    def __dask_tokenize__(self):
        return "packed", hashlib.md5(self.data).hexdigest()


def unwrap(const):
    """A constant, as a task (a cluster recreates data it lost from it).  A ``Packed``
    one stays packed: the workers that fetch it would get it pickled by dask's
    pickler otherwise (``run_group`` loads it)."""
    return const if isinstance(const, Packed) else const.value


def run_group(settings, plan, names, values, limit=None, filters=None):
    """Run ``plan``'s tasks in order, in this thread: (the values of its outputs, what
    each task said).

    ``plan`` is ``(steps, outputs)``: ``steps`` a list of (key, task) in an
    order where each task comes after what it reads, ``outputs`` the keys
    whose values to return.  ``names``/``values``: the keys the plan reads
    from outside, and their values.  Every call runs under ``settings``
    (the caller's scikit-learn configuration, and the joblib backend for
    joblib inside the tasks).  ``filters``: the caller's warning filters,
    for each task to run under, its output caught (``_tasks.Said``); None leaves
    its output to this process.

    ``limit``: seconds each task may run.  A task that runs longer is left
    running in its thread, and the group returns at once: a ``Stopped`` with
    the outputs finished so far, the key that ran too long, and this
    process's address, for the caller to restart it (see the module doc).
    """
    _tasks.RUNNING.task = _tasks.RUNNING.beside = True  # a dask worker's threads run tasks side by side
    for value in values:
        if isinstance(value, Stopped):  # a shared step it reads ran too long: so did its fits
            return Stopped({}, value.key, value.elapsed, value.address)
    steps, outputs = plan.value
    known = {name: value.value if isinstance(value, Packed) else value
             for name, value in zip(names.value, values)}
    wanted = set(outputs)
    done, said = {}, []
    with _configured(settings.value):
        for key, task in steps:
            heard = None
            try:
                with contextlib.ExitStack() as stack:
                    if filters is not None and filters.value[1] != _tasks.this_process():
                        # (In the caller's own process, a cluster of threads, its
                        # output is the caller's already.)
                        heard = stack.enter_context(_tasks.Said(filters.value[0]))
                    if limit is None:
                        known[key] = _tasks.execute(task, known)
                    else:
                        finished, value = _within(limit, task, known, settings.value)
                        if not finished:
                            return Stopped(done, key, value, said=said)
                        known[key] = value
            except Exception as error:
                # A fit that raises (error_score='raise') takes what the fits said
                # with it, for the caller to print before it raises (``_submit``).
                output = heard.output() if heard is not None else None
                error.__dict__[SAID] = [*said, *([output] if output else [])]
                raise
            output = heard.output() if heard is not None else None
            if output is not None:
                said.append(output)
            if key in wanted:
                done[key] = known[key]
    return [done[key] for key in outputs], said


def first_output(result):
    """The value of a group of one shared step, or the ``Stopped`` its readers pass on."""
    return result if isinstance(result, Stopped) else result[0][0]


class Stopped:
    """A group that stopped at a task past its time limit (see ``run_group``)."""

    __slots__ = ("done", "key", "elapsed", "address", "said")

    def __init__(self, done, key, elapsed, address=None, said=()):
        self.done, self.key, self.elapsed, self.said = done, key, elapsed, said
        if address is None:
            from distributed import get_worker

            address = get_worker().address
        self.address = address

    def __reduce__(self):
        return (Stopped, (self.done, self.key, self.elapsed, self.address, self.said))


def _configured(settings):
    """A context that applies ``settings``: scikit-learn's configuration, a joblib backend."""
    from contextlib import ExitStack

    import joblib
    import sklearn

    stack = ExitStack()
    stack.enter_context(sklearn.config_context(**settings["sklearn"]))
    if settings.get("joblib"):
        stack.enter_context(joblib.parallel_config(**settings["joblib"]))
    return stack


def _within(limit, task, known, settings):
    """(True, value) if ``task`` ends within ``limit`` seconds, else (False, seconds waited).

    It runs in a thread of its own, which is left running when it is late:
    only restarting this process stops it.
    """
    box = {}

    def target():
        _tasks.RUNNING.task = _tasks.RUNNING.beside = True
        with _configured(settings):
            try:
                box["value"] = _tasks.execute(task, known)
            except BaseException as error:  # noqa: BLE001 - raised in the caller below
                box["error"] = error

    thread = threading.Thread(target=target, daemon=True, name="dklearn-timed")
    start = time.perf_counter()
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        return False, time.perf_counter() - start
    if "error" in box:
        raise box["error"]
    return True, box["value"]
