"""Search benchmarks: dklearn against scikit-learn and dask-ml, measured in one run.

    python benchmarks/run.py                          # every workload, 2 repeats
    python benchmarks/run.py --workloads post mlp --impls sklearn dklearn --repeats 3

Each (implementation, workload) runs in a fresh Python process (no warm
caches, no warm workers: a workload that is several searches, "notebook",
runs them one after another in that one process); implementations
alternate within a repeat (forward, then backward), and the median over
repeats is reported.  Use an even number of repeats: this machine slows
for minutes after long runs, and with an odd number the implementation
last in the list follows the one before it more often (2026-12-06: mlp,
dklearn after dask-ml's 24 s runs twice in 3 repeats, scikit-learn once).

Every search names its ``cv``: dask-ml's default is 3 folds, scikit-learn's
5, and the implementations must do the same work.

Implementations: ``sklearn`` (n_jobs=-1), ``sklearn-seq`` (n_jobs=None,
scikit-learn's default: its sequential loop), ``dask-ml`` (its GridSearchCV
and RandomizedSearchCV, when installed: ``pip install dask-ml``), and
``dklearn`` (its default engine; ``dklearn-threads`` etc. name a scheduler).
Ratios are dklearn / best peer, the best of the other three.  For the
post's workload the bound is also measured (``--impls bound`` measures it
on every workload): the distinct work run in one thread with one BLAS
thread (dklearn's 'sync', without the refit where nothing needs it),
divided by the cores.  It ignores the start of worker processes and the
parts no search can spread: an optimistic floor for any implementation
that does each distinct piece of work once.
"""

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = ("sklearn", "sklearn-seq", "dask-ml")
NOT_IN_DASK_ML = ("HalvingGridSearchCV", "HalvingRandomSearchCV", "validation_curve")


@dataclass
class Search:
    """One search of a workload: a search class's name, its arguments, the data."""

    # a search class's name, "validation_curve", or "nested" (a search in cross_val_score)
    kind: str
    kwargs: dict
    X: object
    y: object
    fit_params: dict = field(default_factory=dict)


# --------------------------------------------------------------------------
# Workloads: each returns a list of searches, run one after another
# --------------------------------------------------------------------------


def post():
    """The 2017 post: PCA -> LogisticRegression, 32 candidates, cv=5, 10000 x 500."""
    from sklearn.datasets import make_classification
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    X, y = make_classification(
        n_samples=10000, n_features=500, n_classes=2, n_redundant=250, random_state=42
    )
    pipe = Pipeline([
        ("pca", PCA(random_state=0)),
        ("logistic", LogisticRegression(solver="liblinear")),
    ])
    grid = {
        "pca__n_components": [50, 100, 150, 250],
        "logistic__C": [1e-4, 1.0, 10, 1e4],
        "logistic__l1_ratio": [0, 1],
    }
    return [Search("GridSearchCV", dict(estimator=pipe, param_grid=grid, cv=5), X, y)]


def text():
    """CountVectorizer -> Tfidf -> SGD on 3,000 documents, 48 candidates, cv=3."""
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import Pipeline

    rng = np.random.RandomState(0)
    vocab = np.array([f"w{i}" for i in range(5000)])
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    docs, labels = [], []
    for i in range(3000):
        label = i % 2
        words = rng.choice(vocab, size=80, p=p)
        if label:
            words = np.append(words, rng.choice(vocab[100:400], size=8))
        docs.append(" ".join(words))
        labels.append(label)
    pipe = Pipeline([
        ("vect", CountVectorizer()),
        ("tfidf", TfidfTransformer()),
        ("clf", SGDClassifier(random_state=0, max_iter=20, tol=None)),
    ])
    grid = {
        "vect__ngram_range": [(1, 1), (1, 2)],
        "tfidf__norm": ["l1", "l2"],
        "tfidf__use_idf": [True, False],
        "clf__alpha": [1e-5, 1e-4, 1e-3],
        "clf__loss": ["hinge", "log_loss"],
    }
    return [Search("GridSearchCV", dict(estimator=pipe, param_grid=grid, cv=3),
                   docs, np.array(labels))]


def small_fits():
    """1,000 small fits: DecisionTree on digits, 200 candidates, cv=5."""
    from sklearn.datasets import load_digits
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_digits(return_X_y=True)
    grid = {
        "max_depth": [2, 4, 6, 8, 10, 12, 14, 16, 18, None],
        "min_samples_leaf": [1, 2, 4, 8, 16],
        "criterion": ["gini", "entropy"],
        "max_features": [None, "sqrt"],
    }
    est = DecisionTreeClassifier(random_state=0)
    return [Search("GridSearchCV", dict(estimator=est, param_grid=grid, cv=5), X, y)]


