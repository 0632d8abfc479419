"""Long searches: checkpoints and resume, crash isolation, Ctrl-C, progress."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from dklearn import _engines
from dklearn._checkpoint import CheckpointError
from dklearn._engines import CrashedWorker, local
from dklearn._tasks import Const
from dklearn.model_selection import GridSearchCV

from ._helpers import (
    CALLS,
    CountingTransformer,
    Crasher,
    assert_same_results,
    reset_calls,
    worker_processes,
)

# What these tests check does not change with scikit-learn's release: CI runs
# them with the newest release only (see .ci/run).
pytestmark = pytest.mark.engine

X, y = make_classification(n_samples=90, n_features=5, random_state=0)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pipe():
    return Pipeline([("a", CountingTransformer(tag="a")), ("clf", LogisticRegression())])


GRID = {"a__factor": [1.0, 2.0, 3.0], "clf__C": [0.1, 1.0]}


def _search(**kwargs):
    return GridSearchCV(_pipe(), GRID, cv=3, scheduler="sync", **kwargs)


@pytest.fixture(autouse=True)
def _clean_counts():
    reset_calls()
    yield
    reset_calls()


def _rows(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT key, record FROM dklearn_results").fetchall()


def test_resume_skips_recorded_work_and_equals_uninterrupted(tmp_path):
    path = tmp_path / "search.sqlite"
    reference = _search().fit(X, y)
    reset_calls()
    _search(checkpoint=path).fit(X, y)
    assert len(_rows(path)) == 6 * 3
    # Lose the results of the a__factor=3.0 candidates, as a crash would have.
    keys = [k for k, _ in _rows(path)]
    first = _search(checkpoint=path)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM dklearn_results WHERE rowid IN "
                   "(SELECT rowid FROM dklearn_results ORDER BY rowid DESC LIMIT 6)")
    assert len(_rows(path)) == len(keys) - 6
    reset_calls()
    resumed = first.fit(X, y)
    assert_same_results(reference, resumed)
    # Only the missing fits ran: their prefixes (at most 2 settings x 3 folds)
    # plus the refit, not the 3 x 3 of a fresh search.
    assert CALLS[("a", "fit")] <= 2 * 3 + 1
    reset_calls()
    again = _search(checkpoint=path).fit(X, y)
    assert CALLS[("a", "fit")] == 1  # the refit only
    assert_same_results(reference, again)


def test_changed_data_or_grid_reuses_nothing(tmp_path):
    path = tmp_path / "search.sqlite"
    _search(checkpoint=path).fit(X, y)
    reset_calls()
    _search(checkpoint=path).fit(X + 1.0, y)
    assert CALLS[("a", "fit")] == 3 * 3 + 1
    reset_calls()
    GridSearchCV(_pipe(), {"a__factor": [4.0], "clf__C": [0.1]}, cv=3, scheduler="sync",
                 checkpoint=path).fit(X, y)
    assert CALLS[("a", "fit")] == 3 + 1


EDITED_CLASS = """
import functools
import sys

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from dklearn.model_selection import GridSearchCV

FLIP = {flip}  # the user's edit between two runs


def passing(method):  # a decorator, as users write them
    @functools.wraps(method)
    def wrapper(self, X):
        return method(self, X)
    return wrapper


class Thresholded(ClassifierMixin, BaseEstimator):
    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        with open(sys.argv[2], "a") as log:
            log.write("fit\\n")
        self.lr_ = LogisticRegression(C=self.C).fit(X, y)
        self.classes_ = self.lr_.classes_
        return self

    {decorator}
    def predict(self, X):
        {predict}


X, y = make_classification(n_samples=90, n_features=5, random_state=0)
search = GridSearchCV(Thresholded(), {{"C": [0.1, 1.0]}}, cv=3, checkpoint=sys.argv[1],
                      refit=False).fit(X, y)
