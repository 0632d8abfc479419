"""Prefit models (FrozenEstimator) as grid values: equal parameters, different fitted
state, so different results."""

import numpy as np
from sklearn.datasets import make_classification
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tests.user_code._compare import same_as_sklearn

if __name__ == "__main__":
    X, y = make_classification(n_samples=150, n_features=5, random_state=0)
    rng = np.random.RandomState(0)
    # Two scalers with equal parameters, fitted on different data.
    a = FrozenEstimator(StandardScaler().fit(X))
    b = FrozenEstimator(StandardScaler().fit(X * rng.uniform(0.2, 5, size=5) + 3))
    pipe = Pipeline([("pre", a), ("clf", LogisticRegression())])
    grid = {"pre": [a, b], "clf__C": [0.01, 1.0]}
    reference = same_as_sklearn("GridSearchCV", X, y, estimator=pipe, param_grid=grid)
    scores = reference.cv_results_["mean_test_score"]
    assert scores[0] != scores[2], "the two frozen scalers should score differently"
    print("ok")