def mlp():
    """GIL-bound: MLPClassifier with sgd and batches of 8, 12 candidates, cv=3."""
    from sklearn.datasets import make_classification
    from sklearn.neural_network import MLPClassifier

    X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    est = MLPClassifier(solver="sgd", hidden_layer_sizes=(10,), batch_size=8,
                        max_iter=15, random_state=0)
    grid = {"alpha": [1e-4, 1e-3, 1e-2], "learning_rate_init": [1e-3, 1e-2],
            "momentum": [0.5, 0.9]}
    return [Search("GridSearchCV", dict(estimator=est, param_grid=grid, cv=3), X, y)]


def columns():
    """ColumnTransformer -> HistGradientBoosting on a pandas frame, 24 candidates, cv=3."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.RandomState(0)
    n = 20000
    frame = pd.DataFrame({f"num{i}": rng.normal(size=n) for i in range(8)})
    for i in range(4):
        frame[f"cat{i}"] = rng.choice([f"v{j}" for j in range(12)], size=n)
    y = ((frame["num0"] + (frame["cat0"] == "v1")) > 0.5).astype(int).to_numpy()
    ct = ColumnTransformer([
        ("num", Pipeline([("imp", SimpleImputer()), ("scale", StandardScaler())]),
         [f"num{i}" for i in range(8)]),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
         [f"cat{i}" for i in range(4)]),
    ])
    pipe = Pipeline([("ct", ct), ("clf", HistGradientBoostingClassifier(random_state=0,
                                                                        max_iter=50))])
    grid = {
        "ct__num__imp__strategy": ["mean", "median"],
        "ct__cat__min_frequency": [None, 0.05],
        "clf__learning_rate": [0.05, 0.1, 0.2],
        "clf__max_leaf_nodes": [15, 31],
    }
    return [Search("GridSearchCV", dict(estimator=pipe, param_grid=grid, cv=3), frame, y)]


def hgb_random():
    """A randomized search over HistGradientBoosting (OpenMP): no shared prefix."""
    from scipy.stats import loguniform, randint
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = make_classification(n_samples=20000, n_features=20, n_informative=10,
                               random_state=0)
    dists = {"learning_rate": loguniform(0.01, 0.3), "max_leaf_nodes": randint(8, 64),
             "l2_regularization": loguniform(1e-4, 1.0), "max_iter": randint(50, 150)}
    est = HistGradientBoostingClassifier(random_state=0, early_stopping=False)
    return [Search("RandomizedSearchCV", dict(estimator=est, param_distributions=dists,
                                              n_iter=12, cv=3, random_state=0), X, y)]


def notebook():
    """Five different searches one after another in one process, as in a notebook."""
    from sklearn.datasets import load_digits, make_classification
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X, y = load_digits(return_X_y=True)
    Xm, ym = make_classification(n_samples=1500, n_features=20, random_state=0)
    return [
        Search("GridSearchCV", dict(estimator=Pipeline([("scale", StandardScaler()),
                                                        ("clf", LogisticRegression())]),
                                    param_grid={"clf__C": [0.01, 0.1, 1, 10]}, cv=5), X, y),
        Search("GridSearchCV", dict(estimator=RandomForestClassifier(n_estimators=50,
                                                                     random_state=0),
                                    param_grid={"max_depth": [4, 8, None],
                                                "max_features": ["sqrt", 0.5]}, cv=5), X, y),
        Search("GridSearchCV", dict(estimator=Pipeline([("pca", PCA()), ("svc", SVC())]),
                                    param_grid={"pca__n_components": [20, 40],
                                                "svc__C": [1, 10], "svc__gamma": [1e-3, 1e-2]},
                                    cv=5),
               X, y),
        Search("GridSearchCV", dict(estimator=KNeighborsClassifier(),
                                    param_grid={"n_neighbors": [1, 3, 5, 9, 15]}, cv=5), X, y),
        Search("GridSearchCV", dict(estimator=MLPClassifier(solver="sgd", batch_size=16,
                                                            max_iter=10, random_state=0),
                                    param_grid={"alpha": [1e-4, 1e-2],
                                                "hidden_layer_sizes": [(10,), (20,)]}, cv=5),
               Xm, ym),
    ]


def small_svc():
    """scikit-learn's grid-search example: SVC over a small grid, a dict of scorers, refit callable."""
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    X, y = load_digits(n_class=2, return_X_y=True)
    grid = [{"kernel": ["rbf"], "gamma": [1e-3, 1e-4], "C": [1, 10, 100, 1000]},
            {"kernel": ["linear"], "C": [1, 10, 100, 1000]}]
    return [Search("GridSearchCV", dict(estimator=SVC(), param_grid=grid,
                                        scoring={"precision": "precision", "recall": "recall"},
                                        refit=_best_precision_callable, cv=5), X, y)]


