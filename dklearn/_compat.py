"""Every use of scikit-learn's private API, in one place.

dklearn promises scikit-learn's exact semantics, and some of them live only in
private helpers (how a fold is sliced for a precomputed kernel, how a failed
score is reported, how fit parameters are split per Pipeline step).  Calling
the installed helper keeps us equal to the installed version; re-writing it
would drift.  Each helper is imported here, with a fallback written against
the public API, so a scikit-learn release that moves one breaks this module
only.  ``tests/test_compat.py`` runs every fallback against the real helper.
"""

import copy
import numbers
import os
import warnings
from traceback import format_exc

import numpy as np
import sklearn
from scipy import sparse
from sklearn.base import clone
from sklearn.utils.metadata_routing import process_routing

try:  # scikit-learn >= 1.6
    from sklearn.utils import get_tags as _get_tags
except ImportError:  # pragma: no cover - older releases are not supported
    _get_tags = None

try:
    from sklearn.utils._indexing import _safe_indexing as _sk_safe_indexing
except ImportError:  # pragma: no cover
    _sk_safe_indexing = None

try:
    from sklearn.utils._indexing import _get_column_indices as _sk_column_indices
except ImportError:  # pragma: no cover
    _sk_column_indices = None

try:
    from sklearn.utils.metaestimators import _safe_split as _sk_safe_split
except ImportError:  # pragma: no cover
    _sk_safe_split = None

try:
    from sklearn.utils.validation import _check_method_params as _sk_check_params
except ImportError:  # pragma: no cover
    _sk_check_params = None

try:
    from sklearn.model_selection._validation import _score as _sk_score
    from sklearn.model_selection._validation import (
        _insert_error_scores as _sk_insert_error_scores,
    )
    from sklearn.model_selection._validation import (
        _warn_or_raise_about_fit_failures as _sk_warn_or_raise,
    )
except ImportError:  # pragma: no cover
    _sk_score = _sk_insert_error_scores = _sk_warn_or_raise = None

try:
    from sklearn.metrics._scorer import _MultimetricScorer, _PassthroughScorer, _Scorer
except ImportError:  # pragma: no cover
    _MultimetricScorer = _PassthroughScorer = _Scorer = None

try:
    from sklearn.base import _fit_context
except ImportError:  # pragma: no cover

    def _fit_context(prefer_skip_nested_validation):
        def decorate(fit):
            def wrapper(estimator, *args, **kwargs):
                estimator._validate_params()
                return fit(estimator, *args, **kwargs)

            return wrapper

        return decorate


fit_context = _fit_context


def routing_enabled():
    """Whether scikit-learn's metadata routing is switched on (public config)."""
    return bool(sklearn.get_config().get("enable_metadata_routing", False))


def is_pairwise(estimator):
    """The 'pairwise' tag: X is a square kernel or distance matrix."""
    if _get_tags is not None:
        try:
            return bool(_get_tags(estimator).input_tags.pairwise)
        except Exception:
            pass
    return bool(getattr(estimator, "_pairwise", False))


# --------------------------------------------------------------------------
# Indexing
# --------------------------------------------------------------------------


def _fallback_indexing(X, indices, axis=0):
    if hasattr(X, "iloc"):
        return X.iloc[indices] if axis == 0 else X.iloc[:, indices]
    if hasattr(X, "shape"):
        return X[indices] if axis == 0 else X[:, indices]
    return [X[i] for i in indices]


safe_indexing = _sk_safe_indexing or _fallback_indexing


def _fallback_column_indices(X, key):
    n = X.shape[1]
    if isinstance(key, (str, int, np.integer)):
        key = [key]
    if isinstance(key, slice):
        return list(range(n))[key]
    key = list(key)
    if key and all(isinstance(k, (bool, np.bool_)) for k in key):
        return [i for i, k in enumerate(key) if k]
    if key and all(isinstance(k, str) for k in key):
        columns = list(X.columns)
        return [columns.index(k) for k in key]
    return [int(k) % n for k in key]


column_indices = _sk_column_indices or _fallback_column_indices


