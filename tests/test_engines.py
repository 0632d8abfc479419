"""The engines: one conformance suite run against each, then what the local engine decides.

Every engine must give the same cv_results_ as 'sync', carry the caller's
scikit-learn configuration to its workers, and raise a failing fit's own
exception with error_score='raise'.  The local engine's rule for where work
runs is checked in fresh processes (scripts run as ``__main__``, with their
estimators defined there, as a user's would be): a GIL-bound kind moves to
processes, a kind that releases the GIL stays, a kind too small to gain from
workers runs in the calling thread without trying threads, a tiny search
starts no process, a second search finds its workers warm.  And it leaves the
caller's process as it found it: BLAS limits, CPU affinity, no port.
"""

import os
import subprocess
import sys
import textwrap
import threading
import time
import types

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_info

from dklearn import _engines
from dklearn._engines import limits, local, processes
from dklearn._tasks import Const
from dklearn.model_selection import GridSearchCV

from ._helpers import assert_same_results

# What these tests check does not change with scikit-learn's release: CI runs
# them with the newest release only (see .ci/run).
pytestmark = pytest.mark.engine

X, y = make_classification(n_samples=90, n_features=6, random_state=0)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


@pytest.fixture(autouse=True)
def no_default_client():
    """No dask Client is the default.  A client made in a task on the in-process
    cluster (whose workers are threads of this process) may be left as the
    process's default: a later search would run there (seen once, in a full run)."""
    import dask

    with dask.config.set(scheduler=None):
        yield


@pytest.fixture(params=["sync", "threads", "processes", "default", "cluster"])
def scheduler(request):
    if request.param == "cluster":
        return request.getfixturevalue("local_cluster")
    request.getfixturevalue("no_default_client")
    return None if request.param == "default" else request.param


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
    with pytest.raises(AssertionError, match="worker saw working_memory") as error:
        search.fit(X, y)
    if scheduler == "processes":  # the worker's traceback comes along
        assert "in fit" in str(error.value.__cause__)


def test_a_fit_that_raises_in_a_worker_process_shows_where_it_raised():
    # In a fresh process: where tblib is loaded (dask's distributed loads it),
    # tracebacks pickle, and the worker's frames came along without the cause.
    out = _run_script("""
        import traceback
        class FailsInFit(PythonLoop):
            def fit(self, X, y):
                raise ValueError("the user's own failing line")
        try:
            GridSearchCV(FailsInFit(), GRID, cv=2, error_score="raise",
                         scheduler="processes").fit(X, y)
        except ValueError as error:
            print("".join(traceback.format_exception(error)))
    """)
    worker_side = out.partition("RemoteTraceback")[2]
    assert ", in fit\n" in worker_side, out  # the user's fit, in its worker


class Monitor:
    """A fit parameter that a fit writes into, as LightGBM's early stopping callback does."""

    def __init__(self):
        self.steps = 0


class Monitored(LogisticRegression):
    def fit(self, X, y, monitor=None):
        monitor.steps = 0
        for _ in range(20):
            monitor.steps += 1
            time.sleep(0.001)  # another fit on another thread runs meanwhile
        self.steps_ = monitor.steps
        return super().fit(X, y)

    def score(self, X, y):
        return self.steps_


def test_fits_at_the_same_time_get_their_own_copy_of_a_fit_parameter_object(scheduler):
    # scikit-learn's loop hands the object to one fit at a time, its workers
    # each get a copy: no fit sees another's writes.
    search = GridSearchCV(Monitored(), {"C": [0.1, 1.0, 10.0]}, cv=3, scheduler=scheduler,
                          n_jobs=2, error_score="raise")
    search.fit(X, y, monitor=Monitor())
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], [20, 20, 20])


class CodedError(Exception):
    """An exception its own ``args`` cannot rebuild: it pickles, but does not load."""

    def __init__(self, code, detail):
        super().__init__(f"code={code} detail={detail}")


class LockedError(Exception):
    """An exception that does not pickle at all."""

    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


class RaisesInFit(LogisticRegression):
    def fit(self, X, y):
        if self.C == 1.0:
            raise CodedError(3, "bad")
        raise LockedError("locked")


@pytest.mark.parametrize("C, error, message", [(1.0, CodedError, "code=3 detail=bad"),
                                               (2.0, LockedError, "locked")])
def test_an_exception_a_worker_process_cannot_send_back_is_still_raised_as_itself(
        C, error, message):
    # scikit-learn's own loop raises it; its process pool would break on it
    search = GridSearchCV(RaisesInFit(), {"C": [C]}, cv=3, scheduler="processes",
                          error_score="raise")
    with pytest.raises(error, match=message):
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


class WhereFit(ClassifierMixin, BaseEstimator):
    """Records the thread and process each fit ran in, and the CPUs it could use."""

    seen = []

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        WhereFit.seen.append((os.getpid(), threading.current_thread().name,
                              frozenset(os.sched_getaffinity(0))))
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_joblib_parallel_config_sets_workers_and_backend(no_default_client):
    WhereFit.seen = []
    with joblib.parallel_config(n_jobs=1):  # n_jobs=None follows it: one worker, this thread
        GridSearchCV(WhereFit(), {"C": [1.0, 2.0]}, cv=2, refit=False).fit(X, y)
    assert {name for _, name, _ in WhereFit.seen} == {threading.current_thread().name}
    WhereFit.seen = []
    with joblib.parallel_config(backend="threading"):
        GridSearchCV(WhereFit(), {"C": [1.0, 2.0]}, cv=2, refit=False).fit(X, y)
    assert all(name.startswith("dklearn") for _, name, _ in WhereFit.seen)


