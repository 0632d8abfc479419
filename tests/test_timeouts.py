"""Per-fit time limits (``fit_timeout``): a fit that runs too long is stopped, and the
search ends on time with scikit-learn's results for everything else.

A stopped fit is a failed fit: its record is scikit-learn's for a fit that
raised (``error_score``), its fit_time how long it ran.  The references are
scikit-learn searches in which the same candidates raise instead of
sleeping (the ``DKLEARN_TEST_RAISE`` switch, read in this process only).
"""

import os
import time
import warnings

import numpy as np
import psutil
import pytest
from sklearn import model_selection as skm
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.datasets import make_classification
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from dklearn import model_selection as dkm
from dklearn._engines import FitTimeout

from ._helpers import assert_same_results, worker_processes

# What these tests check does not change with scikit-learn's release: CI runs
# them with the newest release only (see .ci/run).
pytestmark = pytest.mark.engine

X, y = make_classification(n_samples=60, n_features=4, random_state=0)
LIMIT = 1.0
MARGIN = 4.0  # seconds over the limit a search may take: starts, and this busy machine


class Stuck(ClassifierMixin, BaseEstimator):
    """Fits at once, unless ``stuck``: then it sleeps (or spins) for a minute."""

    def __init__(self, stuck=False, spin=False, C=1.0):
        self.stuck, self.spin, self.C = stuck, spin, C

    def fit(self, X, y):
        if self.stuck:
            if os.environ.get("DKLEARN_TEST_RAISE"):
                raise RuntimeError("stuck")
            deadline = time.time() + 60
            while time.time() < deadline:
                if not self.spin:
                    time.sleep(0.05)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[int(self.C) % 2])


def _reference(cls, *args, **kwargs):
    os.environ["DKLEARN_TEST_RAISE"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(*args, **kwargs).fit(X, y)
    finally:
        del os.environ["DKLEARN_TEST_RAISE"]


@pytest.mark.parametrize("scheduler", ["processes", None])
@pytest.mark.parametrize("spin", [False, True])
def test_a_stuck_fit_is_stopped_and_the_rest_is_sklearns(scheduler, spin):
    grid = {"stuck": [False, True], "C": [1.0, 2.0]}
    reference = _reference(skm.GridSearchCV, Stuck(spin=spin), grid, cv=3)
    start = time.monotonic()
    with pytest.warns(FitFailedWarning, match="ran longer than fit_timeout=1.0") as warned:
        search = dkm.GridSearchCV(Stuck(spin=spin), grid, cv=3, scheduler=scheduler, n_jobs=2,
                                  fit_timeout=LIMIT).fit(X, y)
    elapsed = time.monotonic() - start
    # scikit-learn's summary counts equal failures together: one block of six.
    summary = [str(w.message) for w in warned if "fits failed" in str(w.message)]
    assert len(summary) == 1 and "6 fits failed with the following error" in summary[0]
    # Six stuck fits on two workers: three waves of one limit each.
    assert elapsed < 3 * LIMIT + MARGIN
    assert_same_results(reference, search)
    stuck = np.array([p["stuck"] for p in search.cv_results_["params"]])
    fit_times = search.cv_results_["mean_fit_time"]
    assert (fit_times[stuck] >= LIMIT * 0.9).all() and (fit_times[stuck] < LIMIT + 2).all()


def test_no_process_keeps_running_a_stopped_fit():
    me = psutil.Process()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="All the 2 fits failed"):
            dkm.GridSearchCV(Stuck(spin=True), {"stuck": [True]}, cv=2, scheduler="processes",
                             n_jobs=2, fit_timeout=LIMIT).fit(X, y)
    time.sleep(0.5)
    busy = [p for p in worker_processes() if p.cpu_percent(interval=0.5) > 50]
    assert not busy
    assert me.cpu_percent(interval=0.5) < 50  # nor a thread here


def test_error_score_raise_raises_a_timeout_error_at_once():
    start = time.monotonic()
    with pytest.raises(TimeoutError) as error:
        dkm.GridSearchCV(Stuck(), {"stuck": [True, False]}, cv=2, scheduler="processes",
                         n_jobs=2, error_score="raise", fit_timeout=LIMIT).fit(X, y)
    assert isinstance(error.value, FitTimeout)
    assert time.monotonic() - start < LIMIT + MARGIN