def _fallback_safe_split(estimator, X, y, indices, train_indices=None):
    if is_pairwise(estimator):
        if not hasattr(X, "shape"):
            raise ValueError(
                "Precomputed kernels or affinity matrices have to be passed as "
                "arrays or sparse matrices."
            )
        if X.shape[0] != X.shape[1]:
            raise ValueError("X should be a square kernel matrix")
        cols = indices if train_indices is None else train_indices
        X_subset = X[np.ix_(indices, cols)]
    else:
        X_subset = safe_indexing(X, indices)
    y_subset = None if y is None else safe_indexing(y, indices)
    return X_subset, y_subset


safe_split = _sk_safe_split or _fallback_safe_split


def take_rows(X, y, rows):
    """``safe_split`` for an estimator that is not pairwise: the rows of X and y.

    A NumPy array is indexed directly, which is what ``_safe_indexing`` does
    for one, without its per-call checks: a tenth of a millisecond under the
    GIL, twice per fit, which shows on searches of many small fits.
    """
    return _rows(X, rows), _rows(y, rows)


def _rows(data, rows):
    if data is None:
        return None
    if type(data) is np.ndarray and type(rows) is np.ndarray and rows.dtype.kind in "iub":
        return data[rows]
    return safe_indexing(data, rows)  # and its errors, for indices of another kind


def _fallback_check_method_params(X, params, indices=None):
    n = X.shape[0] if hasattr(X, "shape") else len(X)
    out = {}
    for key, value in (params or {}).items():
        array_like = hasattr(value, "__len__") or hasattr(value, "shape")
        if isinstance(value, str) or not array_like or _num_samples(value) != n:
            out[key] = value
        elif indices is None:
            out[key] = value
        else:
            out[key] = safe_indexing(value, indices)
    return out


def _num_samples(value):
    if sparse.issparse(value) or hasattr(value, "shape"):
        return value.shape[0] if len(value.shape) else -1
    return len(value)


check_method_params = _sk_check_params or _fallback_check_method_params


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------


def is_multimetric(scorer):
    if _MultimetricScorer is not None:
        return isinstance(scorer, _MultimetricScorer)
    return hasattr(scorer, "_scorers")


def scorer_names(scorer):
    return list(scorer._scorers)


def scores_on_final_step(scorer, score_params):
    """Whether ``scorer(pipeline, X)`` equals ``scorer(final_step, Xt)``.

    True for scikit-learn's own scorers: they only call the estimator's
    response method (predict, predict_proba, ...), which a Pipeline forwards
    to its last step after transforming X.  A user's callable may look at
    anything (``est.named_steps``), so it gets the whole pipeline.  The
    passthrough scorer (``estimator.score``) is safe unless metadata routing
    has to route score parameters through the Pipeline.
    """
    if _Scorer is None:
        return False
    if is_multimetric(scorer):
        return all(scores_on_final_step(s, score_params) for s in scorer._scorers.values())
    if isinstance(scorer, _PassthroughScorer):
        return not (score_params and routing_enabled())
    return type(scorer) is _Scorer


def pipeline_score_refuses(pipeline):
    """Whether ``pipeline.score`` raises under metadata routing before it scores.

    Pipeline.score routes the ``sample_weight=None`` it passes itself, and
    routing refuses it where no step asks for it (a last step whose ``score``
    takes none, or declines it): scikit-learn then records a failed score.
    Such a pipeline is scored whole, to fail as there.
    """
    if not routing_enabled():
        return False
    try:
        process_routing(pipeline, "score", sample_weight=None)
    except TypeError:
        return True
    return False


def response_methods(scorer):
    """For each scorer that ``scores_on_final_step``, the estimator methods it may call
    (any one of each group will do), or None if a scorer does not say."""
    groups = []
    for one in (scorer._scorers.values() if is_multimetric(scorer) else [scorer]):
        if isinstance(one, _PassthroughScorer):
            groups.append(("score",))
            continue
        method = getattr(one, "_response_method", None)
        if method is None:
            return None
        groups.append((method,) if isinstance(method, str) else tuple(method))
    return tuple(groups)


