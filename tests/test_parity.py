"""Differential tests: the same search with scikit-learn and with dklearn.

scikit-learn is the oracle: every non-timing entry of cv_results_ (keys,
dtypes, masks, values, ranks), best_index_, best_params_, best_score_ and the
refitted model's predictions must be equal.
"""

import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from scipy import sparse, stats
from sklearn import model_selection as skm
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.datasets import make_classification, make_regression
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.feature_selection import SelectKBest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.metrics import accuracy_score, make_scorer
from sklearn.model_selection import GroupKFold, KFold
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from dklearn import _engines
from dklearn import model_selection as dkm

from ._helpers import assert_same_results

Xc, yc = make_classification(n_samples=150, n_features=8, n_informative=4, random_state=0)
Xr, yr = make_regression(n_samples=120, n_features=6, noise=1.0, random_state=0)


class FailingClassifier(ClassifierMixin, BaseEstimator):
    """Fails to fit when ``fail`` is true; otherwise predicts the majority class."""

    def __init__(self, fail=False):
        self.fail = fail

    def fit(self, X, y):
        if self.fail:
            raise ValueError("Failing classifier failed as required")
        self.classes_, counts = np.unique(y, return_counts=True)
        self.majority_ = self.classes_[np.argmax(counts)]
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)


def _text_data():
    rng = np.random.RandomState(0)
    vocab = [f"w{i}" for i in range(60)]
    ranks = np.arange(1, len(vocab) + 1)
    p = (1 / ranks) / (1 / ranks).sum()
    docs, labels = [], []
    for i in range(120):
        label = i % 2
        words = rng.choice(vocab, size=20, p=p)
        if label:
            words = np.append(words, rng.choice(vocab[:10], size=3))
        docs.append(" ".join(words))
        labels.append(label)
    return docs, np.array(labels)


def _frame():
    rng = np.random.RandomState(0)
    n = 140
    df = pd.DataFrame({
        "num1": rng.normal(size=n),
        "num2": rng.normal(size=n),
        "cat": rng.choice(["a", "b", "c"], size=n),
        "extra": rng.normal(size=n),
    })
    target = (df["num1"] + (df["cat"] == "a") > 0.3).astype(int).to_numpy()
    return df, target


def case_pca_logistic():
    pipe = Pipeline([("pca", PCA(random_state=0)), ("clf", LogisticRegression(solver="liblinear"))])
    grid = {"pca__n_components": [2, 4], "clf__C": [1e-2, 1.0, 100.0], "clf__l1_ratio": [0, 1]}
    return dict(estimator=pipe, param_grid=grid, return_train_score=True), (Xc, yc), {}


def case_union_weights_nested():
    union = FeatureUnion(
        [("pca", PCA(n_components=2)), ("kbest", SelectKBest(k=2)), ("off", "drop")],
        transformer_weights={"pca": 2.0},
    )
    inner = Pipeline([("scale", StandardScaler()), ("union", union)])
    pipe = Pipeline([("inner", inner), ("clf", LogisticRegression())])
    grid = {
        "inner__union__pca__n_components": [1, 3],
        "inner__union__kbest__k": [1, 3],
        "inner__union__off": ["drop", "passthrough"],
        "clf__C": [0.1, 1.0],
    }
    return dict(estimator=pipe, param_grid=grid, return_train_score=True), (Xc, yc), {}


def case_column_transformer_pandas():
    df, target = _frame()
    ct = ColumnTransformer(
        [
            ("num", StandardScaler(), ["num1", "num2"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), make_column_selector(dtype_include=object)),
        ],
        remainder="drop",
    )
    pipe = Pipeline([("ct", ct), ("clf", LogisticRegression())])
    grid = {
        "ct__num": [StandardScaler(), "passthrough"],
        "ct__remainder": ["drop", "passthrough"],
        "clf__C": [0.1, 1.0, 10.0],
    }
    return dict(estimator=pipe, param_grid=grid, return_train_score=True), (df, target), {}


