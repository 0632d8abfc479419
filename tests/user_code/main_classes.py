"""Classes of ``__main__`` stay the user's: a search neither changes them nor confuses
two classes that a function made under one name."""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline

from dklearn import model_selection as dkm
from tests.user_code._compare import same_as_sklearn

LABEL = 0


class Constant(ClassifierMixin, BaseEstimator):
    """Predicts the module's LABEL, read when it predicts."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), LABEL)


def make(label):
    """A class of its own for each call, all named ``make.<locals>.Fixed``."""

    class Fixed(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.full(len(X), label)

    return Fixed()


if __name__ == "__main__":
    X, y = load_iris(return_X_y=True)
    code = Constant.predict.__code__
    for engine in ("sync", "threads", "processes", None):
        # The default scorer holds the estimator: hashing it must not unpickle
        # it here, which would rebind Constant's methods to a copy of globals.
        first = dkm.cross_val_score(Constant(), X, y, cv=KFold(3), scheduler=engine)
        assert Constant.predict.__code__ is code, "the search replaced a method of Constant"
        LABEL = 1
        second = dkm.cross_val_score(Constant(), X, y, cv=KFold(3), scheduler=engine)
        assert (Constant().fit(X, y).predict(X[:2]) == 1).all()
        assert first.tolist() != second.tolist(), "the second search did not see LABEL = 1"
        LABEL = 0
    pipe = Pipeline([("clf", make(0))])
    reference = same_as_sklearn("GridSearchCV", X, y, estimator=pipe, cv=KFold(3),
                                param_grid={"clf": [make(0), make(1), make(2)]})
    splits = [tuple(reference.cv_results_[f"split{i}_test_score"]) for i in range(3)]
    assert len(set(splits)) == 3, "the three classes should score differently"
    print("ok")
