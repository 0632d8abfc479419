"""GridSearchCV and RandomizedSearchCV that do each distinct piece of work once.

They are subclasses of scikit-learn's classes: same constructor, same
attributes, same methods, ``isinstance`` checks hold, plus ``scheduler``.
Only ``fit`` differs, and only in *how* the (candidate, fold) fits run:

1. validate and route exactly as scikit-learn (same calls, same errors);
2. ``_run_search`` proposes candidates (ParameterGrid / ParameterSampler, or
   a subclass's own strategy) to ``evaluate_candidates``;
3. ``_plan`` turns candidates x folds into one graph whose keys name the work
   (shared prefixes, union branches and test-fold transforms become one
   task each);
4. ``_engines`` runs the graph on a local dask scheduler or a cluster;
5. the records, shaped like scikit-learn's ``_fit_and_score`` output, go to
   scikit-learn's own cv_results_ assembly (``_compat.format_results``);
6. the best candidate is refitted on all data, as scikit-learn does.
"""

import os
import time
import warnings
from collections import defaultdict

import numpy as np
import sklearn
from dask.base import tokenize
from sklearn import model_selection as _sk
from sklearn.base import clone, is_classifier
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import check_cv
from sklearn.utils import indexable

from . import _compat, _engines, _tasks
from ._plan import Planner, SearchSpec, estimator_token, with_params
from ._progress import Progress
from ._tasks import Const, ScoreConfig, failed_record

__all__ = ["GridSearchCV", "RandomizedSearchCV"]


