"""Task bodies: the functions a worker runs.

A search graph (see ``_plan``) is made of calls to the functions here.  They
are top-level functions over picklable values so that any scheduler, a thread,
a process or a dask.distributed worker, can run them; this module imports
nothing from dask.

What flows between tasks:

- ``Part``: data at some point of a pipeline for one fold and one side (the
  training rows or the test rows): ``X``, ``y`` and ``time``, the seconds it
  took to produce, summed along the path (so each candidate's ``fit_time`` is
  what scikit-learn would have measured for it alone).
- ``Fitted``: a ``Part`` that also holds the transformer fitted on it.
  Its ``X`` is ``fit_transform``'s output, as in ``Pipeline.fit``.
- ``Failed``: a fit that raised, with its traceback.  It flows downstream in
  place of data, so every candidate that shares the failed step reports it
  (``error_score``), exactly as if each had failed on its own.

Scheduler-visible literals (estimators, parameter dicts) are wrapped in
``Const`` so that no scheduler mistakes a value inside them for a task key.

A task never mutates its inputs: estimators are cloned before fitting, since
the same input object may be read concurrently by other tasks.
"""

import threading
import time
from traceback import format_exc

from sklearn.base import clone

from . import _compat


class Const:
    """A literal that schedulers must pass through untouched."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return (Const, (self.value,))


# Inputs sent to a worker process once, when it starts (see _engines), by key.
_SHARED = {}
# The same, for a thread of the client that runs process-pool tasks: there
# the inputs are the caller's own arrays, and other searches of the process
# must not see them.
_HERE = threading.local()


class Shared:
    """Stands for a ``Const`` whose value each worker process received at start.

    It pickles as its key alone, so a process-pool task that reads X ships
    a few bytes instead of X.
    """

    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    @property
    def value(self):
        here = getattr(_HERE, "values", None)
        return (_SHARED if here is None else here)[self.key]

    def __reduce__(self):
        return (Shared, (self.key,))


def receive_shared(values):
    """Worker start-up: keep the inputs that ``Shared`` entries name."""
    _SHARED.update(values)


def share_with_this_thread(values):
    """Thread start-up: ``Shared`` entries read in this thread name ``values``."""
    _HERE.values = values


class Part:
    __slots__ = ("X", "y", "time")

    def __init__(self, X, y, time):
        self.X, self.y, self.time = X, y, time

    def __reduce__(self):
        return (Part, (self.X, self.y, self.time))


class Fitted(Part):
    __slots__ = ("estimator",)

    def __init__(self, X, y, time, estimator):
        super().__init__(X, y, time)
        self.estimator = estimator

    def __reduce__(self):
        return (Fitted, (self.X, self.y, self.time, self.estimator))


class Failed:
    __slots__ = ("error", "time")

    def __init__(self, error, time):
        self.error, self.time = error, time

    def __reduce__(self):
        return (Failed, (self.error, self.time))


def take(estimator, X, y, rows, train_rows=None):
    """Rows of one fold, sliced the way scikit-learn slices them.

    ``estimator`` is only read for its 'pairwise' tag (precomputed kernels
    are sliced on both axes, test rows against training columns).
    """
    Xs, ys = _compat.safe_split(estimator.value, X.value, _value(y), rows, train_rows)
    return Part(Xs, ys, 0.0)


def take_rows(X, y, rows):
    """Rows of one fold for an estimator that is not pairwise (the common case)."""
    Xs, ys = _compat.take_rows(X.value, _value(y), rows)
    return Part(Xs, ys, 0.0)


def fold_params(X, params, rows):
    """Sample-aligned parameters (e.g. sample_weight) restricted to ``rows``."""
    return _compat.check_method_params(X.value, params=params.value, indices=rows)


def fit_transform(step, part, params, raise_errors):
    """Fit a transformer on training data and transform it, like Pipeline.fit."""
    if isinstance(part, Failed):
        return part
    params = _value(params)
    estimator = clone(step.value)
    start = time.time()
    try:
        if hasattr(estimator, "fit_transform"):
            Xt = estimator.fit_transform(part.X, part.y, **params.get("fit_transform", {}))
        else:
            estimator.fit(part.X, part.y, **params.get("fit", {}))
            Xt = estimator.transform(part.X, **params.get("transform", {}))
    except Exception:
        if raise_errors:
            raise
        return Failed(format_exc(), part.time + time.time() - start)
    return Fitted(Xt, part.y, part.time + time.time() - start, estimator)


def transform(fitted, part):
    """Apply a fitted transformer to test (or training) rows."""
    if isinstance(fitted, Failed):
        return fitted
    if isinstance(part, Failed):  # pragma: no cover - inputs fail before fits do
        return part
    start = time.time()
    Xt = fitted.estimator.transform(part.X)
    return Part(Xt, part.y, part.time + time.time() - start)


def stack(weights, parts):
    """Concatenate FeatureUnion branches side by side, as FeatureUnion does.

    ``parts`` holds one entry per kept branch: a ``Part`` (or ``Fitted``),
    or a ``Failed`` that then stands for the whole union.
    """
    failed = [p for p in parts if isinstance(p, Failed)]
    if failed:
        return Failed(failed[0].error, max(p.time for p in parts))
    first = parts[0]
    Xs = []
    for part, weight in zip(parts, weights.value):
        X = part.X
        if hasattr(X, "shape") and len(X.shape) != 2:
            raise ValueError(
                f"A FeatureUnion transformer returned an array with {len(X.shape)} "
                "dimensions, but expected 2 dimensions (n_samples, n_features)."
            )
        Xs.append(X if weight is None else X * weight)
    return Part(_hstack(Xs), first.y, sum(p.time for p in parts))


def _hstack(Xs):
    import numpy as np
    from scipy import sparse

    if any(sparse.issparse(X) for X in Xs):
        return sparse.hstack(Xs).tocsr()
    return np.hstack(Xs)


def columns(part, key):
    """The columns ``key`` of a ColumnTransformer's input, as it selects them."""
    if isinstance(part, Failed):
        return part
    return Part(_compat.safe_indexing(part.X, key.value, axis=1), part.y, part.time)


