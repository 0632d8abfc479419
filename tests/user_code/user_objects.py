"""A notebook's search: estimator, transformer, scorers and CV splitter all defined
here, in __main__, with lambdas and closures."""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.datasets import make_classification
from sklearn.metrics import accuracy_score, make_scorer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from tests.user_code._compare import same_as_sklearn


class Shift(TransformerMixin, BaseEstimator):
    def __init__(self, by=0.0):
        self.by = by

    def fit(self, X, y=None):
        self.mean_ = X.mean(axis=0)
        return self

    def transform(self, X):
        return X - self.mean_ + self.by


class NearestCentroid(ClassifierMixin, BaseEstimator):
    def __init__(self, power=2.0):
        self.power = power

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.centroids_ = np.array([X[y == c].mean(axis=0) for c in self.classes_])
        return self

    def predict(self, X):
        d = (np.abs(X[:, None, :] - self.centroids_[None]) ** self.power).sum(axis=2)
        return self.classes_[d.argmin(axis=1)]


class EveryOther:
    """A CV splitter: n folds of interleaved rows."""

    def __init__(self, n=3):
        self.n = n

    def split(self, X, y=None, groups=None):
        rows = np.arange(len(X))
        for k in range(self.n):
            yield rows[rows % self.n != k], rows[rows % self.n == k]

    def get_n_splits(self, X=None, y=None, groups=None):
        return self.n


def scaled_by(k):
    return FunctionTransformer(lambda X: X * k)  # a closure over k


def balanced(estimator, X, y):  # a scoring function
    pred = estimator.predict(X)
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


if __name__ == "__main__":
    X, y = make_classification(n_samples=120, n_features=5, random_state=0)
    pipe = Pipeline([("shift", Shift()), ("scale", scaled_by(2.0)), ("clf", NearestCentroid())])
    grid = {"shift__by": [0.0, 1.0], "scale": [scaled_by(2.0), scaled_by(0.5)],
            "clf__power": [1.0, 2.0]}
    for scoring in (None, make_scorer(lambda t, p: accuracy_score(t, p) ** 2), balanced,
                    {"acc": "accuracy", "mine": make_scorer(lambda t, p: (t == p).mean())}):
        refit = "acc" if isinstance(scoring, dict) else True
        same_as_sklearn("GridSearchCV", X, y, estimator=pipe, param_grid=grid, scoring=scoring,
                        refit=refit, cv=EveryOther(3), return_train_score=True)
    print("ok")