def _fallback_score(estimator, X_test, y_test, scorer, score_params, error_score="raise"):
    score_params = score_params or {}
    args = (X_test,) if y_test is None else (X_test, y_test)
    try:
        scores = scorer(estimator, *args, **score_params)
    except Exception:
        if is_multimetric(scorer) or error_score == "raise":
            raise
        scores = error_score
        warnings.warn(
            "Scoring failed. The score on this train-test partition for these "
            f"parameters will be set to {error_score}. Details: \n{format_exc()}",
            UserWarning,
        )
    if isinstance(scores, dict):
        for name, value in scores.items():
            if isinstance(value, str):
                scores[name] = error_score
                warnings.warn(
                    "Scoring failed. The score on this train-test partition for "
                    f"these parameters will be set to {error_score}. Details: \n"
                    f"{value}",
                    UserWarning,
                )
            elif hasattr(scores[name], "item"):
                scores[name] = scores[name].item()
        return scores
    if hasattr(scores, "item"):
        scores = scores.item()
    if not isinstance(scores, numbers.Number):
        raise ValueError(
            f"scoring must return a number, got {scores!r} ({type(scores)}) instead. "
            f"(scorer={scorer})"
        )
    return scores


score = _sk_score or _fallback_score


def _fallback_warn_or_raise(results, error_score):
    from collections import Counter

    from sklearn.exceptions import FitFailedWarning

    errors = [r["fit_error"] for r in results if r["fit_error"] is not None]
    if not errors:
        return
    summary = "\n".join(
        f"{'-' * 80}\n{n} fits failed with the following error:\n{e}"
        for e, n in Counter(errors).items()
    )
    if len(errors) == len(results):
        raise ValueError(
            f"\nAll the {len(results)} fits failed.\nIt is very likely that your "
            "model is misconfigured.\nYou can try to debug the error by setting "
            f"error_score='raise'.\n\nBelow are more details about the failures:\n{summary}"
        )
    warnings.warn(
        f"\n{len(errors)} fits failed out of a total of {len(results)}.\nThe score on "
        f"these train-test partitions for these parameters will be set to {error_score}.\n"
        "If these failures are not expected, you can try to debug them by setting "
        f"error_score='raise'.\n\nBelow are more details about the failures:\n{summary}",
        FitFailedWarning,
    )


warn_or_raise_about_fit_failures = _sk_warn_or_raise or _fallback_warn_or_raise


def _fallback_insert_error_scores(results, error_score):
    good = next((r["test_scores"] for r in results if r["fit_error"] is None), None)
    if isinstance(good, dict):
        for r in results:
            if r["fit_error"] is not None:
                r["test_scores"] = {name: error_score for name in good}
                if "train_scores" in r:
                    r["train_scores"] = {name: error_score for name in good}


insert_error_scores = _sk_insert_error_scores or _fallback_insert_error_scores


# --------------------------------------------------------------------------
# Routing of fit parameters into the steps of a Pipeline
# --------------------------------------------------------------------------


def pipeline_step_params(pipeline, params):
    """``{step name: {"fit": {...}, "fit_transform": {...}, ...}}`` for ``Pipeline.fit``.

    The split follows the installed Pipeline: 'step__param' keys when routing
    is off (with its error for a key with no step), ``process_routing`` when
    it is on.
    """
    if routing_enabled():
        routed = process_routing(pipeline, "fit", **params)
        # ``get``, not ``in``: with no parameters, process_routing returns an object
        # with ``__getitem__`` only, on which ``in`` tries 0, 1, 2, ... for ever.
        per_step = {name: routed.get(name) for name, _ in pipeline.steps}
        return {name: {method: dict(value) for method, value in step.items()}
                for name, step in per_step.items() if step is not None}
    per_step = {name: {"fit": {}, "fit_transform": {}} for name, _ in pipeline.steps}
    for key, value in params.items():
        if "__" not in key:
            raise ValueError(
                f"Pipeline.fit does not accept the {key} parameter. You can pass "
                "parameters to specific steps of your pipeline using the "
                "stepname__parameter format, e.g. `Pipeline.fit(X, y, "
                "logisticregression__sample_weight=sample_weight)`."
            )
        step, param = key.split("__", 1)
        per_step[step]["fit"][param] = value
        per_step[step]["fit_transform"][param] = value
    return per_step