def test_joblib_parallel_config_dask_backend_runs_on_that_cluster(local_cluster):
    distributed = pytest.importorskip("distributed")
    with distributed.get_task_stream(client=local_cluster) as stream, \
            local_cluster.as_current(), joblib.parallel_config(backend="dask"):
        GridSearchCV(LogisticRegression(), {"C": [1.0, 2.0]}, cv=2).fit(X, y)
    keys = [t["key"] for t in stream.data if isinstance(t["key"], str)]
    assert sum(k.startswith("score-LogisticRegression") for k in keys) == 4


def test_no_cpu_affinity_changes():
    before = {t.native_id: os.sched_getaffinity(t.native_id) for t in threading.enumerate()}
    WhereFit.seen = []
    GridSearchCV(WhereFit(), {"C": [1.0, 2.0, 3.0]}, cv=3, scheduler="threads").fit(X, y)
    assert {cpus for _, _, cpus in WhereFit.seen} == {frozenset(os.sched_getaffinity(0))}
    after = {t.native_id: os.sched_getaffinity(t.native_id) for t in threading.enumerate()
             if t.native_id in before}
    assert after == before


def _blas_threads():
    return sorted((i["filepath"], i["num_threads"]) for i in threadpool_info()
                  if i["user_api"] == "blas")


def test_blas_limits_restored_whatever_the_order_searches_end():
    original = _blas_threads()
    first, second = limits.blas_cap(1), limits.blas_cap(1)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first to start ends first
    assert all(n == 1 for _, n in _blas_threads())  # the second still runs capped
    second.__exit__(None, None, None)
    assert _blas_threads() == original


class Sleepy(ClassifierMixin, BaseEstimator):
    def __init__(self, C=1.0, delay=0.05):
        self.C, self.delay = C, delay

    def fit(self, X, y):
        import time

        time.sleep(self.delay)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_overlapping_searches_from_two_threads_restore_blas_limits():
    original = _blas_threads()
    errors = []

    def search(delay):
        try:
            GridSearchCV(Sleepy(delay=delay), {"C": [1.0, 2.0]}, cv=3, n_jobs=2,
                         scheduler="threads").fit(X, y)
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    runs = [threading.Thread(target=search, args=(d,)) for d in (0.05, 0.02)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert not errors
    assert _blas_threads() == original


def test_blas_caps_hold_and_release_whichever_threads_set_them():
    # In a fresh process: threadpoolctl (3.8) lets only the thread that first
    # set OpenBLAS's pool set it again, until it releases it.  The caps of
    # searches started and ended in different threads must take effect, be
    # undone, and leave the user's own limits in any thread working.
    out = _run_script("""
        import threading
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_info, threadpool_limits
        def blas():
            return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
        SEEN = []
        class SeesBlas(PythonLoop):
            def fit(self, X, y):
                SEEN.append(max(blas()))
                return super().fit(X, y)
        before = blas()
        GridSearchCV(LogisticRegression(), {"C": [1.0, 2.0]}, cv=3, scheduler="threads").fit(X, y)
        def user_thread():
            with threadpool_limits(limits=1):
                print("user limit in a thread:", blas())
        t = threading.Thread(target=user_thread); t.start(); t.join()
        def search(n):
            GridSearchCV(SeesBlas(n=n), {"C": [1.0, 2.0]}, cv=3, scheduler="threads",
                         refit=False).fit(X, y)  # a refit runs under the caller's limits
        runs = [threading.Thread(target=search, args=(n,)) for n in (300_000, 100_000)]
        [r.start() for r in runs]; [r.join() for r in runs]
        print("during:", sorted(set(SEEN)), "before:", before, "after:", blas())
    """)
    before = out.split("before: ")[1].split(" after:")[0]
    if before.strip("[]").split(", ") in (["1"], ["1", "1"]):
        pytest.skip("BLAS has one thread already")
    assert "user limit in a thread: [" in out and all(
        n.strip() == "1" for n in out.split("user limit in a thread: [")[1].split("]")[0].split(","))
    assert "during: [1]" in out, out
    assert out.split("after: ")[1].split("\n")[0] == before, out


@pytest.mark.parametrize("scheduler", [None, "threads", "processes"])
def test_a_search_leaves_blas_and_openmp_threads_as_it_found_them(scheduler):
    # Tasks run in this thread too (glue, small fits): it caps its own OpenMP
    # threads for them, and restoring that cap must not touch BLAS.
    original = sorted((i["filepath"], i["num_threads"]) for i in threadpool_info())
    if all(n <= 1 for _, n in original):
        pytest.skip("one thread per library already: nothing to restore")
    GridSearchCV(LogisticRegression(), {"C": [1.0, 2.0]}, cv=3, scheduler=scheduler,
                 n_jobs=max(joblib.cpu_count(), 2)).fit(X, y)
    assert sorted((i["filepath"], i["num_threads"]) for i in threadpool_info()) == original


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_local_mode_opens_no_port(scheduler):
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    before = {c.laddr for c in me.net_connections(kind="inet")}
    GridSearchCV(LogisticRegression(), {"C": [1.0, 2.0]}, cv=2, scheduler=scheduler).fit(X, y)
    after = {c.laddr for c in me.net_connections(kind="inet")}
    assert after <= before
    for child in me.children(recursive=True):
        try:
            assert not child.net_connections(kind="inet")
        except (psutil.NoSuchProcess, FileNotFoundError):  # it left meanwhile
            pass


def test_a_worker_process_imports_the_task_bodies_without_dask_or_the_searches():
    # In a fresh process: here, the zygote has imported the modules earlier
    # tests' estimators came from (this one among them, which imports dask).
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        from dklearn import _engines
        from dklearn._engines import local
        from dklearn._tasks import Const
        # Defined outside any importable module, so that it travels by value and
        # its unpickling imports nothing.
        probe = eval("lambda names: sorted(m for m in names.value "
                     "if m in __import__('sys').modules)",
                     {"__name__": "not_an_importable_module"})
        names = ("dask", "distributed", "dklearn.model_selection", "dklearn._plan")
        [found] = local.run({"probe": (probe, Const(names))}, ["probe"], {"probe": "probe"},
                            "processes", 1, _engines.Options(), _engines.Hooks())
        print("imported in the worker:", found)
    """)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    assert "imported in the worker: []" in out.stdout


def test_a_worker_process_running_a_searchs_tasks_imports_neither_dask_nor_the_searches():
    # The tasks of a real graph: a pipeline whose first step gets a fit parameter,
    # a union of branches; the last step says what its worker has imported.
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys
        import numpy as np
        from sklearn.base import BaseEstimator, ClassifierMixin
        from sklearn.pipeline import make_pipeline, make_union
        from sklearn.preprocessing import StandardScaler, MinMaxScaler
        from dklearn.model_selection import GridSearchCV

        class Looks(ClassifierMixin, BaseEstimator):
            def __init__(self, a=1):
                self.a = a

            def fit(self, X, y):
                names = ("dask", "distributed", "dklearn.model_selection", "dklearn._plan",
                         "dklearn._search", "dklearn._evaluate")
                raise RuntimeError(f"imported: {[m for m in names if m in sys.modules]}")

        X, y = np.random.RandomState(0).normal(size=(40, 3)), np.arange(40) % 2
        pipe = make_pipeline(StandardScaler(), make_union(StandardScaler(), MinMaxScaler()),
                             Looks())
        search = GridSearchCV(pipe, {"looks__a": [1, 2]}, cv=2, error_score="raise",
                              scheduler="processes", n_jobs=1)
        try:
            search.fit(X, y, standardscaler__sample_weight=np.ones(40))
        except RuntimeError as error:
            print("in the worker,", error)
    """)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    assert "in the worker, imported: []" in out.stdout, out.stdout


