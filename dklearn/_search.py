"""The search classes: scikit-learn's own, with a ``fit`` that shares work.

``GridSearchCV``, ``RandomizedSearchCV``, ``HalvingGridSearchCV`` and
``HalvingRandomSearchCV`` subclass scikit-learn's classes: same constructor
(plus ``scheduler``, ``checkpoint``, ``progress`` and ``fit_timeout``), same
attributes and methods, ``isinstance`` checks hold.  Only how the
(candidate, fold) fits run differs:

1. validate and route exactly as scikit-learn (same calls, same errors);
2. the class's own ``_run_search`` proposes candidates (a grid, a sample,
   successive halving's iterations) to ``evaluate_candidates``;
3. ``_evaluate`` plans candidates x folds as one graph and runs it, and
   returns records shaped like scikit-learn's ``_fit_and_score`` output;
4. scikit-learn's own ``_format_results`` assembles ``cv_results_`` from them
   (``_compat.format_results``), its ``_select_best_index`` picks the best;
5. the best candidate is refitted on all data, as scikit-learn does.

``_SharedWorkFit`` sits just above ``BaseSearchCV`` in each class's method
order, so that a subclass's own ``fit`` (successive halving's) runs first
and reaches it through ``super().fit``, as it reaches ``BaseSearchCV.fit``.
"""

import inspect
import time
from collections import defaultdict

from sklearn import model_selection as _sk
from sklearn.base import clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.utils import indexable

from . import _compat, _engines
from ._evaluate import Evaluation, Settings

DKLEARN_PARAMS = {"scheduler": None, "checkpoint": None, "progress": False, "fit_timeout": None}

DKLEARN_DOC = """
    scheduler : None, 'sync', 'threads', 'processes', str or Client, default=None
        Where the fits run. None: joblib's ``parallel_config`` backend if
        one is set, else the active dask.distributed Client if there is
        one, else this machine's cores, each kind of fit where it runs
        fastest (threads, or worker processes for those the GIL slows).
        'sync' runs every fit in this thread, in order. An address
        ('tcp://host:port') or a Client runs on that cluster. ``n_jobs``
        sets the number of local workers (None: every core).

    checkpoint : str or path, default=None
        An SQLite file where every finished (candidate, fold) result is
        committed as soon as it completes. Fitting again with the same file
        computes only what is missing. Results are reused only for the same
        data, folds, estimator, parameters, scoring and library versions.
        Several searches may share one file.

    progress : bool, default=False
        Show a progress bar of finished fits, with the ETA and the best mean
        test score so far (tqdm: a terminal bar or a notebook widget).

    fit_timeout : float, default=None
        Seconds a fit (or a step shared by several candidates) may run. One
        that runs longer is stopped, and each (candidate, fold) that needed
        it is a failed fit: ``error_score``, with a FitFailedWarning naming
        it (a ``TimeoutError`` with ``error_score='raise'``). Stopping needs
        fits that can be killed, so with a limit every fit runs in a worker
        process (or on the cluster).
"""


# The common base of scikit-learn's searches, found from a public class.
_BaseSearchCV = next(c for c in _sk.GridSearchCV.__mro__ if c.__name__ == "BaseSearchCV")