def case_sparse_text():
    docs, labels = _text_data()
    pipe = Pipeline([
        ("vect", CountVectorizer()),
        ("tfidf", TfidfTransformer()),
        ("clf", SGDClassifier(random_state=0, max_iter=50, tol=None)),
    ])
    grid = {
        "vect__ngram_range": [(1, 1), (1, 2)],
        "tfidf__use_idf": [True, False],
        "clf__alpha": [1e-4, 1e-2],
        "clf__loss": ["hinge", "log_loss"],
    }
    return dict(estimator=pipe, param_grid=grid, cv=3), (docs, labels), {}


def case_sparse_matrix_input():
    X = sparse.random(100, 30, density=0.2, random_state=0, format="csr")
    totals = np.asarray(X.sum(axis=1)).ravel()
    y = (totals > np.median(totals)).astype(int)
    pipe = Pipeline([("svd", TruncatedSVD(random_state=0)), ("clf", LogisticRegression())])
    grid = {"svd__n_components": [2, 5], "clf__C": [0.1, 10.0]}
    return dict(estimator=pipe, param_grid=grid), (X, y), {}


def case_regression_multimetric_refit_name():
    pipe = Pipeline([("scale", StandardScaler()), ("reg", Ridge())])
    grid = {"reg__alpha": [0.01, 1.0, 100.0], "scale__with_mean": [True, False]}
    scoring = ["r2", "neg_mean_squared_error"]
    return (
        dict(estimator=pipe, param_grid=grid, scoring=scoring, refit="r2", return_train_score=True),
        (Xr, yr),
        {},
    )


def case_multimetric_dict_refit_false():
    scoring = {"acc": "accuracy", "f1": make_scorer(sklearn.metrics.f1_score)}
    grid = {"C": [0.1, 1.0], "kernel": ["linear", "rbf"]}
    return dict(estimator=SVC(), param_grid=grid, scoring=scoring, refit=False), (Xc, yc), {}


def _lowest_std(results):
    return int(np.argmin(results["std_test_score"]))


def case_refit_callable():
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    grid = {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}
    return dict(estimator=pipe, param_grid=grid, refit=_lowest_std), (Xc, yc), {}


def _dict_scoring(est, X, y):
    pred = est.predict(X)
    return {"acc": accuracy_score(y, pred), "err": float(np.mean(pred != y))}


def case_callable_scoring_returning_dict():
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    grid = {"logisticregression__C": [0.01, 1.0]}
    return dict(estimator=pipe, param_grid=grid, scoring=_dict_scoring, refit="acc"), (Xc, yc), {}


def case_groups():
    groups = np.repeat(np.arange(10), 15)
    grid = {"max_depth": [1, 2, 3], "min_samples_leaf": [1, 5]}
    est = DecisionTreeClassifier(random_state=0)
    return dict(estimator=est, param_grid=grid, cv=GroupKFold(n_splits=4)), (Xc, yc), {"groups": groups}


def case_sample_weight_pipeline_step():
    sw = np.random.RandomState(0).uniform(0.5, 2.0, size=len(yc))
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
    grid = {"clf__C": [0.1, 1.0, 10.0]}
    return (
        dict(estimator=pipe, param_grid=grid, return_train_score=True),
        (Xc, yc),
        {"scale__sample_weight": sw, "clf__sample_weight": sw},
    )


def case_sample_weight_scored():
    sw = np.random.RandomState(1).uniform(0.5, 2.0, size=len(yc))
    grid = {"max_depth": [1, 3]}
    est = DecisionTreeClassifier(random_state=0)
    return dict(estimator=est, param_grid=grid, scoring="accuracy"), (Xc, yc), {"sample_weight": sw}


def case_failing_candidates_nan():
    grid = {"fail": [False, True]}
    return dict(estimator=FailingClassifier(), param_grid=grid), (Xc, yc), {}


def case_failing_candidates_in_pipeline_number():
    pipe = Pipeline([("scale", StandardScaler()), ("clf", FailingClassifier())])
    grid = {"clf__fail": [False, True], "scale__with_std": [True, False]}
    return (
        dict(estimator=pipe, param_grid=grid, error_score=-1.0, return_train_score=True),
        (Xc, yc),
        {},
    )