class OpenMPProbe(ClassifierMixin, BaseEstimator):
    """Fails unless OpenMP in the fitting thread is capped like BLAS."""

    def __init__(self, C=1.0, expected=1):
        self.C, self.expected = C, expected

    def fit(self, X, y):
        from threadpoolctl import threadpool_info

        openmp = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"]
        if openmp and set(openmp) != {self.expected}:
            raise AssertionError(f"OpenMP runs {openmp} threads here")
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_workers_cap_openmp_like_blas(scheduler):
    workers = _engines.n_workers(None)
    expected = max(joblib.cpu_count() // workers, 1)
    GridSearchCV(OpenMPProbe(expected=expected), {"C": [1.0, 2.0]}, cv=2,
                 scheduler=scheduler, error_score="raise", refit=False).fit(X, y)


class Unpicklable:
    """A parameter value that copies but does not pickle (a handle, say)."""

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        raise TypeError("cannot pickle an Unpicklable")

    def __dask_tokenize__(self):
        return "Unpicklable"


class Holding(ClassifierMixin, BaseEstimator):
    def __init__(self, handle=None, C=1.0):
        self.handle, self.C = handle, C

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[int(self.C) % 2])


def test_a_task_that_cannot_be_pickled_raises_at_once_on_processes():
    search = GridSearchCV(Holding(handle=Unpicklable()), {"C": [1.0, 2.0]}, cv=2,
                          scheduler="processes")
    with pytest.raises(processes.TaskNotSendable, match="cannot be pickled"):
        search.fit(X, y)


def test_a_task_a_worker_cannot_read_raises_at_once_on_processes():
    # A class whose module this process has but a worker cannot import.
    phantom = types.ModuleType("dklearn_phantom_module")
    exec("from tests.test_engines import Holding\nclass Phantom(Holding):\n    pass\n",
         phantom.__dict__)
    sys.modules["dklearn_phantom_module"] = phantom
    try:
        search = GridSearchCV(phantom.Phantom(), {"C": [1.0, 2.0]}, cv=2, scheduler="processes")
        with pytest.raises(processes.TaskNotSendable, match="could not read the task"):
            search.fit(X, y)
    finally:
        del sys.modules["dklearn_phantom_module"]


def test_workers_that_cannot_start_raise_at_once_and_are_no_failed_fit(monkeypatch):
    monkeypatch.setattr(processes, "_WARM", [])
    monkeypatch.setattr(processes, "_ZYGOTE", None)
    monkeypatch.setattr(processes.sys, "executable", "/bin/false")
    search = GridSearchCV(LogisticRegression(), {"C": [1.0, 2.0]}, cv=2, scheduler="processes")
    with pytest.raises(processes.WorkerUnavailable):
        search.fit(X, y)


# ---------------------------------------------------------------------------
# The cost model's decisions, in fresh processes, on code as users write it
# ---------------------------------------------------------------------------

