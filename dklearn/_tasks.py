"""Task bodies: the functions a worker runs, and how a task is evaluated.

A search graph (see ``_plan``) maps a key to a task, a tuple
``(function, *arguments)``, or to a constant (X, y, a fold's indices).  An
argument is a key (its value is passed), a nested task (evaluated first,
where the task runs), a list of arguments, or a ``Const`` (passed as is, so
that no evaluator mistakes a value inside it for a key or a task).  The
functions here are top-level and take picklable values, so that a thread, a
worker process or a dask.distributed worker can run them; this module
imports nothing of the engines, and dask only where it hashes a ``Const``.

What flows between tasks
------------------------
- ``Fold``: one fold of the data at some point of a pipeline: the training
  rows as ``fit_transform`` left them (what the next step is fitted on), the
  test rows through ``transform`` (what the final step is scored on), and,
  when training scores are asked for, the training rows through
  ``transform`` (scikit-learn scores them through ``predict``), with the
  seconds spent fitting and transforming along the path, so that each
  candidate's ``fit_time`` and ``score_time`` are what scikit-learn would
  have measured for it alone.
- ``Failed``: a fit that raised (or was stopped), with its traceback.  It
  flows downstream in place of data, so every candidate that shares the
  failed step reports it, as if each had failed on its own.

What a task may touch
---------------------
Nothing it reads.  An estimator is copied before it is fitted: the very
object scikit-learn would fit (``clone(base).set_params(**params)``, with
whatever its ``set_params`` did), not a clone of it.  A fold slice made for
one task is that task's own, and may be written in place by the estimator,
as in scikit-learn.  An intermediate result that other tasks read (a
transformed fold) is shared: each reader gets its own read-only views of
its arrays, its own shallow copy of a DataFrame or a list (a column added,
an item replaced, stays its own).  A step that writes into its input in
place without asking to (a ``predict`` that clips its input) fails on a
view with NumPy's "read-only" error, and runs again on a private copy, so
that it gives scikit-learn's result at no cost to the steps that do not
write.  (A step that asks to, ``copy=False``, has its pipeline run whole:
see ``_plan``.)  A fitted step is used
inside the task that fitted it only (it transforms the test rows there), so
no other task can see it change.
"""

import contextlib
import copy
import io
import marshal
import os
import pickle
import sys
import threading
import time
import types
from traceback import format_exc

import cloudpickle
from sklearn.base import BaseEstimator, clone

from . import _compat

# Set in every thread that runs tasks (an engine's worker thread or process,
# a dask worker's thread): ``task``, so that a search inside a task (a search
# in a cross-validation, say) runs there one task at a time by default, as
# joblib's nested Parallel calls do, instead of multiplying the workers;
# ``beside``, where other tasks may run at the same time in the same process
# (threads), reading the same objects (see ``own_objects``).
RUNNING = threading.local()


def own_objects(params):
    """Fit parameters with objects of their own, where tasks run beside each other.

    A fit parameter may hold state that a fit writes (LightGBM's early
    stopping callback keeps the best score so far): scikit-learn's loop
    hands it to one fit at a time, and its worker processes each get a copy;
    two fits at once on threads would share it.  Data (arrays, frames) is
    only read, and stays shared; the lists, tuples and dicts around it are
    rebuilt, and anything else is deep-copied.
    """
    if not params or not getattr(RUNNING, "beside", False):
        return params
    return _own(params)