print(list(search.cv_results_["mean_test_score"]))
"""


@pytest.mark.parametrize("edit", ["method", "global", "list", "decorated"])
def test_a_class_of_the_script_edited_between_runs_reuses_nothing(tmp_path, edit):
    # Run again unchanged, in a new process: everything is reused.  Edited (its
    # code, a value of the script its code reads, an item of a list it reads, the
    # body of a method a decorator wraps): nothing is.
    path, log = str(tmp_path / "search.sqlite"), tmp_path / "fits"
    plain = "return self.lr_.predict(X)"
    reads = {"global": "FLIP", "list": "FLIP[0]"}.get(edit)
    if reads:
        plain = f"return 1 - self.lr_.predict(X) if {reads} else self.lr_.predict(X)"

    def run(predict=plain, flip=False):
        script = EDITED_CLASS.format(predict=predict,
                                     flip=[flip] if edit == "list" else flip,
                                     decorator="@passing" if edit == "decorated" else "")
        out = subprocess.run([sys.executable, "-c", script, path, str(log)], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        fits = log.read_text().count("fit") if log.exists() else 0
        log.unlink(missing_ok=True)
        return eval(out.stdout.strip().splitlines()[-1], {"np": np}), fits

    first, fits = run()
    assert fits == 6
    assert run() == (first, 0)
    if reads:
        edited, fits = run(flip=True)
    else:
        edited, fits = run(predict="return 1 - self.lr_.predict(X)")
    assert fits == 6
    np.testing.assert_allclose(edited, 1 - np.array(first))


EDITED_IN_ONE_SESSION = """
import sys

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification

from dklearn.model_selection import GridSearchCV

W = 1.0


def bonus():
    return 0.0


class Scored(ClassifierMixin, BaseEstimator):
    def __init__(self, k=0):
        self.k = k

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def score(self, X, y):
        return W * (1 + self.k) + bonus()


X, y = make_classification(n_samples=60, random_state=0)


def run():
    search = GridSearchCV(Scored(), {"k": [0, 1]}, cv=2, checkpoint=sys.argv[1]).fit(X, y)
    return [float(v) for v in search.cv_results_["mean_test_score"]]


print(run())
W = 5.0  # a notebook's next cells: a global, a helper function, a method edited
print(run())
def bonus():  # noqa: E303
    return 100.0
print(run())
Scored.score = lambda self, X, y: -1.0
print(run())
"""


def test_what_a_class_reads_edited_in_the_same_session_reuses_nothing(tmp_path):
    # As a notebook's kernel, which never restarts between cells: each search
    # looks at the class's code and what it reads again.
    out = subprocess.run([sys.executable, "-c", EDITED_IN_ONE_SESSION,
                          str(tmp_path / "search.sqlite")], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[1.0,", "2.0]", "[5.0,", "10.0]", "[105.0,", "110.0]",
                                  "[-1.0,", "-1.0]"], out.stdout


USER_MODULE = """
{version}
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

import userhelpers


class Thresholded(ClassifierMixin, BaseEstimator):
    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        self.lr_ = LogisticRegression(C=self.C).fit(X, y)
        self.classes_ = self.lr_.classes_
        return self

    def predict(self, X):
        return userhelpers.adjust({predict})
"""

USER_HELPERS = """
def adjust(predicted):
    return {adjust}
"""

USES_THE_MODULE = """
import sys

from sklearn.datasets import make_classification

sys.path.insert(0, sys.argv[2])
from usermodels import Thresholded  # noqa: E402

from dklearn.model_selection import GridSearchCV  # noqa: E402

X, y = make_classification(n_samples=90, n_features=5, random_state=0)
search = GridSearchCV(Thresholded(), {"C": [0.1, 1.0]}, cv=3, checkpoint=sys.argv[1],
                      refit=False).fit(X, y)
print(list(search.cv_results_["mean_test_score"]))
"""


@pytest.mark.parametrize("edit", ["class", "helper", "class of a module with a version"])
def test_a_class_of_the_users_own_module_edited_between_runs_reuses_nothing(tmp_path, edit):
    # The class's module, or a function of another module of the user's it calls;
    # a version the user's module declares is not bumped by an edit.
    path = str(tmp_path / "search.sqlite")
    version = '__version__ = "0.1"' if "version" in edit else ""

    def run(predict="self.lr_.predict(X)", adjust="predicted"):
        (tmp_path / "usermodels.py").write_text(USER_MODULE.format(predict=predict,
                                                                   version=version))
        (tmp_path / "userhelpers.py").write_text(USER_HELPERS.format(adjust=adjust))
        out = subprocess.run([sys.executable, "-c", USES_THE_MODULE, path, str(tmp_path)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return np.array(eval(out.stdout.strip().splitlines()[-1], {"np": np}))

    first = run()
    if edit.startswith("class"):
        edited = run(predict="1 - self.lr_.predict(X)")
    else:
        edited = run(adjust="1 - predicted")
    np.testing.assert_allclose(edited, 1 - first)


def test_checkpoint_holds_plain_json(tmp_path):
    path = tmp_path / "search.sqlite"
    _search(checkpoint=path, error_score=np.nan).fit(X, y)
    for _, record in _rows(path):
        assert record.startswith("{") and "test_scores" in record


def test_corrupt_or_foreign_file_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(CheckpointError, match="junk.sqlite"):
        _search(checkpoint=junk).fit(X, y)
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(CheckpointError, match="foreign.sqlite"):
        _search(checkpoint=foreign).fit(X, y)
    with sqlite3.connect(foreign) as db:  # untouched
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert tables == {"users"}
    # Not damage: a path that cannot hold a file says so.
    with pytest.raises(CheckpointError, match="there is no folder"):
        _search(checkpoint=tmp_path / "missing" / "search.sqlite").fit(X, y)
    with pytest.raises(CheckpointError, match="it is a folder"):
        _search(checkpoint=tmp_path).fit(X, y)


SLOW_SEARCH = textwrap.dedent("""
    import sys, time
    import numpy as np
    from sklearn.datasets import make_classification
    from tests.test_long_searches import Slow
    from dklearn.model_selection import GridSearchCV
    X, y = make_classification(n_samples=90, n_features=5, random_state=0)
    grid = {"C": [float(c) for c in range(1, int(sys.argv[3]) + 1)]}
    GridSearchCV(Slow(delay=float(sys.argv[2])), grid, cv=3, scheduler=sys.argv[4],
                 checkpoint=sys.argv[1], n_jobs=2).fit(X, y)
    print("finished")