USER_ESTIMATORS = """
import os, sys, time
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.datasets import make_classification
from dklearn.model_selection import GridSearchCV

class PythonLoop(ClassifierMixin, BaseEstimator):
    # Spends its fit in a pure-Python loop: it holds the GIL.
    def __init__(self, n=1_500_000, C=1.0, log=None):
        self.n, self.C, self.log = n, C, log
    def fit(self, X, y):
        total = 0
        for i in range(self.n):
            total += i % 7
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{os.getpid()}\\n")
        self.classes_ = np.unique(y)
        return self
    def predict(self, X):
        return np.full(len(X), self.classes_[int(self.C) % 2])

class MatrixWork(PythonLoop):
    # Spends its fit in BLAS, which releases the GIL.
    def fit(self, X, y):
        a = np.random.RandomState(0).normal(size=(300, 300))
        for _ in range(self.n // 100_000):
            a = np.tanh(a @ a / 300)
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{os.getpid()}\\n")
        self.classes_ = np.unique(y)
        return self

def pids(log):
    with open(log) as f:
        found = f.read().split()
    os.remove(log)
    return found

X, y = make_classification(n_samples=100, random_state=0)
GRID = {"C": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}
"""


def _run_script(body, *args, timeout=240):
    script = textwrap.dedent(USER_ESTIMATORS) + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr  # the engine's decisions go to stderr


needs_two_cores = pytest.mark.skipif(joblib.cpu_count() < 2, reason="needs two cores")


@needs_two_cores
def test_a_gil_bound_kind_moves_to_processes_a_blas_bound_one_stays(tmp_path):
    log = str(tmp_path / "pids")
    out = _run_script("""
        me = str(os.getpid())
        # Workers warm (a search on processes leaves them), so that the move
        # does not depend on how long this machine takes to start them.
        GridSearchCV(PythonLoop(n=10), {"C": [1.0]}, cv=2, scheduler="processes").fit(X, y)
        GridSearchCV(PythonLoop(log=sys.argv[1]), GRID, cv=3, verbose=1).fit(X, y)
        print("python loop, fits elsewhere:", sum(p != me for p in pids(sys.argv[1])))
        # Workers are warm now: moving would cost nothing, and still gains nothing.
        GridSearchCV(MatrixWork(log=sys.argv[1]), GRID, cv=3, verbose=1).fit(X, y)
        print("matrix work, fits elsewhere:", sum(p != me for p in pids(sys.argv[1])))
    """, log)
    assert "'score PythonLoop' -> processes" in out
    moved = int(out.split("python loop, fits elsewhere:")[1].split()[0])
    assert moved >= 12  # most of the 18 fits (those started before the move ran here)
    assert "matrix work, fits elsewhere: 0" in out
    assert "'score MatrixWork' ->" not in out


@pytest.mark.parametrize("workers", [2, 4])
def test_while_workers_start_a_kind_that_left_the_threads_leaves_them_a_core(workers):
    # The rule itself, fed what a GIL-bound kind measures on the threads
    # (a quarter of its wall time on a core, so the threads used one core
    # together): it moves to processes, and while they start it goes on
    # with at most N - 1 tasks out, so that their start has a core.
    from dklearn._engines import cost

    kind = f"score GilBound{workers}"
    router = cost.Router(workers, None, {kind: 100})
    state = router.kinds[kind]
    state.probing = False  # as after a probe that fanned it out to the threads
    for _ in range(10):
        router.started(kind)
        router.ended(kind)
        router.finished(kind, "threads", 0.05 * workers, 0.05)
    assert state.place == "processes" and state.came_from == "threads"
    assert router.wants_processes()  # the loop starts them now
    for _ in range(workers - 1):
        assert router.places(kind) == ("processes", "threads")
        router.started(kind)
    assert router.places(kind) == ()  # N - 1 out: the next waits
    router.ended(kind)
    assert router.places(kind) == ("processes", "threads")
    router.warm_workers(1)
    assert router.places(kind) == ("processes",)


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_a_fits_own_joblib_calls_run_on_threads_in_a_worker(scheduler, tmp_path):
    # As joblib runs them inside its own workers: a OneVsRest(n_jobs=2) in each
    # worker process started a pool of processes of its own, which outlived
    # the search (and took 5x scikit-learn's time).
    out = _run_script("""
        import joblib, psutil, threading
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.tree import DecisionTreeClassifier
        class Inner(PythonLoop):
            def fit(self, X, y):
                with open(self.log, "a") as f:
                    f.write(type(joblib.parallel.get_active_backend()[0]).__name__ + "\\n")
                return super().fit(X, y)
        GridSearchCV(Inner(n=10, log=sys.argv[1]), GRID, cv=3, scheduler=sys.argv[2],
                     refit=False).fit(X, y)
        print("backends", sorted(set(w for w in open(sys.argv[1]).read().split()
                                     if not w.isdigit())))  # PythonLoop logs its pid too
        Xm, ym = make_classification(n_samples=120, n_classes=3, n_informative=4, random_state=0)
        GridSearchCV(OneVsRestClassifier(DecisionTreeClassifier(), n_jobs=2),
                     {"estimator__max_depth": [2, 3]}, cv=3, scheduler=sys.argv[2],
                     refit=False).fit(Xm, ym)
        me = psutil.Process()
        print("pools in workers", sum(p.ppid() != me.pid and "loky" in " ".join(p.cmdline())
                                      for p in me.children(recursive=True)))
    """, str(tmp_path / "backends"), scheduler)
    assert "backends ['ThreadingBackend']" in out, out
    assert "pools in workers 0" in out, out


def test_a_fixed_place_decides_nothing_and_the_callers_state_is_left_alone():
    out = _run_script("""
        import psutil, random
        from dklearn._engines import processes
        class Prints(PythonLoop):
            def fit(self, X, y):
                print("fitting")
                return super().fit(X, y)
        random.seed(0)
        expected = random.random()
        random.seed(0)
        # GIL-bound fits the default would move to processes: 'threads' keeps them.
        GridSearchCV(PythonLoop(), GRID, cv=3, scheduler="threads", verbose=1).fit(X, y)
        print("children:", len(psutil.Process().children()), processes._ZYGOTE)
        # The default's probe looks at random times, from a generator of its own.
        GridSearchCV(PythonLoop(), GRID, cv=3).fit(X, y)
        print("random state kept:", random.random() == expected)
        stdout, sys.stdout = sys.stdout, None  # as under pythonw: printing drops it
        GridSearchCV(Prints(n=10), GRID, cv=3, scheduler="processes").fit(X, y)
        sys.stdout = stdout
        print("no stdout: done")
    """)
    assert "children: 0 None" in out and "->" not in out, out
    assert "random state kept: True" in out
    assert "no stdout: done" in out