def _own(value):
    if type(value) is dict:
        return {k: _own(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_own(v) for v in value)
    if value is None or isinstance(value, (str, bytes, int, float, complex)):
        return value
    if hasattr(value, "shape") or hasattr(value, "__array__"):  # data
        return value
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - it does not copy: it is shared, as before
        return value


class Const:
    """A literal that evaluators pass through untouched."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return (Const, (self.value,))

    def __dask_tokenize__(self):
        # What dask cannot hash it pickles and loads back, here; loading a class of
        # the caller's __main__ that cloudpickle sent by value replaces, in the
        # caller, its methods with copies whose code is "<dynamic-code>".  Data by
        # dask's own hashing, the rest by its pickled bytes, never loaded.
        from dask.base import tokenize

        value = self.value
        if type(value).__module__.partition(".")[0] in ("numpy", "pandas", "scipy"):
            return "const", tokenize(value)
        import hashlib

        import cloudpickle

        return "const", hashlib.md5(cloudpickle.dumps(value)).hexdigest()


class CodePickler(cloudpickle.Pickler):
    """cloudpickle, with the code of the functions it sends by value (the user's
    classes, lambdas) whole: cloudpickle names its file "<dynamic-code>", and
    the tracebacks and warnings of a fit in a worker would then differ from
    the same fit's here (scikit-learn groups failed fits by their text)."""

    def reducer_override(self, obj):
        if type(obj) is types.CodeType:  # one Python version on both sides
            return marshal.loads, (marshal.dumps(obj),)
        return super().reducer_override(obj)


def dumps(value):
    """``value`` pickled by ``CodePickler``."""
    buffer = io.BytesIO()
    CodePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# Evaluating a task (the engines' side)
# ---------------------------------------------------------------------------


def is_task(entry):
    return type(entry) is tuple and bool(entry) and callable(entry[0])


def execute(task, values):
    """The value of ``task``, its keys read from ``values``."""
    return task[0](*[_argument(a, values) for a in task[1:]])


def _argument(arg, values):
    kind = type(arg)
    if kind is str:
        return values[arg]
    if kind is tuple and arg and callable(arg[0]):
        return execute(arg, values)
    if kind is list:
        return [_argument(a, values) for a in arg]
    return arg


def dependencies(task, graph, memo):
    """The keys ``task`` reads, nested tasks included (``memo``: by id of shared lists)."""
    found = []
    _collect(task[1:], graph, memo, found)
    return list(dict.fromkeys(found))


def _collect(args, graph, memo, found):
    for arg in args:
        kind = type(arg)
        if kind is str:
            if arg in graph:
                found.append(arg)
        elif kind is tuple and arg and callable(arg[0]):
            _collect(arg[1:], graph, memo, found)
        elif kind is list:
            hit = memo.get(id(arg))
            if hit is None or hit[0] is not arg:
                inner = []
                _collect(arg, graph, memo, inner)
                hit = memo[id(arg)] = (arg, inner)
            found.extend(hit[1])


# ---------------------------------------------------------------------------
# What flows between tasks
# ---------------------------------------------------------------------------


class Fold:
    """One fold of the data at some point of a pipeline (see module doc).

    ``test`` / ``again`` may hold a ``Broken`` instead of data: the fitted
    step failed to transform those rows, which scikit-learn reports as a
    failed score, not a failed fit.
    """

    __slots__ = ("X", "y", "test", "test_y", "again", "fit_time", "test_time", "shared")

    def __init__(self, X, y, test, test_y, again, fit_time=0.0, test_time=0.0, shared=False):
        self.X, self.y, self.test, self.test_y, self.again = X, y, test, test_y, again
        self.fit_time, self.test_time = fit_time, test_time
        self.shared = shared  # the output of a task other tasks read too

    def __reduce__(self):
        return (Fold, (self.X, self.y, self.test, self.test_y, self.again,
                       self.fit_time, self.test_time, self.shared))

    def own(self):
        """This fold as one reader may use it: a shared fold's data in containers of the
        reader's own (see ``handed``), the same object where it was the same."""
        if not self.shared:
            return self
        made = {}

        def one(X, make=handed):
            if id(X) not in made:
                made[id(X)] = make(X)
            return made[id(X)]

        # The targets are small, and scikit-learn's are each fit's own slices, which
        # a fit or a metric may write into: copies.
        return Fold(one(self.X), one(self.y, private), one(self.test),
                    one(self.test_y, private), one(self.again), self.fit_time, self.test_time)


class Failed:
    """A failed (or stopped) fit, flowing downstream in place of a ``Fold``."""

    __slots__ = ("error", "time", "why")

    def __init__(self, error, time, why="raised"):
        self.error, self.time, self.why = error, time, why

    def __reduce__(self):
        return (Failed, (self.error, self.time, self.why))


class Broken:
    """Rows a fitted step could not transform: scoring on them fails with ``error``."""

    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error

    def __reduce__(self):
        return (Broken, (_picklable(self.error),))


def failure_kind(error):
    return "timeout" if isinstance(error, TimeoutError) else "crash"


def _picklable(error):
    try:
        pickle.dumps(error)
        return error
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(error).__name__}: {error}")


def nbytes(value):
    """Roughly the bytes ``value`` pickles to: its arrays' (for the cost of sending it)."""
    if isinstance(value, Fold):
        return sum(nbytes(getattr(value, name)) for name in ("X", "y", "test", "test_y", "again"))
    size = getattr(value, "nbytes", None)
    if isinstance(size, int):
        return size
    if hasattr(value, "data") and hasattr(value, "indices"):  # a sparse matrix
        return value.data.nbytes + value.indices.nbytes + getattr(value, "indptr", value.data).nbytes
    if hasattr(value, "memory_usage"):  # a DataFrame
        try:
            return int(value.memory_usage(index=False).sum())
        except Exception:  # noqa: BLE001
            return 0
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    return 0


# ---------------------------------------------------------------------------
# Slicing the data
# ---------------------------------------------------------------------------