# The checks a Pipeline's, FeatureUnion's or ColumnTransformer's own fit makes
# before it fits a step (private methods; a release that renames one only
# lets the planner take apart a container its fit would refuse, as before).
_OWN_CHECKS = ("_validate_steps", "_validate_transformers", "_validate_transformer_weights")


def passes_own_checks(container):
    """Whether a container's own ``fit`` would accept its configuration: parameters
    (unless ``skip_parameter_validation``), step names, steps' methods, weights.

    The planner takes apart only a container that passes: any other is fitted
    whole, by its own ``fit``, which fails as scikit-learn's does.
    """
    checks = [getattr(container, name, None) for name in _OWN_CHECKS]
    if (hasattr(container, "_parameter_constraints")
            and not sklearn.get_config().get("skip_parameter_validation")):
        checks.append(getattr(container, "_validate_params", None))
    try:
        for check in checks:
            if check is not None:
                check()
    except Exception:  # noqa: BLE001 - whatever its fit would raise
        return False
    return True


def has_pandas_output(estimator):
    """Whether ``set_output(transform='pandas')`` (or polars) is in force."""
    config = getattr(estimator, "_sklearn_output_config", {}) or {}
    dense = config.get("transform", sklearn.get_config().get("transform_output"))
    return dense not in (None, "default")


def clone_params(params):
    """Candidates' parameters are cloned per fit, as scikit-learn does."""
    return clone(params, safe=False)


# --------------------------------------------------------------------------
# scikit-learn >= 1.9 fit callbacks (CallbackSupportMixin); absent before
# --------------------------------------------------------------------------


class _NoCallbacks:
    """Stands in for a callback context on releases without callbacks."""

    def subcontext(self, **kwargs):
        return self

    def call_on_fit_task_begin(self, **kwargs):
        return self

    def call_on_fit_task_end(self, **kwargs):
        return self

    def propagate_callback_context(self, estimator):
        from contextlib import nullcontext

        return nullcontext()


def begin_callbacks(search, X, y, metadata):
    """The root callback context of a search's fit, as BaseSearchCV.fit makes it."""
    init = getattr(search, "_init_callback_context", None)
    if init is None:
        return _NoCallbacks()
    return init(max_subtasks=1 + (search.refit is not False)).call_on_fit_task_begin(
        estimator=search, X=X, y=y, metadata=metadata
    )


def evaluation_contexts(search, ctx, n_evaluations):
    """One callback context per (candidate, fold), made before any task runs.

    None when no callback is registered: then nothing needs to see each
    evaluation's whole estimator, and work is shared as usual.
    """
    if ctx is None or isinstance(ctx, _NoCallbacks) or not getattr(search, "_skl_callbacks", None):
        return None
    return [
        ctx.subcontext(task_name="candidate-split-evaluation", task_id=i)
        for i in range(n_evaluations)
    ]


def inconsistent_splits_message(expected, got):
    # The wording changed in scikit-learn 1.9 ("returned" -> "return").
    verb = "return" if sklearn_version() >= (1, 9) else "returned"
    return (
        f"cv.split and cv.get_n_splits {verb} inconsistent results. "
        f"Expected {expected} splits, got {got}"
    )


def sklearn_version():
    """(major, minor) of the installed scikit-learn."""
    parts = []
    for piece in sklearn.__version__.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def run_search(search, evaluate_candidates, ctx):
    """Call ``_run_search`` with a callback context when it takes one."""
    from inspect import signature

    if "callback_ctx" in signature(search._run_search).parameters and not isinstance(
        ctx, _NoCallbacks
    ):
        search._run_search(evaluate_candidates, callback_ctx=ctx)
    else:
        search._run_search(evaluate_candidates)