class _SharedWorkFit(_BaseSearchCV):
    """The ``fit`` of dklearn's search classes (see the module doc)."""

    @_compat.fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters, each distinct piece of work once.

        Parameters and results are scikit-learn's (see
        ``sklearn.model_selection.GridSearchCV.fit``).
        """
        _engines.check_scheduler(self.scheduler)
        scorers, refit_metric = self._get_scorers()
        X, y = indexable(X, y)
        params = _compat.check_method_params(X, params=params)
        routed = self._get_routed_params_for_fit(params)
        sample_weight = params.get("sample_weight")
        metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        root_ctx = _compat.begin_callbacks(self, X, y, metadata)

        self._checked_cv_orig = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        check_input = getattr(self, "_check_input_parameters", None)
        if check_input is not None:  # scikit-learn >= 1.7; successive halving's checks
            check_input(X=X, y=y, split_params=routed.splitter.split)
        self.n_splits_ = self._checked_cv_orig.get_n_splits(X, y, **routed.splitter.split)
        base_estimator = clone(self.estimator)
        evaluation = Evaluation(X, y, Settings(
            scoring=self.scoring, scorers=scorers, error_score=self.error_score,
            return_train_score=self.return_train_score, verbose=self.verbose,
            scheduler=self.scheduler, n_jobs=self.n_jobs, checkpoint=self.checkpoint,
            progress=self.progress, fit_timeout=self.fit_timeout,
            refit_metric=self.refit if isinstance(self.refit, str) else "score",
            fit_params=routed.estimator.fit, score_params=routed.scorer.score,
        ))

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
            contexts = _compat.evaluation_contexts(
                self, callback_ctx, len(candidate_params) * len(splits))
            label = None
            if more_results and more_results.get("iter"):
                label = f"iter {more_results['iter'][0]}"
            out = evaluation.evaluate(base_estimator, candidate_params, splits, contexts,
                                      caller=self, label=label)
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


# A call with the wrong arguments names the method as scikit-learn's own does.
for _function in (_SharedWorkFit.fit, getattr(_SharedWorkFit.fit, "__wrapped__", None)):
    if _function is not None:
        _function.__qualname__ = "BaseSearchCV.fit"
del _function


def _sklearn_page(sk_class):
    def url_params(self):
        return {"estimator_module": "sklearn.model_selection",
                "estimator_name": sk_class.__name__}

    return url_params


def _dklearn_class(sk_class, doc_name):
    """scikit-learn's ``sk_class`` with dklearn's fit and four more parameters.

    The constructor takes whatever the installed release's does (its
    signature is read, not copied), then ``scheduler``, ``checkpoint``,
    ``progress`` and ``fit_timeout``, and only stores them.
    """
    sk_init = sk_class.__init__
    signature = inspect.signature(sk_init)

    def __init__(self, *args, scheduler=None, checkpoint=None, progress=False,
                 fit_timeout=None, **kwargs):
        sk_init(self, *args, **kwargs)
        self.scheduler = scheduler
        self.checkpoint = checkpoint
        self.progress = progress
        self.fit_timeout = fit_timeout

    ours = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
            for name, default in DKLEARN_PARAMS.items()]
    __init__.__signature__ = signature.replace(
        parameters=[*signature.parameters.values(), *ours])
    namespace = {
        "__init__": __init__,
        "__doc__": (sk_class.__doc__ or "") + DKLEARN_DOC,
        "__module__": "dklearn.model_selection",
        "_parameter_constraints": {**sk_class._parameter_constraints,
                                   **_compat.DKLEARN_CONSTRAINTS},
        # The notebook diagram's "?" links to scikit-learn's page of the class, through
        # the hooks scikit-learn documents for other libraries' estimators.
        "_doc_link_module": "dklearn",
        "_doc_link_url_param_generator": _sklearn_page(sk_class),
    }
    return type(doc_name, (sk_class, _SharedWorkFit), namespace)


GridSearchCV = _dklearn_class(_sk.GridSearchCV, "GridSearchCV")
RandomizedSearchCV = _dklearn_class(_sk.RandomizedSearchCV, "RandomizedSearchCV")
_sk_halving_grid, _sk_halving_random = _compat.halving_search_classes()
HalvingGridSearchCV = _dklearn_class(_sk_halving_grid, "HalvingGridSearchCV")
HalvingRandomSearchCV = _dklearn_class(_sk_halving_random, "HalvingRandomSearchCV")

__all__ = ["GridSearchCV", "HalvingGridSearchCV", "HalvingRandomSearchCV", "RandomizedSearchCV"]