def take_fold(X, y, train, test, pairwise):
    """A fold's rows, sliced the way scikit-learn slices them; each task's own.

    ``pairwise``: a ``Const`` of the estimator when X is a precomputed kernel
    (sliced on both axes, test rows against training columns), else None.
    """
    X, y = X.value, _value(y)
    if pairwise is None:
        X_train, y_train = _compat.take_rows(X, y, train)
        X_test, y_test = _compat.take_rows(X, y, test)
    else:
        X_train, y_train = _compat.safe_split(pairwise.value, X, y, train)
        X_test, y_test = _compat.safe_split(pairwise.value, X, y, test, train)
    # The training rows scored through predict are the very rows fitted on,
    # as in scikit-learn, where a step fitted in place has changed them.
    return Fold(X_train, y_train, X_test, y_test, X_train)


def fold_params(X, params, rows):
    """Sample-aligned parameters (e.g. sample_weight) restricted to ``rows``."""
    return _compat.check_method_params(X.value, params=params.value, indices=rows)


def per_method(flat):
    """A step's parameters as {method: {name: value}}, from {"method\\0name": value}
    (sliced to a fold as one flat dict)."""
    out = {}
    for key, value in flat.items():
        method, name = key.split("\0", 1)
        out.setdefault(method, {})[name] = value
    return out


def select_columns(fold, columns, raise_errors):
    """The columns of a ColumnTransformer's branch, as it selects them (on the training
    rows, part of its fit: a failure is a failed fit)."""
    if isinstance(fold, Failed):
        return fold
    key = columns.value
    pick = _compat.safe_indexing
    start = time.time()
    try:
        X = pick(fold.X, key, axis=1)
    except Exception:
        if raise_errors.value:
            raise
        return Failed(format_exc(), fold.fit_time + time.time() - start)
    return Fold(X, fold.y, _each(fold.test, pick, key), fold.test_y,
                _each(fold.again, pick, key), fold.fit_time, fold.test_time, fold.shared)


def _each(X, func, key):
    if X is None or isinstance(X, Broken):
        return X
    try:
        return func(X, key, axis=1)
    except Exception as error:  # noqa: BLE001 - the rows' scoring fails with it
        return Broken(error)


# ---------------------------------------------------------------------------
# Read-only sharing
# ---------------------------------------------------------------------------


def shared(X):
    """``X`` as read-only views, for the tasks that read it after this one.

    A NumPy array becomes a read-only view, a CSR or CSC matrix a shallow
    copy over read-only views of its arrays, a DataFrame a shallow copy
    (pandas' copy-on-write keeps its data from being written through it).
    """
    import numpy as np

    if isinstance(X, np.ndarray):
        return _read_only_view(X)
    if all(hasattr(X, name) for name in ("data", "indices", "indptr", "tocsr")):
        out = copy.copy(X)
        for name in ("data", "indices", "indptr"):
            setattr(out, name, _read_only_view(getattr(X, name)))
        return out
    if hasattr(X, "iloc") and hasattr(X, "copy"):
        return X.copy(deep=False)
    return X


def handed(X):
    """A reader's own handle on shared data: what ``shared`` makes (new views, a new
    shallow copy of a DataFrame), and a new list, whose items a reader may replace."""
    return list(X) if type(X) is list else shared(X)


def _read_only_view(array):
    view = array.view()
    view.flags.writeable = False
    return view


def private(X):
    """A writable copy of ``X``, for a step that must write into its input."""
    if X is None or isinstance(X, Broken):
        return X
    if hasattr(X, "copy"):
        try:
            return X.copy()
        except TypeError:  # pragma: no cover
            pass
    return copy.deepcopy(X)


def fresh(estimator):
    """A planned estimator's own copy, to fit: the very object scikit-learn fits
    (``set_params`` may have done more than set attributes), copied as
    ``clone`` would copy it where a class clones its own way
    (``__sklearn_clone__``: a FrozenEstimator step stays the one object)."""
    if _clones_its_own_way(estimator):
        return clone(estimator)
    memo = {}
    _cloned_own_way(vars(estimator) if hasattr(estimator, "__dict__") else (), memo, set())
    try:
        return copy.deepcopy(estimator, memo)
    except Exception:  # noqa: BLE001 - an attribute that does not copy (a lock, say)
        return clone(estimator)


def _clones_its_own_way(obj):
    own = getattr(type(obj), "__sklearn_clone__", None)
    return own is not None and own is not _BASE_CLONE