def format_results(search, candidate_params, n_splits, out, more_results):
    """cv_results_ from the per-(candidate, fold) records, by the installed release.

    BaseSearchCV._format_results is the definition of cv_results_ (keys,
    dtypes, masks, ranks); calling it is what keeps dklearn equal to the
    installed scikit-learn.
    """
    method = getattr(search, "_format_results", None)
    if method is not None:
        return method(candidate_params, n_splits, out, more_results)
    from ._results import format_results as fallback

    return fallback(
        candidate_params, n_splits, out, more_results, search.return_train_score
    )


# --------------------------------------------------------------------------
# joblib's parallel_config (read through joblib.parallel.get_active_backend)
# --------------------------------------------------------------------------

# joblib backend classes -> the dklearn scheduler that runs like them.  Loky
# is joblib's default, so it means "no choice made": dklearn's own default.
_JOBLIB_SCHEDULERS = {"SequentialBackend": "sync", "ThreadingBackend": "threads",
                      "MultiprocessingBackend": "processes"}


def _active_joblib():
    try:
        from joblib.parallel import get_active_backend
    except ImportError:  # pragma: no cover - a joblib that moved it: no parallel_config
        return None, None
    return get_active_backend()


def joblib_n_jobs():
    """``n_jobs`` of an active ``joblib.parallel_config``, or None."""
    return _active_joblib()[1]


def joblib_scheduler():
    """What an active ``joblib.parallel_config(backend=...)`` asks dklearn to run on.

    A dask.distributed Client (joblib's 'dask' backend), 'sync', 'threads' or
    'processes', or None when no backend was chosen.
    """
    backend = _active_joblib()[0]
    if backend is None:
        return None
    client = getattr(backend, "client", None)
    if client is not None:
        return client
    return _JOBLIB_SCHEDULERS.get(type(backend).__name__)


# --------------------------------------------------------------------------
# Successive halving: experimental in scikit-learn, importable only after
# ``from sklearn.experimental import enable_halving_search_cv``, which also
# changes sklearn.model_selection.  The classes themselves live in a
# private module; dklearn takes them from there, leaving the caller's
# sklearn.model_selection as it was.
# --------------------------------------------------------------------------


def halving_search_classes():
    """scikit-learn's (HalvingGridSearchCV, HalvingRandomSearchCV)."""
    try:
        from sklearn.model_selection._search_successive_halving import (
            HalvingGridSearchCV,
            HalvingRandomSearchCV,
        )
    except ImportError:  # pragma: no cover - a release that moved them
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV
    return HalvingGridSearchCV, HalvingRandomSearchCV


# --------------------------------------------------------------------------
# The cross-validation functions (``_validation``)
# --------------------------------------------------------------------------

try:
    from sklearn.utils._param_validation import validate_params as _sk_validate_params
except ImportError:  # pragma: no cover
    _sk_validate_params = None

try:
    from sklearn.utils._param_validation import Interval as _Interval
except ImportError:  # pragma: no cover - any number, then
    _POSITIVE = numbers.Real
else:
    _POSITIVE = _Interval(numbers.Real, 0, None, closed="neither")

# dklearn's own parameters, in scikit-learn's constraint language (the searches'
# ``_parameter_constraints``, the functions' ``validate_params``).
DKLEARN_CONSTRAINTS = {
    "scheduler": "no_validation",
    "checkpoint": [str, os.PathLike, None],
    "progress": ["boolean"],
    "fit_timeout": [_POSITIVE, None],
}


def validates_like(name):
    """Validate a function's arguments as scikit-learn's function ``name`` does.

    scikit-learn's own constraints (read from its function, so they follow
    the installed release), plus dklearn's ``scheduler``, ``checkpoint``,
    ``progress`` and ``fit_timeout``; errors are scikit-learn's.  Without
    them (a release that moved them), arguments are not checked up front.
    """
    import sklearn.model_selection as sk

    wrapped = getattr(getattr(sk, name), "__wrapped__", None)
    constraints = getattr(wrapped, "_skl_parameter_constraints", None)

    def decorate(func):
        import inspect

        signature = inspect.signature(func)
        if "fit_params" not in inspect.signature(getattr(sk, name)).parameters:
            # Gone from this release (1.8): the call's binding fails on it, as there.
            func.__signature__ = signature.replace(parameters=[
                p for p in signature.parameters.values() if p.name != "fit_params"])
        if _sk_validate_params is None or constraints is None:
            return func
        ours = {k: v for k, v in DKLEARN_CONSTRAINTS.items()
                if k in func.__code__.co_varnames}
        return _sk_validate_params({**constraints, **ours},
                                   prefer_skip_nested_validation=False)(func)

    return decorate


