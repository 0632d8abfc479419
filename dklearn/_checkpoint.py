"""Checkpoints: every finished (candidate, fold) result, committed as it completes.

A checkpoint is an SQLite file (embedded, no server).  One row per result:

    key     the final task's key (see _plan): it names the estimator and its
            parameters by value, the data by content, the fold's indices and
            the scoring, so equal keys mean the same work
    scope   the library versions that can change a result (scikit-learn,
            NumPy, SciPy, dklearn's record format): a result is reused only
            by the same versions
    record  the result as JSON: scores, times, the failure message; a fit
            stopped by ``fit_timeout`` says which limit stopped it

Only plain values are stored: opening a checkpoint never runs code (no
pickles).  A fit stopped by a time limit is not run again by a search with
the same limit, or a smaller one; a larger limit, or none, runs it again.  Resuming a search looks up its final keys, computes only what is
missing (and only the shared prefix work those need), and commits each new
result at once; a SIGKILL loses at most the fits in flight.  Several searches,
in several processes, may share one file: WAL journaling and a busy timeout
serialize their writes.
"""

import json
import math
import os
import sqlite3
import time

import numpy
import scipy
import sklearn

FORMAT = "dklearn-checkpoint-1"


class CheckpointError(ValueError):
    """The file is not a dklearn checkpoint, or is damaged."""


def _scope():
    return f"{FORMAT};sklearn={sklearn.__version__};numpy={numpy.__version__};scipy={scipy.__version__}"


class Checkpoint:
    """An open checkpoint file."""

    def __init__(self, path):
        self.path = str(path)
        self.scope = _scope()
        folder = os.path.dirname(os.path.abspath(self.path))
        if os.path.isdir(self.path) or not os.path.isdir(folder):
            # sqlite3 says "unable to open database file", which reads as damage
            raise CheckpointError(
                f"checkpoint={self.path!r} must name a file in an existing folder: "
                + ("it is a folder." if os.path.isdir(self.path)
                   else f"there is no folder {folder!r}."))
        try:
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 60000")
            self._wal()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                tables = {row[0] for row in self._db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )}
                if tables and "dklearn_meta" not in tables:
                    raise CheckpointError(
                        f"{self.path!r} is an SQLite database of something else (tables: "
                        f"{sorted(tables)}); dklearn will not write into it. Pass a new file name."
                    )
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS dklearn_meta (name TEXT PRIMARY KEY, value TEXT)"
                )
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS dklearn_results "
                    "(key TEXT, scope TEXT, record TEXT NOT NULL, PRIMARY KEY (key, scope))"
                )
                self._db.execute(
                    "INSERT OR IGNORE INTO dklearn_meta VALUES ('format', ?)", (FORMAT,)
                )
                (fmt,) = self._db.execute(
                    "SELECT value FROM dklearn_meta WHERE name = 'format'"
                ).fetchone()
            finally:
                self._db.execute("COMMIT")
        except CheckpointError:
            self._db.close()
            raise
        except sqlite3.OperationalError as e:  # opening or writing failed, not its content
            raise CheckpointError(
                f"{self.path!r} cannot be opened for writing ({e}): a read-only or full "
                "folder, or a file held by another program? Pass a file you can write."
            ) from e
        except sqlite3.DatabaseError as e:
            raise CheckpointError(
                f"{self.path!r} is not a dklearn checkpoint or is damaged ({e}). "
                "Pass a new file name, or remove this file to start over."
            ) from e
        if fmt != FORMAT:
            raise CheckpointError(
                f"{self.path!r} was written by an incompatible dklearn (format {fmt!r}, "
                f"expected {FORMAT!r}). Pass a new file name."
            )

    def _wal(self, wait=60.0):
        # Two processes opening a new file at once: SQLite can refuse the
        # switch to WAL with "database is locked" at once, without waiting
        # for busy_timeout (seen in CI: 1 open in 160 failed here).
        deadline = time.monotonic() + wait
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def load(self, keys, fit_timeout=None):
        """The stored records among ``keys``: {key: record}.

        A record of a fit stopped by a time limit counts only if
        ``fit_timeout`` is not larger: a larger limit gives it another try.
        """
        keys = list(dict.fromkeys(keys))
        found = {}
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, record FROM dklearn_results WHERE scope = ? AND key IN ({marks})",
                    (self.scope, *chunk),
                ).fetchall()
                for key, text in rows:
                    record = _decode(text, self.path)
                    limit = record.get("timed_out")
                    if limit and (fit_timeout is None or fit_timeout > limit):
                        continue
                    found[key] = record
        except sqlite3.DatabaseError as e:
            raise CheckpointError(f"{self.path!r} could not be read ({e}).") from e
        return found

    def save(self, key, record, fit_timeout=None):
        """Commit one record now (autocommit: durable when this returns)."""
        if record.get("timed_out"):
            record = {**record, "timed_out": fit_timeout}
        self._db.execute(
            "INSERT OR REPLACE INTO dklearn_results VALUES (?, ?, ?)",
            (key, self.scope, _encode(record)),
        )

    def close(self):
        self._db.close()


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}  # JSON has no NaN or infinity
    return value


def _restore(value):
    if isinstance(value, dict):
        if set(value) == {"float"}:
            return float(value["float"])
        return {k: _restore(v) for k, v in value.items()}
    return value


def _encode(record):
    return json.dumps(_plain(record), allow_nan=False)


def _decode(text, path):
    try:
        record = _restore(json.loads(text))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path!r} holds a damaged record ({e}).") from e
    if not isinstance(record, dict) or "test_scores" not in record:
        raise CheckpointError(f"{path!r} holds a record that is not a search result.")
    return record