def test_a_tiny_search_starts_no_process():
    out = _run_script("""
        import psutil
        from sklearn.datasets import load_iris
        from sklearn.svm import SVC
        from dklearn._engines import processes
        Xi, yi = load_iris(return_X_y=True)
        GridSearchCV(SVC(), {"C": [0.1, 1, 10], "kernel": ["linear", "rbf"]}).fit(Xi, yi)
        print("children:", len(psutil.Process().children()), processes._ZYGOTE)
    """)
    assert "children: 0 None" in out


@needs_two_cores
def test_while_workers_start_a_moved_kind_goes_on_here_and_stops_once_they_are_ready(tmp_path):
    # A fresh process: the move to processes waits for the workers' start.
    # Meanwhile the kind's fits go on in this process one at a time; once a
    # worker is ready, no more start here (the loop looks between two fits).
    log = str(tmp_path / "fits")
    out = _run_script("""
        import threading
        class Logged(PythonLoop):
            def fit(self, X, y):
                start = time.perf_counter()
                log, self.log = self.log, None
                super().fit(X, y)
                with open(log, "a") as f:
                    f.write(f"{os.getpid()} {start} {time.perf_counter()}\\n")
                return self
        GridSearchCV(Logged(n=12_000_000, log=sys.argv[1]), GRID, cv=3, refit=False,
                     verbose=1).fit(X, y)
        print("pid", os.getpid())
    """, log)
    assert "'score Logged' -> processes" in out, out
    me = out.split("pid ")[1].split()[0]
    with open(log) as f:
        fits = [line.split() for line in f]
    here = sorted((float(start), float(end)) for pid, start, end in fits if pid == me)
    # perf_counter is the system's monotonic clock: comparable across processes.
    workers_began = min(float(start) for pid, start, _ in fits if pid != me)
    assert here and all(start < workers_began for start, _ in here), (here, workers_began)
    assert all(a[1] <= b[0] for a, b in zip(here, here[1:])), here  # one at a time


def test_two_searches_starting_worker_processes_at_once_both_finish():
    # Both wait for the one zygote to say it is ready: one reads its message,
    # and the other must hear it too, not wait on its socket for good.
    out = _run_script("""
        import threading
        from sklearn.linear_model import LogisticRegression
        from dklearn._engines import processes
        def search():
            GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0, 10.0]}, cv=3,
                         scheduler="processes", n_jobs=2).fit(X, y)
        for _ in range(4):
            processes._shut_down()  # cold: no zygote, no idle worker
            runs = [threading.Thread(target=search, daemon=True) for _ in range(2)]
            for run in runs:
                run.start()
            for run in runs:
                run.join(60)
            if any(run.is_alive() for run in runs):
                print("a search waits for good")
                os._exit(0)
        print("both finished, 4 times")
    """)
    assert "both finished, 4 times" in out, out


SEEN = []  # the C of each fit, in the order they were made (fits copy their params)


class OrderRecorder(ClassifierMixin, BaseEstimator):
    def __init__(self, C=0):
        self.C = C

    def fit(self, X, y):
        SEEN.append(self.C)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_the_first_tasks_the_cost_model_times_are_a_sample_not_the_grids_first_candidates():
    # A grid often orders its candidates by cost (C, a bandwidth, a depth
    # rising): timing its first candidates would misjudge the kind.
    seen = SEEN
    seen.clear()
    GridSearchCV(OrderRecorder(), {"C": list(range(20))}, cv=2, refit=False).fit(X, y)
    assert sorted(seen) == sorted(list(range(20)) * 2)
    assert sorted(seen[:4]) != [0, 0, 1, 1], seen[:4]  # the grid's first candidates
    # 'sync' keeps scikit-learn's order of fits.
    seen.clear()
    GridSearchCV(OrderRecorder(), {"C": list(range(20))}, cv=2, refit=False,
                 scheduler="sync").fit(X, y)
    assert seen == [c for c in range(20) for _ in range(2)]


@needs_two_cores
def test_one_slow_first_call_does_not_send_small_fits_to_processes():
    # A class's first calls pay imports and set-up, in whichever fit makes
    # them: a GIL-bound kind of 10 ms fits, one of which took ten times as
    # long on the probe's thread and another thirty times in the calling
    # thread, must still be judged a kind of 10 ms fits (here, not processes).
    out = _run_script("""
        import psutil, threading
        from dklearn._engines import processes
        CALLS = []
        class FirstCallsSlow(PythonLoop):
            def fit(self, X, y):
                CALLS.append(threading.current_thread().name)
                # The second fit (on the probe's thread), and the first in
                # the calling thread, pay set-up.
                first_here = CALLS.count("MainThread") == 1 and CALLS[-1] == "MainThread"
                self.n = 1_000_000 if len(CALLS) == 2 else 100_000
                self.n = 3_000_000 if first_here else self.n
                return super().fit(X, y)
        # 36 fits: on this machine's slow minutes (fits of 20 ms, not 10) they
        # still take less here than the workers' start; judged by a slow call,
        # they would not.
        GridSearchCV(FirstCallsSlow(), {"C": list(range(12))}, cv=3, verbose=1).fit(X, y)
        print("children:", len(psutil.Process().children()), processes._ZYGOTE)
    """)
    assert "'score FirstCallsSlow' -> here" in out, out
    assert "-> processes" not in out and "children: 0 None" in out, out


