"""A custom estimator whose fit is pure Python (it holds the GIL), as a notebook defines
one: the default engine moves it to worker processes, and every result is
scikit-learn's (no NaN)."""

import os
import sys

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification

from tests.user_code._compare import same_as_sklearn


class Stumps(ClassifierMixin, BaseEstimator):
    """The best single-feature threshold, found by looping in Python."""

    def __init__(self, steps=400, log=None):
        self.steps, self.log = steps, log

    def fit(self, X, y):
        best = (-1.0, 0, 0.0)
        for j in range(X.shape[1]):
            column = X[:, j].tolist()
            low, high = min(column), max(column)
            for s in range(self.steps):
                t = low + (high - low) * s / self.steps
                hits = sum((v > t) == bool(c) for v, c in zip(column, y.tolist()))
                best = max(best, (hits / len(column), j, t))
        _, self.feature_, self.threshold_ = best
        self.classes_ = np.array([0, 1])
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{os.getpid()}\n")
        return self

    def predict(self, X):
        return (X[:, self.feature_] > self.threshold_).astype(int)


if __name__ == "__main__":
    from dklearn.model_selection import GridSearchCV

    X, y = make_classification(n_samples=200, n_features=4, random_state=0)
    # A first search on processes leaves its workers warm, as an earlier
    # search of a notebook would: the move then does not wait for them.
    GridSearchCV(Stumps(steps=2), {"steps": [2]}, scheduler="processes").fit(X, y)
    grid = {"steps": [1500, 1501, 1502, 1503, 1504, 1505]}
    same_as_sklearn("GridSearchCV", X, y, estimator=Stumps(log=sys.argv[1]), param_grid=grid,
                    engines=(None,))
    with open(sys.argv[1]) as f:
        pids = f.read().split()
    print("fits in worker processes:", sum(p != str(os.getpid()) for p in pids))
    print("ok")
