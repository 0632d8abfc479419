"""One conformance suite, run against every engine.

Every scheduler must give the same cv_results_ as 'sync', carry the
caller's scikit-learn configuration to its workers, and raise a failing
fit's own exception with error_score='raise'.
"""

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future

import dask
import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from dklearn import _engines
from dklearn.model_selection import GridSearchCV

from ._helpers import (
    CALLS,
    CountingTransformer,
    assert_same_results,
    loky_workers,
    reset_calls,
)

X, y = make_classification(n_samples=90, n_features=6, random_state=0)


class ConfigProbe(ClassifierMixin, BaseEstimator):
    """Fails to fit unless scikit-learn's working_memory is the expected one."""

    def __init__(self, expected=None, C=1.0):
        self.expected = expected
        self.C = C

    def fit(self, X, y):
        seen = sklearn.get_config()["working_memory"]
        if seen != self.expected:
            raise AssertionError(f"worker saw working_memory={seen}, not {self.expected}")
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


@pytest.fixture(scope="module")
def local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
    ) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(params=["sync", "threads", "threads-chunked", "processes", "processes-batched",
                        "processes-slot", "cluster"])
def scheduler(request):
    if request.param == "cluster":
        return request.getfixturevalue("local_cluster")
    if request.param == "processes-slot":
        # One worker process fewer and a thread of this process, as after a
        # move of long tasks from threads (_ThreadSlot), this process held to
        # one core meanwhile (_OneCore).
        real = _engines._Processes.start

        def start_with_slot(self, slot=None, one_core=False):
            return real(self, _engines._ThreadSlot(self.blas, self.config, self.data),
                        one_core=True)

        request.getfixturevalue("monkeypatch").setattr(_engines._Processes, "start",
                                                       start_with_slot)
        return "processes"
    if request.param == "threads-chunked":
        # dask hands several independent tasks to a thread at once, as for many fits.
        request.getfixturevalue("monkeypatch").setattr(_engines, "thread_chunksize",
                                                       lambda *a: 3)
        return "threads"
    if request.param == "processes-batched":
        # Several (candidate, fold) tasks per process-pool task, as for cheap fits.
        request.getfixturevalue("monkeypatch").setattr(_engines, "batch_size", lambda *a: 3)
        return "processes"
    return request.param


def test_same_results_as_sync(scheduler):
    pipe = Pipeline([("pca", PCA(random_state=0)), ("clf", LogisticRegression())])
    grid = {"pca__n_components": [2, 4], "clf__C": [0.1, 1.0]}
    ref = GridSearchCV(pipe, grid, scheduler="sync", return_train_score=True).fit(X, y)
    got = GridSearchCV(pipe, grid, scheduler=scheduler, n_jobs=2, return_train_score=True).fit(X, y)
    assert_same_results(ref, got)


def test_workers_see_the_callers_sklearn_config(scheduler):
    with sklearn.config_context(working_memory=123):
        search = GridSearchCV(
            ConfigProbe(expected=123), {"C": [1.0, 2.0]}, cv=3,
            scheduler=scheduler, n_jobs=2, error_score="raise",
        )
        search.fit(X, y)
    assert search.best_params_ == {"C": 1.0}


def test_error_score_raise_propagates_the_exception(scheduler):
    search = GridSearchCV(
        ConfigProbe(expected=-1), {"C": [1.0]}, cv=3, scheduler=scheduler, n_jobs=2,
        error_score="raise",
    )
    with pytest.raises(AssertionError, match="worker saw working_memory"):
        search.fit(X, y)


@pytest.mark.parametrize("n_jobs, expected", [(None, "cores"), (-1, "cores"), (1, 1), (3, 3)])
def test_n_jobs_means_workers(n_jobs, expected, monkeypatch):
    monkeypatch.setattr(_engines.joblib, "cpu_count", lambda: 4)
    assert _engines.n_workers(n_jobs) == (4 if expected == "cores" else expected)


def test_n_jobs_negative_counts_back_from_cores(monkeypatch):
    monkeypatch.setattr(_engines.joblib, "cpu_count", lambda: 4)
    assert _engines.n_workers(-2) == 3
    with pytest.raises(ValueError, match="n_jobs == 0"):
        _engines.n_workers(0)