def case_grid_over_steps():
    pipe = Pipeline([("reduce", PCA(n_components=3)), ("clf", SVC())])
    grid = [
        {"reduce": ["passthrough", PCA(n_components=2)], "clf": [SVC(), LogisticRegression()]},
        {"reduce": [SelectKBest(k=4)], "clf": [DecisionTreeClassifier(random_state=0)]},
    ]
    return dict(estimator=pipe, param_grid=grid), (Xc, yc), {}


def case_precomputed_kernel():
    K = Xc @ Xc.T
    grid = {"C": [0.01, 1.0]}
    return dict(estimator=SVC(kernel="precomputed"), param_grid=grid), (K, yc), {}


def case_unsupervised():
    pipe = Pipeline([("scale", StandardScaler()), ("km", KMeans(n_init=2, random_state=0))])
    grid = {"km__n_clusters": [2, 3, 4]}
    return dict(estimator=pipe, param_grid=grid), (Xc, None), {}


def case_nan_scores_rank_last():
    pipe = Pipeline([("imp", SimpleImputer()), ("scale", "passthrough"), ("clf", MultinomialNB())])
    # MultinomialNB fails on the scaler's negative output: those candidates score NaN.
    grid = {"scale": ["passthrough", StandardScaler()], "clf__alpha": [0.5, 1.0]}
    return dict(estimator=pipe, param_grid=grid), (np.abs(Xc), yc), {}


def case_randomized():
    pipe = Pipeline([("pca", PCA()), ("clf", LogisticRegression())])
    dists = {"pca__n_components": [2, 3, 5], "clf__C": stats.loguniform(1e-3, 1e2)}
    return (
        dict(estimator=pipe, param_distributions=dists, n_iter=6, random_state=0),
        (Xc, yc),
        {},
    )


def case_dataframe_feature_names():
    df, target = _frame()
    df = df[["num1", "num2", "extra"]]
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
    grid = {"clf__C": [0.1, 1.0]}
    return dict(estimator=pipe, param_grid=grid, cv=KFold(3)), (df, target), {}


def case_passthrough_first_branch():
    # Without training scores: a passthrough branch still carries the training
    # rows to score, a fitted branch does not.
    ct = ColumnTransformer([("raw", "passthrough", [0, 1]), ("scale", StandardScaler(), [2, 3])])
    union = FeatureUnion([("raw", "passthrough"), ("pca", PCA(2))])
    pipe = Pipeline([("pre", ct), ("clf", LogisticRegression())])
    grid = {"pre": [ct, union], "clf__C": [0.1, 1.0]}
    return dict(estimator=pipe, param_grid=grid), (Xc, yc), {}


CASES = {name[5:]: f for name, f in sorted(globals().items()) if name.startswith("case_")}


