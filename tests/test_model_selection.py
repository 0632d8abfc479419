"""The whole of sklearn.model_selection: every name, successive halving, the
cross-validation functions, each against scikit-learn on every local engine.

scikit-learn's own test_successive_halving.py and test_validation.py run
against these in test_sklearn_suite.py; here: differential tests on
pipelines that share work, counting tests of that sharing, and what
dklearn adds (resume, progress, the engines).
"""

import os
import sqlite3
import subprocess
import sys
import warnings

import numpy as np
import pytest
import sklearn
import sklearn.model_selection as skm
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import dklearn.model_selection as dkm

from ._helpers import CALLS, CountingTransformer, assert_same_results, reset_calls

X, y = make_classification(n_samples=200, n_features=8, n_informative=4, random_state=0)
groups = np.repeat(np.arange(20), 10)
ENGINES = ["sync", "threads", "processes", None]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _clean_counts():
    reset_calls()
    yield
    reset_calls()


def _sk_halving():
    from sklearn.model_selection._search_successive_halving import (
        HalvingGridSearchCV,
        HalvingRandomSearchCV,
    )

    return {"HalvingGridSearchCV": HalvingGridSearchCV,
            "HalvingRandomSearchCV": HalvingRandomSearchCV}


def test_every_public_name_of_sklearn_model_selection_is_importable():
    for name in skm.__all__:
        ours = getattr(dkm, name)
        if name in ("HalvingGridSearchCV", "HalvingRandomSearchCV"):
            assert issubclass(ours, _sk_halving()[name])
        elif name in dkm._OURS:
            assert ours is not getattr(skm, name)
        else:
            assert ours is getattr(skm, name), name  # scikit-learn's own
    assert set(skm.__all__) <= set(dkm.__all__) == set(dir(dkm))


@pytest.mark.parametrize("name", ["GridSearchCV", "RandomizedSearchCV", "HalvingGridSearchCV",
                                  "HalvingRandomSearchCV"])
def test_a_searchs_notebook_diagram_links_to_sklearns_page_of_its_class(name):
    args = ({"C": [1.0]},)
    if name.startswith("Halving"):
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    sk = getattr(skm, name)(LogisticRegression(), *args)
    dk = getattr(dkm, name)(LogisticRegression(), *args)
    link = sk._get_doc_link()
    assert link.endswith(f"sklearn.model_selection.{name}.html")
    assert link in dk._repr_html_()


@pytest.mark.parametrize("name", ["cross_validate", "cross_val_score", "cross_val_predict",
                                  "validation_curve", "learning_curve",
                                  "permutation_test_score"])
def test_each_function_takes_sklearns_parameters_plus_dklearns_own(name):
    import inspect

    ours = set(inspect.signature(getattr(dkm, name)).parameters)
    theirs = set(inspect.signature(getattr(skm, name)).parameters)
    assert ours - {"scheduler", "checkpoint", "progress", "fit_timeout"} == theirs
    if "fit_params" not in theirs:  # gone from scikit-learn 1.8: an error, even None
        X, y = make_classification(n_samples=40, random_state=0)
        args = {"validation_curve": dict(param_name="C", param_range=[1.0])}.get(name, {})
        for module in (skm, dkm):
            with pytest.raises(TypeError, match="unexpected keyword argument 'fit_params'"):
                getattr(module, name)(LogisticRegression(), X, y, fit_params=None, **args)


