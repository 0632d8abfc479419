"""Code, as a user writes it, that changes what it is handed, after steps that
candidates share: every candidate must see what it would see in scikit-learn,
never another candidate's changes.

- pandas: a step that adds a column to the frame it is given, a last step that
  drops one in place;
- a list of documents whose items a step replaces, after a step that others read;
- a ``predict`` that clips its input in place, called by ``score`` too;
- ``copy=False`` inside a FeatureUnion, a ColumnTransformer or a nested
  Pipeline, first or after other steps, whose writes scikit-learn's later
  branches and training scores read;
- a dict parameter whose order matters to the function it is passed to;
- a fit that doubles its ``sample_weight``, a metric that rewrites ``y_true``;
- an estimator whose ``set_params`` or ``__init__`` does more than store values.
"""

import numpy as np
import pandas as pd
from sklearn import model_selection as skm
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler

from dklearn import model_selection as dkm
from tests.user_code._compare import same_as_sklearn


class AddRatio(TransformerMixin, BaseEstimator):
    def __init__(self, power=1):
        self.power = power

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        X[f"ratio{self.power}"] = (X["a"] / (1 + X["b"].abs())) ** self.power
        return X


class DropsInPlace(ClassifierMixin, BaseEstimator):
    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        X.drop(columns=["b"], inplace=True)
        self.model_ = LogisticRegression(C=self.C).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        X.drop(columns=["b"], inplace=True)
        return self.model_.predict(X)