def _best_precision_callable(results):
    import numpy as np

    return int(np.argmax(results["mean_test_precision"]))


def small_nested():
    """Nested cross-validation on iris (scikit-learn's example): a search in cross_val_score."""
    from sklearn.datasets import load_iris
    from sklearn.svm import SVC

    X, y = load_iris(return_X_y=True)
    grid = {"C": [1, 10, 100], "gamma": [0.01, 0.1]}
    return [Search("nested", dict(estimator=SVC(kernel="rbf"), param_grid=grid, cv=4), X, y)
            for _ in range(5)]


def small_kde():
    """Kernel-density bandwidth search (scikit-learn's example) on digits in 15 dimensions."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KernelDensity

    X = PCA(n_components=15, whiten=False).fit_transform(load_digits().data)
    grid = {"bandwidth": np.logspace(-1, 1, 20)}
    return [Search("GridSearchCV", dict(estimator=KernelDensity(), param_grid=grid, cv=5),
                   X, None)]


def small_krr():
    """Kernel ridge against Gaussian-process style kernels (scikit-learn's example)."""
    import numpy as np
    from sklearn.kernel_ridge import KernelRidge

    rng = np.random.RandomState(42)
    X = 5 * rng.rand(1000, 1)
    y = np.sin(X).ravel()
    y[::5] += 3 * (0.5 - rng.rand(X.shape[0] // 5))
    grid = {"alpha": [1e0, 0.1, 1e-2, 1e-3], "gamma": np.logspace(-2, 2, 5)}
    return [Search("GridSearchCV", dict(estimator=KernelRidge(kernel="rbf", gamma=0.1),
                                        param_grid=grid, cv=5), X[:100], y[:100])]


def halving():
    """HalvingGridSearchCV: scale -> PCA -> SGD, 720 candidates, cv=5, 10000 x 50."""
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.decomposition import PCA
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=10000, n_features=50, n_informative=15,
                               n_redundant=20, random_state=0)
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCA(random_state=0)),
                     ("clf", SGDClassifier(random_state=0, max_iter=20, tol=None))])
    grid = {
        "pca__n_components": [5, 10, 20, 30],
        "clf__alpha": np.logspace(-6, -1, 10),
        "clf__loss": ["hinge", "log_loss", "modified_huber"],
        "clf__penalty": ["l2", "l1", "elasticnet"],
        "clf__average": [False, True],
    }
    return [Search("HalvingGridSearchCV", dict(estimator=pipe, param_grid=grid, cv=5,
                                               factor=3, min_resources=100, random_state=0),
                   X, y)]


def curve():
    """validation_curve over an SVC's C after scale -> PCA, 8 values, cv=5, 4000 x 200."""
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    X, y = make_classification(n_samples=4000, n_features=200, n_informative=30,
                               random_state=0)
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCA(n_components=60, random_state=0)),
                     ("svc", LinearSVC(random_state=0))])
    return [Search("validation_curve", dict(estimator=pipe, param_name="svc__C",
                                            param_range=np.logspace(-4, 3, 8), cv=5), X, y)]


WORKLOADS = {f.__name__: f for f in (post, text, small_fits, mlp, columns, hgb_random,
                                     notebook, small_svc, small_nested, small_kde, small_krr,
                                     halving, curve)}


# --------------------------------------------------------------------------
# One measurement, in this (fresh) process
# --------------------------------------------------------------------------


def _classes(impl):
    """(the module holding the search classes, extra keyword arguments) for ``impl``."""
    if impl == "sklearn":
        import sklearn.model_selection as module

        return module, {"n_jobs": -1}
    if impl == "sklearn-seq":
        import sklearn.model_selection as module

        return module, {}
    if impl == "dask-ml":
        import dask_ml.model_selection as module

        return module, {}
    if impl.startswith("dklearn"):
        import dklearn.model_selection as module

        scheduler = impl.partition("-")[2] or None
        return module, {"scheduler": scheduler} if scheduler else {}
    raise ValueError(f"unknown implementation {impl!r}")


def _run(search, module, extra):
    if search.kind.startswith("Halving") and module.__name__ == "sklearn.model_selection":
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    if search.kind == "validation_curve":
        return module.validation_curve(X=search.X, y=search.y, **search.kwargs, **extra)
    if search.kind == "nested":
        from sklearn.model_selection import cross_val_score

        inner = module.GridSearchCV(**search.kwargs, **extra)
        return cross_val_score(inner, search.X, search.y, cv=4).mean()
    result = getattr(module, search.kind)(**search.kwargs, **extra)
    result.fit(search.X, search.y, **search.fit_params)
    return result