class GilHolder(ClassifierMixin, BaseEstimator):
    """Spends its fit in a pure-Python loop: two threads run it no faster than one."""

    def __init__(self, n=2_000_000, C=1.0, log=None):
        self.n = n
        self.C = C
        self.log = log

    def fit(self, X, y):
        if self.log is not None:  # one line per fit, from any process
            with open(self.log, "a") as f:
                f.write(f"{self.C}\n")
        total = 0
        for i in range(self.n):
            total += i % 7
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


MOVE_SCRIPT = """
import os
import sys
import threading
from dklearn import _engines
from dklearn.model_selection import GridSearchCV
from tests.test_engines import GilHolder, X, y
from tests._helpers import assert_same_results

calls = []
real = _engines._run_processes
_engines._run_processes = lambda *a, **k: calls.append(1) or real(*a, **k)
held = []  # per confinement: the masks of this process's threads just after
real_enter = _engines.ONE_CORE.enter


def enter(*args):
    done = real_enter(*args)
    masks = set()
    for thread in threading.enumerate():
        try:
            masks.add(frozenset(os.sched_getaffinity(thread.native_id)))
        except (OSError, TypeError):
            pass
    held.append((done, masks))
    return done


_engines.ONE_CORE.enter = enter
if __name__ == "__main__":
    grid = {"C": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}
    slow = GilHolder(n=4_000_000)  # enough work left at the probe to be worth a pool start
    ref = GridSearchCV(slow, grid, cv=3, scheduler="sync").fit(X, y)
    before = os.sched_getaffinity(0)
    got = GridSearchCV(slow.set_params(log=sys.argv[1]), grid, cv=3).fit(X, y)
    assert_same_results(ref, got)
    print("moved to processes:", len(calls))
    print("held to one core:", [done and len(masks) == 1 and len(next(iter(masks))) == 1
                                for done, masks in held])
    print("cores back:", os.sched_getaffinity(0) == before)
    with open(sys.argv[1]) as f:
        print("fits:", len(f.read().split()))
"""


def test_default_moves_gil_bound_searches_to_processes(tmp_path):
    # In a fresh interpreter: the probe measures CPU, which other tests'
    # leftover threads and processes must not disturb.
    if _engines.n_workers(None) < 2 or not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs two cores, and per-thread affinity (Linux)")
    script = tmp_path / "move.py"
    script.write_text(MOVE_SCRIPT)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    log = tmp_path / "fits.log"
    out = subprocess.run([sys.executable, str(script), str(log)], cwd=root, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": root})
    assert out.returncode == 0, out.stderr
    assert "moved to processes: 1" in out.stdout
    # The fits are long: one worker process and a thread slot, this process
    # held to one core meanwhile (_OneCore), and given its cores back after.
    assert "held to one core: [True]" in out.stdout
    assert "cores back: True" in out.stdout
    # Fits running on threads at the move finish there and count: nothing
    # is fitted twice (6 candidates x 3 folds, and the refit).
    assert "fits: 19" in out.stdout


def _logged(path, value):
    with open(path, "a") as f:
        f.write(f"{value}\n")
    return value * 10


def test_a_move_runs_the_rest_without_waiting_for_the_threads(tmp_path):
    # At a move, k0 and k1 are still running on threads.  The pool runs
    # every other key first; the threads then deliver k0 only (k1 failed
    # there, say), so k1 runs on the pool last; k0 is not run again.
    log = tmp_path / "ran.log"
    keys = [f"k{i}" for i in range(6)]
    graph = {k: (_logged, str(log), i) for i, k in enumerate(keys)}
    seen_at_settle = []

    def settle():
        seen_at_settle.extend(log.read_text().split())
        return {"k0": "from a thread"}

    values = _engines._run_processes(graph, keys, 2, 1, {}, _engines.Hooks(),
                                     on_threads={"k0", "k1"}, settle=settle)
    assert values == ["from a thread", 10, 20, 30, 40, 50]
    assert sorted(seen_at_settle) == ["2", "3", "4", "5"]
    assert sorted(log.read_text().split()) == ["1", "2", "3", "4", "5"]


def _where(value):
    return value, os.getpid(), threading.current_thread().name


def _shared_here(key):
    from dklearn import _tasks

    return _tasks.Shared(key).value


def test_a_thread_slot_takes_tasks_only_while_free_and_reads_the_callers_data():
    from dklearn._tasks import Const

    gate = Future()  # a task still running on the probe's threads, say
    procs = _engines._Processes({"data-x": Const("the caller's X")}, 2, 1, {})
    slot = _engines._ThreadSlot(1, {}, procs.data)
    slot.hold([gate])
    procs.start(slot)
    try:
        both = procs.executor(7)
        assert type(both).__name__ == "_PoolAndSlot" and procs.processes() == 1
        held = [both.submit(_where, i) for i in range(2)]
        assert os.getpid() not in {f.result(timeout=60)[1] for f in held}  # in the process
        gate.set_result(None)
        freed = [both.submit(_where, i) for i in range(2, 6)]
        places = [f.result(timeout=60) for f in freed]
        assert [value for value, _, _ in places] == [2, 3, 4, 5]
        here = [name for _, pid, name in places if pid == os.getpid()]
        assert here and all(name.startswith("dklearn-slot") for name in here)
        # The slot's thread reads Shared inputs from the caller's objects; no
        # other thread of this process sees them.
        assert both.submit(_shared_here, "data-x").result(timeout=60) == "the caller's X"
        with pytest.raises(KeyError):
            _shared_here("data-x")
    finally:
        procs.close()


def _thread_masks():
    """Affinity of each Python thread of this process, by native id."""
    masks = {}
    for thread in threading.enumerate():
        try:
            masks[thread.native_id] = os.sched_getaffinity(thread.native_id)
        except (OSError, TypeError):  # exited meanwhile, or not started
            pass
    return masks


needs_affinity = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs per-thread affinity (Linux) and two cores",
)


