"""A Pipeline subclass that changes how its steps are applied (it clips its input before
predicting): dklearn must run it whole, as its own methods do."""

import numpy as np
from sklearn.datasets import make_regression
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from tests.user_code._compare import same_as_sklearn


class ClippedPipeline(Pipeline):
    def predict(self, X, **params):
        return super().predict(np.clip(X, -1.0, 1.0), **params)

    def score(self, X, y=None, sample_weight=None, **params):
        return super().score(np.clip(X, -1.0, 1.0), y, sample_weight=sample_weight)


if __name__ == "__main__":
    X, y = make_regression(n_samples=120, n_features=6, noise=5.0, random_state=0)
    pipe = ClippedPipeline([("pca", PCA()), ("ridge", Ridge())])
    grid = {"pca__n_components": [2, 4], "ridge__alpha": [0.1, 10.0]}
    for scoring in (None, "r2", "neg_mean_squared_error"):
        same_as_sklearn("GridSearchCV", X, y, estimator=pipe, param_grid=grid, scoring=scoring)
    print("ok")