def measure(impl, workload):
    searches = WORKLOADS[workload]()
    if impl == "bound":
        from threadpoolctl import threadpool_limits

        module, _ = _classes("dklearn")
        with threadpool_limits(limits=1):
            gc.collect()
            start = time.perf_counter()
            for search in searches:
                # The refit is left out where the result does not need it.
                needs_refit = (search.kind in ("nested", "validation_curve")
                               or "refit" in search.kwargs)
                _run(search, module, {"scheduler": "sync",
                                      **({} if needs_refit else {"refit": False})})
            elapsed = time.perf_counter() - start
        return {"seconds": elapsed / os.cpu_count(), "best": None}
    module, extra = _classes(impl)
    if impl == "dask-ml" and any(s.kind in NOT_IN_DASK_ML for s in searches):
        return {"unsupported": True}
    # What the imports and the data left to collect is collected now, for every
    # implementation alike: a full collection (60-90 ms after importing pandas
    # and scikit-learn) would otherwise land in whichever search allocates first.
    gc.collect()
    start = time.perf_counter()
    results = [_run(search, module, extra) for search in searches]
    elapsed = time.perf_counter() - start
    last = results[-1]
    best = repr(sorted(last.best_params_.items())) if hasattr(last, "best_params_") else repr(last)
    return {"seconds": elapsed, "best": best}


def run_fresh(impl, workload):
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--one", impl, workload],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def available(impl):
    if impl == "dask-ml":
        try:
            import dask_ml  # noqa: F401
        except ImportError:
            return False
    return True


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=2, metavar=("IMPL", "WORKLOAD"), help=argparse.SUPPRESS)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--impls", nargs="+", default=["sklearn", "sklearn-seq", "dask-ml",
                                                       "dklearn"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="also write the raw timings here")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(*args.one)))
        return 0

    impls = [i for i in args.impls if available(i)]
    if args.repeats % 2:
        print("# an odd number of repeats: the order is not balanced (see the module doc)",
              flush=True)
    print(f"# {time.strftime('%Y-%m-%d')} | {platform.machine()} | {os.cpu_count()} cores | "
          f"Python {platform.python_version()} | {_versions()}", flush=True)
    raw = {}
    for workload in args.workloads:
        runs = {impl: [] for impl in impls}
        errors, skip = {}, set()
        extra = ["bound"] if workload == "post" and "bound" not in impls else []
        for repeat in range(args.repeats):
            order = impls if repeat % 2 == 0 else impls[::-1]
            for impl in list(order) + (extra if repeat == 0 else []):
                if impl in skip:
                    continue
                result = run_fresh(impl, workload)
                if "unsupported" in result:
                    errors[impl] = "has no such search or function"
                    runs.pop(impl, None)
                    skip.add(impl)
                    continue
                if "error" in result:
                    errors[impl] = result["error"]
                    continue
                runs.setdefault(impl, []).append(result["seconds"])
        raw[workload] = {"runs": runs, "errors": errors}
        _report(workload, runs, errors)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=2)
    _summary(raw)
    return 0


def _versions():
    import dask
    import sklearn

    out = f"scikit-learn {sklearn.__version__} | dask {dask.__version__}"
    try:
        import dask_ml

        out += f" | dask-ml {dask_ml.__version__}"
    except ImportError:
        out += " | dask-ml not installed"
    return out


def _median(values):
    return statistics.median(values) if values else float("nan")


def _best_peer(medians):
    peers = {k: v for k, v in medians.items() if k in PEERS}
    return min(peers.items(), key=lambda kv: kv[1]) if peers else (None, float("nan"))


def _report(workload, runs, errors):
    medians = {impl: _median(v) for impl, v in runs.items() if v}
    peer, best = _best_peer(medians)
    cells = "  ".join(f"{impl}={sec:.2f}s" for impl, sec in medians.items())
    print(f"{workload:12s} {cells}", flush=True)
    for impl, sec in medians.items():
        if impl.startswith("dklearn") and peer:
            print(f"{'':12s} {impl} / best peer ({peer}) = {sec / best:.2f}", flush=True)
        if impl.startswith("dklearn") and "bound" in medians:
            print(f"{'':12s} {impl} / bound = {sec / medians['bound']:.2f}", flush=True)
    for impl, message in errors.items():
        print(f"{'':12s} {impl} failed: {message}", flush=True)


def _summary(raw):
    for impl in ("dklearn", "bound"):
        ratios = []
        for data in raw.values():
            medians = {name: _median(v) for name, v in data["runs"].items() if v}
            _, best = _best_peer(medians)
            if impl in medians and best == best:
                ratios.append(medians[impl] / best)
        if ratios:
            geo = statistics.geometric_mean(ratios)
            print(f"geometric mean of {impl} / best peer over {len(ratios)} workloads: "
                  f"{geo:.2f}")


if __name__ == "__main__":
    sys.exit(main())
