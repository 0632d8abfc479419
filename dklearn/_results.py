"""Assemble cv_results_ from per-(candidate, fold) records.

The records come from ``_tasks.fit_and_score`` in candidate-major order
(candidate 0 on every fold, then candidate 1, ...), shaped like scikit-learn's
``_fit_and_score`` output.

By default dklearn hands them to the installed scikit-learn's own assembly
(``BaseSearchCV._format_results``, see ``_compat.format_results``): that is the
definition of cv_results_, and calling it keeps keys, dtypes and ranks equal
to the installed release.  ``format_results`` below is the fallback for a
release that renames that method; it follows scikit-learn 1.5+ (param_*
columns get the values' own dtype where it is one-dimensional and not a
string), and ``tests/test_compat.py`` checks it against the real one.
"""

import warnings
from collections import defaultdict

import numpy as np
from numpy.ma import MaskedArray
from scipy.stats import rankdata


def format_results(candidate_params, n_splits, out, more_results=None,
                   return_train_score=False):
    n_candidates = len(candidate_params)
    results = {key: np.asarray(value) for key, value in (more_results or {}).items()}

    def store(name, values, splits=False, rank=False):
        array = np.array(values, dtype=np.float64).reshape(n_candidates, n_splits)
        if splits:
            for split in range(n_splits):
                results[f"split{split}_{name}"] = array[:, split]
        means = array.mean(axis=1)
        results[f"mean_{name}"] = means
        if name.startswith(("train_", "test_")) and not np.all(np.isfinite(means)):
            warnings.warn(
                f"One or more of the {name.split('_')[0]} scores are non-finite: {means}",
                category=UserWarning,
            )
        results[f"std_{name}"] = np.sqrt(((array - means[:, None]) ** 2).mean(axis=1))
        if rank:
            if np.isnan(means).all():
                ranks = np.ones_like(means, dtype=np.int32)
            else:
                # Failed candidates (NaN) tie with each other below the worst.
                filled = np.where(np.isnan(means), np.nanmin(means) - 1, means)
                ranks = rankdata(-filled, method="min").astype(np.int32)
            results[f"rank_{name}"] = ranks

    store("fit_time", [r["fit_time"] for r in out])
    store("score_time", [r["score_time"] for r in out])
    results.update(param_columns(candidate_params))
    results["params"] = candidate_params

    test = _by_metric([r["test_scores"] for r in out])
    train = _by_metric([r["train_scores"] for r in out]) if return_train_score else {}
    for metric, values in test.items():
        store(f"test_{metric}", values, splits=True, rank=True)
        if return_train_score:
            store(f"train_{metric}", train[metric], splits=True)
    return results


def _by_metric(scores):
    if isinstance(scores[0], dict):
        return {name: [s[name] for s in scores] for name in scores[0]}
    return {"score": scores}


def param_columns(candidate_params):
    """One masked array per parameter name, masked where a candidate lacks it."""
    n = len(candidate_params)
    seen = defaultdict(dict)
    for index, params in enumerate(candidate_params):
        for name, value in params.items():
            seen[f"param_{name}"][index] = value
    columns = {}
    for key, by_index in seen.items():
        values = list(by_index.values())
        try:
            probe = np.array(values)
        except ValueError:  # ragged sequences
            dtype = np.dtype(object)
        else:
            dtype = probe.dtype if probe.ndim == 1 and probe.dtype.kind != "U" else np.dtype(object)
        column = MaskedArray(np.empty(n, dtype=dtype), mask=True)
        for index, value in by_index.items():
            column[index] = value
        columns[key] = column
    return columns
