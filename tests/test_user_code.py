"""Code as users write it: scripts run as ``__main__`` in a fresh process.

Each script in ``tests/user_code/`` defines its estimators, transformers,
scorers, splitters, lambdas and closures in ``__main__``, as a notebook or a
script does, runs a search with scikit-learn and with dklearn on every
engine ('sync', 'threads', 'processes' and the default), and checks that
every entry of cv_results_, best_* and the refitted model's predictions are
scikit-learn's (``user_code/_compare.py``).  Third-party estimators come
from the optional test dependencies.
"""

import os
import subprocess
import sys

import pytest

from dklearn import _compat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "tests", "user_code")


def run_script(name, *args, timeout=280):
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, os.path.join(SCRIPTS, name), *args], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert out.stdout.splitlines()[-1] == "ok"
    return out.stdout


@pytest.mark.parametrize("script", [
    "user_objects.py",      # estimator, transformer, scorers, CV splitter; lambdas, closures
    "pipeline_subclass.py",  # a Pipeline subclass that changes how steps apply: run whole
    "in_place.py",          # copy=False steps after a shared step, and first
    "shared_writes.py",     # frames, lists, arrays written by a reader of a shared step
    "frozen.py",            # FrozenEstimator grid values: equal parameters, other state
    "column_callable.py",   # a column selector that depends on the fold's rows
    "main_classes.py",      # a search leaves __main__ classes as they are; made-in-a-function classes
])
def test_user_script_gives_sklearns_results_on_every_engine(script):
    run_script(script)


def test_warm_workers_see_a_reloaded_module_an_environment_variable_and_sys_path_as_now():
    out = run_script("changes_between_searches.py")
    assert "compared: 5" in out


def test_a_gil_bound_estimator_of_main_moves_to_processes_with_sklearns_results(tmp_path):
    out = run_script("gil_bound.py", str(tmp_path / "pids"))
    moved = int(out.split("fits in worker processes:")[1].split()[0])
    assert moved > 0


def test_third_party_estimators_and_inputs():
    out = run_script("third_party.py")
    ran = out.split("ran:")[1].splitlines()[0].split()
    for name in ("imblearn", "lightgbm", "category_encoders", "polars"):
        if name in ran:
            continue
        pytest.importorskip(name)  # installed, yet the script did not run it: a failure
        raise AssertionError(f"{name} is installed but the script did not run it")


@pytest.mark.parametrize("case", ["error", "module", "only", "repeat"])
def test_warnings_of_fits_in_worker_processes_follow_the_users_filters_as_in_sklearn(case):
    # The fits run in dklearn's worker processes; scikit-learn's run in its loop.
    # What the user sees is compared: the scores, how often each warning shows,
    # the failed-fit summaries (grouped by traceback text), and the frames of
    # the script's own class in those tracebacks (its file, not "<dynamic-code>").
    def seen(library):
        out = subprocess.run(
            [sys.executable, os.path.join(SCRIPTS, "warnings_in_processes.py"), library, case],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True,
            timeout=280)
        assert out.returncode == 0, out.stderr[-3000:]
        lines = (out.stdout + out.stderr).splitlines()
        kept = [line.strip() for line in lines
                if "UserWarning: fitting" in line or "fits failed" in line
                or "warnings_in_processes.py" in line or line.startswith("[")]
        return sorted(kept)

    expected, got = seen("sklearn"), seen("dklearn")
    assert any("warnings_in_processes.py" in line for line in expected)
    if case == "repeat" and not _compat.EACH_FIT_CATCHES_WARNINGS:
        # Before 1.7 scikit-learn's loop shows a repeated warning once per fit,
        # except in a run of fits that fail (k=3 once, not three times);
        # dklearn's workers, once per fit: the same lines, not as often.
        expected, got = sorted(set(expected)), sorted(set(got))
    assert got == expected