def _cloned_own_way(value, memo, seen):
    """Into ``memo`` (deepcopy's), clone's copy of each estimator inside ``value`` whose
    class clones its own way; a walk of attributes, cheaper than get_params."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, (list, tuple)):
        for item in value:
            _cloned_own_way(item, memo, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _cloned_own_way(item, memo, seen)
    elif hasattr(value, "get_params") and not isinstance(value, type):
        if _clones_its_own_way(value):
            memo[id(value)] = clone(value)
        elif hasattr(value, "__dict__"):
            _cloned_own_way(vars(value), memo, seen)


_BASE_CLONE = BaseEstimator.__sklearn_clone__


def _read_only(error):
    text = str(error)
    return isinstance(error, (ValueError, TypeError)) and ("read-only" in text or "readonly" in text)


def _on_private_copy_if_read_only(fit, X, y):
    """``fit(X, y)``; if it tried to write into a shared input, ``fit`` on copies."""
    try:
        return fit(X, y)
    except Exception as error:
        if not _read_only(error):
            raise
    return fit(private(X), private(y))


# ---------------------------------------------------------------------------
# Pipeline steps
# ---------------------------------------------------------------------------


def fit_transform(step, fold, params, raise_errors, again, in_columns):
    """Fit a transformer on the training rows and transform the fold, like a Pipeline.

    One task: ``fit_transform`` on the training rows (what ``Pipeline.fit``
    does), then ``transform`` of the test rows and, if ``again``, of the
    training rows (what scoring a fitted Pipeline does).  The fitted step
    is used here only and dropped.
    """
    if isinstance(fold, Failed):
        return fold
    fold = fold.own()
    params = own_objects(_value(params))
    fitted = []

    def fit(X, y):
        estimator = fresh(step.value)
        if hasattr(estimator, "fit_transform"):
            Xt = estimator.fit_transform(X, y, **params.get("fit_transform", {}))
        else:  # what fit returns transforms, as in Pipeline (a fit returning None fails)
            Xt = estimator.fit(X, y, **params.get("fit", {})).transform(
                X, **params.get("transform", {}))
        fitted.append(estimator)
        return Xt

    start = time.time()
    try:
        try:
            raw = _on_private_copy_if_read_only(fit, fold.X, fold.y)
        except ValueError as error:
            # In a ColumnTransformer's branch: its error (a column given as a scalar).
            instead = _compat.one_column_error(error) if in_columns.value else None
            if instead is None:
                raise
            raise instead from error
    except Exception:
        if raise_errors.value:
            raise
        return Failed(format_exc(), fold.fit_time + time.time() - start)
    Xt = shared(raw)
    fit_time = fold.fit_time + time.time() - start
    estimator = fitted[-1]
    start = time.time()
    test = _transform(estimator, fold.test, raise_errors.value)
    test_time = fold.test_time + time.time() - start
    if again.value:
        rows = fold.again
        if rows is raw:
            # The step handed back the very rows it was fitted on (a list it wrote
            # into, say): transformed again, they would change under the next step,
            # which in a Pipeline is fitted before any scoring transforms them.
            rows = private(rows)
        again = _transform(estimator, rows, raise_errors.value)
    else:
        again = None
    return Fold(Xt, shared(fold.y), test, shared(fold.test_y), again, fit_time, test_time,
                shared=True)


def _transform(estimator, X, raise_errors):
    if X is None or isinstance(X, Broken):
        return X
    try:
        try:
            Xt = estimator.transform(shared(X))
        except Exception as error:
            if not _read_only(error):
                raise
            Xt = estimator.transform(private(X))
    except Exception as error:
        if raise_errors:
            raise
        return Broken(error)
    return shared(Xt)


def stack(config, folds):
    """FeatureUnion: the branches' folds side by side (``transformer_weights`` applied).

    ``config`` holds (branch names, weights, whether errors raise).
    """
    failed = next((f for f in folds if isinstance(f, Failed)), None)
    if failed is not None:
        return Failed(failed.error, max(getattr(f, "time", 0.0) for f in folds), failed.why)
    names, weights, raise_errors = config.value

    def hstack(Xs):
        parts = []
        for name, X, weight in zip(names, Xs, weights):
            if hasattr(X, "shape") and len(X.shape) != 2:
                raise ValueError(
                    f"Transformer '{name}' returned an array or dataframe with "
                    f"{len(X.shape)} dimensions, but expected 2 dimensions "
                    "(n_samples, n_features)."
                )
            parts.append(X if weight is None else X * weight)
        return shared(_hstack(parts))

    return _combine(folds, hstack, raise_errors)


def _combine(folds, hstack, raise_errors):
    """The branches' folds as one: the training rows stacked first (part of the fit, as
    in scikit-learn: a failure there is a failed fit), then the rows to score (a
    failure there fails their scoring)."""
    first = folds[0]
    fit_time = sum(f.fit_time for f in folds)
    start = time.time()
    try:
        X = hstack([f.X for f in folds])
    except Exception:
        if raise_errors:
            raise
        return Failed(format_exc(), fit_time + time.time() - start)
    fit_time += time.time() - start
    sides = {}
    for side in ("test", "again"):
        Xs = [getattr(f, side) for f in folds]
        broken = next((X for X in Xs if isinstance(X, Broken)), None)
        if broken is not None or any(X is None for X in Xs):
            # Rows some branch has no transform of (``again`` without training
            # scores, which a passthrough branch still carries): none.
            sides[side] = broken
            continue
        try:
            sides[side] = hstack(Xs)
        except Exception as error:
            if raise_errors:
                raise
            sides[side] = Broken(error)
    return Fold(X, first.y, sides["test"], first.test_y, sides["again"], fit_time,
                sum(f.test_time for f in folds), shared=True)


def _hstack(Xs):
    import numpy as np
    from scipy import sparse

    if any(sparse.issparse(X) for X in Xs):
        return sparse.hstack(Xs).tocsr()
    # As FeatureUnion joins them, with its errors (a branch returning None):
    # concatenated from scikit-learn 1.9 (its array API support), hstacked before.
    if _compat.sklearn_version() >= (1, 9):
        return np.concatenate(Xs, axis=1)
    return np.hstack(Xs)


def stack_columns(config, folds):
    """ColumnTransformer: the branches' folds side by side, like ``ColumnTransformer._hstack``.

    ``config`` holds (branch names, weights, sparse_threshold, whether errors
    raise).  The choice of a sparse or dense output is made on the training
    rows and kept for the others, as the fitted ColumnTransformer does.
    """
    failed = next((f for f in folds if isinstance(f, Failed)), None)
    if failed is not None:
        return Failed(failed.error, max(getattr(f, "time", 0.0) for f in folds), failed.why)
    if not folds:
        raise ValueError("a ColumnTransformer with no branch is planned as empty_union")
    names, weights, threshold, raise_errors = config.value
    choice = []  # sparse or not: the training rows, stacked first, decide

    def hstack(Xs):
        return shared(_stack_columns(Xs, names, weights, threshold, choice))

    return _combine(folds, hstack, raise_errors)


def _stack_columns(Xs, names, weights, threshold, choice):
    import numpy as np
    from scipy import sparse
    from sklearn.utils import check_array

    parts = []
    for name, X, weight in zip(names, Xs, weights):
        if not (sparse.issparse(X) or hasattr(X, "shape")) or len(X.shape) != 2:
            raise ValueError(
                f"The output of the '{name}' transformer should be 2D (numpy array, "
                "scipy sparse array, dataframe)."
            )
        _check_no_pandas_na(name, X)
        parts.append(X if weight is None else X * weight)
    if not choice:  # the training rows decide
        if any(sparse.issparse(X) for X in parts):
            nnz = sum(X.nnz if sparse.issparse(X) else X.shape[0] * X.shape[1] for X in parts)
            total = sum(X.shape[0] * X.shape[1] for X in parts)
            choice.append(nnz / total < threshold)
        else:
            choice.append(False)
    if choice[0]:
        try:
            parts = [check_array(X, accept_sparse=True, ensure_all_finite=False) for X in parts]
        except ValueError as e:
            raise ValueError(
                "For a sparse output, all columns should be a numeric or convertible "
                "to a numeric."
            ) from e
        return sparse.hstack(parts).tocsr()
    return np.hstack([X.toarray() if sparse.issparse(X) else X for X in parts])


def _check_no_pandas_na(name, X):
    """ColumnTransformer refuses a branch's DataFrame column that holds pandas.NA (in a
    nullable dtype) for a NumPy output: its message, as it raises it."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(X, "columns"):
        return
    import pandas as pd

    for column, dtype in dtypes.to_dict().items():
        if getattr(dtype, "na_value", None) is pd.NA and pd.NA in X[column].values:
            raise ValueError(
                f"The output of the '{name}' transformer for column '{column}' has dtype "
                f"{dtype} and uses pandas.NA to represent null values. Storing this output "
                "in a numpy array can cause errors in downstream scikit-learn estimators, "
                "and inefficiencies. To avoid this problem you can (i) store the output in "
                "a pandas DataFrame by using ColumnTransformer.set_output(transform='pandas') "
                f"or (ii) modify the input data or the '{name}' transformer to avoid the "
                "presence of pandas.NA (for example by using pandas.DataFrame.astype)."
            )