def deprecated_fit_params(name, fit_params, params):
    """``params`` with the ``fit_params`` scikit-learn 1.6 and 1.7 still accept.

    Deprecated there (a FutureWarning) and gone from 1.8: with a release
    whose ``name`` no longer takes it, the call fails as scikit-learn's would.
    """
    if fit_params is None:
        return params
    import inspect

    import sklearn.model_selection as sk

    if "fit_params" not in inspect.signature(getattr(sk, name)).parameters:
        # scikit-learn's parameter validation binds the call's arguments: its words
        raise TypeError("got an unexpected keyword argument 'fit_params'")
    if params is not None:
        raise ValueError(
            "`params` and `fit_params` cannot both be provided. Pass parameters "
            "via `params`. `fit_params` is deprecated and will be removed in "
            "version 1.8."
        )
    warnings.warn(
        "`fit_params` is deprecated and will be removed in version 1.8. "
        "Pass parameters via `params` instead.",
        FutureWarning,
    )
    return fit_params


def check_groups(groups):
    """``groups`` are the splitter's metadata when routing is on: an error, as in scikit-learn."""
    if groups is not None and routing_enabled():
        raise ValueError(
            "`groups` can only be passed if metadata routing is not enabled via"
            " `sklearn.set_config(enable_metadata_routing=True)`. When routing is"
            " enabled, pass `groups` alongside other metadata via the `params` argument"
            " instead."
        )


def route(owner, params, groups, *, estimator, splitter, scorer=None, incremental=False):
    """Route ``params`` (and ``groups``) to the estimator, the splitter and the scorer.

    With metadata routing, as scikit-learn's cross-validation functions
    route (``process_routing``, its error message naming ``owner``);
    without, ``params`` go to the estimator's ``fit`` (and ``partial_fit``)
    and ``groups`` to the splitter.
    """
    from sklearn.utils import Bunch
    from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping

    params = {} if params is None else params
    if not routing_enabled():
        estimator_params = Bunch(fit=params)
        if incremental:
            estimator_params.partial_fit = params
        return Bunch(estimator=estimator_params, splitter=Bunch(split={"groups": groups}),
                     scorer=Bunch(score={}))
    check_groups(groups)
    fit = MethodMapping().add(caller="fit", callee="fit")
    if incremental:
        fit = fit.add(caller="fit", callee="partial_fit")
    router = MetadataRouter(owner=owner).add(estimator=estimator, method_mapping=fit).add(
        splitter=splitter, method_mapping=MethodMapping().add(caller="fit", callee="split"))
    if scorer is not None:
        router = router.add(scorer=scorer,
                            method_mapping=MethodMapping().add(caller="fit", callee="score"))
    from sklearn.exceptions import UnsetMetadataPassedError

    try:
        routed = process_routing(router, "fit", **params)
    except UnsetMetadataPassedError as e:
        raise UnsetMetadataPassedError(
            message=str(e).replace(f"{owner}.fit", owner),
            unrequested_params=e.unrequested_params,
            routed_params=e.routed_params,
        ) from None
    if scorer is None:
        routed.scorer = Bunch(score={})
    return routed


def aggregate_score_dicts(records):
    """{key: the values of every record}, arrays where they are numbers."""
    import numbers

    return {
        key: np.asarray([r[key] for r in records]) if isinstance(records[0][key], numbers.Number)
        else [r[key] for r in records]
        for key in records[0]
    }


