"""Invariants of the plan, checked with Hypothesis: keys name work, not objects or order."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, ParameterGrid
from sklearn.pipeline import Pipeline

from dklearn._plan import Planner, SearchSpec, estimator_token, with_params
from dklearn._tasks import Const

X = np.random.RandomState(0).normal(size=(30, 6))
y = np.arange(30) % 2
PIPE = Pipeline([("pca", PCA()), ("clf", LogisticRegression())])
CANDIDATES = list(ParameterGrid({"pca__n_components": [1, 2, 3], "clf__C": [0.1, 1.0]}))


def _graph(candidates):
    folds = []
    graph = {"X": Const(X), "y": Const(y)}
    for i, (train, test) in enumerate(KFold(3).split(X)):
        graph[f"tr{i}"], graph[f"te{i}"] = train, test
        folds.append((f"tr{i}", f"te{i}"))
    rows = tuple(graph[train] for train, _ in folds)
    spec = SearchSpec("X", "y", tuple(folds), rows, {}, {}, "cfg", "scoring", True, False, False)
    planner = Planner(spec, graph, X)
    finals = set()
    for params in candidates:
        est = clone(PIPE).set_params(**params)
        for fold in range(3):
            finals.add(planner.candidate(est, fold, (params, fold, 3, 0, 1)))
    return set(planner.graph), finals


@settings(max_examples=25, deadline=None)
@given(st.permutations(CANDIDATES))
def test_candidate_order_does_not_change_the_work(order):
    assert _graph(order) == _graph(CANDIDATES)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(CANDIDATES), st.integers(min_value=1, max_value=4))
def test_repeated_equal_candidates_add_no_task(params, copies):
    assert _graph([dict(params) for _ in range(copies)]) == _graph([params])


@given(st.integers(min_value=1, max_value=50), st.floats(min_value=1e-3, max_value=1e3))
def test_equal_estimators_hash_alike_and_unequal_differ(n, C):
    a = Pipeline([("pca", PCA(n_components=n)), ("clf", LogisticRegression(C=C))])
    b = Pipeline([("pca", PCA(n_components=n)), ("clf", LogisticRegression(C=C))])
    assert estimator_token(a) == estimator_token(b)
    c = clone(b).set_params(pca__n_components=n + 1)
    assert estimator_token(a) != estimator_token(c)


def test_prefix_tasks_are_shared_across_final_settings():
    keys, finals = _graph(CANDIDATES)
    fits = [k for k in keys if k.startswith("fit-PCA-")]
    assert len(fits) == 3 * 3  # 3 PCA settings x 3 folds, whatever C is
    assert len(finals) == len(CANDIDATES) * 3


class _KwargsEstimator(BaseEstimator):
    """Parameters that are not its constructor's: get_params is its own."""

    def __init__(self, **params):
        self._params = params

    def get_params(self, deep=True):
        return dict(self._params)

    def set_params(self, **params):
        self._params.update(params)
        return self


@pytest.mark.parametrize("template, params", [
    (LogisticRegression(), {"C": 0.5, "penalty": "l1"}),
    (PIPE, {"pca__n_components": 2, "clf__C": 3.0}),  # nested: the full path
    (PIPE, {"clf": LogisticRegression(C=7.0)}),
    (_KwargsEstimator(a=1), {"b": 2}),
])
def test_with_params_is_clone_then_set_params(template, params):
    fast = with_params(clone(template), params)
    full = clone(template).set_params(**params)
    assert type(fast) is type(full)
    assert estimator_token(fast) == estimator_token(full)
    assert repr(fast.get_params(deep=True)) == repr(full.get_params(deep=True))
    assert estimator_token(template) == estimator_token(clone(template))  # template untouched


def test_token_reads_parameters_a_custom_get_params_reports():
    assert estimator_token(_KwargsEstimator(a=1)) == estimator_token(_KwargsEstimator(a=1))
    assert estimator_token(_KwargsEstimator(a=1)) != estimator_token(_KwargsEstimator(a=1, b=2))


def test_token_hashes_array_parameters_by_content():
    a = _KwargsEstimator(w=np.arange(5.0))
    assert estimator_token(a) == estimator_token(_KwargsEstimator(w=np.arange(5.0)))
    assert estimator_token(a) != estimator_token(_KwargsEstimator(w=np.arange(5.0) + 1))
    # Plain values and look-alike strings do not collide.
    assert estimator_token(LogisticRegression(C=1)) != estimator_token(LogisticRegression(C=1.0))
    assert estimator_token(LogisticRegression(C=1)) != estimator_token(LogisticRegression(C="1"))


def test_final_tasks_on_one_flow_share_their_inputs():
    # 50,000 final tasks hold one small tuple each, not their own argument lists.
    folds = (("tr", "te"),)
    graph = {"X": Const(X), "y": Const(y), "tr": np.arange(20), "te": np.arange(20, 30)}
    spec = SearchSpec("X", "y", folds, (graph["tr"],), {}, {}, "cfg", "scoring", True, False,
                      False)
    planner = Planner(spec, graph, X)
    a = planner.candidate(LogisticRegression(C=0.1), 0, None)
    b = planner.candidate(LogisticRegression(C=1.0), 0, None)
    assert a != b
    assert planner.graph[a][2] is planner.graph[b][2]
    assert planner.graph[a][3] is None  # no label without verbose output or callbacks


def test_importing_dklearn_leaves_out_what_a_search_may_not_need():
    # sklearn.compose (4.5 MB) and sqlite3 (1 MB) count in the client's peak memory.
    import subprocess
    import sys

    code = ("import sys, dklearn.model_selection; "
            "print(sorted(m for m in ('sqlite3', 'sklearn.compose') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


class _Registry(list):
    """A list every clone appends itself to (scikit-learn's metadata-routing tests
    use one): clone deep-copies a list subclass as a value, never walks it."""

    def __deepcopy__(self, memo):
        return self

    def __copy__(self):
        return self


class _Registering(ClassifierMixin, BaseEstimator):
    def __init__(self, registry=None, C=1.0):
        self.registry, self.C = registry, C

    def fit(self, X, y):
        self.registry.append(self)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.where(X[:, 0] > 0, *self.classes_[:2])


def test_a_parameter_that_holds_its_own_estimator_is_a_value_not_a_walk():
    # The registry holds fitted estimators whose registry is itself: a cycle
    # that walking list subclasses as lists followed for ever.
    import sklearn.model_selection as sk

    from dklearn import model_selection as dk

    registry = _Registry()
    est = _Registering(registry=registry)
    first = sk.cross_val_score(est, X, y, cv=2)
    np.testing.assert_array_equal(dk.cross_val_score(est, X, y, cv=2), first)
    np.testing.assert_array_equal(dk.cross_val_score(est, X, y, cv=2), first)
    assert estimator_token(est) == estimator_token(est)
