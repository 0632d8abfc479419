"""The post's workload on a LocalCluster of 2 single-threaded worker processes vs the local default.

    python benchmarks/cluster.py [--repeats 2] [--workload post]

Both run in fresh processes, alternating, in one run; the cluster's start-up
is timed apart from the search.  The LocalCluster binds to 127.0.0.1.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import WORKLOADS  # noqa: E402


def measure(kind, workload):
    from dklearn.model_selection import GridSearchCV

    estimator, grid, X, y, cv = WORKLOADS[workload]()
    startup = 0.0
    scheduler = None
    if kind == "localcluster":
        from distributed import Client, LocalCluster

        start = time.perf_counter()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        scheduler = Client(cluster, set_as_default=False)
        startup = time.perf_counter() - start
    start = time.perf_counter()
    GridSearchCV(estimator, grid, cv=cv, scheduler=scheduler).fit(X, y)
    return {"search": time.perf_counter() - start, "startup": startup}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workload", default="post")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    runs = {"local default": [], "localcluster": []}
    for repeat in range(args.repeats):
        order = ["local default", "localcluster"]
        for kind in order if repeat % 2 == 0 else order[::-1]:
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--one",
                 "localcluster" if kind == "localcluster" else "local", args.workload],
                capture_output=True, text=True, check=True,
            )
            runs[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for kind, results in runs.items():
        search = statistics.median(r["search"] for r in results)
        startup = statistics.median(r["startup"] for r in results)
        print(f"{args.workload}: {kind:14s} search {search:6.2f} s   cluster start-up {startup:5.2f} s")
    local = statistics.median(r["search"] for r in runs["local default"])
    remote = statistics.median(r["search"] for r in runs["localcluster"])
    print(f"LocalCluster / local default = {remote / local:.2f}")


if __name__ == "__main__":
    main()