@needs_two_cores
def test_a_kind_runs_one_task_at_a_time_until_it_is_worth_a_sample_on_threads():
    out = _run_script("""
        import threading
        SEEN = []
        class Quick(ClassifierMixin, BaseEstimator):
            def __init__(self, C=1.0, delay=0.0):
                self.C, self.delay = C, delay
            def fit(self, X, y):
                start = time.perf_counter()
                time.sleep(self.delay)
                SEEN.append((threading.current_thread().name, start, time.perf_counter()))
                self.classes_ = np.unique(y)
                return self
            def predict(self, X):
                return np.full(len(X), self.classes_[0])
        class Slow(Quick):
            pass
        def overlaps():
            spans = sorted((a, b) for _, a, b in SEEN)
            return sum(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
        # 30 fits of a millisecond: all of them could gain less than a sample costs.
        GridSearchCV(Quick(), {"C": list(range(10))}, cv=3, verbose=1).fit(X, y)
        print("quick: off the calling thread", sum(n != "MainThread" for n, _, _ in SEEN),
              "overlapping", overlaps())
        SEEN.clear()
        # 8 fits of 0.4 s that let go of the GIL: the first has run a sample long
        # before it ends, and the others start beside it.
        GridSearchCV(Slow(delay=0.4), {"C": [1, 2, 3, 4]}, cv=2, verbose=1).fit(X, y)
        first = min(SEEN, key=lambda s: s[1])
        print("slow: overlapping", overlaps(),
              "second started before the first ended", sorted(s[1] for s in SEEN)[1] < first[2])
    """)
    assert "'score Quick' -> here" in out and "could gain at most" in out
    # Two tasks ran on a thread, one at a time (the first call of a class
    # may pay its imports: two tell its time); the rest ran here.
    assert "quick: off the calling thread 2 overlapping 0" in out
    assert "'score Slow' fans out to 2 threads" in out
    assert "second started before the first ended True" in out
    assert "slow: overlapping 0" not in out


@needs_two_cores
def test_a_kind_that_holds_the_gil_never_tries_two_threads():
    out = _run_script("""
        import threading
        SEEN = []
        class Spans(PythonLoop):
            def fit(self, X, y):
                start = time.perf_counter()
                super().fit(X, y)
                SEEN.append((threading.current_thread().name, start, time.perf_counter()))
                return self
        # 80 fits of pure Python (10-20 ms): enough to be worth a sample on
        # 2 threads, if threads could run them side by side.  Fits that run
        # in worker processes (the rule may send them there) are not seen here.
        GridSearchCV(Spans(n=600_000), {"C": list(range(20))}, cv=4, verbose=1).fit(X, y)
        spans = sorted((a, b) for _, a, b in SEEN)
        print("overlapping in this process", sum(b[0] < a[1] for a, b in zip(spans, spans[1:])),
              "on threads", sum(n != "MainThread" for n, _, _ in SEEN))
    """)
    assert ("'score Spans' -> here: the GIL was held at" in out
            or "'score Spans' -> processes: the GIL was held at" in out)
    assert "fans out" not in out
    assert "overlapping in this process 0 " in out
    assert int(out.split("on threads")[1].split()[0]) < 20  # the probe's tasks only

    # A kind that lets the GIL go (BLAS) fans out on its looks.
    out = _run_script("""
        GridSearchCV(MatrixWork(n=3_000_000), {"C": list(range(8))}, cv=2, verbose=1).fit(X, y)
    """)
    assert "'score MatrixWork' fans out to 2 threads" in out
    # Mostly free (a late look also comes from this machine's other load: 6 of
    # 16 were, in a slow minute).
    held, looks = out.split("the GIL was held at ")[1].split(" looks")[0].split(" of ")
    assert int(held) * 2 < int(looks), out


@needs_two_cores
def test_ctrl_c_during_a_search_on_threads_stops_it_at_once_and_restores_blas_limits():
    # In a process of its own: the interrupt must not reach pytest.
    out = _run_script("""
        import signal, threading
        from threadpoolctl import threadpool_info
        MAIN, SENT, CAPPED = threading.main_thread().ident, threading.Event(), []
        def blas():
            return sorted((i["filepath"], i["num_threads"]) for i in threadpool_info()
                          if i["user_api"] == "blas")
        class Interrupted(ClassifierMixin, BaseEstimator):
            def __init__(self, C=1.0):
                self.C = C
            def fit(self, X, y):
                CAPPED.append(all(n == 1 for _, n in blas()))
                if not SENT.is_set():  # once: the fit left running must not press it again
                    SENT.set()
                    signal.pthread_kill(MAIN, signal.SIGINT)  # Ctrl-C reaches the main thread
                time.sleep(30)
                self.classes_ = np.unique(y)
                return self
            def predict(self, X):
                return np.full(len(X), self.classes_[0])
        before = blas()
        start = time.perf_counter()
        try:
            GridSearchCV(Interrupted(), {"C": [1.0, 2.0]}, cv=2, scheduler="threads",
                         n_jobs=2).fit(X, y)
            interrupted = False
        except KeyboardInterrupt:
            interrupted = time.perf_counter() - start < 15
        # One write each: the fit left running may still be printing.
        sys.stdout.write(f"interrupted before the fits ended: {interrupted}\\n"
                         f"capped inside: {CAPPED[0]}\\n"
                         f"more than one BLAS thread before: {any(n > 1 for _, n in before)}\\n"
                         f"restored: {blas() == before}\\n")
        sys.stdout.flush()
    """)
    if "more than one BLAS thread before: False" in out:
        pytest.skip("BLAS ran one thread already: a cap would not show")
    assert "capped inside: True" in out
    assert "interrupted before the fits ended: True" in out
    assert "restored: True" in out