def empty_union(fold, config):
    """A union whose branches are all dropped outputs no columns.

    ``config`` holds (whether it counts rows by ``X.shape``, as FeatureUnion
    does, where ColumnTransformer counts them as any estimator does; whether
    errors raise): a FeatureUnion's fit on a list of documents fails there.
    """
    import numpy as np

    if isinstance(fold, Failed):
        return fold
    by_shape, raise_errors = config.value

    def empty(X):
        return np.zeros((X.shape[0] if by_shape else _n_samples(X), 0))

    start = time.time()
    try:
        X = empty(fold.X)
    except Exception:
        if raise_errors:
            raise
        return Failed(format_exc(), fold.fit_time + time.time() - start)

    def each(X):
        if X is None or isinstance(X, Broken):
            return X
        try:
            return empty(X)
        except Exception as error:  # noqa: BLE001 - the rows' scoring fails with it
            return Broken(error)

    return Fold(X, fold.y, each(fold.test), fold.test_y, each(fold.again),
                fold.fit_time, fold.test_time, fold.shared)


# ---------------------------------------------------------------------------
# The final step: one (candidate, fold) result
# ---------------------------------------------------------------------------


class ScoreConfig:
    """What every final task of one search shares: how to score and report."""

    __slots__ = ("scorer", "error_score", "return_train_score", "verbose", "return_estimator")

    def __init__(self, scorer, error_score, return_train_score, verbose, return_estimator=False):
        self.scorer = scorer
        self.error_score = error_score
        self.return_train_score = return_train_score
        self.verbose = verbose
        self.return_estimator = return_estimator

    def __reduce__(self):
        return (ScoreConfig, (self.scorer, self.error_score, self.return_train_score,
                              self.verbose, self.return_estimator))


