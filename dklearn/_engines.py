"""Run a search graph on an existing engine: dask's local schedulers or dask.distributed.

dklearn has no scheduler of its own.  ``run(graph, keys, scheduler, n_jobs)``
picks one and returns the values of ``keys`` in order:

=====================  ==================================================
``scheduler``          engine
=====================  ==================================================
None                   the active dask.distributed Client if there is one,
                       else the local default ('threads')
'sync'                 ``dask.local.get_sync``: in this thread, in order
'threads'              ``dask.threaded.get`` with ``n_jobs`` threads
'processes'            ``dask.multiprocessing.get`` with ``n_jobs`` processes
a Client / 'tcp://..'  ``Client.get`` on that cluster
=====================  ==================================================

``n_jobs=None`` or -1 means every core, 1 means sequential in this thread.

BLAS threads are capped so that workers x BLAS threads <= cores: two
workers each running a 2-thread BLAS on 2 cores lose to either alone.
"""

from functools import partial

import joblib
from threadpoolctl import threadpool_limits

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
    """The dask.distributed Client the user has made current, if any."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
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


def run(graph, keys, scheduler=None, n_jobs=None):
    """Compute ``keys`` of ``graph``; return their values as a list."""
    check_scheduler(scheduler)
    if scheduler is None:
        client = active_client()
        if client is not None:
            return _run_distributed(client, graph, keys)
        scheduler = "threads"
    if isinstance(scheduler, str) and "://" in scheduler:
        from distributed import Client

        with Client(scheduler, set_as_default=False) as client:
            return _run_distributed(client, graph, keys)
    if not isinstance(scheduler, str):
        return _run_distributed(scheduler, graph, keys)

    workers = n_workers(n_jobs)
    if scheduler == "sync" or workers == 1:
        import dask.local

        return list(dask.local.get_sync(graph, keys))
    blas = max(joblib.cpu_count() // workers, 1)
    if scheduler == "threads":
        import dask.threaded

        # The cap is process-wide: it holds for every worker thread.
        with threadpool_limits(limits=blas):
            return list(dask.threaded.get(graph, keys, num_workers=workers))
    import dask.multiprocessing

    return list(
        dask.multiprocessing.get(
            graph, keys, num_workers=workers, initializer=partial(_cap_blas, blas)
        )
    )


def _cap_blas(limit):  # pragma: no cover - runs in worker processes
    threadpool_limits(limits=limit)


def _run_distributed(client, graph, keys):
    return list(client.get(graph, keys, sync=True))