class _SharedWorkSearch:
    """The ``fit`` shared by dklearn's search classes."""

    @_compat.fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters, each distinct piece of work once.

        Parameters and results are scikit-learn's (see
        ``sklearn.model_selection.GridSearchCV.fit``).
        """
        return self._fit(X, y, **params)

    def _fit(self, X, y=None, **params):
        _engines.check_scheduler(self.scheduler)
        scorers, refit_metric = self._get_scorers()
        X, y = indexable(X, y)
        params = _compat.check_method_params(X, params=params)
        routed = self._get_routed_params_for_fit(params)
        sample_weight = params.get("sample_weight")
        metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        root_ctx = _compat.begin_callbacks(self, X, y, metadata)

        self._checked_cv_orig = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        self.n_splits_ = self._checked_cv_orig.get_n_splits(X, y, **routed.splitter.split)
        base_estimator = clone(self.estimator)
        evaluator = _Evaluator(self, X, y, scorers, routed)

        all_candidate_params, all_out = [], []
        all_more_results = defaultdict(list)
        results = {}

        def evaluate_candidates(candidate_params, cv=None, more_results=None, callback_ctx=None):
            nonlocal results
            cv = cv or self._checked_cv_orig
            candidate_params = list(candidate_params)
            splits = list(cv.split(X, y, **routed.splitter.split))
            if len(splits) != self.n_splits_:
                raise ValueError(_compat.inconsistent_splits_message(self.n_splits_, len(splits)))
            if self.verbose > 0:
                print(
                    f"Fitting {self.n_splits_} folds for each of {len(candidate_params)} "
                    f"candidates, totalling {len(candidate_params) * self.n_splits_} fits"
                )
            out = evaluator.evaluate(base_estimator, candidate_params, splits, callback_ctx)
            if len(out) < 1:
                raise ValueError(
                    "No fits were performed. Was the CV iterator empty? "
                    "Were there no candidates?"
                )
            _compat.warn_or_raise_about_fit_failures(out, self.error_score)
            if callable(self.scoring):
                # Only now is it known whether a callable scoring is multimetric.
                _compat.insert_error_scores(out, self.error_score)
            all_candidate_params.extend(candidate_params)
            all_out.extend(out)
            for key, value in (more_results or {}).items():
                all_more_results[key].extend(value)
            results = _compat.format_results(
                self, all_candidate_params, self.n_splits_, all_out, all_more_results
            )
            return results

        _compat.run_search(self, evaluate_candidates, root_ctx)

        first_test_score = all_out[0]["test_scores"]
        self.multimetric_ = isinstance(first_test_score, dict)
        if callable(self.scoring) and self.multimetric_:
            self._check_refit_for_multimetric(first_test_score)
            refit_metric = self.refit

        if self.refit or not self.multimetric_:
            self.best_index_ = self._select_best_index(self.refit, refit_metric, results)
            if not callable(self.refit):
                self.best_score_ = results[f"mean_test_{refit_metric}"][self.best_index_]
            self.best_params_ = results["params"][self.best_index_]

        if self.refit:
            # Parameters are cloned too: they may be estimators (a grid over steps).
            self.best_estimator_ = clone(base_estimator).set_params(
                **_compat.clone_params(self.best_params_)
            )
            refit_ctx = root_ctx.subcontext(task_name="refit-with-best-params")
            with refit_ctx.propagate_callback_context(self.best_estimator_):
                refit_ctx.call_on_fit_task_begin(estimator=self, X=X, y=y, metadata=metadata)
                start = time.time()
                if y is not None:
                    self.best_estimator_.fit(X, y, **routed.estimator.fit)
                else:
                    self.best_estimator_.fit(X, **routed.estimator.fit)
                self.refit_time_ = time.time() - start
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
            refit_ctx.call_on_fit_task_end(estimator=self, X=X, y=y, metadata=metadata)

        self.scorer_ = scorers._scorers if _compat.is_multimetric(scorers) else scorers
        self.cv_results_ = results
        root_ctx.call_on_fit_task_end(estimator=self, X=X, y=y, metadata=metadata)
        return self


class _Evaluator:
    """Turns batches of candidates into graphs, runs them, returns records."""

    def __init__(self, search, X, y, scorers, routed):
        self.search = search
        self.X, self.y = X, y
        self.scorers = scorers
        self.routed = routed
        data_token = tokenize(X, y)
        self.X_key, self.y_key = f"X-{data_token}", f"y-{data_token}"
        self.data_token = data_token

    def evaluate(self, base_estimator, candidate_params, splits, callback_ctx=None):
        search = self.search
        n_candidates, n_splits = len(candidate_params), len(splits)
        contexts = _compat.evaluation_contexts(search, callback_ctx, n_candidates * n_splits)
        score_params = dict(self.routed.scorer.score)
        fold_keys, graph = [], {self.X_key: Const(self.X), self.y_key: Const(self.y)}
        for train, test in splits:
            train_key = f"cv-train-{tokenize(self.data_token, train)}"
            test_key = f"cv-test-{tokenize(self.data_token, test)}"
            graph[train_key], graph[test_key] = np.asarray(train), np.asarray(test)
            fold_keys.append((train_key, test_key))
        train_rows = tuple(graph[train_key] for train_key, _ in fold_keys)
        config = ScoreConfig(
            self.scorers, search.error_score, search.return_train_score, search.verbose
        )
        # Everything besides the estimator and the data that a record depends
        # on: it is part of every final key (and so of checkpoint keys).
        scorer_token = tokenize(
            estimator_token(search.scoring), search.error_score, search.return_train_score,
            estimator_token(score_params), sorted(sklearn.get_config().items()),
        )
        config_key = f"score-config-{scorer_token}"
        graph[config_key] = Const(config)
        spec = SearchSpec(
            X_key=self.X_key,
            y_key=self.y_key,
            folds=tuple(fold_keys),
            train_rows=train_rows,
            fit_params=dict(self.routed.estimator.fit),
            score_params=score_params,
            config_key=config_key,
            scorer_token=scorer_token,
            decompose=_compat.scores_on_final_step(self.scorers, score_params),
            raise_errors=search.error_score == "raise",
            return_train_score=search.return_train_score,
        )
        planner = Planner(spec, graph, self.X)
        keys = []
        template = clone(base_estimator)
        for cand, params in enumerate(candidate_params):
            estimator = with_params(template, _compat.clone_params(params))
            for fold in range(n_splits):
                # For verbose output and callbacks only: 50,000 tasks hold 6 MB of them.
                label = None
                if search.verbose > 1 or contexts is not None:
                    label = (params, fold, n_splits, cand, n_candidates)
                callback = None
                if contexts is not None:
                    callback = Const((contexts[cand * n_splits + fold], search))
                keys.append(planner.candidate(estimator, fold, label, callback))

        def lost(key, error):
            """A fit that was stopped, or killed the processes that ran it: a failed fit."""
            if search.error_score == "raise":
                raise error
            message = f"{type(error).__name__}: {error}"
            index = keys.index(key)  # rare: a scan beats a dict of every key
            params, fold = candidate_params[index // n_splits], index % n_splits
            what = f"The fit of candidate {params!r} on split {fold}"
            if isinstance(error, TimeoutError):
                happened = f"ran longer than fit_timeout={getattr(search, 'fit_timeout', None)} s"
            else:
                happened = "killed the worker processes that ran it"
            warnings.warn(
                f"{what} {happened} ({message}); it is recorded as a failed fit with "
                f"error_score={search.error_score!r}.",
                FitFailedWarning,
            )
            return failed_record(config, message, why=_tasks.failure_kind(error))

        store = None
        if search.checkpoint is not None:
            # Imported here: sqlite3 costs memory that other searches need not pay.
            from ._checkpoint import Checkpoint

            store = Checkpoint(search.checkpoint)
        try:
            saved = store.load(keys) if store is not None else {}
            progress = Progress(
                keys, n_splits, search.refit if isinstance(search.refit, str) else "score",
                restored=[(k, saved[k]) for k in dict.fromkeys(keys) if k in saved],
                enabled=bool(search.progress),
            )

            def done(key, record):
                if store is not None:
                    store.save(key, record)
                progress.update(key, record)

            todo = [k for k in dict.fromkeys(keys) if k not in saved]
            try:
                options = _engines.Options(
                    scheduler=search.scheduler, n_jobs=search.n_jobs,
                    config=sklearn.get_config(), verbose=search.verbose,
                    fit_timeout=getattr(search, "fit_timeout", None),
                )
                values = _engines.run(planner.graph, todo, planner.kinds, options,
                                      _engines.Hooks(done=done, lost=lost))
            finally:
                progress.close()
        finally:
            if store is not None:
                store.close()
        if len(todo) == len(keys):  # every key distinct and none restored: values in order
            return values
        results = {**saved, **dict(zip(todo, values))}
        # A record shared by candidates with equal keys is copied for each
        # further use, as scikit-learn's helpers may edit records in place.
        seen = set()
        records = []
        for k in keys:
            records.append(dict(results[k]) if k in seen else results[k])
            seen.add(k)
        return records


_SCHEDULER_DOC = """
    scheduler : None, 'sync', 'threads', 'processes', str or Client, default=None
        Where the search's task graph runs. None: the active
        dask.distributed Client if there is one, else threads on this
        machine. 'sync' runs every task in this thread, in order. An address
        ('tcp://host:port') or a Client runs the search on that cluster.
        ``n_jobs`` sets the number of local workers (None or -1: every core).

    checkpoint : str or path, default=None
        An SQLite file where every finished (candidate, fold) result is
        committed as soon as it completes. Fitting the same search again with
        the same file computes only what is missing. Results are reused only
        for the same data, folds, estimator, parameters, scoring and library
        versions. Several searches may share one file.

    progress : bool, default=False
        Show a progress bar of finished fits, with the ETA and the best mean
        test score so far (tqdm: a terminal bar or a notebook widget).
