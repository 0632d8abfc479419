"""What the scripts here share: run a search with scikit-learn and with dklearn on
every engine, and check every result is scikit-learn's (``tests._helpers``)."""

import copy
import warnings

import numpy as np
from sklearn import model_selection as skm
from threadpoolctl import threadpool_limits

from dklearn import model_selection as dkm
from tests._helpers import assert_same_results

ENGINES = ("sync", "threads", "processes", None)


def same_as_sklearn(kind, X, y=None, fit_params=None, engines=ENGINES, **kwargs):
    """``kind`` ('GridSearchCV', ...) with scikit-learn, then dklearn on each engine.

    The reference runs with the BLAS threads each engine's workers get (all
    for 'sync', cores // workers otherwise, as scikit-learn's own n_jobs
    workers): a sum over another number of threads may differ in its last
    bit.  Each search gets its own copy of X: a refit with ``copy=False``
    steps writes into the X it is given, in scikit-learn as in dklearn.
    """
    fit_params = fit_params or {}
    references = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for engine in engines:
            blas = None if engine == "sync" else 1  # dklearn's default: a worker per core
            if blas not in references:
                with threadpool_limits(limits=blas):
                    references[blas] = getattr(skm, kind)(**kwargs).fit(
                        copy.deepcopy(X), y, **fit_params)
            reference = references[blas]
            got = getattr(dkm, kind)(**kwargs, scheduler=engine).fit(copy.deepcopy(X), y,
                                                                      **fit_params)
            assert_same_results(reference, got)
            if hasattr(reference, "best_estimator_"):
                np.testing.assert_array_equal(reference.predict(copy.deepcopy(X)),
                                              got.predict(copy.deepcopy(X)))
            metric = "mean_test_" + _metric(reference)
            assert np.isnan(got.cv_results_[metric]).sum() == np.isnan(
                reference.cv_results_[metric]).sum()
    return reference


def _metric(search):
    if isinstance(search.refit, str):
        return search.refit
    return next(k[len("mean_test_"):] for k in search.cv_results_ if k.startswith("mean_test_"))