class SlowPrefix(TransformerMixin, BaseEstimator):
    def __init__(self, slow=False):
        self.slow = slow

    def fit(self, X, y=None):
        if self.slow:
            time.sleep(60)
        return self

    def transform(self, X):
        return X


def test_a_stopped_shared_step_fails_every_candidate_that_needs_it():
    pipe = Pipeline([("pre", SlowPrefix()), ("clf", LogisticRegression())])
    grid = {"pre__slow": [False, True], "clf__C": [0.1, 1.0, 10.0]}
    with pytest.warns(FitFailedWarning):
        search = dkm.GridSearchCV(pipe, grid, cv=2, scheduler="processes", n_jobs=2,
                                  fit_timeout=LIMIT).fit(X, y)
    slow = np.array([p["pre__slow"] for p in search.cv_results_["params"]])
    scores = search.cv_results_["mean_test_score"]
    assert np.isnan(scores[slow]).all() and np.isfinite(scores[~slow]).all()


def test_resuming_with_the_same_limit_skips_stopped_fits_a_larger_one_retries(tmp_path):
    path = tmp_path / "limits.sqlite"
    grid = {"stuck": [False, True]}

    def search(limit):
        start = time.monotonic()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = dkm.GridSearchCV(Slowish(), grid, cv=2, scheduler="processes", n_jobs=2,
                                      fit_timeout=limit, checkpoint=path).fit(X, y)
        return result, time.monotonic() - start

    first, _ = search(LIMIT)
    assert np.isnan(first.cv_results_["mean_test_score"][1])
    again, elapsed = search(LIMIT)  # the same limit: nothing runs again
    assert elapsed < LIMIT and np.isnan(again.cv_results_["mean_test_score"][1])
    longer, elapsed = search(3 * LIMIT)  # a larger one: the 2 s fits finish now
    assert elapsed >= 2 and np.isfinite(longer.cv_results_["mean_test_score"][1])


class Slowish(Stuck):
    """Stuck for two seconds only: past LIMIT, within 3 * LIMIT."""

    def fit(self, X, y):
        if self.stuck:
            time.sleep(2 * LIMIT)
        self.classes_ = np.unique(y)
        return self


def test_verbose_and_the_progress_bar_count_stopped_fits(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dkm.GridSearchCV(Stuck(), {"stuck": [False, True]}, cv=2, scheduler="processes",
                         n_jobs=2, fit_timeout=LIMIT, verbose=1, progress=True).fit(X, y)
    captured = capsys.readouterr()
    assert "2 fits ran longer than fit_timeout=1.0 s" in captured.out
    assert "timed out=2" in captured.err


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_threads_cannot_stop_a_fit_and_say_so(scheduler):
    with pytest.raises(ValueError, match="cannot be killed"):
        dkm.GridSearchCV(Stuck(), {"C": [1.0]}, cv=2, scheduler=scheduler,
                         fit_timeout=LIMIT).fit(X, y)


def test_cross_validation_functions_take_a_limit():
    start = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Every fold stuck, so every fit failed: scikit-learn's error for that.
        with pytest.raises(ValueError, match="All the 2 fits failed") as error:
            dkm.cross_val_score(Stuck(stuck=True), X, y, cv=2, fit_timeout=LIMIT)
    assert "FitTimeout" in str(error.value)
    assert time.monotonic() - start < LIMIT + MARGIN
    train, test = dkm.validation_curve(Stuck(), X, y, param_name="stuck",
                                       param_range=[False, True], cv=2, fit_timeout=LIMIT)
    assert np.isfinite(test[0]).all() and np.isnan(test[1]).all()


def test_the_errors_of_stopped_and_crashed_fits_are_public():
    import dklearn
    from dklearn._engines import CrashedWorker, FitTimeout

    assert dklearn.FitTimeout is FitTimeout and issubclass(FitTimeout, TimeoutError)
    assert dklearn.CrashedWorker is CrashedWorker
    assert {"FitTimeout", "CrashedWorker"} <= set(dklearn.__all__) <= set(dir(dklearn))