def normalize_score_results(scores, name="score"):
    """{metric: scores}, whether scoring was one metric or several."""
    if isinstance(scores[0], dict):
        return aggregate_score_dicts(scores)
    return {name: scores}


try:
    from sklearn.model_selection._validation import _translate_train_sizes as _sk_sizes
except ImportError:  # pragma: no cover
    _sk_sizes = None


def _fallback_translate_train_sizes(train_sizes, n_max):
    sizes = np.asarray(train_sizes)
    n_ticks = sizes.shape[0]
    low, high = np.min(sizes), np.max(sizes)
    if np.issubdtype(sizes.dtype, np.floating):
        if low <= 0.0 or high > 1.0:
            raise ValueError(
                "train_sizes has been interpreted as fractions of the maximum number of "
                "training samples and must be within (0, 1], but is within "
                f"[{low:f}, {high:f}]."
            )
        sizes = np.clip((sizes * n_max).astype(dtype=int, copy=False), 1, n_max)
    elif low <= 0 or high > n_max:
        raise ValueError(
            "train_sizes has been interpreted as absolute numbers of training samples and "
            f"must be within (0, {n_max}], but is within [{low}, {high}]."
        )
    sizes = np.unique(sizes)
    if n_ticks > sizes.shape[0]:
        warnings.warn(
            "Removed duplicate entries from 'train_sizes'. Number of ticks will be less "
            f"than the size of 'train_sizes': {sizes.shape[0]} instead of {n_ticks}.",
            RuntimeWarning,
        )
    return sizes


translate_train_sizes = _sk_sizes or _fallback_translate_train_sizes

try:
    from sklearn.model_selection._validation import _shuffle as _sk_shuffle
except ImportError:  # pragma: no cover
    _sk_shuffle = None


def _fallback_shuffle(y, groups, random_state):
    if groups is None:
        indices = random_state.permutation(len(y))
    else:
        indices = np.arange(len(groups))
        for group in np.unique(groups):
            mask = groups == group
            indices[mask] = random_state.permutation(indices[mask])
    return safe_indexing(y, indices)


shuffle_targets = _sk_shuffle or _fallback_shuffle


def is_permutation(indices, n):
    """Whether ``indices`` holds each of 0..n-1 exactly once."""
    if len(indices) != n:
        return False
    hit = np.zeros(n, dtype=bool)
    hit[indices] = True
    return bool(hit.all())


def num_samples(X):
    return _num_samples(X)


def encode_targets(y):
    """y as class indices (each column of a 2-d y), as cross_val_predict encodes it;
    a y of more dimensions as it is (the estimator's own check then refuses it)."""
    from sklearn.preprocessing import LabelEncoder

    y = np.asarray(y)
    if y.ndim == 1:
        return LabelEncoder().fit_transform(y)
    if y.ndim > 2:
        return y
    encoded = np.zeros_like(y, dtype=int)
    for column in range(y.shape[1]):
        encoded[:, column] = LabelEncoder().fit_transform(y[:, column])
    return encoded


def join_predictions(predictions, test_indices, encode, y):
    """The folds' predictions, concatenated back into the rows' order."""
    inverse = np.empty(len(test_indices), dtype=int)
    inverse[test_indices] = np.arange(len(test_indices))
    if sparse.issparse(predictions[0]):
        joined = sparse.vstack(predictions, format=predictions[0].format)
    elif encode and isinstance(predictions[0], list):
        joined = [np.concatenate([p[label] for p in predictions]) for label in range(y.shape[1])]
    else:
        joined = np.concatenate(predictions)
    if isinstance(joined, list):
        return [p[inverse] for p in joined]
    return joined[inverse]


try:
    from sklearn.model_selection._validation import _fit_and_predict as _sk_fit_and_predict
    from sklearn.model_selection._validation import (
        _incremental_fit_estimator as _sk_incremental_fit,
    )
except ImportError:  # pragma: no cover
    _sk_fit_and_predict = _sk_incremental_fit = None