def test_halving_needs_no_experimental_import_and_leaves_sklearn_as_it_was():
    code = (
        "import sklearn.model_selection as skm\n"
        "from dklearn.model_selection import HalvingGridSearchCV\n"
        "print('HalvingGridSearchCV' in vars(skm))\n"
        "from sklearn.experimental import enable_halving_search_cv\n"
        "from dklearn.model_selection import HalvingRandomSearchCV\n"
        "print(issubclass(HalvingRandomSearchCV, skm.HalvingRandomSearchCV))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "True"]


def _run(module, name, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(module, name)(*args, **kwargs)


def _halving(name, scheduler, **kwargs):
    sk_cls = _sk_halving()[name]
    dk_cls = getattr(dkm, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = sk_cls(**kwargs).fit(X, y, **kwargs.pop("fit_params", {}))
        dk = dk_cls(**kwargs, scheduler=scheduler).fit(X, y)
    return sk, dk


def _pipe():
    return Pipeline([("scale", StandardScaler()), ("pca", PCA(random_state=0)),
                     ("clf", LogisticRegression())])


HALVING_CASES = {
    "grid, n_samples": dict(
        estimator=_pipe(), param_grid={"pca__n_components": [2, 4, 6], "clf__C": [0.01, 0.1, 1]},
        factor=2, random_state=0, cv=3),
    "random, a pipeline parameter as resource": dict(
        estimator=Pipeline([("pca", PCA(n_components=4)),
                            ("clf", SGDClassifier(random_state=0, tol=None))]),
        param_distributions={"pca__n_components": [2, 3, 5], "clf__alpha": [1e-4, 1e-3, 1e-2]},
        resource="clf__max_iter", max_resources=30, min_resources=5, n_candidates=9,
        factor=3, random_state=0, cv=3),
    "grid, failing candidates, aggressive": dict(
        estimator=DecisionTreeClassifier(random_state=0),
        param_grid={"max_depth": [1, 2, 3, 4], "min_samples_leaf": [1, -1]},
        aggressive_elimination=True, factor=2, random_state=0, cv=3),
}


@pytest.mark.parametrize("scheduler", ENGINES)
@pytest.mark.parametrize("case", sorted(HALVING_CASES))
def test_halving_equals_sklearns(case, scheduler):
    kwargs = dict(HALVING_CASES[case])
    name = "HalvingGridSearchCV" if "param_grid" in kwargs else "HalvingRandomSearchCV"
    sk, dk = _halving(name, scheduler, **kwargs)
    assert_same_results(sk, dk)
    for attr in ("n_resources_", "n_candidates_", "n_iterations_", "n_required_iterations_",
                 "n_possible_iterations_", "min_resources_", "max_resources_",
                 "n_remaining_candidates_"):
        assert getattr(sk, attr) == getattr(dk, attr), attr
    np.testing.assert_array_equal(sk.predict(X), dk.predict(X))


def test_halving_with_groups_equals_sklearns():
    kwargs = dict(estimator=_pipe(), param_grid={"clf__C": [0.01, 0.1, 1, 10]}, factor=2,
                  cv=GroupKFold(n_splits=4), random_state=0)
    sk = _sk_halving()["HalvingGridSearchCV"](**kwargs).fit(X, y, groups=groups)
    dk = dkm.HalvingGridSearchCV(**kwargs).fit(X, y, groups=groups)
    assert_same_results(sk, dk)


def test_halving_iterations_fit_a_shared_prefix_once():
    # The resource is the final step's: every iteration runs the same folds
    # through the same prefixes, which are fitted in the first only.
    pipe = Pipeline([("a", CountingTransformer(tag="a")),
                     ("clf", SGDClassifier(random_state=0, tol=None))])
    search = dkm.HalvingGridSearchCV(
        pipe, {"a__factor": [1.0, 2.0], "clf__alpha": [1e-4, 1e-3, 1e-2, 1e-1]},
        resource="clf__max_iter", max_resources=20, min_resources=5, factor=2, cv=3,
        scheduler="sync", refit=False,
    ).fit(X, y)
    assert search.n_iterations_ >= 3
    assert CALLS[("a", "fit")] == 2 * 3  # two settings x three folds, in all iterations


def test_a_checkpointed_halving_search_resumes_without_redoing_fits(tmp_path):
    path = tmp_path / "halving.sqlite"
    pipe = Pipeline([("a", CountingTransformer(tag="a")), ("clf", LogisticRegression())])
    kwargs = dict(estimator=pipe, param_grid={"a__factor": [1.0, 2.0, 3.0],
                                              "clf__C": [0.1, 1.0, 10.0]},
                  factor=3, cv=3, random_state=0, scheduler="sync", refit=False)
    reference = dkm.HalvingGridSearchCV(**kwargs).fit(X, y)
    dkm.HalvingGridSearchCV(**kwargs, checkpoint=path).fit(X, y)
    with sqlite3.connect(path) as db:  # lose the last iteration, as a kill would
        last = reference.n_candidates_[-1] * 3
        db.execute("DELETE FROM dklearn_results WHERE rowid IN (SELECT rowid FROM "
                   f"dklearn_results ORDER BY rowid DESC LIMIT {last})")
    reset_calls()
    resumed = dkm.HalvingGridSearchCV(**kwargs, checkpoint=path).fit(X, y)
    assert_same_results(reference, resumed)
    # Only the last iteration's fits ran again, with the prefixes they need.
    assert 0 < CALLS[("a", "fit")] <= reference.n_candidates_[-1] * 3


def test_the_progress_bar_shows_the_halving_iteration(capsys):
    dkm.HalvingGridSearchCV(LogisticRegression(), {"C": [0.01, 0.1, 1, 10]}, factor=2, cv=3,
                            scheduler="sync", progress=True).fit(X, y)
    err = capsys.readouterr().err
    assert "iter 0" in err and "iter 1" in err


# ---------------------------------------------------------------------------
# The cross-validation functions
# ---------------------------------------------------------------------------


def _equal(a, b):
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        for key in a:
            if key.endswith("_time"):
                continue
            _equal(a[key], b[key])
    elif isinstance(a, (tuple, list)) and not isinstance(a, np.ndarray):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _equal(u, v)
    elif hasattr(a, "get_params"):
        assert type(a) is type(b)
        np.testing.assert_array_equal(a.predict(X), b.predict(X))
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("scheduler", ENGINES)
def test_cross_validate_equals_sklearns(scheduler):
    kwargs = dict(scoring=["accuracy", "roc_auc"], return_train_score=True,
                  return_estimator=True, return_indices=True, cv=StratifiedKFold(4))
    sk = _run(skm, "cross_validate", _pipe(), X, y, **kwargs)
    dk = _run(dkm, "cross_validate", _pipe(), X, y, scheduler=scheduler, **kwargs)
    _equal(sk, dk)


@pytest.mark.parametrize("scheduler", ENGINES)
def test_cross_val_score_and_predict_equal_sklearns(scheduler):
    sk = _run(skm, "cross_val_score", _pipe(), X, y, groups=groups, cv=GroupKFold(5))
    dk = _run(dkm, "cross_val_score", _pipe(), X, y, groups=groups, cv=GroupKFold(5),
              scheduler=scheduler)
    _equal(sk, dk)
    for method in ("predict", "predict_proba", "decision_function"):
        sk = _run(skm, "cross_val_predict", _pipe(), X, y, method=method)
        dk = _run(dkm, "cross_val_predict", _pipe(), X, y, method=method, scheduler=scheduler)
        _equal(sk, dk)


@pytest.mark.parametrize("scheduler", ENGINES)
def test_validation_curve_equals_sklearns(scheduler):
    kwargs = dict(param_name="clf__C", param_range=[0.01, 0.1, 1.0], cv=3)
    _equal(_run(skm, "validation_curve", _pipe(), X, y, **kwargs),
           _run(dkm, "validation_curve", _pipe(), X, y, scheduler=scheduler, **kwargs))


def test_validation_curve_over_a_final_parameter_fits_each_prefix_once_per_fold():
    pipe = Pipeline([("a", CountingTransformer(tag="a")), ("clf", LogisticRegression())])
    dkm.validation_curve(pipe, X, y, param_name="clf__C", param_range=[0.01, 0.1, 1, 10],
                         cv=5, scheduler="sync")
    assert CALLS[("a", "fit")] == 5


@pytest.mark.parametrize("scheduler", ENGINES)
def test_learning_curve_equals_sklearns(scheduler):
    kwargs = dict(train_sizes=[0.3, 0.6, 1.0], cv=3, shuffle=True, random_state=0,
                  return_times=True)
    sk = _run(skm, "learning_curve", _pipe(), X, y, **kwargs)
    dk = _run(dkm, "learning_curve", _pipe(), X, y, scheduler=scheduler, **kwargs)
    assert len(sk) == len(dk) == 5
    _equal(sk[:3], dk[:3])  # then fit and score times
    sgd = SGDClassifier(random_state=0)
    kwargs = dict(train_sizes=[0.3, 0.6, 1.0], cv=3, exploit_incremental_learning=True)
    _equal(_run(skm, "learning_curve", sgd, X, y, **kwargs),
           _run(dkm, "learning_curve", sgd, X, y, scheduler=scheduler, **kwargs))


@pytest.mark.parametrize("scheduler", ENGINES)
def test_permutation_test_score_equals_sklearns(scheduler):
    kwargs = dict(n_permutations=8, cv=StratifiedKFold(3), random_state=0, groups=groups)
    _equal(_run(skm, "permutation_test_score", _pipe(), X, y, **kwargs),
           _run(dkm, "permutation_test_score", _pipe(), X, y, scheduler=scheduler, **kwargs))


def test_curve_displays_use_dklearns_curves():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    pipe = Pipeline([("a", CountingTransformer(tag="a")), ("clf", LogisticRegression())])
    display = dkm.ValidationCurveDisplay.from_estimator(
        pipe, X, y, param_name="clf__C", param_range=[0.1, 1.0, 10.0], cv=3)
    assert CALLS[("a", "fit")] == 3  # shared: each fold's prefix once
    reference = skm.ValidationCurveDisplay.from_estimator(
        pipe, X, y, param_name="clf__C", param_range=[0.1, 1.0, 10.0], cv=3)
    np.testing.assert_array_equal(display.test_scores, reference.test_scores)
    assert display.score_name == reference.score_name
    display = dkm.LearningCurveDisplay.from_estimator(_pipe(), X, y, cv=3)
    reference = skm.LearningCurveDisplay.from_estimator(_pipe(), X, y, cv=3)
    np.testing.assert_array_equal(display.test_scores, reference.test_scores)


def test_cross_validate_refuses_a_checkpoint_of_fitted_estimators(tmp_path):
    with pytest.raises(ValueError, match="return_estimator"):
        dkm.cross_validate(_pipe(), X, y, return_estimator=True, checkpoint=tmp_path / "c.db")


def test_sklearn_config_is_restored():
    before = sklearn.get_config()
    dkm.cross_val_score(_pipe(), X, y, scheduler="threads")
    assert sklearn.get_config() == before


def _printed(func, *args, **kwargs):
    import contextlib
    import io
    import re

    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        func(*args, **kwargs)
    return [re.sub(r"time=\s*[\d.]+s", "time=", line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("verbose", [2, 3, 10])
@pytest.mark.parametrize("name", ["cross_validate", "validation_curve", "permutation_test_score"])
def test_cross_validation_functions_print_what_sklearn_prints(name, verbose):
    kwargs = dict(cv=3, verbose=verbose)
    if name == "validation_curve":
        kwargs.update(param_name="C", param_range=[0.1, 1.0])
    if name == "permutation_test_score":
        kwargs.update(n_permutations=2)
    est = LogisticRegression()
    expected = _printed(getattr(skm, name), est, X, y, **kwargs)
    got = _printed(getattr(dkm, name), est, X, y, scheduler="sync", **kwargs)
    assert sorted(got) == sorted(expected)  # in the engine's order (validation_curve's differs)


def test_a_verbose_line_is_written_whole_so_that_fits_on_threads_cannot_split_it():
    # print writes a line, then its newline: two fits ending at once on threads
    # printed "...END ...[CV 2/4] END ..." and an empty line.
    import contextlib
    import io

    class Writes(io.StringIO):
        def __init__(self):
            super().__init__()
            self.calls = []

        def write(self, text):
            self.calls.append(text)
            return super().write(text)

    out = Writes()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dkm.GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3, verbose=10,
                         scheduler="sync").fit(X, y)
    lines = [call for call in out.calls if "[CV" in call]
    assert len(lines) == 12  # a START and an END line per fit
    assert all(call.endswith("\n") and call.count("\n") == 1 for call in lines)


def test_permutation_test_score_draws_in_sklearns_order_from_a_shared_random_state():
    from sklearn.model_selection import KFold

    out = []
    for module in (skm, dkm):
        rng = np.random.RandomState(0)
        out.append(module.permutation_test_score(
            LogisticRegression(), X, y, cv=KFold(3, shuffle=True, random_state=rng),
            random_state=rng, n_permutations=4))
    assert out[1][0] == out[0][0]
    np.testing.assert_array_equal(out[1][1], out[0][1])


@pytest.mark.parametrize("scheduler", ENGINES)
@pytest.mark.parametrize("case", ["shared_random_state", "warm_start"])
def test_permutation_test_score_fits_one_copy_per_permutation_in_turn(case, scheduler):
    # scikit-learn fits one copy of the estimator on each split in turn: what a
    # fit leaves behind carries over to the next split.
    out = []
    for module in (skm, dkm):
        rng = np.random.RandomState(0)
        if case == "shared_random_state":  # copied, then drawn from, in scikit-learn's order
            est, random_state = SGDClassifier(max_iter=5, tol=None, random_state=rng), rng
        else:
            est, random_state = SGDClassifier(max_iter=2, tol=None, warm_start=True,
                                              random_state=0), 0
        extra = {} if module is skm else {"scheduler": scheduler}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.append(module.permutation_test_score(est, X, y, cv=3, n_permutations=3,
                                                     random_state=random_state, **extra))
    assert out[1][0] == out[0][0]
    np.testing.assert_array_equal(out[1][1], out[0][1])


def test_incremental_learning_curve_shuffles_then_copies_each_fold_in_sklearns_order():
    out = []
    for module in (skm, dkm):
        rng = np.random.RandomState(0)
        out.append(module.learning_curve(
            SGDClassifier(random_state=rng), X, y, cv=3, train_sizes=[0.5, 1.0], shuffle=True,
            random_state=rng, exploit_incremental_learning=True))
    for expected, got in zip(out[0], out[1]):
        np.testing.assert_array_equal(got, expected)


def _raised(call):
    try:
        call()
    except Exception as error:  # noqa: BLE001 - what each raises is compared
        return type(error), str(error)
    return None


@pytest.mark.parametrize("name, case", [
    *[(name, "fit_params") for name in ("validation_curve", "learning_curve",
                                        "permutation_test_score", "cross_val_predict")],
    ("learning_curve", "incremental_check_first"),
    ("cross_val_predict", "y_of_3_dims"),
])
def test_bad_input_gets_sklearns_error(name, case):
    kwargs = {"validation_curve": dict(param_name="C", param_range=[1.0]),
              "permutation_test_score": dict(n_permutations=1)}.get(name, {})
    yc = y
    if case == "fit_params":  # gone from scikit-learn 1.8
        kwargs["fit_params"] = {}
    elif case == "incremental_check_first":
        # Two errors at once: scikit-learn reports the estimator's first.
        kwargs.update(exploit_incremental_learning=True, groups=groups)
        sklearn.set_config(enable_metadata_routing=True)
    else:  # the estimator refuses it, after cross_val_predict encoded what it could
        kwargs["method"] = "predict_proba"
        yc = np.stack([y, y], axis=1)[:, :, None].repeat(2, axis=2)
    try:
        expected = _raised(lambda: getattr(skm, name)(LogisticRegression(), X, yc, **kwargs))
        got = _raised(lambda: getattr(dkm, name)(LogisticRegression(), X, yc, scheduler="sync",
                                                 **kwargs))
    finally:
        sklearn.set_config(enable_metadata_routing=False)
    assert got == expected  # None for both where an older scikit-learn accepts fit_params


@pytest.mark.parametrize("name", ["GridSearchCV", "RandomizedSearchCV", "HalvingGridSearchCV"])
@pytest.mark.parametrize("args", [(), (X, y, groups)])
def test_fit_called_with_wrong_arguments_names_sklearns_method(name, args):
    grid = {"C": [0.1, 1.0]}
    sk_class = _sk_halving().get(name) or getattr(skm, name)
    expected = _raised(lambda: sk_class(LogisticRegression(), grid, cv=3).fit(*args))
    got = _raised(lambda: getattr(dkm, name)(LogisticRegression(), grid, cv=3).fit(*args))
    assert expected[0] is TypeError
    assert got == expected


class DrawsAtFit(DecisionTreeClassifier):
    """A tree with random_state=None: it draws from NumPy's global random state."""

    def fit(self, X, y, sample_weight=None):
        self.drawn_ = np.random.rand()
        return super().fit(X, y, sample_weight=sample_weight)

    def score(self, X, y, sample_weight=None):
        return self.drawn_


@pytest.mark.parametrize("fit_params", [False, True])
def test_sync_runs_fits_in_sklearns_order(fit_params):
    # What a fit draws from NumPy's global random state, and what a search
    # prints, come in scikit-learn's order; a fit parameter adds a task per
    # fold that each fit waits for, which had changed the order.
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCA()), ("tree", DrawsAtFit())])
    grid = {"pca__n_components": [2, 4], "tree__max_depth": [2, 3]}
    kwargs = {"tree__sample_weight": np.ones(len(y))} if fit_params else {}
    out = []
    for module, extra in ((skm, {}), (dkm, {"scheduler": "sync"})):
        np.random.seed(0)
        search = module.GridSearchCV(pipe, grid, cv=3, verbose=3, **extra)
        printed = _printed(search.fit, X, y, **kwargs)
        out.append((search.cv_results_["mean_test_score"], printed))
    np.testing.assert_array_equal(out[1][0], out[0][0])
    assert out[1][1] == out[0][1]


WARNS_EACH_FIT = """
import sys
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification


class Warns(ClassifierMixin, BaseEstimator):
    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        warnings.warn("fitting", UserWarning)
        if self.C > 5:
            raise ValueError("C too large")  # a failed fit: nothing scored after it
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


module = __import__(sys.argv[1] + ".model_selection", fromlist=["GridSearchCV"])
extra = {"scheduler": sys.argv[2]} if len(sys.argv) > 2 else {}
X, y = make_classification(n_samples=60, random_state=0)
module.GridSearchCV(Warns(), {"C": [0.1, 1.0, 10.0]}, cv=3, **extra).fit(X, y)
"""


@pytest.mark.parametrize("scheduler", ["sync", None])
def test_a_warning_in_each_fit_shows_as_often_as_in_sklearn(scheduler):
    # Python's default filters show a warning once per place in the code;
    # scikit-learn's loop runs each fit under catch_warnings, so once per fit.
    def shown(*args):
        out = subprocess.run([sys.executable, "-c", WARNS_EACH_FIT, *args], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stderr.count("UserWarning: fitting")

    expected = shown("sklearn")  # 10 from scikit-learn 1.7 (9 fits, 3 failing, and the
    assert expected >= 7         # refit), 7 before (once where a failed fit left off)
    assert shown("dklearn", *([scheduler] if scheduler else [])) == expected