"""


class GridSearchCV(_SharedWorkSearch, _sk.GridSearchCV):
    __doc__ = (_sk.GridSearchCV.__doc__ or "") + _SCHEDULER_DOC

    _parameter_constraints = {
        **_sk.GridSearchCV._parameter_constraints,
        "scheduler": "no_validation",
        "checkpoint": [str, os.PathLike, None],
        "progress": ["boolean"],
    }

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        scoring=None,
        n_jobs=None,
        refit=True,
        cv=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        error_score=np.nan,
        return_train_score=False,
        scheduler=None,
        checkpoint=None,
        progress=False,
    ):
        super().__init__(
            estimator=estimator,
            param_grid=param_grid,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.scheduler = scheduler
        self.checkpoint = checkpoint
        self.progress = progress


class RandomizedSearchCV(_SharedWorkSearch, _sk.RandomizedSearchCV):
    __doc__ = (_sk.RandomizedSearchCV.__doc__ or "") + _SCHEDULER_DOC

    _parameter_constraints = {
        **_sk.RandomizedSearchCV._parameter_constraints,
        "scheduler": "no_validation",
        "checkpoint": [str, os.PathLike, None],
        "progress": ["boolean"],
    }

    def __init__(
        self,
        estimator,
        param_distributions,
        *,
        n_iter=10,
        scoring=None,
        n_jobs=None,
        refit=True,
        cv=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        random_state=None,
        error_score=np.nan,
        return_train_score=False,
        scheduler=None,
        checkpoint=None,
        progress=False,
    ):
        super().__init__(
            estimator=estimator,
            param_distributions=param_distributions,
            n_iter=n_iter,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            random_state=random_state,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.scheduler = scheduler
        self.checkpoint = checkpoint
        self.progress = progress