def _each_fit_catches_warnings():
    """Whether scikit-learn's loop runs each fit under warnings.catch_warnings()
    (from 1.7, with the caller's filters, which also shows a warning once per
    fit): its ``delayed`` wrapper then carries warning filters."""
    try:
        from sklearn.utils.parallel import _FuncWrapper
    except ImportError:  # pragma: no cover - moved: as the older releases do
        return False
    return hasattr(_FuncWrapper, "with_config_and_warning_filters")


EACH_FIT_CATCHES_WARNINGS = _each_fit_catches_warnings()


def fit_and_predict(estimator, X, y, train, test, fit_params, method):
    """A task: one fold of cross_val_predict, by scikit-learn's own per-fold function."""
    if _sk_fit_and_predict is None:  # pragma: no cover
        raise ImportError("this scikit-learn release moved _fit_and_predict")
    from ._tasks import own_objects

    return _sk_fit_and_predict(estimator.value, X.value, y.value, train, test,
                               own_objects(fit_params.value), method.value)


def incremental_fit(estimator, X, y, args):
    """A task: one fold of learning_curve's partial_fit chain, by scikit-learn's function."""
    if _sk_incremental_fit is None:  # pragma: no cover
        raise ImportError("this scikit-learn release moved _incremental_fit_estimator")
    classes, train, test, sizes, scorer, return_times, error_score, fit_params, score_params = (
        args.value)
    from ._tasks import own_objects

    return _sk_incremental_fit(estimator.value, X.value, y.value, classes, train, test, sizes,
                               scorer, return_times, error_score=error_score,
                               fit_params=own_objects(fit_params), score_params=score_params)


def fit_splits_in_turn(estimator, X, y, args):
    """A task: one permutation of permutation_test_score, as scikit-learn runs it.

    One copy of the estimator is fitted on each split in turn, so that what a
    fit leaves behind (``warm_start``, a RandomState it draws from) carries
    over to the next; returns the mean of its test scores.
    """
    from ._tasks import own_objects

    splits, scorer, fit_params, score_params = args.value
    estimator, X, y = copy.deepcopy(estimator.value), X.value, y.value  # inputs stay unwritten
    fit_params = own_objects(fit_params)
    scores = []
    for train, test in splits:
        X_train, y_train = safe_split(estimator, X, y, train)
        X_test, y_test = safe_split(estimator, X, y, test, train)
        estimator.fit(X_train, y_train, **check_method_params(X, params=fit_params,
                                                              indices=train))
        scores.append(scorer(estimator, X_test, y_test,
                             **check_method_params(X, params=score_params, indices=test)))
    return np.mean(scores)


def one_column_error(error):
    """The error ColumnTransformer raises in place of ``error``, raised in one of its
    branches: a transformer that wants 2-D data given 1-D (one column selected by
    a scalar, say); None for any other error (ColumnTransformer's own test of the
    message, whatever the branch's columns)."""
    if not (isinstance(error, ValueError)
            and "Expected 2D array, got 1D array instead" in str(error)):
        return None
    try:  # imported here: sklearn.compose costs the client memory (see _plan)
        from sklearn.compose._column_transformer import _ERR_MSG_1DCOLUMN as message
    except ImportError:  # pragma: no cover - the test checks the two are equal
        message = _ONE_COLUMN_MESSAGE
    return ValueError(message)


_ONE_COLUMN_MESSAGE = (
    "1D data passed to a transformer that expects 2D data. Try to specify the column "
    "selection as a list of one item instead of a scalar."
)


def sklearn_config():
    return sklearn.get_config()


try:
    from sklearn.utils._plotting import _validate_score_name as _sk_score_name
except ImportError:  # pragma: no cover
    _sk_score_name = None


def score_name(name, scoring, negate_score, display):
    """The y-axis label scikit-learn's curve displays give a score (matplotlib checked)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"{display}.from_estimator requires matplotlib. You can install matplotlib "
            "with `pip install matplotlib`"
        ) from e
    if _sk_score_name is not None:
        return _sk_score_name(name, scoring, negate_score)
    if name is not None:  # pragma: no cover - the fallback
        return name
    if scoring is None:  # pragma: no cover
        return "Negative score" if negate_score else "Score"
    return str(scoring)  # pragma: no cover
