"""Progress of a search: finished fits out of the total, ETA, best mean score so far,
and fits stopped by ``fit_timeout``.

Fed by the engines' ``done`` hook (one call per finished (candidate, fold)),
so it works the same on threads, processes and a cluster.  tqdm draws it
(tqdm.auto: a widget in a notebook, a bar in a terminal).
"""

import math
from collections import defaultdict


class Progress:
    def __init__(self, keys, n_splits, metric, restored=(), enabled=True, label=None):
        self.enabled = enabled
        if not enabled:
            return
        self.timed_out = 0
        self.keys_to_candidates = defaultdict(list)
        for index, key in enumerate(keys):
            self.keys_to_candidates[key].append(index // n_splits)
        self.n_splits = n_splits
        self.metric = metric
        self.scores = defaultdict(dict)  # candidate -> {fold: score}
        self.best = -math.inf
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(keys), desc=label or "fits", unit="fit",
                            dynamic_ncols=True)
        for key, record in restored:
            self.update(key, record)

    def update(self, key, record):
        if not self.enabled:
            return
        for candidate in self.keys_to_candidates.get(key, ()):
            self.timed_out += bool(record.get("timed_out"))
            fold = len(self.scores[candidate])
            self.scores[candidate][fold] = _score(record, self.metric)
            if len(self.scores[candidate]) == self.n_splits:
                mean = sum(self.scores[candidate].values()) / self.n_splits
                if mean > self.best:
                    self.best = mean
            if self.bar is not None:
                self.bar.update(1)
        if self.bar is not None:
            postfix = {"best": f"{self.best:.4f}"} if math.isfinite(self.best) else {}
            if self.timed_out:
                postfix["timed out"] = self.timed_out
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def close(self):
        if self.enabled and self.bar is not None:
            self.bar.close()


def _score(record, metric):
    scores = record.get("test_scores")
    if isinstance(scores, dict):
        scores = scores.get(metric, next(iter(scores.values()), math.nan))
    try:
        return float(scores)
    except (TypeError, ValueError):
        return math.nan
