"""Every public name of ``sklearn.model_selection``: swap the import, keep the code.

``from dklearn.model_selection import ...`` gives, for each name the
installed scikit-learn exports:

- dklearn's own where it adds something: the searches (``GridSearchCV``,
  ``RandomizedSearchCV``, ``HalvingGridSearchCV``, ``HalvingRandomSearchCV``,
  in ``_search``) and the cross-validation functions (``cross_validate``,
  ``cross_val_score``, ``cross_val_predict``, ``validation_curve``,
  ``learning_curve``, ``permutation_test_score``, in ``_validation``), whose
  fits share work and run on dklearn's engines; and the two Display classes,
  whose ``from_estimator`` computes its curve with dklearn's functions;
- scikit-learn's own object everywhere else (splitters, ``train_test_split``,
  ``ParameterGrid``, ``check_cv``, ``TunedThresholdClassifierCV``, ...), and
  any name a newer release adds.

The halving searches need no ``enable_halving_search_cv`` import here (and
work if it was made).
"""

import numpy as np
import sklearn.model_selection as _sk

from . import _compat
from ._search import GridSearchCV, HalvingGridSearchCV, HalvingRandomSearchCV, RandomizedSearchCV
from ._validation import (
    cross_val_predict,
    cross_val_score,
    cross_validate,
    learning_curve,
    permutation_test_score,
    validation_curve,
)


_PLOT = ("ax", "negate_score", "score_type", "std_display_style", "line_kw",
         "fill_between_kw", "errorbar_kw")


class LearningCurveDisplay(_sk.LearningCurveDisplay):
    __doc__ = _sk.LearningCurveDisplay.__doc__

    @classmethod
    def from_estimator(cls, estimator, X, y, *, fit_params=None, score_name=None, **kwargs):
        """scikit-learn's ``from_estimator``, its curve from dklearn's ``learning_curve``."""
        plot = {k: kwargs.pop(k) for k in _PLOT if k in kwargs}
        name = _compat.score_name(score_name, kwargs.get("scoring"),
                                  plot.get("negate_score", False), cls.__name__)
        sizes, train, test = learning_curve(estimator, X, y, params=fit_params,
                                            return_times=False, **kwargs)
        display = cls(train_sizes=sizes, train_scores=train, test_scores=test, score_name=name)
        return display.plot(**plot)


class ValidationCurveDisplay(_sk.ValidationCurveDisplay):
    __doc__ = _sk.ValidationCurveDisplay.__doc__

    @classmethod
    def from_estimator(cls, estimator, X, y, *, param_name, param_range, fit_params=None,
                       score_name=None, **kwargs):
        """scikit-learn's ``from_estimator``, its curve from dklearn's ``validation_curve``."""
        plot = {k: kwargs.pop(k) for k in _PLOT if k in kwargs}
        name = _compat.score_name(score_name, kwargs.get("scoring"),
                                  plot.get("negate_score", False), cls.__name__)
        train, test = validation_curve(estimator, X, y, param_name=param_name,
                                       param_range=param_range, params=fit_params, **kwargs)
        display = cls(param_name=param_name, param_range=np.asarray(param_range),
                      train_scores=train, test_scores=test, score_name=name)
        return display.plot(**plot)


_OURS = {
    "GridSearchCV", "RandomizedSearchCV", "HalvingGridSearchCV", "HalvingRandomSearchCV",
    "cross_validate", "cross_val_score", "cross_val_predict", "validation_curve",
    "learning_curve", "permutation_test_score", "LearningCurveDisplay",
    "ValidationCurveDisplay",
}

__all__ = sorted(set(_sk.__all__) | _OURS)


def __getattr__(name):
    if name in _sk.__all__:
        return getattr(_sk, name)
    raise AttributeError(f"module 'dklearn.model_selection' has no attribute {name!r}")


def __dir__():
    return __all__