def fit_and_score(final, inputs, label, callback=None):
    """Fit the last estimator of a path and score it: one (candidate, fold) record.

    ``inputs`` is (fold, fit_params, test_params, train_params, config); the
    fold holds the rows as the estimator sees them (its input fitted and
    transformed upstream).  Returns the record scikit-learn's
    ``_fit_and_score`` returns.  ``callback``, when scikit-learn's fit
    callbacks are in use, holds this evaluation's callback context and the
    search that owns it.
    """
    fold, fit_params, test_params, train_params, config = inputs
    config = config.value
    fit_params, test_params, train_params = map(_value, (fit_params, test_params, train_params))
    error_score = config.error_score
    if config.verbose > 9:
        _print_start(label.value)
    fitted = []

    def fit(X, y):
        estimator = fresh(final.value)
        fitted.append(estimator)
        _fit(estimator, X, y, fit_params, callback)

    if isinstance(fold, Failed):
        result = failed_record(config, fold.error, fold.time, 0, fold.why)
    else:
        fold = fold.own()
        start = time.time()
        try:
            _on_private_copy_if_read_only(fit, fold.X, fold.y)
        except Exception:
            if error_score == "raise":
                raise
            result = failed_record(config, format_exc(), fold.fit_time + time.time() - start,
                                   _n_samples(fold.test))
            if config.return_estimator:  # as scikit-learn: the estimator that failed
                result["estimator"] = fitted[-1]
        else:
            fit_time = fold.fit_time + time.time() - start
            estimator = fitted[-1]
            start = time.time()
            result = {"fit_error": None,
                      "test_scores": _score(estimator, fold.test, fold.test_y, config,
                                            test_params)}
            score_time = fold.test_time + time.time() - start
            if config.return_train_score:
                result["train_scores"] = _score(estimator, fold.again, fold.y, config,
                                                train_params)
            result.update(n_test_samples=_n_samples(fold.test), fit_time=fit_time,
                          score_time=score_time)
            if config.return_estimator:
                result["estimator"] = estimator
    if config.verbose > 1:
        _print_end(label.value, result, config)
    return result


def _score(estimator, X, y, config, params):
    if isinstance(X, Broken):
        # The fitted pipeline failed to transform these rows: its scoring
        # fails as scikit-learn's does, with the same warning or error.
        estimator = _Raising(estimator, X.error)
    with _on_a_copy_if_it_writes(estimator, X):
        return _compat.score(estimator, X, y, config.scorer, params, config.error_score)


# What a scorer may call on the estimator with the rows it scores.
_PREDICTIONS = ("predict", "predict_proba", "predict_log_proba", "decision_function",
                "score", "score_samples", "transform")


@contextlib.contextmanager
def _on_a_copy_if_it_writes(estimator, X):
    """While ``estimator`` is scored on shared rows (read-only views): a prediction
    method that writes into them, and so fails, runs again on a private copy.

    The scorer catches what the method raises, so the retry is put on the
    method itself, as an attribute of the instance (its class and type stay
    what any scorer checks), removed once scored.
    """
    own = getattr(estimator, "__dict__", None)
    patched, depth = [], [0]
    if own is not None and _read_only_data(X):
        for name in _PREDICTIONS:
            if name in own:
                continue
            try:
                method = getattr(estimator, name)
            except AttributeError:  # not offered (``available_if``), or none
                continue
            own[name] = _retrying(method, name, depth)
            patched.append(name)
    try:
        yield
    finally:
        for name in patched:
            own.pop(name, None)