class Stacked(Part):
    """A ColumnTransformer's training output, with its sparse-or-dense choice.

    The choice is made on the training rows (``sparse_threshold``) and
    reused for the test rows, as the fitted ColumnTransformer does.
    """

    __slots__ = ("sparse_output",)

    def __init__(self, X, y, time, sparse_output):
        super().__init__(X, y, time)
        self.sparse_output = sparse_output

    def __reduce__(self):
        return (Stacked, (self.X, self.y, self.time, self.sparse_output))


def stack_columns(config, parts, fitted=None):
    """Concatenate ColumnTransformer branches like ``ColumnTransformer._hstack``.

    ``config`` holds (branch names, weights, sparse_threshold); ``fitted`` is
    the training-side result whose sparse choice the test side follows.
    """
    import numpy as np
    from scipy import sparse
    from sklearn.utils import check_array

    if isinstance(fitted, Failed):
        return fitted
    failed = [p for p in parts if isinstance(p, Failed)]
    if failed:
        return Failed(failed[0].error, max(p.time for p in parts if hasattr(p, "time")))
    names, weights, threshold = config.value
    y = parts[0].y if parts else None
    Xs = []
    for name, part, weight in zip(names, parts, weights):
        X = part.X
        if not (sparse.issparse(X) or hasattr(X, "iloc") or hasattr(X, "shape")) or len(X.shape) != 2:
            raise ValueError(
                f"The output of the '{name}' transformer should be 2D (numpy array, "
                "scipy sparse array, dataframe)."
            )
        Xs.append(X if weight is None else X * weight)
    if fitted is not None:
        sparse_output = fitted.sparse_output
    elif any(sparse.issparse(X) for X in Xs):
        nnz = sum(X.nnz if sparse.issparse(X) else X.shape[0] * X.shape[1] for X in Xs)
        total = sum(X.shape[0] * X.shape[1] for X in Xs)
        sparse_output = nnz / total < threshold
    else:
        sparse_output = False
    if sparse_output:
        try:
            Xs = [check_array(X, accept_sparse=True, ensure_all_finite=False) for X in Xs]
        except ValueError as e:
            raise ValueError(
                "For a sparse output, all columns should be a numeric or convertible "
                "to a numeric."
            ) from e
        out = sparse.hstack(Xs).tocsr()
    else:
        out = np.hstack([X.toarray() if sparse.issparse(X) else X for X in Xs])
    elapsed = sum(p.time for p in parts)
    if fitted is None:
        return Stacked(out, y, elapsed, sparse_output)
    return Part(out, y, elapsed)


def empty_union(part):
    """A FeatureUnion whose branches are all dropped outputs no columns."""
    import numpy as np

    if isinstance(part, Failed):
        return part
    return Part(np.zeros((part.X.shape[0], 0)), part.y, part.time)