def test_a_second_search_finds_its_workers_warm(tmp_path):
    log = str(tmp_path / "pids")
    out = _run_script("""
        import psutil
        search = GridSearchCV(PythonLoop(n=1000, log=sys.argv[1]), GRID, cv=2, n_jobs=2,
                              scheduler="processes")
        search.fit(X, y)
        first = set(pids(sys.argv[1]))
        starters = psutil.Process().children()
        search.fit(X, y)
        second = set(pids(sys.argv[1]))
        print("same workers:", second <= first, len(first))
        print("no process started:", psutil.Process().children() == starters)
    """, log)
    assert "same workers: True" in out
    assert "no process started: True" in out


class InnerSearch(ClassifierMixin, BaseEstimator):
    """An estimator that runs a dklearn search of its own when fitted (nested CV)."""

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        WhereFit.seen.append(("outer", threading.current_thread().name, None))
        GridSearchCV(WhereFit(), {"C": [1.0, 2.0]}, cv=2, refit=False).fit(X, y)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_a_search_inside_a_task_runs_in_that_tasks_thread(no_default_client):
    WhereFit.seen = []
    GridSearchCV(InnerSearch(), {"C": [1.0]}, cv=2, scheduler="threads", refit=False).fit(X, y)
    outer = [name for pid, name, _ in WhereFit.seen if pid == "outer"]
    inner = {name for pid, name, _ in WhereFit.seen if pid != "outer"}
    assert len(outer) == 2 and inner <= set(outer)


class Talker(ClassifierMixin, BaseEstimator):
    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        import warnings

        print(f"fitted C={self.C}")
        warnings.warn(f"a warning from fit C={self.C}", UserWarning)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_what_a_task_prints_and_warns_in_a_worker_process_reaches_the_caller(capsys):
    with pytest.warns(UserWarning, match="a warning from fit C=2.0"):
        GridSearchCV(Talker(), {"C": [1.0, 2.0]}, cv=2, scheduler="processes",
                     refit=False).fit(X, y)
    assert capsys.readouterr().out.count("fitted C=2.0") == 2


def test_no_temporary_file_is_left_whatever_way_a_search_ends(tmp_path):
    # Arrays of 1 MB or more are memory-mapped from a temporary folder: it
    # must go after a search that ends well, one that raised at once (a task
    # that cannot be pickled), and one whose fit raised with error_score='raise';
    # the folder of a process killed outright goes with the next search.
    script = tmp_path / "user.py"
    script.write_text(textwrap.dedent("""
        import threading
        import numpy as np
        from sklearn.base import BaseEstimator, ClassifierMixin
        from sklearn.linear_model import LogisticRegression
        from dklearn.model_selection import GridSearchCV

        class Fails(ClassifierMixin, BaseEstimator):
            def __init__(self, C=1.0, lock=None):
                self.C, self.lock = C, lock
            def fit(self, X, y):
                raise ArithmeticError("as a user's fit may")

        rng = np.random.RandomState(0)
        X = rng.normal(size=(2000, 100))           # 1.6 MB: memory-mapped
        y = (X[:, 0] > 0).astype(int)
        grid = {"C": [0.1, 1.0]}
        GridSearchCV(LogisticRegression(), grid, cv=2, scheduler="processes").fit(X, y)
        for estimator, error in [(Fails(lock=threading.Lock()), TypeError),
                                 (Fails(), ArithmeticError)]:
            try:
                GridSearchCV(estimator, grid, cv=2, scheduler="processes",
                             error_score="raise").fit(X, y)
            except Exception as e:
                assert isinstance(e, error) or error.__name__ in repr(e), repr(e)
            else:
                raise AssertionError("no error")
        print("searched")
    """))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # What a search killed outright (SIGKILL) leaves: the next search removes it.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp / f"dklearn-{dead}-killed").mkdir()
    (tmp / f"dklearn-{dead}-killed" / "0.pkl").write_bytes(b"x")
    (tmp / f"dklearn-{dead}-killed" / processes._MARK).write_bytes(b"")
    # A user's folder with a name like ours is not ours to remove.
    (tmp / f"dklearn-{dead}-results").mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0 and "searched" in out.stdout, out.stderr[-3000:]
    assert [p.name for p in tmp.iterdir() if p.name.startswith("dklearn-")] == [
        f"dklearn-{dead}-results"]


def test_no_writable_temporary_folder_is_a_clear_error_on_processes(tmp_path, monkeypatch):
    import tempfile

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_folder))
    with pytest.raises(processes.WorkerUnavailable, match="writable temporary folder"):
        GridSearchCV(LogisticRegression(), {"C": [1.0, 2.0]}, cv=3,
                     scheduler="processes").fit(X, y)