def _run(cls, kwargs, X, y, fit_params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search = cls(**kwargs).fit(X, y, **fit_params)
    # A ResourceWarning comes from the garbage collector finalizing some
    # earlier test's object, whenever it happens to run: not the search's.
    messages = sorted({f"{w.category.__name__}: {str(w.message)[:60]}" for w in caught
                       if not issubclass(w.category, ResourceWarning)})
    return search, messages


def _pair(kwargs):
    if "param_distributions" in kwargs:
        return skm.RandomizedSearchCV, dkm.RandomizedSearchCV
    return skm.GridSearchCV, dkm.GridSearchCV


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_results_as_sklearn(case, scheduler):
    kwargs, (X, y), fit_params = CASES[case]()
    sk_cls, dk_cls = _pair(kwargs)
    # Parallel workers get cores // workers BLAS and OpenMP threads, as
    # scikit-learn's n_jobs workers do; so does the reference, since a
    # different thread count may change the last bit of a sum (KMeans).
    workers = 1 if scheduler == "sync" else _engines.n_workers(None)
    with threadpool_limits(limits=max(joblib.cpu_count() // workers, 1)):
        sk, sk_warnings = _run(sk_cls, kwargs, X, y, fit_params)
        dk, dk_warnings = _run(dk_cls, {**kwargs, "scheduler": scheduler}, X, y, fit_params)
        assert_same_results(sk, dk)
        assert dk_warnings == sk_warnings
        if hasattr(sk, "best_estimator_"):
            assert hasattr(dk, "best_estimator_")
            np.testing.assert_array_equal(sk.predict(X), dk.predict(X))
            assert sk.score(X, y) == dk.score(X, y)
        if hasattr(sk, "feature_names_in_"):
            np.testing.assert_array_equal(sk.feature_names_in_, dk.feature_names_in_)


@pytest.mark.parametrize("case", ["pca_logistic", "union_weights_nested", "sparse_text"])
def test_same_results_with_processes(case):
    kwargs, (X, y), fit_params = CASES[case]()
    sk = skm.GridSearchCV(**kwargs).fit(X, y, **fit_params)
    dk = dkm.GridSearchCV(**kwargs, scheduler="processes", n_jobs=2).fit(X, y, **fit_params)
    assert_same_results(sk, dk)


def test_error_score_raise_raises_the_fit_error():
    search = dkm.GridSearchCV(FailingClassifier(), {"fail": [False, True]}, error_score="raise")
    with pytest.raises(ValueError, match="Failing classifier failed as required"):
        search.fit(Xc, yc)


def test_all_fits_failing_raises_like_sklearn():
    kwargs = dict(estimator=FailingClassifier(fail=True), param_grid={"fail": [True]})
    with pytest.raises(ValueError, match="All the 5 fits failed") as sk_err:
        skm.GridSearchCV(**kwargs).fit(Xc, yc)
    with pytest.raises(ValueError, match="All the 5 fits failed") as dk_err:
        dkm.GridSearchCV(**kwargs).fit(Xc, yc)
    assert str(sk_err.value).splitlines()[:4] == str(dk_err.value).splitlines()[:4]


def test_metadata_routing_reaches_estimator_splitter_and_scorer():
    sw = np.random.RandomState(0).uniform(0.5, 2.0, size=len(yc))
    groups = np.repeat(np.arange(10), 15)
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(accuracy_score).set_score_request(sample_weight=True)
        clf = LogisticRegression().set_fit_request(sample_weight=True)
        scale = StandardScaler().set_fit_request(sample_weight=False)
        pipe = Pipeline([("scale", scale), ("clf", clf)])
        kwargs = dict(
            estimator=pipe, param_grid={"clf__C": [0.1, 1.0]}, scoring=scorer,
            cv=GroupKFold(n_splits=3), return_train_score=True,
        )
        sk = skm.GridSearchCV(**kwargs).fit(Xc, yc, sample_weight=sw, groups=groups)
        dk = dkm.GridSearchCV(**kwargs).fit(Xc, yc, sample_weight=sw, groups=groups)
    assert_same_results(sk, dk)


@pytest.mark.timeout(60)
def test_metadata_routing_on_with_no_fit_parameters():
    # process_routing's answer to no parameters at all is another object; a
    # membership test on it never returned.
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    kwargs = dict(estimator=pipe, param_grid={"logisticregression__C": [0.1, 1.0]}, cv=3,
                  scoring="neg_log_loss")
    with sklearn.config_context(enable_metadata_routing=True):
        sk = skm.GridSearchCV(**kwargs).fit(Xc, yc)
        dk = dkm.GridSearchCV(**kwargs).fit(Xc, yc)
    assert_same_results(sk, dk)


class _ScoresItsOwnWay(ClassifierMixin, BaseEstimator):
    """A user's classifier whose ``score`` takes no sample_weight."""

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.where(X[:, 0] > 0, *self.classes_[:2])

    def score(self, X, y):
        return float(np.mean(self.predict(X) == y)) * self.C


def _declines_weights():
    return LogisticRegression().set_score_request(sample_weight=False), {"clf__C": [0.1, 1.0]}


def _own_score():
    return _ScoresItsOwnWay(), {"clf__C": [0.5, 1.0]}


def _default_score():
    return LogisticRegression(), {"clf__C": [0.1, 1.0]}


@pytest.mark.parametrize("last", [_declines_weights, _own_score, _default_score])
@pytest.mark.parametrize("scheduler", ["sync", None])
def test_metadata_routing_on_scores_a_pipeline_as_its_own_score_does(last, scheduler):
    # Pipeline.score routes a sample_weight=None of its own: where no step asks
    # for it, scikit-learn records failed scores; elsewhere it scores the last step.
    with sklearn.config_context(enable_metadata_routing=True):
        clf, grid = last()
        pipe = Pipeline([("scale", StandardScaler()), ("clf", clf)])
        with warnings.catch_warnings(record=True) as sk_said:
            warnings.simplefilter("always")
            sk = skm.GridSearchCV(pipe, grid, cv=3).fit(Xc, yc)
        with warnings.catch_warnings(record=True) as dk_said:
            warnings.simplefilter("always")
            dk = dkm.GridSearchCV(pipe, grid, cv=3, scheduler=scheduler).fit(Xc, yc)
    assert_same_results(sk, dk)
    assert (sorted(str(w.message).strip().splitlines()[-1] for w in dk_said)
            == sorted(str(w.message).strip().splitlines()[-1] for w in sk_said))


BAD_INPUTS = {
    "mismatched lengths": (dict(estimator=SVC(), param_grid={"C": [1.0]}), (Xc, yc[:-1]), {}),
    "unknown parameter": (dict(estimator=SVC(), param_grid={"nope": [1]}), (Xc, yc), {}),
    "empty grid values": (dict(estimator=SVC(), param_grid={"C": []}), (Xc, yc), {}),
    "invalid cv": (dict(estimator=SVC(), param_grid={"C": [1.0]}, cv="five"), (Xc, yc), {}),
    "bad error_score": (dict(estimator=SVC(), param_grid={"C": [1.0]}, error_score="x"), (Xc, yc), {}),
    "multimetric without refit": (
        dict(estimator=SVC(), param_grid={"C": [1.0]}, scoring=["accuracy", "f1"]), (Xc, yc), {}
    ),
    "bad step param": (
        dict(estimator=make_pipeline(StandardScaler(), SVC()), param_grid={"svc__C": [1.0]}),
        (Xc, yc),
        {"sample_weight": np.ones(len(yc))},
    ),
    "too many splits": (dict(estimator=SVC(), param_grid={"C": [1.0]}, cv=500), (Xc, yc), {}),
    "n_jobs 0": (dict(estimator=SVC(), param_grid={"C": [1.0]}, n_jobs=0), (Xc, yc), {}),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_raises_sklearns_error(name):
    kwargs, (X, y), fit_params = BAD_INPUTS[name]
    with pytest.raises(Exception) as sk_err:
        skm.GridSearchCV(**kwargs).fit(X, y, **fit_params)
    with pytest.raises(Exception) as dk_err:
        dkm.GridSearchCV(**kwargs).fit(X, y, **fit_params)
    assert type(dk_err.value) is type(sk_err.value)
    assert str(dk_err.value).splitlines()[0] == str(sk_err.value).splitlines()[0]


def test_bad_scheduler_is_a_clear_error():
    with pytest.raises(ValueError, match="scheduler must be"):
        dkm.GridSearchCV(SVC(), {"C": [1.0]}, scheduler="gpu").fit(Xc, yc)


def case_column_transformer_sparse_threshold():
    df, target = _frame()
    ct = ColumnTransformer(
        [("cat", OneHotEncoder(), ["cat"]), ("num", "passthrough", [0, 1])],
        remainder=StandardScaler(),
        transformer_weights={"cat": 3.0},
    )
    pipe = Pipeline([("ct", ct), ("clf", LogisticRegression())])
    grid = {"ct__sparse_threshold": [0.0, 0.9], "ct__cat__drop": [None, "first"], "clf__C": [0.1, 1.0]}
    return dict(estimator=pipe, param_grid=grid, return_train_score=True), (df, target), {}


CASES["column_transformer_sparse_threshold"] = case_column_transformer_sparse_threshold


class NoReturnFit(BaseEstimator):
    """A transformer whose fit forgets ``return self`` and that has no fit_transform."""

    def fit(self, X, y=None):
        self.mean_ = X.mean(axis=0)

    def transform(self, X):
        return X - self.mean_


class SmallRowsFail(PCA):
    """Transforms the training rows, fails on the (fewer) test rows."""

    def transform(self, X):
        if X.shape[0] < 100:
            raise RuntimeError("cannot transform the test rows")
        return super().transform(X)


def _drop_a_row(X):
    return X[:-1]


def _union():
    return FeatureUnion([("pca", PCA(2)), ("scale", StandardScaler())])


FAILING = {
    # A container its own fit refuses: scikit-learn fails those fits.
    "pipeline memory": lambda: dict(
        estimator=Pipeline([("pca", PCA(2)), ("svc", SVC())]),
        param_grid={"memory": [None, 123]}),
    "union weight of no branch": lambda: dict(
        estimator=Pipeline([("union", _union()), ("svc", SVC())]),
        param_grid={"union__transformer_weights": [None, {"nope": 2.0}]}),
    "duplicate step names": lambda: dict(
        estimator=Pipeline([("a", StandardScaler()), ("a", PCA(2)), ("svc", SVC())]),
        param_grid={"svc__C": [1.0]}),
    "intermediate step without transform": lambda: dict(
        estimator=Pipeline([("a", LogisticRegression()), ("b", SVC())]),
        param_grid={"b__C": [1.0]}),
    "fit returning None": lambda: dict(
        estimator=Pipeline([("center", NoReturnFit()), ("svc", SVC())]),
        param_grid={"svc__C": [1.0, 10.0]}),
    "union branch drops a row": lambda: dict(
        estimator=Pipeline([("union", _union()), ("svc", SVC())]),
        param_grid={"union__scale": [StandardScaler(), FunctionTransformer(_drop_a_row)]}),
    "scorer needs what the last step lacks": lambda: dict(
        estimator=Pipeline([("scale", StandardScaler()), ("svc", SVC())]),
        param_grid={"svc__C": [1.0]}, scoring=["accuracy", "neg_log_loss"], refit=False),
    "scorer needs what the last step lacks, raise": lambda: dict(
        estimator=Pipeline([("scale", StandardScaler()), ("svc", SVC())]),
        param_grid={"svc__C": [1.0]}, scoring="neg_log_loss", error_score="raise"),
    "test rows fail with several scorers": lambda: dict(
        estimator=Pipeline([("pca", SmallRowsFail(2)), ("svc", SVC())]),
        param_grid={"svc__C": [1.0]}, scoring=["accuracy", "f1"], refit=False, cv=3),
}


def _outcome(cls, kwargs):
    """(results or the error's type and last line, each warning's last line)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = cls(**kwargs).fit(Xc, yc)
        except Exception as error:  # noqa: BLE001
            result = (type(error), str(error).strip().splitlines()[-1])
    said = sorted({str(w.message).strip().splitlines()[-1] for w in caught
                   if not issubclass(w.category, ResourceWarning)})
    return result, said


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
@pytest.mark.parametrize("case", sorted(FAILING))
def test_a_pipeline_that_fails_fails_as_in_sklearn(case, scheduler):
    sk, sk_said = _outcome(skm.GridSearchCV, FAILING[case]())
    dk, dk_said = _outcome(dkm.GridSearchCV, {**FAILING[case](), "scheduler": scheduler})
    if isinstance(sk, tuple):
        assert dk == sk
    else:
        assert_same_results(sk, dk)
    assert dk_said == sk_said


# What a ColumnTransformer or FeatureUnion checks in its own fit, which
# dklearn, fitting their branches apart, must check too: each case fails in
# scikit-learn, as a failed fit, a failed candidate or a raised error.
def _mixed_names():
    rng = np.random.RandomState(0)
    df = pd.DataFrame(rng.randn(30, 3), columns=["a", 1, "c"])
    ct = ColumnTransformer([("s", StandardScaler(), [0, 2])])
    pipe = Pipeline([("ct", ct), ("lr", LogisticRegression())])
    return pipe, {"lr__C": [0.1, 1.0]}, df, (df["a"] > 0).astype(int)


def _na_passthrough():
    rng = np.random.RandomState(0)
    f = rng.randn(60)
    df = pd.DataFrame({"f": f, "ni": pd.array(np.where(rng.rand(60) < 0.2, None,
                                                       rng.randint(0, 3, 60)), dtype="Int64")})
    ct = ColumnTransformer([("s", StandardScaler(), ["f"]), ("p", "passthrough", ["ni"])])
    pipe = Pipeline([("ct", ct), ("lr", DecisionTreeClassifier(random_state=0))])
    return pipe, {"lr__max_depth": [1, 2]}, df, f > 0


def _tuple_columns():
    rng = np.random.RandomState(0)
    df = pd.DataFrame(rng.randn(36, 3),
                      columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y"), ("b", "x")]))
    ct = ColumnTransformer([("s", StandardScaler(), [("a", "x"), ("b", "x")])])
    pipe = Pipeline([("ct", ct), ("lr", LogisticRegression())])
    return pipe, {"ct": [ct, "passthrough"]}, df, (df[("a", "x")] > 0).astype(int)


def _all_dropped_on_documents():
    rng = np.random.RandomState(0)
    docs = [" ".join(rng.choice(["a1", "b2", "c3", "d4"], 4)) for _ in range(30)]
    pipe = Pipeline([("fu", FeatureUnion([("a", CountVectorizer())])),
                     ("d", DecisionTreeClassifier(random_state=0))])
    return pipe, {"fu__a": [CountVectorizer(), "drop"]}, docs, rng.randint(0, 2, 30)


class _NoneOut(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return None


def _branch_returns_none():
    pipe = Pipeline([("fu", FeatureUnion([("o", _NoneOut()), ("s", StandardScaler())])),
                     ("lr", LogisticRegression())])
    return pipe, {"lr__C": [0.1, 1.0]}, Xc, yc


def _one_column_by_a_scalar():
    # The scaler refuses 1-D data: ColumnTransformer says so its own way.  A
    # FunctionTransformer passes it on, and ColumnTransformer refuses its output.
    ct = ColumnTransformer([("s", StandardScaler(), 0)], remainder="passthrough")
    pipe = Pipeline([("ct", ct), ("lr", LogisticRegression())])
    return pipe, {"ct__s": [StandardScaler(), FunctionTransformer()]}, Xc, yc


def _ravel(X):
    return np.asarray(X).ravel()


def _one_dimensional_in_a_branch():
    # ColumnTransformer rewrites the error whatever the branch's columns.
    ct = ColumnTransformer([("s", make_pipeline(FunctionTransformer(_ravel), StandardScaler()),
                             [0])], remainder="passthrough")
    pipe = Pipeline([("ct", ct), ("lr", LogisticRegression())])
    return pipe, {"lr__C": [0.1, 1.0]}, Xc, yc


UNION_CHECKS = {
    "one column by a scalar": _one_column_by_a_scalar,
    "1-D data in a branch of a list of columns": _one_dimensional_in_a_branch,
    "mixed column name types": _mixed_names,
    "pandas.NA passed through": _na_passthrough,
    "tuple column names": _tuple_columns,
    "all branches dropped, documents": _all_dropped_on_documents,
    "a branch returning None": _branch_returns_none,
}


def _search_outcome(cls, pipe, grid, X, y, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            search = cls(pipe, grid, cv=3, **kwargs).fit(X, y)
        except Exception as error:  # noqa: BLE001 - compared below
            return type(error), str(error).splitlines()[0], None
    failed = sorted({str(w.message).strip().splitlines()[-1] for w in caught
                     if w.category.__name__ == "FitFailedWarning"})
    return search.cv_results_["mean_test_score"].tolist(), search.best_index_, failed


@pytest.mark.parametrize("error_score", [np.nan, "raise"])
@pytest.mark.parametrize("scheduler", ["sync", None])
@pytest.mark.parametrize("case", sorted(UNION_CHECKS))
def test_a_unions_own_checks_fail_its_fits_as_in_sklearn(case, scheduler, error_score):
    pipe, grid, X, y = UNION_CHECKS[case]()
    sk = _search_outcome(skm.GridSearchCV, pipe, grid, X, y, error_score=error_score)
    dk = _search_outcome(dkm.GridSearchCV, pipe, grid, X, y, error_score=error_score,
                  scheduler=scheduler)
    np.testing.assert_equal(dk, sk)


def test_index_arrays_of_another_kind_get_sklearns_error():
    cv = [(np.arange(50, 150, dtype=float), np.arange(0, 50, dtype=float))]
    for module in (skm, dkm):
        with pytest.raises(ValueError, match="No valid specification of the columns"):
            module.cross_validate(LogisticRegression(), Xc, yc, cv=cv)
