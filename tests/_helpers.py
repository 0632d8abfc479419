"""Shared test helpers: a transformer that counts its calls, a comparer of searches,
dklearn's worker processes, and busy processes that load the machine."""

import contextlib
import os
import subprocess
import sys
import threading
from collections import Counter

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

CALLS = Counter()
_LOCK = threading.Lock()


class CountingTransformer(TransformerMixin, BaseEstimator):
    """Scales X by ``factor``; counts fit and transform calls per ``tag``.

    Counts live in a module-level Counter, so only in-process schedulers
    ('sync', 'threads') can be counted.
    """

    def __init__(self, factor=1.0, tag="t"):
        self.factor = factor
        self.tag = tag

    def fit(self, X, y=None):
        with _LOCK:
            CALLS[(self.tag, "fit")] += 1
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        with _LOCK:
            CALLS[(self.tag, "transform")] += 1
        return np.asarray(X) * self.factor


class Crasher(ClassifierMixin, BaseEstimator):
    """Kills the process that fits it when ``crash`` is true, as a segfault would."""

    def __init__(self, crash=False, tag=0):
        self.crash = crash
        self.tag = tag  # only tells candidates apart

    def fit(self, X, y):
        if self.crash:
            os._exit(13)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def reset_calls():
    CALLS.clear()


def assert_same_results(sk, dk, *, timing=False):
    """Every non-timing entry of cv_results_ and the best_* attributes are equal."""
    a, b = sk.cv_results_, dk.cv_results_
    assert list(a) == list(b)
    for key in a:
        if not timing and key.endswith("_time"):
            continue
        va, vb = a[key], b[key]
        if key == "params":
            assert len(va) == len(vb)
            for pa, pb in zip(va, vb):
                assert list(pa) == list(pb)
                for name in pa:
                    assert repr(pa[name]) == repr(pb[name]), (key, name)
            continue
        assert type(va) is type(vb), key
        assert va.dtype == vb.dtype, (key, va.dtype, vb.dtype)
        if np.ma.isMaskedArray(va):
            np.testing.assert_array_equal(np.ma.getmaskarray(va), np.ma.getmaskarray(vb))
            assert [repr(v) for v in va.tolist()] == [repr(v) for v in vb.tolist()], key
        else:
            np.testing.assert_array_equal(va, vb, err_msg=key)
    for attr in ("best_index_", "best_score_", "multimetric_", "n_splits_"):
        if hasattr(sk, attr):
            np.testing.assert_array_equal(getattr(sk, attr), getattr(dk, attr), err_msg=attr)
        else:
            assert not hasattr(dk, attr), attr
    if hasattr(sk, "best_params_"):
        assert repr(sk.best_params_) == repr(dk.best_params_)


def worker_processes(pid=None):
    """dklearn's worker processes (and the zygote they fork from) under ``pid`` (default:
    this process)."""
    import psutil

    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "dklearn._engines._worker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


@contextlib.contextmanager
def busy_processes(n):
    """``n`` processes that each spin on a core until the block ends (other programs' load)."""
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield spin
    finally:
        for proc in spin:
            proc.kill()
            proc.wait()