@needs_affinity
def test_one_core_holds_threads_but_the_spared_until_the_last_leave_then_gives_each_its_own():
    stop = threading.Event()
    callers = threading.Thread(target=stop.wait)  # one of the caller's own threads
    callers.start()
    os.sched_setaffinity(callers.native_id, {max(os.sched_getaffinity(0))})  # its own mask
    # Another, which its owner keeps on the very core a search holds threads to.
    cores = sorted(os.sched_getaffinity(0))
    owned = threading.Thread(target=stop.wait)
    owned.start()
    os.sched_setaffinity(owned.native_id, {cores[os.getpid() % len(cores)]})
    me = threading.get_native_id()
    before = _thread_masks()
    try:
        assert _engines.ONE_CORE.enter(spare={callers.native_id, owned.native_id})
        held = _thread_masks()
        assert held[callers.native_id] == before[callers.native_id]  # spared
        assert len({frozenset(m) for t, m in held.items() if t != callers.native_id}) == 1
        assert len(held[me]) == 1
        assert _engines.ONE_CORE.enter(spare={owned.native_id})  # a second search
        assert os.sched_getaffinity(callers.native_id) == held[me]
        started = threading.Thread(target=stop.wait)  # inherits the one core
        started.start()
        assert os.sched_getaffinity(started.native_id) == held[me]
        _engines.ONE_CORE.leave()
        assert _thread_masks()[me] == held[me]  # until the last leave
        _engines.ONE_CORE.leave()
        after = _thread_masks()
        alive = [tid for tid in before if tid in after]  # other tests' threads may end
        assert {tid: after[tid] for tid in alive} == {tid: before[tid] for tid in alive}
        # A thread started meanwhile by a held one gets the process's cores.
        assert after[started.native_id] == before[me]
        assert _engines.ONE_CORE.cores() == before[me]
    finally:
        stop.set()


def _cores():
    return os.sched_getaffinity(0)


