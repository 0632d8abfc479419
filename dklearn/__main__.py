"""``python -m dklearn demo``: the 2017 post's example, with dklearn and with scikit-learn.

The workload: make_classification(10000 x 500), PCA -> LogisticRegression,
a 4 x 4 x 2 grid (PCA sizes x C x l1/l2 penalty), 5-fold CV.  scikit-learn
fits PCA 160 times; dklearn fits it 20 times (4 sizes x 5 folds).
``--quick`` runs a smaller version in seconds.
"""

import argparse
import sys
import time

from dklearn import _compat


def workload(quick):
    from sklearn.datasets import make_classification
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    if quick:
        X, y = make_classification(
            n_samples=2000, n_features=100, n_redundant=50, random_state=42
        )
        sizes = [10, 20, 30, 50]
    else:
        X, y = make_classification(
            n_samples=10000, n_features=500, n_classes=2, n_redundant=250, random_state=42
        )
        sizes = [50, 100, 150, 250]
    pipe = Pipeline([
        ("pca", PCA(random_state=0)),
        ("logistic", LogisticRegression(solver="liblinear")),
    ])
    grid = {"pca__n_components": sizes, "logistic__C": [1e-4, 1.0, 10, 1e4]}
    # scikit-learn 1.8 expresses the l1/l2 choice through l1_ratio.
    if _compat.sklearn_version() >= (1, 8):
        grid["logistic__l1_ratio"] = [0, 1]
    else:
        grid["logistic__penalty"] = ["l1", "l2"]
    return pipe, grid, X, y


def demo(quick=False, scheduler=None, skip_sklearn=False, out=sys.stdout):
    from sklearn.model_selection import GridSearchCV as SkGridSearchCV

    from dklearn.grid_search import GridSearchCV

    pipe, grid, X, y = workload(quick)
    n_candidates = 1
    for values in grid.values():
        n_candidates *= len(values)
    print(
        f"Grid search: {X.shape[0]} x {X.shape[1]} data, {n_candidates} candidates, "
        "5 folds (PCA -> LogisticRegression)",
        file=out,
    )
    start = time.perf_counter()
    dk = GridSearchCV(pipe, grid, scheduler=scheduler).fit(X, y)
    dk_time = time.perf_counter() - start
    where = scheduler or "local default"
    print(f"dklearn ({where}): {dk_time:6.1f} s", file=out)
    print(f"  best params: {dk.best_params_}  best score: {dk.best_score_:.4f}", file=out)
    if skip_sklearn:
        return dk, None
    start = time.perf_counter()
    sk = SkGridSearchCV(pipe, grid, n_jobs=-1).fit(X, y)
    sk_time = time.perf_counter() - start
    print(f"scikit-learn (n_jobs=-1): {sk_time:6.1f} s", file=out)
    print(f"  best params: {sk.best_params_}  best score: {sk.best_score_:.4f}", file=out)
    print(f"speed-up: {sk_time / dk_time:.2f}x", file=out)
    same = dk.best_params_ == sk.best_params_ and dk.best_score_ == sk.best_score_
    print(f"same best candidate and score as scikit-learn: {same}", file=out)
    return dk, sk


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dklearn")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="time the post's grid search against scikit-learn")
    run.add_argument("--quick", action="store_true", help="a smaller version that runs in seconds")
    run.add_argument(
        "--scheduler",
        default=None,
        help="'sync', 'threads', 'processes' or a dask scheduler address (tcp://host:port)",
    )
    run.add_argument("--skip-sklearn", action="store_true", help="time dklearn only")
    args = parser.parse_args(argv)
    demo(quick=args.quick, scheduler=args.scheduler, skip_sklearn=args.skip_sklearn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