def _retrying(method, name, depth):
    def call(X, *args, **kwargs):
        if depth[0]:  # called by another of them (score calls predict): it retries whole
            return method(X, *args, **kwargs)
        depth[0] += 1
        try:
            try:
                return method(X, *args, **kwargs)
            except Exception as error:
                if not _read_only(error):
                    raise
            return method(private(X), *args, **kwargs)
        finally:
            depth[0] -= 1

    call.__name__ = name  # scikit-learn's scorers look a method up again by its name
    return call


def _read_only_data(X):
    data = getattr(X, "data", X) if hasattr(X, "indptr") else X
    flags = getattr(data, "flags", None)
    return flags is not None and hasattr(flags, "writeable") and not flags.writeable


class _Raising:
    """An estimator whose every prediction raises ``error`` (see ``_score``)."""

    def __init__(self, estimator, error):
        self._estimator, self._error = estimator, error

    def __getattr__(self, name):
        attr = getattr(self._estimator, name)
        if name in ("predict", "predict_proba", "predict_log_proba", "decision_function",
                    "score", "transform", "score_samples"):
            def raising(*args, **kwargs):
                raise self._error
            # scikit-learn's multimetric scorer looks the method up again by its name.
            raising.__name__ = name
            return raising
        return attr


def failed_record(config, fit_error, fit_time=0.0, n_test_samples=0, why="raised"):
    """The record of a fit that failed, scored ``error_score`` as scikit-learn does."""
    error_score = config.error_score
    if _compat.is_multimetric(config.scorer):
        test_scores = {name: error_score for name in _compat.scorer_names(config.scorer)}
    else:
        test_scores = error_score
    result = {"fit_error": fit_error, "test_scores": test_scores}
    if config.return_train_score:
        result["train_scores"] = test_scores.copy() if isinstance(test_scores, dict) else test_scores
    result["n_test_samples"] = n_test_samples
    result["fit_time"] = fit_time
    result["score_time"] = 0.0
    if config.return_estimator:
        result["estimator"] = None
    if why == "timeout":
        result["timed_out"] = True
    return result


def _fit(estimator, X, y, fit_params, callback):
    args = (X,) if y is None else (X, y)
    fit_params = own_objects(fit_params)
    if callback is None:
        estimator.fit(*args, **fit_params)
        return
    ctx, caller = callback.value
    weight = fit_params.get("sample_weight")
    hook = dict(estimator=caller, X=X, y=y,
                metadata=None if weight is None else {"sample_weight": weight})
    try:
        with ctx.propagate_callback_context(estimator):
            ctx.call_on_fit_task_begin(**hook)
            estimator.fit(*args, **fit_params)
    finally:
        ctx.call_on_fit_task_end(**hook)


def _n_samples(X):
    if X is None or isinstance(X, Broken):
        return 0
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _print_start(label):
    params, split, n_splits, cand, n_cands = label
    msg = ", ".join(f"{k}={params[k]}" for k in sorted(params))
    progress = "" if n_splits is None else f" {split + 1}/{n_splits}; {cand + 1}/{n_cands}"
    start = f"[CV{progress}] START {msg}"
    _say(f"{start}{(80 - len(start)) * '.'}")


def _print_end(label, result, config):
    """The '[CV i/n] END ...' line scikit-learn prints at verbose > 1."""
    params, split, n_splits, cand, n_cands = label
    progress = ""
    if config.verbose > 2 and n_splits is not None:  # None: a cross-validation function's
        progress = f" {split + 1}/{n_splits}"
        if config.verbose > 9:
            progress += f"; {cand + 1}/{n_cands}"
    msg = ", ".join(f"{k}={params[k]}" for k in sorted(params))
    msg += ";" if msg else ""
    if config.verbose > 2:
        test = result["test_scores"]
        train = result.get("train_scores")
        if isinstance(test, dict):
            for name in sorted(test):
                msg += f" {name}: ("
                if train is not None:
                    msg += f"train={train[name]:.3f}, "
                msg += f"test={test[name]:.3f})"
        elif train is not None:
            msg += f", score=(train={train:.3f}, test={test:.3f})"
        else:
            msg += f", score={test:.3f}"
    total = result["fit_time"] + result["score_time"]
    msg += f" total time={_short_time(total)}"
    head = f"[CV{progress}] END "
    _say(head + "." * (80 - len(head) - len(msg)) + msg)


