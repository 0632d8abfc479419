"""The cost of dklearn's own machinery, on a search whose fits cost nothing.

    python benchmarks/machinery.py                 # 10,000 candidates x 5 folds
    python benchmarks/machinery.py --candidates 1000

DummyClassifier on 100 rows: every second spent is the search's, not the
model's.  Each implementation runs once in a fresh process (refit=False):

- scikit-learn GridSearchCV(n_jobs=1): the reference, its total time and
  peak memory (ru_maxrss of the one process);
- dklearn with scheduler='sync' (one thread, no parallelism: the overhead of
  planning and dask's scheduling alone) and with the defaults (2 cores).

For dklearn it reports the time to build the plan (fit start to the graph
handed to the engine), the engine's time, the time to assemble cv_results_
(engine done to fit done), the scheduling overhead per task ((engine time x
workers - time inside fit and score) / tasks), and the client's peak memory.
For scale, every implementation also reports its whole time outside fit and
score per evaluation (for scikit-learn: slicing folds, cloning, its loop).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def measure(impl, n_candidates):
    import numpy as np
    from sklearn.dummy import DummyClassifier

    X = np.random.RandomState(0).normal(size=(100, 4))
    y = np.arange(100) % 2
    strategies = ["prior", "most_frequent", "uniform", "stratified"]
    grid = {"strategy": strategies, "random_state": list(range(n_candidates // len(strategies)))}
    marks = {}
    if impl == "sklearn":
        from sklearn.model_selection import GridSearchCV

        search = GridSearchCV(DummyClassifier(), grid, cv=5, n_jobs=1, refit=False)
        workers = 1
    else:
        from dklearn import _engines
        from dklearn.model_selection import GridSearchCV

        scheduler = "sync" if impl == "dklearn-sync" else None
        search = GridSearchCV(DummyClassifier(), grid, cv=5, refit=False, scheduler=scheduler)
        workers = 1 if scheduler == "sync" else _engines.n_workers(None)
        real_run = _engines.run

        def timed_run(graph, keys, *args, **kwargs):
            marks["run_start"] = time.perf_counter()
            try:
                return real_run(graph, keys, *args, **kwargs)
            finally:
                marks["run_end"] = time.perf_counter()
                marks["tasks"] = len(keys)

        _engines.run = timed_run  # instrumentation only: the engine itself runs
    before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # imports and data
    start = time.perf_counter()
    search.fit(X, y)
    end = time.perf_counter()
    out = {
        "seconds": end - start,
        "before_mb": before_mb,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "evaluations": len(search.cv_results_["params"]) * 5,
    }
    res = search.cv_results_
    inside = 5 * float(np.sum(res["mean_fit_time"] + res["mean_score_time"]))
    # scikit-learn's own cost per evaluation outside fit and score, for scale.
    out["outside_ms"] = 1000 * (out["seconds"] * workers - inside) / out["evaluations"]
    if marks:
        engine = marks["run_end"] - marks["run_start"]
        out.update(
            plan=marks["run_start"] - start,
            engine=engine,
            assemble=end - marks["run_end"],
            tasks=marks["tasks"],
            overhead_ms=1000 * (engine * workers - inside) / marks["tasks"],
        )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=2, metavar=("IMPL", "CANDIDATES"), help=argparse.SUPPRESS)
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--impls", nargs="+", default=["sklearn", "dklearn-sync", "dklearn"])
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return 0
    import dask
    import sklearn

    print(f"# {time.strftime('%Y-%m-%d')} | {platform.machine()} | {os.cpu_count()} cores | "
          f"Python {platform.python_version()} | scikit-learn {sklearn.__version__} | "
          f"dask {dask.__version__}")
    print(f"# {args.candidates} candidates x 5 folds of DummyClassifier, refit=False")
    results = {}
    for impl in args.impls:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--one", impl, str(args.candidates)],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            print(f"{impl:13s} failed: {proc.stderr.strip().splitlines()[-1]}")
            continue
        r = results[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
        line = (f"{impl:13s} total {r['seconds']:6.2f} s  peak memory {r['peak_mb']:5.0f} MB "
                f"({r['before_mb']:.0f} before fit)  "
                f"outside fit and score {r['outside_ms']:.3f} ms/evaluation")
        if "plan" in r:
            line += (f"  | plan {r['plan']:.2f} s for {r['tasks']} tasks, engine {r['engine']:.2f} s, "
                     f"assemble {r['assemble']:.2f} s, overhead {r['overhead_ms']:.3f} ms/task")
        print(line)
    if "sklearn" in results:
        ref = results["sklearn"]
        for impl, r in results.items():
            if impl != "sklearn":
                print(f"{impl:13s} / sklearn(n_jobs=1): time {r['seconds'] / ref['seconds']:.2f}, "
                      f"peak memory {r['peak_mb'] / ref['peak_mb']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
