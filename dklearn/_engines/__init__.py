"""Where a search graph runs: pick an engine, run the graph, report each result.

A search hands ``run`` its graph (see ``_plan``: key -> task tuple, or a
constant such as X), the keys whose values it wants (one per (candidate,
fold)), the kind of each task (``"fit PCA"``, ``"score SVC"``: what the cost
model measures and moves), ``Options`` and ``Hooks``.  ``run`` returns the
values of the keys in order, and calls ``hooks.done(key, value)`` in the
calling thread as each one arrives (checkpoints, progress bar).

=======================  =============================================  ==============
``scheduler``            engine                                         module
=======================  =============================================  ==============
None                     joblib's ``parallel_config`` if it names a     (as below)
                         backend, else the active dask.distributed
                         Client, else the local loop with each kind
                         of task placed by the cost model
'sync'                   the local loop, every task in this thread      local
'threads'                the local loop on ``n_jobs`` threads           local
'processes'              the local loop on ``n_jobs`` worker processes  local, processes
a Client or an address   that dask.distributed cluster                  distributed
=======================  =============================================  ==============

=================  ===========================================================
module             what it holds
=================  ===========================================================
this module        choosing an engine: ``run``, ``Options``, ``Hooks``, ``n_workers``
``local``          the loop that runs a graph on this machine
``cost``           where each kind of task runs (the one rule)
``threads``        the places in this process: the calling thread, a thread pool
``processes``      worker processes: start, send, crash isolation, warm reuse
``_worker``        the only engine module a worker process imports
``limits``         BLAS and OpenMP caps
``distributed``    a dask.distributed cluster
=================  ===========================================================

Imports point one way: this module -> ``local`` -> ``cost``, ``threads``,
``processes`` -> ``limits``, ``_worker``; ``distributed`` stands apart.
(``local`` and ``distributed`` take the errors they record, ``CrashedWorker``
and ``FitTimeout``, from this module, which imports them only inside
``run``.)

``n_jobs`` follows scikit-learn and joblib: ``None`` means the ``n_jobs`` of
an active ``joblib.parallel_config``, else every core (dklearn's default,
where scikit-learn's is one), or one inside a task (of another search, or of
a dask worker);
-1 every core, -2 all but one, ``k`` k workers.
"""

import sys
from dataclasses import dataclass, field

import joblib

from .. import _compat, _tasks

LOCAL_SCHEDULERS = ("sync", "threads", "processes")

class CrashedWorker(RuntimeError):
    """A task was running alone in a worker process each time that process died."""


class FitTimeout(TimeoutError):
    """A task ran longer than ``fit_timeout`` and was stopped."""


def named(kind):
    """A task in an engine's message: by its kind, never its key, so that equal
    failures have equal messages, which scikit-learn's summary counts together."""
    return "A task" if kind is None else f"A task of kind {kind!r}"


@dataclass(frozen=True)
class Options:
    """How one search wants its graph run."""

    scheduler: object = None
    n_jobs: object = None
    config: dict = field(default_factory=dict)  # the caller's sklearn.get_config()
    verbose: int = 0
    fit_timeout: object = None  # seconds, or None


class Hooks:
    """What a search hears from an engine while its graph runs.

    ``done(key, value)``: a requested key's value arrived (called in the
    calling thread).  ``lost(key, error)``: the task of ``key`` was stopped
    (``FitTimeout``) or killed the processes that ran it (``CrashedWorker``);
    returns the value to use (a failed-fit record) or raises.
    """

    def __init__(self, done=None, lost=None):
        self.done = done or (lambda key, value: None)
        self.lost = lost or _raise

    def fail(self, key, error):
        return self.lost(key, error)


def _raise(key, error):
    raise error



def n_workers(n_jobs):
    """Local workers for ``n_jobs``, with scikit-learn's conventions (None: see module doc)."""
    cores = joblib.cpu_count()
    if n_jobs is None:
        n_jobs = _compat.joblib_n_jobs()
        if n_jobs is None:
            return 1 if inside_a_task() else cores
    if n_jobs < 0:
        return max(cores + 1 + n_jobs, 1)
    if n_jobs == 0:
        # joblib's words, which scikit-learn's searches raise
        raise ValueError("n_jobs == 0 in Parallel has no meaning")
    return n_jobs


def inside_a_task():
    """Whether this thread runs a task of a search, or of a dask worker (a search of
    scikit-learn's on joblib's dask backend, say), whose workers are busy already."""
    if getattr(_tasks.RUNNING, "task", False):
        return True
    if "distributed" not in sys.modules:
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:  # not in a worker's task
        return False
    return True


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


def resolve(scheduler):
    """The engine ``scheduler=None`` stands for now: a local name or a Client (or None).

    Inside a task of a search, or of a dask worker, the local loop: in that task's
    thread (see ``n_workers``), whatever joblib backend or Client the task sees.
    """
    if scheduler is not None:
        return scheduler
    if inside_a_task():
        return None
    chosen = _compat.joblib_scheduler()
    if chosen is not None:
        return chosen
    return active_client()


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


def run(graph, keys, kinds, options, hooks=None, cache=None):
    """Compute ``keys`` of ``graph``; return their values as a list (see module doc).

    The graph becomes the engine's: tasks leave it as they run.  ``cache``
    (locally): values of shared steps from the last run, reused by key, and
    replaced by this run's.
    """
    check_scheduler(options.scheduler)
    hooks = hooks or Hooks()
    scheduler = resolve(options.scheduler)
    if isinstance(scheduler, str) and "://" in scheduler:
        from distributed import Client

        from . import distributed

        with Client(scheduler, set_as_default=False) as client:
            return distributed.run(client, graph, keys, kinds, options, hooks)
    if scheduler is not None and not isinstance(scheduler, str):
        from . import distributed

        return distributed.run(scheduler, graph, keys, kinds, options, hooks)
    from . import local

    return local.run(graph, keys, kinds, scheduler, n_workers(options.n_jobs), options, hooks,
                     cache)