class ScoreConfig:
    """What every final task of one search shares: how to score and report."""

    __slots__ = ("scorer", "error_score", "return_train_score", "verbose")

    def __init__(self, scorer, error_score, return_train_score, verbose):
        self.scorer = scorer
        self.error_score = error_score
        self.return_train_score = return_train_score
        self.verbose = verbose

    def __reduce__(self):
        return (
            ScoreConfig,
            (self.scorer, self.error_score, self.return_train_score, self.verbose),
        )


def fit_and_score(final, inputs, label, callback=None):
    """Fit the last estimator of a path and score it: one (candidate, fold) result.

    ``inputs`` is (train, test, train_again, fit_params, test_params,
    train_params, config).  ``train`` is the training rows as the estimator
    sees them (its input already fitted and transformed upstream), ``test``
    the test rows passed through the same fitted steps, ``train_again`` the
    training rows passed through them with ``transform`` (scikit-learn scores
    training rows with ``predict``, not with ``fit_transform``'s output).
    Returns the record
    ``sklearn.model_selection._validation._fit_and_score`` returns.

    ``callback``, when scikit-learn's fit callbacks are in use, holds this
    evaluation's callback context and the search that owns it.
    """
    train, test, train_again, fit_params, test_params, train_params, config = inputs
    config = config.value
    fit_params, test_params, train_params = map(_value, (fit_params, test_params, train_params))
    scorer, error_score = config.scorer, config.error_score
    fit_error = None
    if isinstance(train, Failed):
        fit_time, fit_error = train.time, train.error
    else:
        estimator = clone(final.value)
        start = time.time()
        try:
            _fit(estimator, train, fit_params, callback)
        except Exception:
            if error_score == "raise":
                raise
            fit_error = format_exc()
        fit_time = train.time + time.time() - start
    if fit_error is not None:
        result = failed_record(config, fit_error, fit_time, _n_samples(test))
    else:
        start = time.time()
        result = {
            "fit_error": None,
            "test_scores": _compat.score(estimator, test.X, test.y, scorer, test_params, error_score),
        }
        score_time = test.time + time.time() - start
        if config.return_train_score:
            result["train_scores"] = _compat.score(
                estimator, train_again.X, train_again.y, scorer, train_params, error_score
            )
        result.update(n_test_samples=_n_samples(test), fit_time=fit_time, score_time=score_time)
    if config.verbose > 1:
        _print_end(label.value, result, config)
    return result


def failed_record(config, fit_error, fit_time=0.0, n_test_samples=0):
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
    return result


def _fit(estimator, train, fit_params, callback):
    args = (train.X,) if train.y is None else (train.X, train.y)
    if callback is None:
        estimator.fit(*args, **fit_params)
        return
    ctx, caller = callback.value
    weight = fit_params.get("sample_weight")
    hook = dict(estimator=caller, X=train.X, y=train.y,
                metadata=None if weight is None else {"sample_weight": weight})
    try:
        with ctx.propagate_callback_context(estimator):
            ctx.call_on_fit_task_begin(**hook)
            estimator.fit(*args, **fit_params)
    finally:
        ctx.call_on_fit_task_end(**hook)


def _n_samples(part):
    if isinstance(part, Failed):
        return 0
    X = part.X
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _print_end(label, result, config):
    """The '[CV i/n] END ...' line scikit-learn prints at verbose > 1."""
    params, split, n_splits, cand, n_cands = label
    progress = ""
    if config.verbose > 2:
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
    print(head + "." * (80 - len(head) - len(msg)) + msg)


def _short_time(t):
    if t > 60:
        return f"{t / 60:4.1f}min"
    return f" {t:5.1f}s"


def batch(records):
    """Several (candidate, fold) tasks run as one (their records, in order).

    The engine groups cheap tasks this way so that per-task costs (pickling,
    inter-process messages) are paid once per batch; see ``_engines``.
    """
    return records


def unwrap(const):
    """A result computed earlier, put back into a graph as a task."""
    return const.value


def with_config(settings, func, *args):
    """Run ``func(*args)`` under the caller's scikit-learn configuration.

    On a cluster, joblib inside the task (an estimator's own ``n_jobs``)
    runs on the same cluster.
    """
    from contextlib import nullcontext

    import joblib
    import sklearn

    backend = settings.value.get("joblib")
    nested = joblib.parallel_config(backend=backend) if backend else nullcontext()
    with sklearn.config_context(**settings.value["sklearn"]), nested:
        return func(*args)


def _value(arg):
    return arg.value if isinstance(arg, (Const, Shared)) else arg
