"""Counting tests: each distinct piece of work runs once.

A CountingTransformer records its fit and transform calls.  With F folds the
expected number of fits of a step is (distinct settings of the pipeline up to
and including that step) x F, plus one for the refit.
"""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import SVC

from dklearn.model_selection import GridSearchCV

from ._helpers import CALLS, CountingTransformer, reset_calls

X, y = make_classification(n_samples=120, n_features=6, random_state=0)

SCHEDULERS = ["sync", "threads"]


@pytest.fixture(autouse=True)
def _clean_counts():
    reset_calls()
    yield
    reset_calls()


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_pipeline_prefix_fitted_once_per_setting_and_fold(scheduler):
    pipe = Pipeline([
        ("a", CountingTransformer(tag="a")),
        ("b", CountingTransformer(tag="b")),
        ("clf", LogisticRegression()),
    ])
    grid = {"a__factor": [1.0, 2.0], "b__factor": [1.0, 3.0, 4.0], "clf__C": [0.1, 1.0, 10.0]}
    GridSearchCV(pipe, grid, cv=3, scheduler=scheduler).fit(X, y)
    # a: 2 settings x 3 folds + refit; b: 2 x 3 prefixes x 3 folds + refit.
    assert CALLS[("a", "fit")] == 2 * 3 + 1
    assert CALLS[("b", "fit")] == 6 * 3 + 1
    # Test folds are transformed once per fitted prefix (no train scores asked).
    # The refit does not transform; each step's fit_transform calls transform once.
    assert CALLS[("a", "transform")] == (2 * 3 + 1) + 2 * 3
    assert CALLS[("b", "transform")] == (6 * 3 + 1) + 6 * 3


def test_train_scores_add_one_transform_per_prefix_and_fold():
    pipe = Pipeline([("a", CountingTransformer(tag="a")), ("clf", LogisticRegression())])
    grid = {"a__factor": [1.0, 2.0], "clf__C": [0.1, 1.0, 10.0]}
    GridSearchCV(pipe, grid, cv=4, return_train_score=True, scheduler="sync").fit(X, y)
    fits = 2 * 4
    assert CALLS[("a", "fit")] == fits + 1
    # fit_transform + test transform + train transform, per prefix and fold.
    assert CALLS[("a", "transform")] == 3 * fits + 1


def test_equal_but_distinct_parameter_objects_share_a_key():
    pipe = Pipeline([("a", CountingTransformer(tag="a")), ("clf", SVC())])
    # Two distinct-but-equal estimators as values of a whole step.
    grid = {
        "a": [CountingTransformer(factor=2.0, tag="a"), CountingTransformer(factor=2.0, tag="a")],
        "clf__C": [1.0, 2.0],
    }
    GridSearchCV(pipe, grid, cv=3, scheduler="sync").fit(X, y)
    assert CALLS[("a", "fit")] == 3 + 1


def test_grid_over_whole_steps_and_passthrough():
    pipe = Pipeline([
        ("a", CountingTransformer(tag="a")),
        ("b", "passthrough"),
        ("clf", SVC()),
    ])
    grid = {
        "b": ["passthrough", CountingTransformer(tag="b")],
        "clf": [SVC(), LogisticRegression()],
    }
    search = GridSearchCV(pipe, grid, cv=3, scheduler="sync").fit(X, y)
    assert CALLS[("a", "fit")] == 3 + 1
    # b fitted only where it is a step: 1 setting x 3 folds (+1 if it won).
    refit_b = int(not isinstance(search.best_params_["b"], str))
    assert CALLS[("b", "fit")] == 3 + refit_b


def test_feature_union_branches_shared():
    union = FeatureUnion([
        ("u1", CountingTransformer(tag="u1")),
        ("u2", CountingTransformer(tag="u2")),
    ])
    pipe = Pipeline([("union", union), ("clf", LogisticRegression())])
    grid = {"union__u2__factor": [1.0, 2.0, 3.0], "clf__C": [0.1, 1.0]}
    GridSearchCV(pipe, grid, cv=3, scheduler="sync").fit(X, y)
    # u1 is the same in every candidate: once per fold (+ refit).
    assert CALLS[("u1", "fit")] == 3 + 1
    assert CALLS[("u2", "fit")] == 3 * 3 + 1
    assert CALLS[("u1", "transform")] == 2 * 3 + 1  # fit_transform + test, + refit


def test_nested_pipeline_prefix_shared():
    inner = Pipeline([("a", CountingTransformer(tag="a")), ("b", CountingTransformer(tag="b"))])
    pipe = Pipeline([("inner", inner), ("clf", LogisticRegression())])
    grid = {"inner__b__factor": [1.0, 2.0], "clf__C": [0.1, 1.0, 10.0]}
    GridSearchCV(pipe, grid, cv=3, scheduler="threads").fit(X, y)
    assert CALLS[("a", "fit")] == 3 + 1
    assert CALLS[("b", "fit")] == 2 * 3 + 1


def test_no_sharing_when_scoring_callable_may_inspect_pipeline():
    """A user's callable receives the whole fitted pipeline: no final-step shortcut."""
    seen = []

    def scoring(est, X_, y_):
        seen.append(type(est).__name__)
        return float(np.mean(est.predict(X_) == y_))

    pipe = Pipeline([("a", CountingTransformer(tag="a")), ("clf", LogisticRegression())])
    GridSearchCV(pipe, {"clf__C": [0.1, 1.0]}, cv=3, scoring=scoring, scheduler="sync").fit(X, y)
    assert set(seen) == {"Pipeline"}


def test_column_transformer_branches_shared():
    from sklearn.compose import ColumnTransformer

    ct = ColumnTransformer(
        [("c1", CountingTransformer(tag="c1"), [0, 1]), ("c2", CountingTransformer(tag="c2"), [2, 3])],
        remainder=CountingTransformer(tag="rest"),
    )
    pipe = Pipeline([("ct", ct), ("clf", LogisticRegression())])
    grid = {"ct__c2__factor": [1.0, 2.0, 3.0], "clf__C": [0.1, 1.0]}
    GridSearchCV(pipe, grid, cv=3, scheduler="sync").fit(X, y)
    assert CALLS[("c1", "fit")] == 3 + 1
    assert CALLS[("rest", "fit")] == 3 + 1
    assert CALLS[("c2", "fit")] == 3 * 3 + 1
    # Test folds: c1 transformed once per fold, not once per candidate.
    assert CALLS[("c1", "transform")] == 2 * 3 + 1
