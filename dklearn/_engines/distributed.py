"""Run a search graph on a dask.distributed cluster: data sent once, records back.

dklearn has no cluster of its own: ``Client.get`` runs the graph, dask's
scheduler places the tasks, dask's workers run them (``_tasks``, each call
under the caller's scikit-learn configuration, with joblib inside a task
running on the same cluster).  The graph's constants (X, y, folds, fit
parameters) are scattered once; fitted steps and transformed folds stay on
the workers; only each (candidate, fold)'s record comes back, as soon as it
is done, so a worker dying later takes no finished result with it.
"""

import os

from .. import _tasks


def run(client, graph, keys, options, hooks, attempts=3):
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
        values.update(_submit(client, graph, remaining, options.config, hooks,
                              scatter=attempt == 0))
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

    data = {k: v for k, v in graph.items() if not _tasks.is_task(v)}
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
                    if type(error).__name__ != "KilledWorker":
                        raise error
                    values[key] = hooks.fail(key, error)
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
