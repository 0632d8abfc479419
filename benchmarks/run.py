"""Search benchmarks: dklearn against scikit-learn and dask-ml, measured in one run.

    python benchmarks/run.py                       # every workload, 2 repeats
    python benchmarks/run.py --workloads post mlp --impls sklearn dklearn dklearn-processes

Each (implementation, workload) fit runs in a fresh Python process (no warm
caches, no shared thread pools); implementations alternate within a repeat
and the median over repeats is reported.  Ratios are dklearn / best peer,
where the peers are scikit-learn GridSearchCV(n_jobs=-1) and dask-ml's
GridSearchCV (when dask-ml is installed: ``pip install dask-ml``).

For the post's workload the benchmark also measures the bound: the distinct
work run sequentially in one thread with one BLAS thread
(dklearn scheduler='sync'), divided by the number of cores.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


# --------------------------------------------------------------------------
# Workloads: each returns (estimator, grid, X, y, cv)
# --------------------------------------------------------------------------


def post():
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
    return pipe, grid, X, y, 5


def text():
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
    return pipe, grid, docs, np.array(labels), 3


def small_fits():
    from sklearn.datasets import load_digits
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_digits(return_X_y=True)
    grid = {
        "max_depth": [2, 4, 6, 8, 10, 12, 14, 16, 18, None],
        "min_samples_leaf": [1, 2, 4, 8, 16],
        "criterion": ["gini", "entropy"],
        "max_features": [None, "sqrt"],
    }
    return DecisionTreeClassifier(random_state=0), grid, X, y, 5


def mlp():
    from sklearn.datasets import make_classification
    from sklearn.neural_network import MLPClassifier

    X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    est = MLPClassifier(solver="sgd", hidden_layer_sizes=(10,), batch_size=8,
                        max_iter=15, random_state=0)
    grid = {"alpha": [1e-4, 1e-3, 1e-2], "learning_rate_init": [1e-3, 1e-2],
            "momentum": [0.5, 0.9]}
    return est, grid, X, y, 3


def columns():
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
    pipe = Pipeline([("ct", ct), ("clf", HistGradientBoostingClassifier(random_state=0, max_iter=50))])
    grid = {
        "ct__num__imp__strategy": ["mean", "median"],
        "ct__cat__min_frequency": [None, 0.05],
        "clf__learning_rate": [0.05, 0.1, 0.2],
        "clf__max_leaf_nodes": [15, 31],
    }
    return pipe, grid, frame, y, 3


WORKLOADS = {"post": post, "text": text, "small_fits": small_fits, "mlp": mlp, "columns": columns}


# --------------------------------------------------------------------------
# One measurement, in this (fresh) process
# --------------------------------------------------------------------------


def measure(impl, workload):
    estimator, grid, X, y, cv = WORKLOADS[workload]()
    if impl == "sklearn":
        from sklearn.model_selection import GridSearchCV

        search = GridSearchCV(estimator, grid, cv=cv, n_jobs=-1)
    elif impl == "dask-ml":
        from dask_ml.model_selection import GridSearchCV

        search = GridSearchCV(estimator, grid, cv=cv)
    elif impl.startswith("dklearn"):
        from dklearn.model_selection import GridSearchCV

        scheduler = impl.partition("-")[2] or None
        search = GridSearchCV(estimator, grid, cv=cv, scheduler=scheduler)
    elif impl == "bound":
        from threadpoolctl import threadpool_limits

        from dklearn.model_selection import GridSearchCV

        search = GridSearchCV(estimator, grid, cv=cv, scheduler="sync", refit=False)
        with threadpool_limits(limits=1):
            start = time.perf_counter()
            search.fit(X, y)
            elapsed = time.perf_counter() - start
        return {"seconds": elapsed / os.cpu_count(), "best": None}
    else:
        raise ValueError(f"unknown implementation {impl!r}")
    start = time.perf_counter()
    search.fit(X, y)
    elapsed = time.perf_counter() - start
    # dask-ml has no refit_time_: its refit is not reported.
    return {"seconds": elapsed, "refit": getattr(search, "refit_time_", None),
            "best": repr(sorted(search.best_params_.items()))}


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
    parser.add_argument("--impls", nargs="+", default=["sklearn", "dask-ml", "dklearn"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="also write the raw timings here")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(*args.one)))
        return 0

    impls = [i for i in args.impls if available(i)]
    print(f"# {time.strftime('%Y-%m-%d')} | {platform.machine()} | {os.cpu_count()} cores | "
          f"Python {platform.python_version()} | {_versions()}")
    raw = {}
    for workload in args.workloads:
        runs = {impl: [] for impl in impls}
        refits = {impl: [] for impl in impls}  # within each run: the final refit alone
        errors = {}
        extra = ["bound"] if workload == "post" else []
        for repeat in range(args.repeats):
            order = impls if repeat % 2 == 0 else impls[::-1]
            for impl in list(order) + (extra if repeat == 0 else []):
                result = run_fresh(impl, workload)
                if "error" in result:
                    errors[impl] = result["error"]
                    continue
                runs.setdefault(impl, []).append(result["seconds"])
                if result.get("refit") is not None:
                    refits[impl].append(result["refit"])
        raw[workload] = {"runs": runs, "refits": refits, "errors": errors}
        _report(workload, runs, errors, refits)
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


def _report(workload, runs, errors, refits):
    medians = {impl: _median(v) for impl, v in runs.items() if v}
    peers = {k: v for k, v in medians.items() if k in ("sklearn", "dask-ml")}
    best_peer = min(peers.values()) if peers else float("nan")
    cells = "  ".join(f"{impl}={sec:.2f}s" for impl, sec in medians.items())
    print(f"{workload:11s} {cells}")
    refit_cells = "  ".join(f"{impl}={_median(v):.2f}s" for impl, v in refits.items() if v)
    print(f"{'':11s} of which refit: {refit_cells}")
    for impl, sec in medians.items():
        if impl.startswith("dklearn") and peers:
            print(f"{'':11s} {impl} / best peer = {sec / best_peer:.2f}")
        if impl.startswith("dklearn") and "bound" in medians:
            print(f"{'':11s} {impl} / bound = {sec / medians['bound']:.2f}")
    for impl, message in errors.items():
        print(f"{'':11s} {impl} failed: {message}")


def _summary(raw):
    ratios = []
    for workload, data in raw.items():
        medians = {impl: _median(v) for impl, v in data["runs"].items() if v}
        peers = [v for k, v in medians.items() if k in ("sklearn", "dask-ml")]
        if "dklearn" in medians and peers:
            ratios.append(medians["dklearn"] / min(peers))
    if ratios:
        geo = statistics.geometric_mean(ratios)
        print(f"geometric mean of dklearn / best peer over {len(ratios)} workloads: {geo:.2f}")


if __name__ == "__main__":
    sys.exit(main())
