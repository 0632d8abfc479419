"""Searches the cost rule was not tuned on, as a user would write them.

    python benchmarks/unseen.py                # every workload, 1 round
    python benchmarks/unseen.py lgbm svc --rounds 3

Each measurement runs in a fresh process, implementations alternating:
scikit-learn with n_jobs=-1, scikit-learn's sequential loop (its default),
dklearn's default.  Prints seconds and the best score (which must agree).
"""

import argparse
import gc
import subprocess
import sys
import time

import numpy as np


def work(name):
    from sklearn.datasets import make_classification, make_regression
    if name == "rf":
        from sklearn.ensemble import RandomForestClassifier
        X, y = make_classification(n_samples=3000, n_features=30, random_state=0)
        grid = {"max_depth": [4, 8, None], "min_samples_leaf": [1, 5]}
        return RandomForestClassifier(n_estimators=50, random_state=0), grid, X, y, "grid"
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        X, y = make_classification(n_samples=6000, n_features=40, random_state=0)
        grid = {"kneighborsclassifier__n_neighbors": [3, 5, 9, 15, 25],
                "kneighborsclassifier__weights": ["uniform", "distance"]}
        return make_pipeline(StandardScaler(), KNeighborsClassifier()), grid, X, y, "grid"
    if name == "svc":
        from sklearn.svm import SVC
        X, y = make_classification(n_samples=3000, n_features=20, random_state=0)
        return SVC(), {"C": [0.1, 1, 10], "gamma": ["scale", 0.01, 0.1]}, X, y, "grid"
    if name == "gb":
        from sklearn.ensemble import GradientBoostingClassifier
        X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
        grid = {"max_depth": [2, 3, 4], "learning_rate": [0.05, 0.1]}
        return GradientBoostingClassifier(n_estimators=50, random_state=0), grid, X, y, "grid"
    if name == "lgbm":
        import lightgbm
        X, y = make_classification(n_samples=5000, n_features=30, random_state=0)
        grid = {"num_leaves": [15, 31, 63], "learning_rate": [0.05, 0.1]}
        est = lightgbm.LGBMClassifier(n_estimators=100, verbose=-1, random_state=0)
        return est, grid, X, y, "grid"
    if name == "ridge_poly":
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import PolynomialFeatures, StandardScaler
        X, y = make_regression(n_samples=4000, n_features=15, noise=1.0, random_state=0)
        grid = {"polynomialfeatures__degree": [1, 2, 3], "ridge__alpha": np.logspace(-3, 3, 7)}
        return make_pipeline(PolynomialFeatures(), StandardScaler(), Ridge()), grid, X, y, "grid"
    if name == "rand_lr":
        from scipy.stats import loguniform
        from sklearn.linear_model import LogisticRegression
        X, y = make_classification(n_samples=5000, n_features=50, random_state=0)
        return LogisticRegression(max_iter=500), {"C": loguniform(1e-3, 1e3)}, X, y, "random"
    raise SystemExit(name)



NAMES = ["rf", "knn", "svc", "gb", "lgbm", "ridge_poly", "rand_lr"]


def one(impl, name):
    est, grid, X, y, kind = work(name)
    if impl.startswith("sklearn"):
        from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
        kw = {"n_jobs": -1} if impl == "sklearn" else {}
    else:
        from dklearn.model_selection import GridSearchCV, RandomizedSearchCV
        kw = {}
    if kind == "grid":
        search = GridSearchCV(est, grid, cv=5, **kw)
    else:
        search = RandomizedSearchCV(est, grid, n_iter=20, cv=5, random_state=0, **kw)
    gc.collect()
    start = time.perf_counter()
    search.fit(X, y)
    print(f"{time.perf_counter() - start:.2f} {search.best_score_:.6f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=NAMES)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(*args.one)
    for name in args.names:
        for _ in range(args.rounds):
            for impl in ("sklearn", "sklearn-seq", "dklearn"):
                out = subprocess.run([sys.executable, __file__, "--one", impl, name],
                                     capture_output=True, text=True).stdout.strip()
                print(f"{name:11s} {impl:12s} {out}", flush=True)


if __name__ == "__main__":
    main()