@needs_affinity
def test_a_worker_started_while_this_process_is_held_to_one_core_gets_every_core_back():
    # loky may start a worker meanwhile (after a crash, or an idle timeout).
    from dklearn._tasks import Const

    cores = os.sched_getaffinity(0)
    assert _engines.ONE_CORE.enter()
    try:
        procs = _engines._Processes({"data-x": Const(1)}, 1, 1, {}).start()
        try:
            assert procs.pool.submit(_cores).result(timeout=60) == cores
        finally:
            procs.close()
    finally:
        _engines.ONE_CORE.leave()
    assert os.sched_getaffinity(0) == cores


@needs_affinity
def test_a_pool_for_a_gil_bound_slot_holds_this_process_to_one_core_not_its_workers():
    from dklearn._tasks import Const

    cores = os.sched_getaffinity(0)
    before = _engines._children()
    procs = _engines._Processes({"data-x": Const(1)}, 2, 1, {})
    slot = _engines._ThreadSlot(1, {}, procs.data)
    slot.hold([Future()])
    procs.start(slot, one_core=True)
    try:
        assert len(os.sched_getaffinity(0)) == 1
        # Started after this process was held, given every core back at once.
        started = _engines._children() - before
        assert started and all(os.sched_getaffinity(pid) == cores for pid in started)
        assert procs.pool.submit(_cores).result(timeout=60) == cores
    finally:
        procs.close()
    assert os.sched_getaffinity(0) == cores


def test_abandoning_a_pool_with_a_slot_leaves_loky_no_task_half_handed(monkeypatch):
    # Ctrl-C or error_score='raise' kills the workers while tasks are being
    # handed out; loky's manager thread died on a KeyError (printed to
    # stderr) when one had not reached its call queue yet.
    from dklearn._tasks import Const

    errors = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    for _ in range(5):
        procs = _engines._Processes({"data-x": Const(1)}, 2, 1, {})
        slot = _engines._ThreadSlot(1, {}, procs.data)
        slot.hold([Future()])  # everything goes to the process
        procs.start(slot)
        both = procs.executor(100)
        procs.pool.submit(_where, -1).result(timeout=60)  # the worker is up
        for i in range(2):
            both.submit(_where, i)
        procs.abandon()
    time.sleep(1.0)  # the manager threads see the shutdown
    assert errors == []


def _dies_in_a_child(path, parent):
    if os.getpid() != parent:
        os._exit(13)
    with open(path, "a") as f:
        f.write("ran in the caller\n")
    return "survived"


def test_after_a_worker_dies_no_task_runs_in_the_callers_slot(tmp_path, monkeypatch):
    # A task that killed a worker process would kill the caller if the
    # slot ran it: after a death, every task goes to processes.
    executors = []
    real = _engines._attempt

    def attempt(executor, *args):
        executors.append(type(executor(1)).__name__)
        return real(executor, *args)

    monkeypatch.setattr(_engines, "_attempt", attempt)
    log = tmp_path / "log"
    graph = {"a": (_where, 1), "culprit": (_dies_in_a_child, str(log), os.getpid())}
    procs = _engines._Processes(graph, 2, 1, {})
    slot = _engines._ThreadSlot(1, {}, procs.data)
    slot.hold([Future()])  # busy at first, as while the threads finish
    procs.start(slot)
    values = _engines._run_processes(graph, ["a", "culprit"], 2, 1, {},
                                     _engines.Hooks(lost=lambda key, error: "lost"),
                                     started=procs)
    assert values[1] == "lost" and values[0][0] == 1
    assert executors[0] == "_PoolAndSlot" and len(executors) > 1
    assert set(executors[1:]) == {"ProcessPoolExecutor"}
    assert not log.exists()


def test_keys_whose_hand_over_the_move_stopped_are_not_left_to_the_threads():
    # dask calls pretask for every task it fires, then submits them in
    # chunks; once the probe has decided to move, a submit fails, and the
    # keys of that chunk never reach a thread: the processes must run them
    # with the others, not after the threads' stragglers.
    probe = _engines._GilProbe(2, 10, processes=None)
    probe.watcher = threading.current_thread()  # no watcher thread in this test

    def chunk(*keys):  # dask's batch_execute_tasks arguments
        return ([(key, None, None, None, None, None) for key in keys],)

    for key in ("k0", "k1", "k2", "k3"):  # one fire: two chunks of two
        probe.pretask(key, None, None)
    probe.track(lambda fn, *a, **k: Future(), _where, chunk("k0", "k1"), {})
    probe.starved = True
    with pytest.raises(_engines._ThreadsStarved):
        probe.track(lambda fn, *a, **k: Future(), _where, chunk("k2", "k3"), {}).result()
    assert probe.on_threads() == {"k0", "k1"}


