"""Searches on a real dask.distributed cluster: dklearn against dask-ml and against
scikit-learn under joblib's dask backend, measured in one run.

    python benchmarks/cluster.py                       # post, text, small_fits, mlp
    python benchmarks/cluster.py --workloads post --repeats 3
    python benchmarks/cluster.py --scale 100000        # 100,000 candidates x 5 folds

Each (implementation, workload) runs in a fresh client process against a
fresh cluster that the benchmark starts on 127.0.0.1: a ``dask scheduler``
process and ``--workers`` ``dask worker`` processes of one thread each (as
the tests' cluster, tests/cluster.py).  Only the search is timed; the
implementations alternate within a repeat, and the median is reported.

Implementations: ``dklearn`` (``scheduler=client``), ``dask-ml``
(``scheduler=client``) and ``sklearn-dask`` (scikit-learn's search with
``n_jobs=-1`` inside ``joblib.parallel_config(backend="dask")``).

``--scale N``: N candidates of a cheap estimator (DummyClassifier), 5
folds, on the same cluster: the search's time, fits per second, and the
peak memory of the client process and of the scheduler process, for
dklearn and scikit-learn under joblib's dask backend.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import run  # noqa: E402 - the workloads
from tests.cluster import dask_cluster  # noqa: E402 - the test suite's real cluster

WORKLOADS = ["post", "text", "small_fits", "mlp"]
IMPLS = ["sklearn-dask", "dask-ml", "dklearn"]


def search(impl, s, client):
    if impl == "dklearn":
        import dklearn.model_selection as module

        return getattr(module, s.kind)(**s.kwargs, scheduler=client).fit(s.X, s.y)
    if impl == "dask-ml":
        import dask_ml.model_selection as module

        return getattr(module, s.kind)(**s.kwargs, scheduler=client).fit(s.X, s.y)
    import joblib
    import sklearn.model_selection as module

    with joblib.parallel_config(backend="dask"):
        return getattr(module, s.kind)(**s.kwargs, n_jobs=-1).fit(s.X, s.y)


def measure(impl, workload, address):
    from distributed import Client

    searches = run.WORKLOADS[workload]() if workload != "scale" else scale_workload()
    with Client(address) as client:
        peak = _Peak(client)
        start = time.perf_counter()
        for s in searches:
            search(impl, s, client)
        elapsed = time.perf_counter() - start
        client_mb, scheduler_mb = peak.stop()
    n_fits = sum(len(_candidates(s)) * s.kwargs.get("cv", 5) for s in searches)
    return {"seconds": elapsed, "fits": n_fits, "client_mb": client_mb,
            "scheduler_mb": scheduler_mb}


def _candidates(s):
    from sklearn.model_selection import ParameterGrid

    if s.kind == "RandomizedSearchCV":
        return range(s.kwargs["n_iter"])
    return ParameterGrid(s.kwargs["param_grid"])


class _Peak:
    """Peak RSS of this process and of the scheduler's, sampled every 50 ms."""

    def __init__(self, client):
        import psutil

        pid = client.run_on_scheduler(os.getpid)
        self.procs = [psutil.Process(), psutil.Process(pid)]
        self.peaks = [0, 0]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        while not self.done.wait(0.05):
            for i, proc in enumerate(self.procs):
                try:
                    self.peaks[i] = max(self.peaks[i], proc.memory_info().rss)
                except Exception:  # noqa: BLE001 - it exited
                    pass

    def stop(self):
        self.done.set()
        self.thread.join()
        return [p / 2**20 for p in self.peaks]


def scale_workload():
    from sklearn.datasets import make_classification
    from sklearn.dummy import DummyClassifier

    n = int(os.environ["DKLEARN_SCALE"])
    X, y = make_classification(n_samples=200, n_features=5, random_state=0)
    grid = {"strategy": ["prior", "most_frequent", "stratified", "uniform"],
            "random_state": list(range(max(n // 4, 1)))}
    return [run.Search("GridSearchCV", dict(estimator=DummyClassifier(), param_grid=grid, cv=5,
                                            refit=False), X, y)]


def run_fresh(impl, workload, address, env=None):
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--one", impl, workload, address],
        capture_output=True, text=True, env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--workloads", nargs="+", default=WORKLOADS)
    parser.add_argument("--impls", nargs="+", default=IMPLS)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scale", type=int, help="candidates of the scale run")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(*args.one)))
        return 0
    impls = [i for i in args.impls if i != "dask-ml" or run.available("dask-ml")]
    print(f"# {time.strftime('%Y-%m-%d')} | {os.cpu_count()} cores | a cluster of "
          f"{args.workers} single-threaded dask workers on 127.0.0.1 | {run._versions()}",
          flush=True)
    if args.scale:
        for impl in [i for i in impls if i != "dask-ml"]:
            with dask_cluster(n_workers=args.workers, nanny=True) as cluster:
                result = run_fresh(impl, "scale", cluster.address,
                                   {"DKLEARN_SCALE": str(args.scale)})
            if "error" in result:
                print(f"scale {impl}: failed: {result['error']}", flush=True)
                continue
            print(f"scale {impl:13s} {result['fits']} fits in {result['seconds']:.1f} s "
                  f"({result['fits'] / result['seconds']:.0f} fits/s); peak memory: client "
                  f"{result['client_mb']:.0f} MB, scheduler {result['scheduler_mb']:.0f} MB",
                  flush=True)
        return 0
    ratios = []
    for workload in args.workloads:
        times = {impl: [] for impl in impls}
        errors = {}
        for repeat in range(args.repeats):
            for impl in impls if repeat % 2 == 0 else impls[::-1]:
                with dask_cluster(n_workers=args.workers, nanny=True) as cluster:
                    result = run_fresh(impl, workload, cluster.address)
                if "error" in result:
                    errors[impl] = result["error"]
                else:
                    times[impl].append(result["seconds"])
        medians = {k: statistics.median(v) for k, v in times.items() if v}
        print(f"{workload:11s} " + "  ".join(f"{k}={v:.2f}s" for k, v in medians.items()),
              flush=True)
        peers = {k: v for k, v in medians.items() if k != "dklearn"}
        if "dklearn" in medians and peers:
            peer = min(peers, key=peers.get)
            ratio = medians["dklearn"] / peers[peer]
            ratios.append(ratio)
            print(f"{'':11s} dklearn / best peer ({peer}) = {ratio:.2f}", flush=True)
        for impl, message in errors.items():
            print(f"{'':11s} {impl} failed: {message}", flush=True)
    if ratios:
        print(f"geometric mean of dklearn / best peer: {statistics.geometric_mean(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
