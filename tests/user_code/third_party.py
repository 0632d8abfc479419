"""Estimators and inputs from other libraries, as users combine them: an
imbalanced-learn Pipeline with samplers (training folds resampled, test folds
never), LightGBM, a category_encoders encoder, polars input.  Prints which ran."""

import importlib.util

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from tests.user_code._compare import same_as_sklearn


def have(name):
    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    X, y = make_classification(n_samples=200, n_features=6, weights=[0.85], random_state=0)
    ran = []
    if have("imblearn"):
        from imblearn.over_sampling import SMOTE
        from imblearn.pipeline import Pipeline as ImbPipeline
        from imblearn.under_sampling import RandomUnderSampler

        pipe = ImbPipeline([("scale", StandardScaler()), ("pca", PCA(n_components=4)),
                            ("sample", SMOTE(random_state=0)), ("clf", LogisticRegression())])
        grid = {"pca__n_components": [3, 5], "sample": [SMOTE(random_state=0),
                RandomUnderSampler(random_state=0)], "clf__C": [0.1, 1.0]}
        same_as_sklearn("GridSearchCV", X, y, estimator=pipe, param_grid=grid,
                        scoring="balanced_accuracy", return_train_score=True)
        ran.append("imblearn")
    if have("lightgbm"):
        from lightgbm import LGBMClassifier

        lgbm = LGBMClassifier(n_estimators=20, verbose=-1, random_state=0, n_jobs=1)
        same_as_sklearn("RandomizedSearchCV", X, y, estimator=lgbm, n_iter=4, random_state=0,
                        param_distributions={"num_leaves": [4, 8, 16], "learning_rate": [0.05, 0.2]})
        ran.append("lightgbm")
    if have("category_encoders"):
        from category_encoders import TargetEncoder
        from sklearn.pipeline import Pipeline

        rng = np.random.RandomState(0)
        frame = pd.DataFrame({"city": rng.choice(list("abcdefg"), size=200),
                              "x": X[:, 0]})
        pipe = Pipeline([("enc", TargetEncoder(cols=["city"])), ("clf", LogisticRegression())])
        same_as_sklearn("GridSearchCV", frame, y, estimator=pipe,
                        param_grid={"enc__smoothing": [1.0, 10.0], "clf__C": [0.1, 1.0]})
        ran.append("category_encoders")
    if have("polars"):
        import polars as pl
        from sklearn.pipeline import Pipeline

        frame = pl.DataFrame({f"f{i}": X[:, i] for i in range(X.shape[1])})
        pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
        same_as_sklearn("GridSearchCV", frame, y, estimator=pipe,
                        param_grid={"clf__C": [0.1, 1.0, 10.0]})
        ran.append("polars")
    print("ran:", " ".join(ran))
    print("ok")
