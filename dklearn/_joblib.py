"""The 2017 post's joblib spelling: ``parallel_backend('dask.distributed', scheduler_host=...)``.

joblib once registered a backend named 'dask.distributed' (through
``import distributed.joblib``); today it only knows 'dask'.  Importing
dklearn registers 'dask.distributed' as another name for joblib's own dask
backend, so the post's code, including scikit-learn's GridSearchCV inside the
``with`` block, runs on the cluster at ``scheduler_host``.  joblib's 'dask'
backend is untouched.
"""

import joblib
from joblib import parallel as _parallel

NAME = "dask.distributed"


def _dask_backend(scheduler_host=None, **kwargs):
    """joblib's dask backend, connected to ``scheduler_host`` ('host:port' or an address)."""
    if "dask" not in _parallel.BACKENDS:
        # joblib registers its dask backend on first use; do that now.
        _parallel.EXTERNAL_BACKENDS["dask"]()
    backend = _parallel.BACKENDS["dask"]
    if scheduler_host is not None and "://" not in scheduler_host:
        scheduler_host = f"tcp://{scheduler_host}"
    return backend(scheduler_host=scheduler_host, **kwargs)


def register():
    joblib.register_parallel_backend(NAME, _dask_backend)