MULTIPROCESSING_SCRIPT = '''
import multiprocessing, sys
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.datasets import make_classification
import sklearn.model_selection as skm
import dklearn.model_selection as dkm

class Threshold(ClassifierMixin, BaseEstimator):  # the script's own class
    def __init__(self, t=0.0):
        self.t = t
    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self
    def predict(self, X):
        return np.where(X[:, 0] > self.t, self.classes_[1], self.classes_[0])

def compare(seed):
    X, y = make_classification(n_samples=120, random_state=seed)
    grid = {"t": [-1.0, 0.0, 0.5, 1.0]}
    ours = dkm.GridSearchCV(Threshold(), grid, scheduler="processes").fit(X, y)
    theirs = skm.GridSearchCV(Threshold(), grid).fit(X, y)
    return bool((ours.cv_results_["mean_test_score"]
                 == theirs.cv_results_["mean_test_score"]).all())

if __name__ == "__main__":
    print("parent:", compare(100))  # its workers stay warm: a fork inherits their sockets
    with multiprocessing.get_context(sys.argv[1]).Pool(2) as pool:
        print("children:", pool.map(compare, range(6)))
    print("parent again:", compare(101))
'''


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_searches_in_a_multiprocessing_pool_of_a_process_with_warm_workers(method, tmp_path):
    # fork: each child starts without the parent's workers (shared sockets mixed
    # up answers); spawn: the script's classes, in module __mp_main__ there,
    # travel by value.
    script = tmp_path / "script.py"
    script.write_text(MULTIPROCESSING_SCRIPT)
    out = subprocess.run([sys.executable, str(script), method], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "parent: True" in out.stdout and "parent again: True" in out.stdout, out.stdout
    assert "children: [True, True, True, True, True, True]" in out.stdout, out


@pytest.mark.parametrize("scheduler", [None, "sync", "threads"])
def test_a_search_leaves_no_cycle_holding_its_data(scheduler):
    # Freed when fit returns, not at Python's next full collection (three
    # searches on 190 MB held 1.8 GB more, in a sweep).
    import gc

    pipe = Pipeline([("pca", PCA(2)), ("clf", LogisticRegression())])
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        GridSearchCV(pipe, {"clf__C": [1.0, 2.0]}, cv=3, scheduler=scheduler).fit(X, y)
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage if type(o).__module__.startswith("dklearn")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert "_Loop" not in left and "Fold" not in left, left


class Widen(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X) * 1.0  # an intermediate of the size of X, read by each candidate


class FitsOnMapped(ClassifierMixin, BaseEstimator):
    def __init__(self, C=1.0, mapped=True):
        self.C, self.mapped = C, mapped

    def fit(self, X, y):
        base = X
        while isinstance(base, np.ndarray) and not isinstance(base, np.memmap):
            base = base.base
        if isinstance(base, np.memmap) != self.mapped:
            raise AssertionError(f"fitted on {type(X)} whose bases include no memmap")
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_a_large_intermediate_goes_to_worker_processes_once_by_file():
    # Read by every candidate, a transformed fold would be pickled into each
    # task's payload: it is written once, and each worker maps it, as X.
    X_big = np.random.RandomState(0).normal(size=(4000, 100))  # folds of 1.6 MB
    y_big = (X_big[:, 0] > 0).astype(int)
    pipe = Pipeline([("widen", Widen()), ("clf", FitsOnMapped())])
    GridSearchCV(pipe, {"clf__C": [1.0, 2.0, 3.0]}, cv=2, scheduler="processes",
                 error_score="raise", refit=False).fit(X_big, y_big)
    pipe.set_params(clf__mapped=False)  # a small one goes with its task
    GridSearchCV(pipe, {"clf__C": [1.0, 2.0]}, cv=2, scheduler="processes",
                 error_score="raise", refit=False).fit(X_big[:400], y_big[:400])


def test_an_intermediates_files_go_when_no_task_reads_it(tmp_path, monkeypatch):
    monkeypatch.setattr(processes.tempfile, "tempdir", str(tmp_path))
    store = processes.Store()
    try:
        before = set(os.listdir(store.folder))
        ref = store.put("fold", (np.ones((1000, 200)), [1, 2]), keep=False)
        assert not ref.keep and len(set(os.listdir(store.folder)) - before) == 2  # .pkl, .npy
        store.drop("fold")
        assert set(os.listdir(store.folder)) == before
    finally:
        store.remove()


@needs_two_cores
def test_a_kind_whose_fits_keep_every_core_busy_with_threads_of_their_own_stays():
    # LightGBM runs each fit on as many OpenMP threads as there are cores,
    # whatever the caps: the calling thread's own CPU time is a part of the
    # fit's, and two such fits in two worker processes fight for the cores
    # (40x slower here, spinning), where in this process they share them.
    pytest.importorskip("lightgbm")
    out = _run_script("""
        import lightgbm
        from sklearn.datasets import make_classification
        X, y = make_classification(n_samples=5000, n_features=30, random_state=0)
        grid = {"num_leaves": [15, 31, 63], "learning_rate": [0.05, 0.1]}
        GridSearchCV(lightgbm.LGBMClassifier(n_estimators=50, verbose=-1, random_state=0),
                     grid, cv=5, verbose=1).fit(X, y)
    """)
    assert "'score LGBMClassifier' fans out to 2 threads" in out
    assert "'score LGBMClassifier' ->" not in out


class _NeedsACode(UserWarning):
    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def test_what_a_task_said_is_repeated_whatever_its_warnings_file_or_class(capsys):
    # A notebook cell's file is no module here; a warning class may need more than
    # its message to be made again; a warning may have no file at all.
    import warnings

    from dklearn import _tasks

    with _tasks.Said(list(warnings.filters)) as said:
        warnings.warn_explicit("from a cell", UserWarning, "<ipython-input-3-x>", 2)
        warnings.warn(_NeedsACode("coded", 7))
        warnings.showwarning("no file", UserWarning, None, 0)
        print("printed")
    output = said.output()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _tasks.repeat(output)
    out = capsys.readouterr()
    assert sorted(str(w.message) for w in caught) == ["from a cell", "no file"]
    assert "printed" in out.out
    assert "_NeedsACode: coded" in out.err