def _say(line):
    # One write, not print's two (the text, then the newline): lines printed by
    # fits running at once on threads stay whole.
    sys.stdout.write(line + "\n")


def _short_time(t):
    if t > 60:
        return f"{t / 60:4.1f}min"
    return f" {t:5.1f}s"


def _value(arg):
    return arg.value if isinstance(arg, Const) else arg


# ---------------------------------------------------------------------------
# What a task said, where it ran elsewhere (a worker process, a dask worker)
# ---------------------------------------------------------------------------


_TOKEN = os.urandom(8).hex()


def this_process():
    """This process, as a task elsewhere tells it from its own (a fork keeps the token,
    not the pid)."""
    return os.getpid(), _TOKEN


_CATCHING = threading.Lock()  # held while a Said catches this process's output


class Said:
    """What a task printed and warned, for the caller to print and warn again.

    A task running in a thread of the caller prints to the caller's
    ``sys.stdout`` and warns through its warning filters (scikit-learn's
    verbose lines, a ConvergenceWarning); one running in a worker process, or
    on a dask worker that runs one task at a time, does the same through the
    caller (``repeat``).  It runs under the caller's filters, as
    scikit-learn runs each fit in its workers (from 1.7): an "error" filter
    makes the fit fail, "ignore" drops the warning, and a warning shows once
    per fit.  Both are the whole process's, so one Said catches at a time: a
    task that starts beside one that catches (a dask worker's thread freed by
    a task waiting on the cluster) leaves its output to the process, as a
    dask worker of several threads does (the dask engine asks only workers of
    one thread).
    """

    def __init__(self, filters):
        self.filters = filters
        self.catching = False

    def __enter__(self):
        import warnings

        self.catching = _CATCHING.acquire(blocking=False)
        if not self.catching:
            return self
        self.text = io.StringIO()
        self.redirect = contextlib.redirect_stdout(self.text)
        self.redirect.__enter__()
        self.catch = warnings.catch_warnings(record=True)
        self.caught = self.catch.__enter__()
        warnings.filters[:] = self.filters
        return self

    def __exit__(self, *exc):
        if self.catching:
            try:
                self.catch.__exit__(*exc)
                self.redirect.__exit__(*exc)
            finally:
                _CATCHING.release()
        return False

    def output(self):
        """(printed text, [(category, message, filename, line number)]), cloudpickled;
        None if it said nothing (most fits: pickling nothing costs a cheap fit's tenth)."""
        if not self.catching or (not self.caught and not self.text.tell()):
            return None
        warned = [(w.category, str(w.message), w.filename, w.lineno) for w in self.caught]
        try:
            return cloudpickle.dumps((self.text.getvalue(), warned))
        except Exception:  # noqa: BLE001 - a warning category that does not pickle
            return cloudpickle.dumps((self.text.getvalue(), []))


def repeat(said):
    """Print and warn here what a task printed and warned elsewhere (what the caller's
    filters, which it ran under, let show: they let it show here too)."""
    import warnings

    if said is None:
        return
    try:
        text, warned = cloudpickle.loads(said)
    except Exception:  # noqa: BLE001 - a warning class this process cannot load
        return  # what the fit said is lost, not the search
    if text and sys.stdout is not None:  # None: pythonw, some daemons; printing drops it
        sys.stdout.write(text)
    for category, message, file, lineno in warned:
        filename = file if isinstance(file, str) else "<unknown>"
        # The module a filter's ``module=`` matches, as ``warnings.warn`` names it
        # (here, not in the worker: a script is __main__ only here).  Unknown
        # (a notebook's cell), warn_explicit names it after the file: not None,
        # which it takes for a module whose warnings it drops.
        module = _module_of(filename)
        try:
            warnings.warn_explicit(message, category, filename, lineno or 0,
                                   **({} if module is None else {"module": module}))
        except TypeError:  # a category that needs more than its message to be made
            if sys.stderr is not None:
                sys.stderr.write(warnings.formatwarning(message, category, filename,
                                                        lineno or 0))


# (how many modules were imported, {a module's file: its name}) when it was made
_MODULE_FILES = (0, {})


def _module_of(filename):
    """The name of the module imported here from ``filename``, or None."""
    global _MODULE_FILES
    seen, files = _MODULE_FILES
    if filename not in files and seen != len(sys.modules):
        from ._own_code import file_of

        files = {}
        for name, module in list(sys.modules.items()):
            path = file_of(module)
            if path is not None:
                files.setdefault(path, name)  # __main__ before __mp_main__
        # Replaced whole: a search in another thread reads the old one meanwhile.
        _MODULE_FILES = (len(sys.modules), files)
    return files.get(filename)