def test_meter_reads_a_worker_threads_own_cpu_clock_from_another_thread():
    # The probe's measure: the CPU one worker thread got, read by the watcher
    # thread.  It must equal what the worker's own clock says (not the wall
    # time, not the whole process's CPU), whatever the machine's load.
    def measure(work):
        meters, finished, read = [], threading.Event(), threading.Event()
        own = {}

        def body():
            meters.append(_engines._Meter())
            start = time.thread_time()
            work()
            own["cpu"] = time.thread_time() - start
            finished.set()
            read.wait()  # alive while the other thread reads its clock

        thread = threading.Thread(target=body)
        thread.start()
        while not finished.is_set():  # busy here too: the process's CPU is not the thread's
            pass
        seen = meters[0].cpu()
        read.set()
        thread.join()
        return seen, own["cpu"]

    def spin(seconds=0.3):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    spin_seen, spin_own = measure(spin)
    if spin_seen is None:
        pytest.skip("no per-thread CPU clocks on this platform")
    sleep_seen, sleep_own = measure(lambda: time.sleep(0.3))
    assert spin_own > 0.01
    assert abs(spin_seen - spin_own) < 0.01 + 0.1 * spin_own
    assert sleep_seen < 0.05 and abs(sleep_seen - sleep_own) < 0.01


@pytest.mark.parametrize("n_keys, seconds, expected", [
    (100, None, 1),  # few tasks of unknown cost: one each
    (5000, None, 312),  # many: 8 batches per worker
    (5000, 0.001, 100),  # measured cheap: about 0.1 s of work each
    (5000, 1.0, 1),  # measured expensive: one each
    (40, 0.0001, 2),  # never fewer than 8 batches per worker
])
def test_batch_size(n_keys, seconds, expected):
    assert _engines.batch_size(n_keys, 2, seconds) == expected


class WhereFit(ClassifierMixin, BaseEstimator):
    """A short fit that logs the process it ran in; in a worker process it may fail.

    ``parent`` is the caller's pid: in any other process the fit crashes
    that process the first time (``crash_once``, a marker file) or raises
    (``fail``).  With ``expected``, it raises unless scikit-learn's
    working_memory is that.
    """

    def __init__(self, C=1.0, log=None, parent=None, crash_once=None, fail=False, expected=None,
                 token=None):
        self.C, self.log, self.parent = C, log, parent
        self.crash_once, self.fail, self.expected, self.token = crash_once, fail, expected, token

    def fit(self, X, y):
        time.sleep(0.02)
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write(f"{os.getpid()}\n")
        elsewhere = self.parent is not None and os.getpid() != self.parent
        if elsewhere and self.crash_once is not None and not os.path.exists(self.crash_once):
            open(self.crash_once, "w").close()
            os._exit(13)
        if elsewhere and self.fail:
            raise ValueError("failed in a worker process")
        seen = sklearn.get_config()["working_memory"]
        if self.expected is not None and seen != self.expected:
            raise AssertionError(f"the fit saw working_memory={seen}, not {self.expected}")
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[int(self.C) % len(self.classes_)])


class Unpicklable:
    """A parameter value that copies but does not pickle (a handle, say)."""

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        raise TypeError("cannot pickle an Unpicklable")

    def __dask_tokenize__(self):
        return "Unpicklable"


@pytest.fixture
def hybrid(monkeypatch):
    """The local default engine, made to run final fits of shared graphs in a process at once."""
    if _engines.n_workers(None) < 2:
        pytest.skip("needs two cores")
    monkeypatch.setattr(_engines, "FINALS_PROBE_SECONDS", 0.0)
    monkeypatch.setattr(_engines, "HYBRID_SECONDS", -1.0)
    monkeypatch.setattr(_engines, "HYBRID_SHARE", 2.0)
    monkeypatch.setattr(_engines, "SLOT_SECONDS", 0.0)
    # No Client is the default here (this module's in-process cluster would
    # otherwise be, after a test that left dask's scheduler setting behind).
    with dask.config.set(scheduler=None):
        yield


