"""The 2017 post's joblib spelling: ``parallel_backend('dask.distributed', scheduler_host=...)``.

joblib once registered a backend named 'dask.distributed' (through
``import distributed.joblib``); today it only knows 'dask'.  Importing
dklearn registers 'dask.distributed' as another name for joblib's own dask
backend, so the post's code, including scikit-learn's GridSearchCV inside the
``with`` block, runs on the cluster at ``scheduler_host``.  joblib's 'dask'
backend is untouched.

It also registers the backend joblib runs on inside dklearn's tasks on a
cluster (an estimator's own ``n_jobs``): joblib's dask backend, except that
one job stays in the task.  joblib's dask backend reads every ``n_jobs``,
1 included, as all the cluster's workers, where scikit-learn reads its
default, None, as one job: each fit would wait on tasks of its own.
"""

import joblib
from joblib import parallel as _parallel

NAME = "dask.distributed"
IN_CLUSTER_TASKS = "dklearn-in-cluster-tasks"


def _dask_backend(scheduler_host=None, **kwargs):
    """joblib's dask backend, connected to ``scheduler_host`` ('host:port' or an address)."""
    if "dask" not in _parallel.BACKENDS:
        # joblib registers its dask backend on first use; do that now.
        _parallel.EXTERNAL_BACKENDS["dask"]()
    backend = _parallel.BACKENDS["dask"]
    if scheduler_host is not None and "://" not in scheduler_host:
        scheduler_host = f"tcp://{scheduler_host}"
    return backend(scheduler_host=scheduler_host, **kwargs)


def _in_cluster_tasks(**kwargs):
    backend = _dask_backend(**kwargs)
    every_worker = backend.effective_n_jobs
    backend.effective_n_jobs = lambda n_jobs: 1 if n_jobs == 1 else every_worker(n_jobs)
    return backend


def register():
    joblib.register_parallel_backend(NAME, _dask_backend)
    joblib.register_parallel_backend(IN_CLUSTER_TASKS, _in_cluster_tasks)
