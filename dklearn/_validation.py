"""scikit-learn's cross-validation functions, their fits planned and run like a search's.

``cross_validate``, ``cross_val_score``, ``cross_val_predict``,
``validation_curve``, ``learning_curve`` and ``permutation_test_score`` take
scikit-learn's arguments and return its results, plus ``scheduler`` (and
``checkpoint``, ``progress``, ``fit_timeout`` where each fit is scored).
Each validates and routes its arguments as scikit-learn's does.
``cross_validate``, ``cross_val_score``, ``validation_curve`` and
``learning_curve`` then hand their fits to ``_evaluate``, which plans them
as one graph (``validation_curve`` over a final step's parameter fits each
pipeline prefix once per fold, as a grid search does); the others, whose
tasks are not a fit and a score, make their graphs here and run them on
``_engines``: ``cross_val_predict`` a task per fold, ``learning_curve``
with ``exploit_incremental_learning`` a task per fold's chain of
``partial_fit`` calls, ``permutation_test_score`` a task per permutation, its fits in turn on one copy of the
estimator as scikit-learn's loop does (a ``warm_start``, or a RandomState
the estimator draws from, carries over from fold to fold; nothing is shared
between permutations, since any step may read y).  The records come back
in scikit-learn's order and are assembled as scikit-learn assembles them.

Two of scikit-learn's private per-fold helpers are task bodies here, used
as they are for exact results (``_compat``): ``_fit_and_predict`` (which
aligns a fold's class columns) and ``_incremental_fit_estimator``.  Where a
function draws from a RandomState, its draws and its copies of the
estimator come in scikit-learn's order, which shows when the two share one.
"""

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.utils import check_random_state, indexable

from . import _compat, _engines
from ._evaluate import Evaluation, Settings
from ._progress import Progress
from ._tasks import Const


def _settings(scheduler, n_jobs, verbose, checkpoint=None, progress=False, fit_timeout=None,
              **kwargs):
    _engines.check_scheduler(scheduler)
    # scikit-learn's cross-validation functions print '[CV] END ...', with no split number.
    return Settings(scheduler=scheduler, n_jobs=n_jobs, verbose=verbose, checkpoint=checkpoint,
                    progress=progress, fit_timeout=fit_timeout, split_progress=False, **kwargs)


@_compat.validates_like("cross_validate")
def cross_validate(estimator, X, y=None, *, groups=None, scoring=None, cv=None, n_jobs=None,
                   verbose=0, params=None, pre_dispatch="2*n_jobs", return_train_score=False,
                   return_estimator=False, return_indices=False, error_score=np.nan,
                   scheduler=None, checkpoint=None, progress=False, fit_timeout=None):
    """scikit-learn's ``cross_validate``, its fits on dklearn's engine (see the module doc)."""
    _compat.check_groups(groups)
    if checkpoint is not None and return_estimator:
        raise ValueError("checkpoint cannot hold fitted estimators: with return_estimator=True, "
                         "pass checkpoint=None.")
    X, y = indexable(X, y)
    cv = check_cv(cv, y, classifier=is_classifier(estimator))
    scorers = check_scoring(estimator, scoring=scoring, raise_exc=(error_score == "raise"))
    routed = _compat.route("cross_validate", params, groups, estimator=estimator, splitter=cv,
                           scorer=scorers)
    splits = list(cv.split(X, y, **routed.splitter.split))
    settings = _settings(
        scheduler, n_jobs, verbose, checkpoint, progress, fit_timeout, scoring=scoring,
        scorers=scorers, error_score=error_score, return_train_score=return_train_score,
        return_estimator=return_estimator, fit_params=routed.estimator.fit,
        score_params=routed.scorer.score,
    )
    results = Evaluation(X, y, settings).evaluate(estimator, [None], splits)
    _compat.warn_or_raise_about_fit_failures(results, error_score)
    if callable(scoring):
        _compat.insert_error_scores(results, error_score)
    results = _compat.aggregate_score_dicts(results)
    out = {"fit_time": results["fit_time"], "score_time": results["score_time"]}
    if return_estimator:
        out["estimator"] = results["estimator"]
    if return_indices:
        out["indices"] = {}
        out["indices"]["train"], out["indices"]["test"] = zip(*splits)
    test = _compat.normalize_score_results(results["test_scores"])
    train = _compat.normalize_score_results(results["train_scores"]) if return_train_score else {}
    for name in test:
        out[f"test_{name}"] = test[name]
        if return_train_score:
            out[f"train_{name}"] = train[name]
    return out


@_compat.validates_like("cross_val_score")
def cross_val_score(estimator, X, y=None, *, groups=None, scoring=None, cv=None, n_jobs=None,
                    verbose=0, params=None, pre_dispatch="2*n_jobs", error_score=np.nan,
                    scheduler=None, checkpoint=None, progress=False, fit_timeout=None):
    """scikit-learn's ``cross_val_score``, its fits on dklearn's engine."""
    scorer = check_scoring(estimator, scoring=scoring)
    results = cross_validate(
        estimator=estimator, X=X, y=y, groups=groups, scoring={"score": scorer}, cv=cv,
        n_jobs=n_jobs, verbose=verbose, params=params, pre_dispatch=pre_dispatch,
        error_score=error_score, scheduler=scheduler, checkpoint=checkpoint,
        progress=progress, fit_timeout=fit_timeout,
    )
    return results["test_score"]


