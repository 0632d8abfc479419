"""dklearn: scikit-learn model selection that does each distinct piece of work once.

Swap ``sklearn.model_selection`` for ``dklearn.model_selection``; results are
scikit-learn's, computed from one task graph in which the work candidates
share (pipeline prefixes, union branches, test-fold transforms) runs once.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

from . import _joblib

try:
    __version__ = version("dklearn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_joblib.register()

__all__ = [
    "CrashedWorker",
    "FeatureUnion",
    "FitTimeout",
    "GridSearchCV",
    "Pipeline",
    "RandomizedSearchCV",
    "make_pipeline",
    "make_union",
]

# The search classes are imported on first use, not with the package: a
# worker process imports dklearn for its task bodies (``_tasks``), and the
# searches' own imports (dask among them) cost it 0.08-0.1 s of start-up.
_PUBLIC = {
    "CrashedWorker": "_engines",  # the error of a fit that killed its worker
    "FitTimeout": "_engines",  # the error of a fit past fit_timeout
    "GridSearchCV": "model_selection",
    "RandomizedSearchCV": "model_selection",
    "FeatureUnion": "pipeline",
    "Pipeline": "pipeline",
    "make_pipeline": "pipeline",
    "make_union": "pipeline",
}


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'dklearn' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
