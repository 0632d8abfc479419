"""Peak memory of a search over a 200,000 x 100 float64 X (160 MB), 2 workers.

    python benchmarks/memory.py
    python benchmarks/memory.py --rows 50000 --impls sklearn dklearn

Each implementation runs in a fresh process; this script samples that
process and all its children every 50 ms with psutil and reports the peak of
the sum of their PSS (proportional set size: a page shared by k processes,
such as memory-mapped data, counts 1/k in each, so the sum is the memory the
search really holds) and, for reference, of the sum of their RSS (which
counts shared pages once per process).

Implementations: scikit-learn GridSearchCV(n_jobs=2), dask-ml's GridSearchCV
(n_jobs=2; its default threaded scheduler), dklearn (n_jobs=2, default
engine).  The workload is a StandardScaler -> PCA -> LogisticRegression
pipeline, 2 x 3 candidates, cv=3: every implementation holds the data, its
folds and the scaled folds at some point.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time


def workload(rows):
    import numpy as np
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.RandomState(0)
    X = rng.normal(size=(rows, 100))
    y = (X[:, :5].sum(axis=1) + rng.normal(size=rows) > 0).astype(int)
    pipe = Pipeline([
        ("scale", StandardScaler()),
        ("pca", PCA(random_state=0)),
        ("clf", LogisticRegression(max_iter=200)),
    ])
    grid = {"pca__n_components": [10, 20], "clf__C": [0.1, 1.0, 10.0]}
    return pipe, grid, X, y


def run_one(impl, rows):
    pipe, grid, X, y = workload(rows)
    if impl == "sklearn":
        from sklearn.model_selection import GridSearchCV

        search = GridSearchCV(pipe, grid, cv=3, n_jobs=2)
    elif impl == "dask-ml":
        from dask_ml.model_selection import GridSearchCV

        search = GridSearchCV(pipe, grid, cv=3, n_jobs=2)
    else:
        from dklearn.model_selection import GridSearchCV

        scheduler = impl.partition("-")[2] or None  # dklearn-processes, say
        search = GridSearchCV(pipe, grid, cv=3, n_jobs=2, scheduler=scheduler)
    start = time.perf_counter()
    search.fit(X, y)
    print(json.dumps({"seconds": time.perf_counter() - start,
                      "best": repr(sorted(search.best_params_.items()))}))


def sample(proc):
    """Peak (sum of PSS, sum of RSS) over ``proc`` and its children, in MB."""
    import psutil

    root = psutil.Process(proc.pid)
    peak_pss = peak_rss = 0.0
    while proc.poll() is None:
        pss = rss = 0
        try:
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in family:
            try:
                info = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            pss += getattr(info, "pss", info.rss)
            rss += info.rss
        peak_pss, peak_rss = max(peak_pss, pss / 2**20), max(peak_rss, rss / 2**20)
        time.sleep(0.05)
    return peak_pss, peak_rss


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=2, metavar=("IMPL", "ROWS"), help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--impls", nargs="+", default=["sklearn", "dask-ml", "dklearn"])
    args = parser.parse_args(argv)
    if args.one:
        run_one(args.one[0], int(args.one[1]))
        return 0
    import sklearn

    print(f"# {time.strftime('%Y-%m-%d')} | {platform.machine()} | {os.cpu_count()} cores | "
          f"Python {platform.python_version()} | scikit-learn {sklearn.__version__}")
    print(f"# X: {args.rows} x 100 float64 ({args.rows * 100 * 8 / 2**20:.0f} MB); "
          "scaler -> PCA -> logistic, 6 candidates, cv=3, 2 workers")
    peaks = {}
    for impl in args.impls:
        if impl == "dask-ml":
            try:
                import dask_ml  # noqa: F401
            except ImportError:
                print("dask-ml       not installed (pip install dask-ml)")
                continue
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--one", impl, str(args.rows)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        pss, rss = sample(proc)
        out, err = proc.communicate()
        if proc.returncode != 0:
            print(f"{impl:13s} failed: {err.strip().splitlines()[-1] if err else proc.returncode}")
            continue
        result = json.loads(out.strip().splitlines()[-1])
        peaks[impl] = pss
        print(f"{impl:13s} peak PSS {pss:6.0f} MB  peak RSS {rss:6.0f} MB  "
              f"time {result['seconds']:5.1f} s  best {result['best']}")
    if "dklearn" in peaks:
        for peer in ("sklearn", "dask-ml"):
            if peer in peaks:
                print(f"dklearn / {peer} peak PSS = {peaks['dklearn'] / peaks[peer]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