@_compat.validates_like("validation_curve")
def validation_curve(estimator, X, y, *, param_name, param_range, groups=None, cv=None,
                     scoring=None, n_jobs=None, pre_dispatch="all", verbose=0,
                     error_score=np.nan, params=None, fit_params=None, scheduler=None,
                     checkpoint=None, progress=False, fit_timeout=None):
    """scikit-learn's ``validation_curve``: a grid over one parameter, prefixes shared."""
    params = _compat.deprecated_fit_params("validation_curve", fit_params, params)
    _compat.check_groups(groups)
    X, y, groups = indexable(X, y, groups)
    cv = check_cv(cv, y, classifier=is_classifier(estimator))
    scorer = check_scoring(estimator, scoring=scoring)
    routed = _compat.route("validation_curve", params, groups, estimator=estimator,
                           splitter=cv, scorer=scorer)
    splits = list(cv.split(X, y, **routed.splitter.split))
    settings = _settings(
        scheduler, n_jobs, verbose, checkpoint, progress, fit_timeout, scoring=scoring,
        scorers=scorer, error_score=error_score, return_train_score=True,
        fit_params=routed.estimator.fit, score_params=routed.scorer.score,
    )
    records = Evaluation(X, y, settings).evaluate(
        estimator, [{param_name: v} for v in param_range], splits)
    # scikit-learn's order is fold-major: (fold, value) for each fold in turn.
    n_params = len(param_range)
    records = [records[v * len(splits) + f] for f in range(len(splits)) for v in range(n_params)]
    results = _compat.aggregate_score_dicts(records)
    train_scores = results["train_scores"].reshape(-1, n_params).T
    test_scores = results["test_scores"].reshape(-1, n_params).T
    return train_scores, test_scores


@_compat.validates_like("learning_curve")
def learning_curve(estimator, X, y, *, groups=None, train_sizes=np.linspace(0.1, 1.0, 5),
                   cv=None, scoring=None, exploit_incremental_learning=False, n_jobs=None,
                   pre_dispatch="all", verbose=0, shuffle=False, random_state=None,
                   error_score=np.nan, return_times=False, params=None, fit_params=None,
                   scheduler=None, checkpoint=None, progress=False, fit_timeout=None):
    """scikit-learn's ``learning_curve``: each (size, fold) fit a task, on dklearn's engine."""
    params = _compat.deprecated_fit_params("learning_curve", fit_params, params)
    if exploit_incremental_learning and not hasattr(estimator, "partial_fit"):
        raise ValueError(
            "An estimator must support the partial_fit interface "
            "to exploit incremental learning"
        )
    _compat.check_groups(groups)  # after, as in scikit-learn: its error comes first
    X, y, groups = indexable(X, y, groups)
    cv = check_cv(cv, y, classifier=is_classifier(estimator))
    scorer = check_scoring(estimator, scoring=scoring)
    routed = _compat.route("learning_curve", params, groups, estimator=estimator,
                           splitter=cv, scorer=scorer, incremental=True)
    splits = list(cv.split(X, y, **routed.splitter.split))
    sizes = _compat.translate_train_sizes(train_sizes, len(splits[0][0]))
    n_ticks = sizes.shape[0]
    if verbose > 0:
        print("[learning_curve] Training set sizes: " + str(sizes))
    rng = check_random_state(random_state) if shuffle else None
    settings = _settings(scheduler, n_jobs, verbose, checkpoint, progress, fit_timeout,
                         scoring=scoring, scorers=scorer, error_score=error_score,
                         return_train_score=True, fit_params=routed.estimator.fit,
                         score_params=routed.scorer.score)
    if exploit_incremental_learning:
        classes = np.unique(y) if is_classifier(estimator) else None
        graph = {f"X-{id(X)}": Const(X), f"y-{id(y)}": Const(y)}
        keys = []
        for i, (train, test) in enumerate(splits):
            # Each fold's shuffle, then its copy of the estimator, in scikit-learn's
            # order (which shows when the two share a RandomState).
            train = rng.permutation(train) if shuffle else train
            key = f"partial_fit-{type(estimator).__name__}-fold{i}"
            graph[key] = (_compat.incremental_fit, Const(clone(estimator)), f"X-{id(X)}",
                          f"y-{id(y)}", Const((classes, train, test, sizes, scorer, return_times,
                                               error_score, routed.estimator.partial_fit,
                                               routed.scorer.score)))
            keys.append(key)
        options = _engines.Options(scheduler=scheduler, n_jobs=n_jobs,
                                   config=_compat.sklearn_config(), verbose=verbose,
                                   fit_timeout=fit_timeout)
        kind = f"partial_fit {type(estimator).__name__}"  # what the cost model learns of it
        out = _engines.run(graph, keys, dict.fromkeys(keys, kind), options)
        out = np.asarray(out).transpose((2, 1, 0))
    else:
        if shuffle:  # every fold's shuffle first, as scikit-learn lists the fits
            splits = [(rng.permutation(train), test) for train, test in splits]
        fits = [(train[:n], test) for train, test in splits for n in sizes]
        records = Evaluation(X, y, settings).evaluate(estimator, [None], fits)
        _compat.warn_or_raise_about_fit_failures(records, error_score)
        results = _compat.aggregate_score_dicts(records)
        out = [results["train_scores"].reshape(-1, n_ticks).T,
               results["test_scores"].reshape(-1, n_ticks).T]
        if return_times:
            out.extend([results["fit_time"].reshape(-1, n_ticks).T,
                        results["score_time"].reshape(-1, n_ticks).T])
    result = sizes, out[0], out[1]
    if return_times:
        result = result + (out[2], out[3])
    return result


