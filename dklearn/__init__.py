"""dklearn: scikit-learn model selection that does each distinct piece of work once.

Swap ``sklearn.model_selection`` for ``dklearn.model_selection``; results are
scikit-learn's, computed from one task graph in which the work candidates
share (pipeline prefixes, union branches, test-fold transforms) runs once.
"""

from importlib.metadata import PackageNotFoundError, version

from . import _joblib
from .model_selection import GridSearchCV, RandomizedSearchCV
from .pipeline import FeatureUnion, Pipeline, make_pipeline, make_union

try:
    __version__ = version("dklearn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_joblib.register()

__all__ = [
    "FeatureUnion",
    "GridSearchCV",
    "Pipeline",
    "RandomizedSearchCV",
    "make_pipeline",
    "make_union",
]
