"""The README's picture: where the time goes on the 2017 post's workload.

    python benchmarks/picture.py            # writes docs/post-workload.png

The post's search (PCA -> LogisticRegression, 4 PCA sizes x 8 classifier
settings, cv=5, 10000 x 500) asks each implementation for different work:

- scikit-learn fits PCA for every (candidate, fold): 160 fits, and
  transforms every test fold 160 times;
- dask-ml fits each (PCA size, fold) once, 20 fits, but transforms the
  test folds for every candidate, 160 times;
- dklearn fits and transforms each (PCA size, fold) once: 20 and 20.

All three fit 160 classifiers.  The left panel shows that work in CPU
seconds: each piece is timed here, alone, with one BLAS thread, and
multiplied by how many times each implementation does it.  The right panel
shows each implementation's wall time on this machine's cores, each run in
a fresh process (``run.py``), against the bound (the distinct work over the
cores).
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402  - the benchmark's workloads and measurements


def piece_times():
    """CPU seconds of one PCA fit, one test-fold transform and one classifier fit + score,
    summed over the grid as each implementation needs them."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold, ParameterGrid
    from threadpoolctl import threadpool_limits

    [search] = run.post()
    pipe, X, y = search.kwargs["estimator"], search.X, search.y
    grid = list(ParameterGrid(search.kwargs["param_grid"]))
    sizes = sorted({p["pca__n_components"] for p in grid})
    folds = list(KFold(5).split(X))
    pca_fit, pca_transform, clf = {}, {}, 0.0
    with threadpool_limits(limits=1):
        for size in sizes:
            pca_fit[size] = pca_transform[size] = 0.0
            for train, test in folds:
                pca = clone(pipe.named_steps["pca"]).set_params(n_components=size)
                start = time.process_time()
                Xt = pca.fit_transform(X[train])
                pca_fit[size] += time.process_time() - start
                start = time.process_time()
                Xs = pca.transform(X[test])
                pca_transform[size] += time.process_time() - start
                for params in grid:
                    if params["pca__n_components"] != size:
                        continue
                    est = clone(pipe.named_steps["logistic"]).set_params(
                        **{k.split("__", 1)[1]: v for k, v in params.items()
                           if k.startswith("logistic__")})
                    start = time.process_time()
                    est.fit(Xt, y[train]).score(Xs, y[test])
                    clf += time.process_time() - start
    per_size = len(grid) // len(sizes)  # candidates sharing each PCA size
    fit = sum(pca_fit.values())
    transform = sum(pca_transform.values())
    return {
        "scikit-learn": {"PCA fits": fit * per_size, "test-fold transforms": transform * per_size,
                         "classifier fits": clf},
        "dask-ml": {"PCA fits": fit, "test-fold transforms": transform * per_size,
                    "classifier fits": clf},
        "dklearn": {"PCA fits": fit, "test-fold transforms": transform, "classifier fits": clf},
    }


def wall_times(repeats):
    impls = {"scikit-learn": "sklearn", "dask-ml": "dask-ml", "dklearn": "dklearn"}
    out = {}
    for name, impl in impls.items():
        if not run.available(impl):
            continue
        times = [run.run_fresh(impl, "post").get("seconds") for _ in range(repeats)]
        times = [t for t in times if t is not None]
        if times:
            out[name] = sorted(times)[len(times) // 2]
    out["bound"] = run.run_fresh("bound", "post")["seconds"]
    return out


def draw(work, walls, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(work)
    parts = ["PCA fits", "test-fold transforms", "classifier fits"]
    colors = ["#4c72b0", "#dd8452", "#55a868"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"wspace": 0.45})
    for i, name in enumerate(names):
        start = 0.0
        for part, color in zip(parts, colors):
            value = work[name][part]
            left.barh(i, value, left=start, color=color, label=part if i == 0 else None)
            start += value
        left.text(start, i, f" {start:.0f} s", va="center")
    left.set_yticks(range(len(names)), names)
    left.invert_yaxis()
    left.set_xlabel("CPU seconds of work (one BLAS thread)")
    left.set_title("Work each implementation does")
    left.legend(loc="lower right", fontsize=8)
    left.set_xlim(0, max(sum(w.values()) for w in work.values()) * 1.25)
    shown = [n for n in names if n in walls]
    right.barh(range(len(shown)), [walls[n] for n in shown], color="#8172b3")
    for i, name in enumerate(shown):
        right.text(walls[name], i, f" {walls[name]:.1f} s", va="center")
    right.axvline(walls["bound"], color="black", linestyle="--", linewidth=1)
    right.text(walls["bound"], len(shown) - 0.5, " bound", va="bottom", fontsize=8)
    right.set_yticks(range(len(shown)), shown)
    right.invert_yaxis()
    right.set_xlabel(f"wall seconds on {os.cpu_count()} cores")
    right.set_title("Time to finish the search")
    right.set_xlim(0, max(walls.values()) * 1.25)
    fig.suptitle("The 2017 post's search: PCA -> LogisticRegression, 32 candidates, 5 folds",
                 fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(HERE, "..", "docs", "post-workload.png"))
    args = parser.parse_args(argv)
    work = piece_times()
    walls = wall_times(args.repeats)
    for name in work:
        print(f"{name:13s} work {sum(work[name].values()):6.1f} CPU s   wall "
              f"{walls.get(name, float('nan')):5.1f} s")
    print(f"bound         {walls['bound']:.1f} s")
    draw(work, walls, args.out)
    print("wrote", os.path.abspath(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