@_compat.validates_like("permutation_test_score")
def permutation_test_score(estimator, X, y, *, groups=None, cv=None, n_permutations=100,
                           n_jobs=None, random_state=0, verbose=0, scoring=None, params=None,
                           fit_params=None, scheduler=None, progress=False):
    """scikit-learn's ``permutation_test_score``: each permutation a task."""
    params = _compat.deprecated_fit_params("permutation_test_score", fit_params, params)
    _compat.check_groups(groups)
    X, y, groups = indexable(X, y, groups)
    cv = check_cv(cv, y, classifier=is_classifier(estimator))
    scorer = check_scoring(estimator, scoring=scoring)
    random_state = check_random_state(random_state)
    routed = _compat.route("permutation_test_score", params, groups, estimator=estimator,
                           splitter=cv, scorer=scorer)
    _engines.check_scheduler(scheduler)
    # scikit-learn's order of copies and draws, which shows when the estimator or
    # the splitter shares random_state with the permutations: a copy of the
    # estimator and the splits of y; then, for each permutation, a copy, the
    # permuted y and its splits.  Each permutation is then one task (its fits
    # in turn, on that copy), and scikit-learn's fits here print nothing.
    graph = {"X": Const(X)}
    keys = []
    for k in range(n_permutations + 1):
        copied = clone(estimator)
        target = y if k == 0 else _compat.shuffle_targets(y, groups, random_state)
        splits = list(cv.split(X, target, **routed.splitter.split))
        graph[f"y-{k}"] = Const(target)
        keys.append(f"permutation-{k}")
        graph[keys[-1]] = (_compat.fit_splits_in_turn, Const(copied), "X", f"y-{k}",
                           Const((splits, scorer, routed.estimator.fit, routed.scorer.score)))
    bar = Progress(keys, 1, "score", enabled=bool(progress), label="permutations")
    try:
        scores = _engines.run(
            graph, keys, dict.fromkeys(keys, f"permutation {type(estimator).__name__}"),
            _engines.Options(scheduler=scheduler, n_jobs=n_jobs, config=_compat.sklearn_config()),
            _engines.Hooks(done=lambda key, value: bar.update(key, {"test_scores": value})))
    finally:
        bar.close()
    score, permutation_scores = scores[0], np.array(scores[1:])
    pvalue = (np.sum(permutation_scores >= score) + 1.0) / (n_permutations + 1)
    return score, permutation_scores, pvalue


@_compat.validates_like("cross_val_predict")
def cross_val_predict(estimator, X, y=None, *, groups=None, cv=None, n_jobs=None, verbose=0,
                      params=None, pre_dispatch="2*n_jobs", method="predict", scheduler=None):
    """scikit-learn's ``cross_val_predict``, each fold's fit and prediction a task."""
    _compat.check_groups(groups)
    X, y = indexable(X, y)
    cv = check_cv(cv, y, classifier=is_classifier(estimator))
    routed = _compat.route("cross_val_predict", params, groups, estimator=estimator,
                           splitter=cv)
    splits = list(cv.split(X, y, **routed.splitter.split))
    test_indices = np.concatenate([test for _, test in splits])
    if not _compat.is_permutation(test_indices, _compat.num_samples(X)):
        raise ValueError("cross_val_predict only works for partitions")
    encode = method in ("decision_function", "predict_proba", "predict_log_proba") \
        and y is not None
    if encode:
        y = _compat.encode_targets(y)
    graph = {"X": Const(X), "y": Const(y), "fit_params": Const(routed.estimator.fit)}
    keys = []
    for i, (train, test) in enumerate(splits):
        key = f"predict-{type(estimator).__name__}-fold{i}"
        graph[key] = (_compat.fit_and_predict, Const(clone(estimator)), "X", "y",
                      np.asarray(train), np.asarray(test), "fit_params", Const(method))
        keys.append(key)
    options = _engines.Options(scheduler=scheduler, n_jobs=n_jobs,
                               config=_compat.sklearn_config(), verbose=verbose)
    predictions = _engines.run(graph, keys, {k: f"predict {type(estimator).__name__}"
                                             for k in keys}, options)
    return _compat.join_predictions(predictions, test_indices, encode, y)


__all__ = ["cross_val_predict", "cross_val_score", "cross_validate", "learning_curve",
           "permutation_test_score", "validation_curve"]
