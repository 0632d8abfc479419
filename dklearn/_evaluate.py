"""Evaluate candidates on folds: plan one graph, run it, return scikit-learn's records.

Every search and every cross-validation function comes here with an
estimator, a list of candidates (parameter dicts, ``{}`` for the estimator
itself) and a list of splits, and gets back one record per (candidate,
split), candidate-major, shaped like scikit-learn's ``_fit_and_score``
output.  Here:

- the graph is planned (``_plan``): the data and each split's indices are
  constants under content-hashed keys, every candidate's task names its
  work by value, so shared work is one task;
- a checkpoint (``_checkpoint``) supplies the records it holds, and takes
  each new one as soon as it arrives; a progress bar (``_progress``) counts
  them;
- the engine (``_engines``) runs what is missing;
- a fit that was stopped (``fit_timeout``) or that killed its worker
  process twice becomes a failed record with a ``FitFailedWarning`` that
  names it, or raises with ``error_score='raise'``.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.exceptions import FitFailedWarning

from . import _compat, _engines, _tasks
from ._plan import Planner, SearchSpec, estimator_token, token, with_params
from ._progress import Progress
from ._tasks import Const, ScoreConfig, failed_record


@dataclass(frozen=True)
class Settings:
    """How to evaluate: what a search or a cross-validation function was given."""

    scoring: object  # as the user gave it (part of every key)
    scorers: object  # checked: a scorer or scikit-learn's multimetric scorer
    error_score: object = np.nan
    return_train_score: bool = False
    return_estimator: bool = False
    verbose: int = 0
    scheduler: object = None
    n_jobs: object = None
    checkpoint: object = None
    progress: bool = False
    fit_timeout: object = None
    refit_metric: str = "score"  # whose mean the progress bar shows
    split_progress: bool = True  # verbose lines say '[CV 2/5]' (searches) or '[CV]'
    fit_params: dict = field(default_factory=dict)  # routed to the estimator, unsliced
    score_params: dict = field(default_factory=dict)  # routed to the scorer, unsliced


class Evaluation:
    """Candidates x splits of one ``fit`` (or one cross-validation call) into records."""

    def __init__(self, X, y, settings):
        self.X, self.y, self.settings = X, y, settings
        self.data_token = token(X, y)
        self.X_key, self.y_key = f"X-{self.data_token}", f"y-{self.data_token}"
        # Shared steps' results of the last graph, for the next one: successive
        # halving's next iteration fits the same prefixes on the same folds.
        self.cache = {}

    def evaluate(self, estimator, candidate_params, splits, contexts=None, caller=None,
                 label=None):
        """One record per (candidate, split), candidate-major.

        ``contexts``: scikit-learn's fit-callback contexts, one per
        evaluation, and ``caller`` the search they report to.  ``label``
        names this evaluation on the progress bar.
        """
        settings = self.settings
        graph = {self.X_key: Const(self.X), self.y_key: Const(self.y)}
        config = ScoreConfig(settings.scorers, settings.error_score,
                             settings.return_train_score, settings.verbose,
                             settings.return_estimator)
        # Everything besides the estimator and the data that a record depends
        # on: it is part of every final key (and so of checkpoint keys).
        scorer_token = token(
            estimator_token(settings.scoring), settings.error_score,
            settings.return_train_score, settings.return_estimator,
            estimator_token(settings.score_params), sorted(sklearn.get_config().items()),
        )
        config_key = f"score-config-{scorer_token}"
        graph[config_key] = Const(config)
        # The whole fitted estimator goes back: nothing to decompose.
        decompose = (not settings.return_estimator
                     and _compat.scores_on_final_step(settings.scorers, settings.score_params))
        fold_keys = []
        for train, test in splits:
            train_key = f"cv-train-{token(self.data_token, train)}"
            test_key = f"cv-test-{token(self.data_token, test)}"
            graph[train_key], graph[test_key] = np.asarray(train), np.asarray(test)
            fold_keys.append((train_key, test_key))
        spec = SearchSpec(
            X_key=self.X_key, y_key=self.y_key, folds=tuple(fold_keys),
            train_rows=tuple(graph[train_key] for train_key, _ in fold_keys),
            fit_params=dict(settings.fit_params), score_params=dict(settings.score_params),
            config_key=config_key, scorer_token=scorer_token, decompose=decompose,
            response_methods=_compat.response_methods(settings.scorers) if decompose else None,
            raise_errors=settings.error_score == "raise",
            return_train_score=settings.return_train_score,
        )
        kinds, keys = {}, []
        planner = Planner(spec, graph, self.X, kinds)
        template = clone(estimator)
        n_candidates, n_splits = len(candidate_params), len(splits)
        for cand, params in enumerate(candidate_params):
            # None: the estimator as it is, without set_params (scikit-learn's
            # cross-validation functions; its set_params may do more than set).
            candidate = (template if params is None
                         else with_params(template, _compat.clone_params(params)))
            for fold in range(n_splits):
                # For verbose output and callbacks only: 50,000 tasks hold 6 MB of them.
                tag = None
                if settings.verbose > 1 or contexts is not None:
                    tag = (params or {}, fold, n_splits if settings.split_progress else None,
                           cand, n_candidates)
                callback = None
                if contexts is not None:
                    callback = Const((contexts[cand * n_splits + fold], caller))
                keys.append(planner.candidate(candidate, fold, tag, callback))
        return self._run(graph, kinds, keys, candidate_params, n_splits, config, label)

    def _run(self, graph, kinds, keys, candidate_params, n_splits, config, label):
        settings = self.settings

        def lost(key, error):
            """A fit that was stopped, or killed the processes that ran it: a failed fit."""
            if settings.error_score == "raise":
                raise error
            index = keys.index(key) % (len(candidate_params) * n_splits)  # rare: a scan
            params, fold = candidate_params[index // n_splits] or {}, index % n_splits
            if isinstance(error, TimeoutError):
                happened = f"ran longer than fit_timeout={settings.fit_timeout} s"
            else:
                happened = "killed the worker processes that ran it"
            warnings.warn(
                f"The fit of candidate {params!r} on split {fold} {happened} "
                f"({type(error).__name__}: {error}); it is recorded as a failed fit with "
                f"error_score={settings.error_score!r}.",
                FitFailedWarning,
            )
            record = failed_record(config, f"{type(error).__name__}: {error}",
                                   why=_tasks.failure_kind(error))
            return record

        store = None
        if settings.checkpoint is not None:
            # Imported here: sqlite3 costs memory that other searches need not pay.
            from ._checkpoint import Checkpoint

            store = Checkpoint(settings.checkpoint)
        try:
            saved = store.load(keys, settings.fit_timeout) if store is not None else {}
            progress = Progress(
                keys, n_splits, settings.refit_metric,
                restored=[(k, saved[k]) for k in dict.fromkeys(keys) if k in saved],
                enabled=bool(settings.progress), label=label,
            )

            def done(key, record):
                if store is not None:
                    store.save(key, record, settings.fit_timeout)
                progress.update(key, record)

            todo = [k for k in dict.fromkeys(keys) if k not in saved]
            try:
                options = _engines.Options(
                    scheduler=settings.scheduler, n_jobs=settings.n_jobs,
                    config=sklearn.get_config(), verbose=settings.verbose,
                    fit_timeout=settings.fit_timeout,
                )
                values = _engines.run(graph, todo, kinds, options,
                                      _engines.Hooks(done=done, lost=lost), cache=self.cache)
            finally:
                progress.close()
        finally:
            if store is not None:
                store.close()
        results = {**saved, **dict(zip(todo, values))}
        timed_out = sum(bool(results[k].get("timed_out")) for k in dict.fromkeys(keys))
        if timed_out and settings.verbose > 0:
            print(f"{timed_out} fits ran longer than fit_timeout={settings.fit_timeout} s "
                  "and were stopped")
        # Each record is its own dict (scikit-learn's helpers edit records in
        # place), without dklearn's own mark of a stopped fit.
        records = []
        for key in keys:
            record = dict(results[key])
            record.pop("timed_out", None)
            records.append(record)
        return records