def _hybrid_pipe(**final):
    return Pipeline([("scale", CountingTransformer(tag="prefix")), ("clf", WhereFit(**final))])


HYBRID_GRID = {"clf__C": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]}


def test_default_runs_shared_prefixes_here_and_final_fits_in_a_process(hybrid, tmp_path):
    log = tmp_path / "pids.log"
    pipe = _hybrid_pipe(log=str(log), expected=123)
    with sklearn.config_context(working_memory=123):
        ref = GridSearchCV(pipe, HYBRID_GRID, cv=3, scheduler="sync").fit(X, y)
        log.unlink()
        reset_calls()
        got = GridSearchCV(pipe, HYBRID_GRID, cv=3, error_score="raise").fit(X, y)
    assert_same_results(ref, got)
    pids = log.read_text().split()
    assert len(pids) == 6 * 3 + 1  # every final fit once, and the refit
    assert set(pids) - {str(os.getpid())}  # some in a worker process, which saw the config
    # The prefix is fitted once per fold (and for the refit), all in this process.
    assert CALLS[("prefix", "fit")] == 3 + 1


def test_default_keeps_quick_final_fits_of_a_shared_graph_on_threads(monkeypatch):
    # Measured at once, the final fits (a millisecond) are far below
    # SLOT_SECONDS: the watcher decides to stay, and no process starts.
    monkeypatch.setattr(_engines, "FINALS_PROBE_SECONDS", 0.0)
    started, pools = [], []
    monkeypatch.setattr(_engines._Processes, "start", lambda self, slot=None, one_core=False: started.append(1))
    real_close = _engines._SharedPool.close

    def close(self, abandon=False):
        pools.append(self)
        real_close(self, abandon)

    monkeypatch.setattr(_engines._SharedPool, "close", close)
    pipe = Pipeline([("pca", PCA(n_components=2)), ("clf", LogisticRegression())])
    grid = {"clf__C": np.logspace(-3, 3, 40)}
    with dask.config.set(scheduler=None):
        GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert not started
    assert [p.staying for p in pools] == [True]


def test_default_raises_a_final_fits_error_from_its_worker_process(hybrid):
    search = GridSearchCV(_hybrid_pipe(parent=os.getpid(), fail=True), HYBRID_GRID, cv=3,
                          error_score="raise")
    with pytest.raises(ValueError, match="failed in a worker process"):
        search.fit(X, y)


def test_default_loses_nothing_when_a_final_fit_kills_its_worker_process(hybrid, tmp_path):
    marker = tmp_path / "crashed"
    pipe = _hybrid_pipe(parent=os.getpid(), crash_once=str(marker))
    ref = GridSearchCV(pipe, HYBRID_GRID, cv=3, scheduler="sync").fit(X, y)
    got = GridSearchCV(pipe, HYBRID_GRID, cv=3).fit(X, y)
    assert marker.exists()  # a worker process died under a fit...
    assert_same_results(ref, got)  # ...which ran again on a new pool, with the rest


