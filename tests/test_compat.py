"""Each fallback in dklearn._compat and dklearn._results against the private helper it replaces.

If a scikit-learn release removes a helper, dklearn switches to the fallback;
these tests are what make that switch safe.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.datasets import make_classification
from sklearn.metrics import get_scorer
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from dklearn import _compat, _results

from ._helpers import assert_same_results

X, y = make_classification(n_samples=60, n_features=5, random_state=0)


def _records(n_candidates, n_splits, multimetric, failing=(), train=True):
    rng = np.random.RandomState(0)
    out = []
    for cand in range(n_candidates):
        for _ in range(n_splits):
            value = np.nan if cand in failing else float(rng.uniform())
            scores = {"a": value, "b": value / 2} if multimetric else value
            record = {"fit_error": None, "test_scores": scores, "n_test_samples": 10,
                      "fit_time": rng.uniform(), "score_time": rng.uniform()}
            if train:
                record["train_scores"] = scores
            out.append(record)
    return out


@pytest.mark.parametrize("multimetric", [False, True])
@pytest.mark.parametrize("failing", [(), (1,), (0, 1, 2)])
def test_format_results_fallback_equals_sklearn(multimetric, failing):
    params = [{"C": 1.0, "kernel": "rbf"}, {"C": 2.0}, {"kernel": "linear", "degree": [1, 2]}]
    search = GridSearchCV(SVC(), {"C": [1.0]}, return_train_score=True)
    out = _records(3, 4, multimetric, failing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = search._format_results(params, 4, [dict(r) for r in out], {})
        got = _results.format_results(params, 4, [dict(r) for r in out], {}, True)

    class Holder:
        pass

    sk, dk = Holder(), Holder()
    sk.cv_results_, dk.cv_results_ = expected, got
    assert_same_results(sk, dk, timing=True)


def test_format_results_switches_to_fallback_without_the_method():
    class NoMethod:
        return_train_score = False

    out = _records(2, 3, False, train=False)
    results = _compat.format_results(NoMethod(), [{"C": 1}, {"C": 2}], 3, out, {})
    assert results["rank_test_score"].dtype == np.int32
    assert list(results["param_C"]) == [1, 2]


@pytest.mark.parametrize("data", ["array", "frame", "sparse", "list"])
def test_indexing_fallback(data):
    rows = np.array([3, 0, 5])
    X_ = {"array": X, "frame": pd.DataFrame(X), "sparse": sparse.csr_matrix(X),
          "list": [str(v) for v in X[:, 0]]}[data]
    expected = _compat._sk_safe_indexing(X_, rows)
    got = _compat._fallback_indexing(X_, rows)
    if sparse.issparse(expected):
        expected, got = expected.toarray(), got.toarray()
    np.testing.assert_array_equal(np.asarray(expected), np.asarray(got))


@pytest.mark.parametrize("key", [[0, 2], ["b", "c"], slice(1, 3), [True, False, True], "c", 1])
def test_column_indices_fallback(key):
    frame = pd.DataFrame(X[:, :3], columns=["a", "b", "c"])
    assert list(_compat._sk_column_indices(frame, key)) == list(
        _compat._fallback_column_indices(frame, key)
    )


@pytest.mark.parametrize("kernel", ["rbf", "precomputed"])
def test_safe_split_fallback(kernel):
    K = X @ X.T if kernel == "precomputed" else X
    est = SVC(kernel=kernel)
    train, test = np.arange(0, 40), np.arange(40, 60)
    for rows, cols in ((train, None), (test, train)):
        a = _compat._sk_safe_split(est, K, y, rows, cols)
        b = _compat._fallback_safe_split(est, K, y, rows, cols)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("kind", ["array", "2d-y", "no-y", "list", "frame", "sparse"])
def test_take_rows_is_safe_split_for_estimators_that_are_not_pairwise(kind):
    data, target = X, y
    if kind == "2d-y":
        target = np.column_stack([y, 1 - y])
    elif kind == "no-y":
        target = None
    elif kind == "list":
        data, target = X.tolist(), y.tolist()
    elif kind == "frame":
        data, target = pd.DataFrame(X), pd.Series(y)
    elif kind == "sparse":
        data = sparse.csr_matrix(X)
    rows = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    expected = _compat.safe_split(DecisionTreeClassifier(), data, target, rows)
    got = _compat.take_rows(data, target, rows)
    for a, b in zip(expected, got):
        assert type(a) is type(b)
        if sparse.issparse(a):
            a, b = a.toarray(), b.toarray()
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        if isinstance(a, (pd.DataFrame, pd.Series)):
            assert list(a.index) == list(b.index)


def test_check_method_params_fallback():
    params = {"sample_weight": np.arange(60.0), "other": 3, "short": [1, 2]}
    rows = np.array([1, 5, 7])
    a = _compat._sk_check_params(X, params=params, indices=rows)
    b = _compat._fallback_check_method_params(X, params=params, indices=rows)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_score_fallback_matches_on_success_and_failure():
    est = DecisionTreeClassifier(random_state=0).fit(X, y)
    scorer = get_scorer("accuracy")
    assert _compat._sk_score(est, X, y, scorer, {}, np.nan) == _compat._fallback_score(
        est, X, y, scorer, {}, np.nan
    )

    def broken(estimator, X_, y_):
        raise RuntimeError("boom")

    with pytest.warns(UserWarning, match="Scoring failed"):
        a = _compat._sk_score(est, X, y, broken, {}, -1.0)
    with pytest.warns(UserWarning, match="Scoring failed"):
        b = _compat._fallback_score(est, X, y, broken, {}, -1.0)
    assert a == b == -1.0


@pytest.mark.parametrize("n_failed", [1, 3])
def test_warn_or_raise_fallback(n_failed):
    results = [{"fit_error": "Traceback: boom" if i < n_failed else None} for i in range(3)]
    outcomes = []
    for func in (_compat._sk_warn_or_raise, _compat._fallback_warn_or_raise):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                func(results, np.nan)
                outcomes.append(("warn", [str(w.message) for w in caught]))
            except ValueError as e:
                outcomes.append(("raise", str(e)))
    assert outcomes[0] == outcomes[1]


def test_insert_error_scores_fallback():
    def records():
        return [
            {"fit_error": "boom", "test_scores": 0.0, "train_scores": 0.0},
            {"fit_error": None, "test_scores": {"a": 1.0, "b": 2.0}, "train_scores": {"a": 1.0, "b": 2.0}},
        ]

    a, b = records(), records()
    _compat._sk_insert_error_scores(a, -1.0)
    _compat._fallback_insert_error_scores(b, -1.0)
    assert a == b


def test_own_checks_of_containers_exist_and_refuse_what_fit_refuses():
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.preprocessing import StandardScaler

    # The installed release has the checks: none of them silently skipped.
    assert all(hasattr(Pipeline, name) for name in ("_validate_steps", "_validate_params"))
    assert all(hasattr(FeatureUnion, name) for name in ("_validate_transformers",
                                                        "_validate_transformer_weights"))
    assert hasattr(ColumnTransformer, "_validate_transformers")
    good = Pipeline([("pca", PCA(2)), ("svc", SVC())])
    assert _compat.passes_own_checks(good)
    for bad in (Pipeline([("pca", PCA(2)), ("svc", SVC())], memory=123),
                Pipeline([("a", SVC()), ("b", SVC())]),
                FeatureUnion([("p", PCA(2))], transformer_weights={"q": 1.0}),
                ColumnTransformer([("s", StandardScaler(), [0])], sparse_threshold=2.0)):
        assert not _compat.passes_own_checks(bad)
        with pytest.raises(Exception):
            bad.fit(X, y)
    # A release without them: every container is taken apart, as before.
    assert _compat.passes_own_checks(object())


def test_every_named_scorer_says_which_methods_it_calls():
    from sklearn.metrics import get_scorer_names

    for name in get_scorer_names():
        methods = _compat.response_methods(get_scorer(name))
        assert methods and all(isinstance(m, str) for group in methods for m in group), name


def _warns():
    warnings.warn("in each fit", UserWarning)


def test_each_fit_catches_warnings_says_what_sklearns_loop_does():
    # The engine runs a fit in the calling thread under catch_warnings when
    # scikit-learn's loop does: a warning then shows once per fit.
    from sklearn.utils.parallel import Parallel, delayed

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        Parallel(n_jobs=None)(delayed(_warns)() for _ in range(3))
    assert (len(caught) == 3) == _compat.EACH_FIT_CATCHES_WARNINGS
    assert len(caught) in (1, 3)


def test_one_column_error_is_what_column_transformer_raises():
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import StandardScaler

    X = np.arange(12.0).reshape(6, 2)
    with pytest.raises(ValueError) as raised:
        ColumnTransformer([("s", StandardScaler(), 0)]).fit(X)
    assert str(_compat.one_column_error(raised.value.__cause__)) == str(raised.value)
    assert str(raised.value) == _compat._ONE_COLUMN_MESSAGE  # the fallback
    assert _compat.one_column_error(ValueError("another")) is None


@pytest.mark.parametrize("bad", [{"fit_timeout": 0}, {"fit_timeout": -1.0},
                                 {"progress": "yes"}, {"checkpoint": 3}])
def test_dklearns_own_parameters_are_refused_as_scikit_learn_refuses_its_own(bad):
    import dklearn.model_selection as dkm

    X, y = make_classification(n_samples=30, random_state=0)
    name = next(iter(bad))
    with pytest.raises(ValueError, match=f"The '{name}' parameter of GridSearchCV must be"):
        dkm.GridSearchCV(SVC(), {"C": [1.0]}, cv=2, **bad).fit(X, y)
    with pytest.raises(ValueError, match=f"The '{name}' parameter of cross_validate must be"):
        dkm.cross_validate(SVC(), X, y, cv=2, **bad)


@pytest.mark.parametrize("score_request", [None, False, "own score"])
def test_pipeline_score_refuses_says_what_pipeline_score_does(score_request):
    import sklearn
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    class OwnScore(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.full(len(X), self.classes_[0])

        def score(self, X, y):
            return 0.5

    X, y = make_classification(n_samples=30, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        if score_request == "own score":
            last = OwnScore()
        else:
            last = LogisticRegression().set_score_request(sample_weight=score_request)
        pipe = make_pipeline(StandardScaler(), last)
        try:
            pipe.fit(X, y).score(X, y)
            refused = False
        except TypeError:
            refused = True
        assert _compat.pipeline_score_refuses(pipe) is refused
    assert _compat.pipeline_score_refuses(pipe) is False  # routing off: it scores
