"""Warnings from fits that run in worker processes, under the user's filters, as in
scikit-learn's loop: run as ``python warnings_in_processes.py sklearn|dklearn CASE``,
it prints what the user sees (stderr and the scores), for the test to compare.

- ``error``: ``simplefilter("error")``: a warning fails its fit, and the failures are
  summarised in one FitFailedWarning grouped by their traceback text (the class is
  this script's, sent by value: its tracebacks must name this file, as here);
- ``module``: ``filterwarnings("ignore", module="__main__")`` silences this module;
- ``only``: every warning ignored but this module's (``module="__main__"``), and
  scikit-learn's (``module="sklearn"``);
- ``repeat``: no filter: a warning raised three times by one line of a fit shows
  once per fit.
"""

import sys
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification


class Warns(ClassifierMixin, BaseEstimator):
    def __init__(self, k=0):
        self.k = k

    def fit(self, X, y):
        for _ in range(3):
            warnings.warn(f"fitting k={self.k}")
        if self.k == 3:
            raise ValueError("three")
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[self.k % 2])


if __name__ == "__main__":
    library, case = sys.argv[1:3]
    if library == "sklearn":
        from sklearn.model_selection import GridSearchCV
        extra = {}
    else:
        from dklearn.model_selection import GridSearchCV
        extra = {"scheduler": "processes"}
    if case == "error":
        warnings.simplefilter("error")
    elif case == "module":
        warnings.filterwarnings("ignore", module="__main__")
    elif case == "only":
        warnings.simplefilter("ignore")
        warnings.filterwarnings("always", module="__main__")
        warnings.filterwarnings("always", module="sklearn")
    X, y = make_classification(n_samples=60, random_state=0)
    search = GridSearchCV(Warns(), {"k": [0, 1, 2, 3]}, cv=3, refit=False, **extra)
    try:
        search.fit(X, y)
    except ValueError as error:  # every fit failed: scikit-learn's summary, raised
        print(error, file=sys.stderr)
    else:
        print(search.cv_results_["mean_test_score"])
