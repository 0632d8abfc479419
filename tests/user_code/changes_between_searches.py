"""A session that changes things between two searches, as a notebook does: a module of
the user's edited on disk and reloaded, an environment variable, a folder added to
sys.path.  The second search on dklearn's worker processes (warm by then) must see
each change, as scikit-learn's sequential loop does.  Prints how many searches
compared, then "ok"."""

import importlib
import os
import sys
import tempfile

import numpy as np
from sklearn import model_selection as skm
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification

from dklearn import model_selection as dkm

MODULE = '''
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

SHIFT = {shift}


class Threshold(ClassifierMixin, BaseEstimator):
    def __init__(self, C=0):
        self.C = C

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.cut_ = float(np.median(X[:, 0])) + SHIFT + 0.01 * self.C
        return self

    def predict(self, X):
        return np.where(X[:, 0] > self.cut_, self.classes_[1], self.classes_[0])
'''


class EnvThreshold(ClassifierMixin, BaseEstimator):
    """Reads its shift from the environment when it fits."""

    def __init__(self, C=0):
        self.C = C

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        shift = float(os.environ.get("DKLEARN_TEST_SHIFT", "0"))
        self.cut_ = float(np.median(X[:, 0])) + shift + 0.01 * self.C
        return self

    def predict(self, X):
        return np.where(X[:, 0] > self.cut_, self.classes_[1], self.classes_[0])


def compare(make, X, y):
    grid = {"C": [0, 1, 2, 3]}
    expected = skm.GridSearchCV(make(), grid, cv=3).fit(X, y).cv_results_["mean_test_score"]
    got = dkm.GridSearchCV(make(), grid, cv=3, scheduler="processes").fit(X, y)
    np.testing.assert_array_equal(got.cv_results_["mean_test_score"], expected)


if __name__ == "__main__":
    X, y = make_classification(n_samples=120, n_features=5, random_state=0)
    folder = tempfile.mkdtemp()
    try:
        path = os.path.join(folder, "user_thresholds.py")
        with open(path, "w") as f:
            f.write(MODULE.format(shift=0.0))
        sys.path.insert(0, folder)
        import user_thresholds

        compare(lambda: user_thresholds.Threshold(), X, y)  # the workers start, and stay
        with open(path, "w") as f:  # edited, then reloaded: autoreload does this
            f.write(MODULE.format(shift=0.7))
        importlib.reload(user_thresholds)
        compare(lambda: user_thresholds.Threshold(), X, y)

        compare(EnvThreshold, X, y)
        os.environ["DKLEARN_TEST_SHIFT"] = "0.7"
        compare(EnvThreshold, X, y)

        later = os.path.join(folder, "later")
        os.mkdir(later)
        with open(os.path.join(later, "later_thresholds.py"), "w") as f:
            f.write(MODULE.format(shift=0.3))
        sys.path.insert(0, later)
        import later_thresholds

        compare(lambda: later_thresholds.Threshold(), X, y)
        print("compared: 5")
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    print("ok")