class Lower(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return [d.lower() for d in X]


class AddTag(TransformerMixin, BaseEstimator):
    def __init__(self, tag="zz"):
        self.tag = tag

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        for i in range(len(X)):
            X[i] = X[i] + " " + self.tag
        return X


class ClipsInPredict(ClassifierMixin, BaseEstimator):
    def __init__(self, c=1.0):
        self.c = c

    def fit(self, X, y):
        self.model_ = LogisticRegression().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        np.clip(X, -self.c, self.c, out=X)
        return self.model_.predict(X)

    def score(self, X, y):
        # what predict wrote shows here: the whole call runs on one copy
        return float((self.predict(X) == y).mean()) + float(X.sum()) * 1e-6


class DoublesItsWeights(ClassifierMixin, BaseEstimator):
    def __init__(self, k=1):
        self.k = k

    def fit(self, X, y, sample_weight=None):
        sample_weight *= 2  # scikit-learn hands each fit its own slice
        self.total_ = float(sample_weight.sum())
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def score(self, X, y):
        return self.total_


def sign_accuracy(y_true, y_pred):
    y_true[y_true == 0] = -1  # a metric that writes into the labels it is given
    return float((np.where(y_pred == 0, -1, 1) == y_true).mean())


def first_named(X, **columns):
    return X[:, list(columns.values())[:1]]


class SetParamsDoesMore(ClassifierMixin, BaseEstimator):
    def __init__(self, k=1):
        self.k = k
        self.double_ = 2 * k  # scikit-learn's clone then set_params keeps the first

    def set_params(self, **params):
        super().set_params(**params)
        self.noted_ = True
        return self

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.score_ = self.k + self.double_ + 100 * getattr(self, "noted_", False)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def score(self, X, y):
        return float(self.score_)


if __name__ == "__main__":
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"a": rng.randn(90), "b": rng.randn(90), "c": rng.randn(90)})
    labels = (frame.a ** 2 + frame.c > 0.5).astype(int).to_numpy()
    scale = StandardScaler().set_output(transform="pandas")
    same_as_sklearn("GridSearchCV", frame, labels,
                    estimator=Pipeline([("scale", scale), ("ratio", AddRatio()),
                                        ("clf", LogisticRegression())]),
                    param_grid={"ratio__power": [1, 2, 3]}, cv=3, return_train_score=True)
    same_as_sklearn("GridSearchCV", frame, labels,
                    estimator=Pipeline([("scale", scale), ("clf", DropsInPlace())]),
                    param_grid={"clf__C": [0.1, 1.0, 10.0]}, cv=3, return_train_score=True)

    words = "Apple banana cherry Dog egg fig grape ham ice jam kiwi lemon".split()
    docs = [" ".join(rng.choice(words, 6)) for _ in range(90)]
    tags = np.array([int("apple" in d.lower() or "kiwi" in d) for d in docs])
    same_as_sklearn("GridSearchCV", docs, tags,
                    estimator=Pipeline([("low", Lower()), ("tag", AddTag()),
                                        ("vec", CountVectorizer()), ("clf", MultinomialNB())]),
                    param_grid={"tag__tag": ["zz", "apple kiwi"], "clf__alpha": [0.1, 1.0]},
                    cv=3, return_train_score=True)

    X, y = make_classification(n_samples=90, n_features=5, random_state=0)
    X = X * [1, 10, 100, 1, 5] + 3
    same_as_sklearn("GridSearchCV", X, y,
                    estimator=Pipeline([("scale", StandardScaler()), ("clf", ClipsInPredict())]),
                    param_grid={"clf__c": [0.1, 0.5, 1.0]}, cv=3, return_train_score=True)
    for first in (FeatureUnion([("scale", StandardScaler(copy=False)), ("pca", PCA(2))]),
                  ColumnTransformer([("minmax", MinMaxScaler(copy=False), slice(0, 3)),
                                     ("pca", PCA(2), slice(0, 5))]),
                  Pipeline([("scale", StandardScaler(copy=False)),
                            ("minmax", MinMaxScaler(copy=False))])):
        same_as_sklearn("GridSearchCV", X, y,
                        estimator=Pipeline([("first", first), ("clf", LogisticRegression())]),
                        param_grid={"clf__C": [0.1, 1.0]}, cv=3, return_train_score=True)
    # After a step: one that hands its input back (the writes reach the training
    # rows), or one whose output a union's branches all read (a later branch reads
    # what the writer wrote).  scikit-learn's transformers copy a read-only
    # input rather than fail, so a shared step would not see the write.
    for before, writer in ((FunctionTransformer(), StandardScaler(copy=False)),
                           (StandardScaler(), FeatureUnion([("norm", MinMaxScaler(copy=False)),
                                                            ("id", FunctionTransformer())])),
                           (StandardScaler(), ColumnTransformer([
                               ("minmax", MinMaxScaler(copy=False), slice(0, 3)),
                               ("id", "passthrough", slice(0, 5))]))):
        same_as_sklearn("GridSearchCV", X, y,
                        estimator=Pipeline([("before", before), ("writer", writer),
                                            ("clf", LogisticRegression())]),
                        param_grid={"clf__C": [0.01, 1.0]}, cv=3, return_train_score=True)
        np.testing.assert_array_equal(
            skm.cross_val_score(Pipeline([("before", before), ("writer", writer),
                                          ("clf", LogisticRegression())]), X, y, cv=3),
            dkm.cross_val_score(Pipeline([("before", before), ("writer", writer),
                                          ("clf", LogisticRegression())]), X, y, cv=3))
    same_as_sklearn("GridSearchCV", X, y,
                    estimator=Pipeline([("pick", FunctionTransformer(first_named)),
                                        ("clf", LogisticRegression())]),
                    param_grid={"pick__kw_args": [{"a": 0, "b": 3}, {"b": 3, "a": 0}]}, cv=3)

    same_as_sklearn("GridSearchCV", X, y, estimator=DoublesItsWeights(),
                    param_grid={"k": [1, 2, 3]}, cv=3, refit=False,  # a refit doubles them
                    fit_params={"sample_weight": np.ones(len(y))})
    same_as_sklearn("GridSearchCV", X, y,
                    estimator=Pipeline([("scale", StandardScaler()),
                                        ("clf", LogisticRegression())]),
                    param_grid={"clf__C": [0.1, 1.0]}, cv=3,
                    scoring=make_scorer(sign_accuracy))

    same_as_sklearn("GridSearchCV", X, y, estimator=SetParamsDoesMore(),
                    param_grid={"k": [1, 2, 3]}, cv=3)
    for engine in ("sync", "threads", "processes", None):
        np.testing.assert_array_equal(
            skm.cross_val_score(SetParamsDoesMore(k=4), X, y, cv=3),
            dkm.cross_val_score(SetParamsDoesMore(k=4), X, y, cv=3, scheduler=engine))
        np.testing.assert_array_equal(
            skm.validation_curve(SetParamsDoesMore(), X, y, param_name="k",
                                 param_range=[1, 5], cv=3),
            dkm.validation_curve(SetParamsDoesMore(), X, y, param_name="k",
                                 param_range=[1, 5], cv=3, scheduler=engine))
    print("ok")