""")


class Slow(ClassifierMixin, BaseEstimator):
    def __init__(self, delay=0.05, C=1.0):
        self.delay = delay
        self.C = C

    def fit(self, X, y):
        time.sleep(self.delay)
        self.classes_ = np.unique(y)
        self.coef_ = self.C
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[int(self.C) % 2])


def _start(path, delay, n, scheduler="sync", prelude="", output=subprocess.PIPE):
    return subprocess.Popen(
        [sys.executable, "-c", prelude + SLOW_SEARCH, str(path), str(delay), str(n), scheduler],
        cwd=ROOT, stdout=output, stderr=output, text=True,
    )


def _wait_for_rows(path, at_least, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if len(_rows(path)) >= at_least:
                return
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    raise AssertionError("the search never committed results")


def test_sigkill_loses_only_fits_in_flight(tmp_path):
    path = tmp_path / "killed.sqlite"
    proc = _start(path, delay=0.1, n=20)
    _wait_for_rows(path, 10, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)  # also closes its pipes
    kept = len(_rows(path))
    assert 10 <= kept < 60
    grid = {"C": [float(c) for c in range(1, 21)]}
    reference = GridSearchCV(Slow(delay=0.0), grid, cv=3, scheduler="sync").fit(X, y)
    resumed = GridSearchCV(Slow(delay=0.1), grid, cv=3, scheduler="sync", checkpoint=path)
    start = time.monotonic()
    resumed.fit(X, y)
    # Only the missing fits ran (0.1 s each, sequentially).
    assert time.monotonic() - start < 0.1 * (60 - kept) + 5
    for key in ("mean_test_score", "rank_test_score", "params"):
        assert list(reference.cv_results_[key]) == list(resumed.cv_results_[key])


def test_workers_of_a_killed_search_exit_on_their_own(tmp_path):
    # A client killed with SIGKILL cannot shut its workers down: they see
    # their socket close and leave, idle or not.
    import psutil

    path = tmp_path / "killed.sqlite"
    # Not piped: the workers share the client's stdout and stderr.
    proc = _start(path, delay=0.1, n=20, scheduler="processes", output=subprocess.DEVNULL)
    _wait_for_rows(path, 10, proc)
    workers = worker_processes(proc.pid)
    assert len(workers) == 3  # the zygote and two workers
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive


def test_workers_in_the_middle_of_a_fit_leave_at_once_when_the_client_is_killed(tmp_path):
    import psutil

    proc = _start(tmp_path / "killed.sqlite", delay=60, n=4, scheduler="processes",
                  output=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(worker_processes(proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = worker_processes(proc.pid)
    assert len(workers) == 3  # the zygote and two workers
    time.sleep(1.0)  # each worker is in a fit of 60 s now
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [p.cmdline() for p in alive]


def test_opening_retries_a_refused_switch_to_wal(tmp_path, monkeypatch):
    # With two processes opening a new file at once, SQLite sometimes refuses
    # the switch to WAL with "database is locked" without waiting (seen in
    # CI).  Opening tries again instead of calling the file damaged.
    from dklearn import _checkpoint

    real_connect = sqlite3.connect
    refusals = []

    class Refusing:
        def __init__(self, db):
            self.db = db

        def execute(self, sql, *args):
            if "journal_mode" in sql and len(refusals) < 3:
                refusals.append(sql)
                raise sqlite3.OperationalError("database is locked")
            return self.db.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.db, name)

    monkeypatch.setattr(_checkpoint.sqlite3, "connect",
                        lambda *a, **k: Refusing(real_connect(*a, **k)))
    store = _checkpoint.Checkpoint(tmp_path / "new.sqlite")
    assert len(refusals) == 3
    assert store.load(["anything"]) == {}


def test_concurrent_searches_share_one_file(tmp_path):
    path = tmp_path / "shared.sqlite"
    procs = [_start(path, delay=0.01, n=n) for n in (15, 16)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "finished" in out
    # 15 + 16 candidates x 3 folds; the 15 shared candidates are the same work.
    assert len(_rows(path)) == 16 * 3


def test_processes_isolate_a_fit_that_kills_its_process():
    search = GridSearchCV(Crasher(), {"crash": [False, True]}, cv=2,
                          scheduler="processes", n_jobs=2)
    with pytest.warns(FitFailedWarning, match=r"candidate \{'crash': True\}"):
        search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isnan(scores[1])
    assert search.best_params_ == {"crash": False}


def _slow(value):
    time.sleep(0.5)
    return value.value


def _die(value):
    os._exit(13)


def test_a_fit_running_beside_a_crash_is_not_blamed_for_it():
    # Each worker runs one task: the culprit dies twice and is given up on,
    # the innocent one, running beside it in the other worker, finishes.
    lost = []

    def on_lost(key, error):
        lost.append(key)
        return {"lost": type(error).__name__}

    graph = {"innocent": (_slow, Const(7)), "culprit": (_die, Const(0))}
    kinds = {"innocent": "work", "culprit": "work"}
    values = local.run(graph, ["innocent", "culprit"], kinds, "processes", 2,
                       _engines.Options(), _engines.Hooks(lost=on_lost))
    assert values == [7, {"lost": "CrashedWorker", "fit_time": values[1]["fit_time"]}]
    assert lost == ["culprit"]


def test_a_crash_among_many_fits_costs_only_the_crashing_fits():
    grid = {"crash": [False, True], "tag": [0, 1, 2, 3]}
    search = GridSearchCV(Crasher(), grid, cv=2, scheduler="processes", n_jobs=2)
    with pytest.warns(FitFailedWarning):
        search.fit(X, y)
    crashed = np.array([p["crash"] for p in search.cv_results_["params"]])
    scores = search.cv_results_["mean_test_score"]
    assert np.isnan(scores[crashed]).all() and np.isfinite(scores[~crashed]).all()


def test_processes_crash_with_raise_raises():
    search = GridSearchCV(Crasher(), {"crash": [True]}, cv=2, scheduler="processes",
                          n_jobs=2, error_score="raise")
    with pytest.raises(CrashedWorker):
        search.fit(X, y)


def test_ctrl_c_stops_promptly_and_leaves_no_workers(tmp_path):
    psutil = pytest.importorskip("psutil")
    path = tmp_path / "interrupted.sqlite"
    proc = _start(path, delay=0.5, n=40, scheduler="processes")
    _wait_for_rows(path, 2, proc)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    proc.communicate(timeout=30)  # also closes its pipes
    assert time.monotonic() - start < 10
    assert proc.returncode != 0
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive
    kept = len(_rows(path))  # the checkpoint still opens and holds results
    assert kept >= 2


def test_ctrl_c_in_a_task_of_the_calling_thread_stops_the_search_at_once():
    # Ctrl-C lands in the calling thread; a task running there meets it first.
    # The search stops then, not once the tasks before it (here: one that
    # waits on a thread) have ended, as a failing fit's error would.
    release, ended = threading.Event(), []

    def wait():
        release.wait(60)
        ended.append(True)

    def interrupt():
        raise KeyboardInterrupt

    graph = {"waits": (wait,), "interrupts": (interrupt,)}
    try:
        with pytest.raises(KeyboardInterrupt):
            local.run(graph, ["waits", "interrupts"], {"waits": "waiting"}, "threads", 2,
                      _engines.Options(), _engines.Hooks())
        assert not ended
    finally:
        release.set()


def test_progress_bar_shows_fits_and_best_score(capsys):
    GridSearchCV(_pipe(), GRID, cv=3, scheduler="sync", progress=True).fit(X, y)
    err = capsys.readouterr().err
    assert "18/18" in err
    assert "best=" in err