@pytest.mark.parametrize("scoring", [None, "accuracy"])
def test_default_runs_final_fits_it_cannot_pickle_in_this_process(hybrid, scoring, monkeypatch):
    # scoring=None: the default scorer holds the estimator, so the data
    # entries cannot be written for workers: no process starts.  "accuracy":
    # they can, and loky fails to pickle the first final task it is given;
    # that task and every later one run in the slot.
    hybrids = []
    real_init = _engines._Hybrid.__init__

    def init(self, *args):
        real_init(self, *args)
        hybrids.append(self)

    monkeypatch.setattr(_engines._Hybrid, "__init__", init)
    pipe = _hybrid_pipe(token=Unpicklable())
    ref = GridSearchCV(pipe, HYBRID_GRID, cv=3, scoring=scoring, scheduler="sync").fit(X, y)
    got = GridSearchCV(pipe, HYBRID_GRID, cv=3, scoring=scoring).fit(X, y)
    assert_same_results(ref, got)
    if scoring is None:
        assert not hybrids
    else:
        assert [h.pool_ok for h in hybrids] == [False]


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_local_mode_opens_no_port(scheduler):
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    seen = set()
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for proc in [me, *me.children(recursive=True)]:
                try:
                    for conn in proc.net_connections(kind="inet"):
                        if conn.status == psutil.CONN_LISTEN:
                            seen.add((proc.pid, conn.laddr))
                except psutil.Error:
                    pass
            time.sleep(0.02)

    before = {c.laddr for c in me.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        grid = {"C": [1.0, 2.0, 3.0]}
        GridSearchCV(GilHolder(n=300_000), grid, cv=3, scheduler=scheduler, n_jobs=2).fit(X, y)
    finally:
        stop.set()
        watcher.join()
    assert {addr for _, addr in seen} <= before


class OpenMPProbe(ClassifierMixin, BaseEstimator):
    """Records the OpenMP thread count its fit would get (per-thread in OpenMP)."""

    seen = []

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        from threadpoolctl import threadpool_info

        OpenMPProbe.seen.extend(
            i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"
        )
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_a_worker_process_imports_the_task_bodies_without_the_searches():
    # A worker's start-up is paid in the middle of a search: what it imports
    # for its initializer and task bodies must not pull in dask and the
    # search classes (0.08-0.1 s), which the package still offers.
    code = (
        "import sys, dklearn._engines, dklearn._tasks\n"
        "loaded = [m for m in ('dask', 'dklearn.model_selection') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "from dklearn import GridSearchCV, Pipeline\n"
        "import dklearn\n"
        "assert GridSearchCV is dklearn.model_selection.GridSearchCV\n"
        "assert 'RandomizedSearchCV' in dir(dklearn)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_worker_threads_cap_openmp_like_blas():
    # OpenMP's limit belongs to each thread: a cap set in the calling thread
    # does not reach pool threads, which must set their own.
    import sklearn.ensemble  # noqa: F401 - loads scikit-learn's OpenMP runtime

    cores = _engines.n_workers(None)
    if cores < 2:
        pytest.skip("needs two cores")
    OpenMPProbe.seen.clear()
    search = GridSearchCV(OpenMPProbe(), {"C": [1.0, 2.0]}, cv=3, scheduler="threads",
                          n_jobs=2, refit=False)  # refit runs in this thread
    search.fit(X, y)
    if not OpenMPProbe.seen:
        pytest.skip("no OpenMP runtime loaded")
    assert set(OpenMPProbe.seen) == {cores // 2}


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_many_independent_fits_run_in_chunks_with_the_same_results(scheduler, monkeypatch):
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    ref = GridSearchCV(LogisticRegression(), grid, cv=3, scheduler="sync").fit(X, y)
    monkeypatch.setattr(_engines, "CHUNK_KEYS", 5)
    monkeypatch.setattr(_engines, "POOL_CHUNK_KEYS", 5)
    sizes, real = [], _engines._chunks

    def spy(graph, keys, size=None):
        for sub, chunk in real(graph, keys, size):
            sizes.append(len(chunk))
            yield sub, chunk

    monkeypatch.setattr(_engines, "_chunks", spy)
    got = GridSearchCV(LogisticRegression(), grid, cv=3, scheduler=scheduler, n_jobs=2).fit(X, y)
    assert_same_results(ref, got)
    assert sizes == [5, 5, 2]  # 4 candidates x 3 folds, 5 at a time


def test_many_independent_tasks_reach_threads_several_at_a_time(monkeypatch):
    # dask's loop costs each task some of this process's GIL, which worker
    # threads running small fits wait for: a search of many hands them over
    # in groups, few enough that neither thread waits long for the other.
    import operator

    submitted = []

    class Counting(_engines.ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            submitted.append(len(args[0]))  # dask's batch_execute_tasks(tasks)
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(_engines, "ThreadPoolExecutor", Counting)
    keys = [f"score-{i}" for i in range(400)]
    graph = {"x": 100, **{k: (operator.add, "x", i) for i, k in enumerate(keys)}}
    assert _engines.run(graph, keys, "threads", 2) == [100 + i for i in range(400)]
    assert sum(submitted) == 400
    assert max(submitted) == _engines.thread_chunksize(400, 2) > 1
    assert len(submitted) >= 2 * _engines.THREAD_CHUNKS_PER_WORKER


def test_threads_get_groups_of_tasks_no_longer_than_the_search_has_shown_them(monkeypatch):
    # The first chunk of a search is handed over by count; later ones hold at
    # most THREAD_CHUNK_SECONDS of work each, as the chunks before measured:
    # long fits are handed over one at a time, so no thread waits at the end.
    submitted = []

    class Counting(_engines.ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            submitted.append([task[0] for task in args[0]])
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(_engines, "ThreadPoolExecutor", Counting)
    monkeypatch.setattr(_engines, "CHUNK_KEYS", 40)
    monkeypatch.setattr(_engines, "THREAD_CHUNKS_PER_WORKER", 4)
    monkeypatch.setattr(_engines, "THREAD_CHUNK_SECONDS", 0.05)
    keys = [f"score-{i}" for i in range(80)]
    graph = {k: (time.sleep, 0.02) for k in keys}
    assert _engines.run(graph, keys, "threads", 2) == [None] * 80
    first = max(len(s) for s in submitted if s[0] in keys[:40])
    later = max(len(s) for s in submitted if s[0] in keys[40:])
    assert first == 40 // (2 * 4)
    assert later <= 2  # 0.05 s / 0.02 s a task, or fewer on a loaded machine


@pytest.mark.parametrize(
    "n_keys, seconds, expected",
    [(500, None, 7), (60, None, 1), (500, 0.005, 7), (500, 0.01, 5), (500, 1.0, 1)],
)
def test_thread_chunksize(n_keys, seconds, expected):
    assert _engines.thread_chunksize(n_keys, 2, seconds) == expected


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_a_chunk_leaves_the_graph_once_it_has_run(scheduler, monkeypatch):
    # The tasks give way to the records as the search goes: a search of
    # 50,000 fits never holds every task and every record at once.
    import operator

    monkeypatch.setattr(_engines, "CHUNK_KEYS", 4)
    monkeypatch.setattr(_engines, "POOL_CHUNK_KEYS", 4)
    keys = [f"score-{i}" for i in range(10)]
    graph = {"x": 100, **{k: (operator.add, "x", i) for i, k in enumerate(keys)}}
    left = {}

    def done(key, value):
        left[key] = sum(k in graph for k in keys)

    values = _engines.run(graph, keys, scheduler, 2, hooks=_engines.Hooks(done=done))
    assert values == [100 + i for i in range(10)]
    assert [left[k] for k in keys] == [10] * 4 + [6] * 4 + [2] * 2
    assert graph == {"x": 100}


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_a_key_requested_twice_in_a_chunked_run_runs_once(scheduler, monkeypatch):
    import operator

    monkeypatch.setattr(_engines, "CHUNK_KEYS", 2)
    monkeypatch.setattr(_engines, "POOL_CHUNK_KEYS", 2)
    graph = {"x": 1, "a": (operator.add, "x", 1), "b": (operator.add, "x", 2),
             "c": (operator.add, "x", 3)}
    runs = []
    hooks = _engines.Hooks(done=lambda key, value: runs.append(key))
    assert _engines.run(graph, ["a", "b", "a", "c", "b"], scheduler, 2, hooks=hooks) == [2, 3, 2, 4, 3]
    assert sorted(runs) == ["a", "b", "c"]


def test_worker_processes_wait_for_the_end_of_a_workers_linger_block():
    # A search's refit runs right after its graph: workers exiting then slow it.
    import operator

    import psutil

    before = {c.pid for c in loky_workers()}
    with _engines.workers_linger():
        assert _engines.run({"a": (operator.add, 1, 1)}, ["a"], "processes", 2) == [2]
        time.sleep(1.0)  # without lingering, they are gone by now
        mine = [c for c in loky_workers() if c.pid not in before]
        assert mine
    gone, alive = psutil.wait_procs(mine, timeout=30)
    assert not alive
