"""Steps that write into their input (copy=False) after a step that candidates share:
no candidate may see another's writes.  And a text-cleaning step, defined here
as a user's would be, that writes into the list of documents it is given and
returns it: with training scores asked for, the next step is fitted on the
list written once, as in a Pipeline."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import make_regression
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tests.user_code._compare import same_as_sklearn


class AppendWord(TransformerMixin, BaseEstimator):
    def __init__(self, word="good"):
        self.word = word

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        for i in range(len(X)):
            X[i] = X[i] + " " + self.word
        return X


if __name__ == "__main__":
    X, y = make_regression(n_samples=150, n_features=8, noise=1.0, random_state=0)
    X = X * 10 + 50
    pipe = Pipeline([
        ("pca", PCA(n_components=4)),
        ("scale", StandardScaler(copy=False)),
        ("ridge", Ridge(copy_X=False)),
    ])
    grid = {"pca__n_components": [3, 5], "ridge__alpha": [0.01, 1.0, 100.0],
            "ridge__fit_intercept": [True, False]}
    same_as_sklearn("GridSearchCV", X, y, estimator=pipe, param_grid=grid,
                    return_train_score=True)
    first = Pipeline([("scale", StandardScaler(copy=False)), ("ridge", Ridge(copy_X=False))])
    same_as_sklearn("GridSearchCV", X, y, estimator=first, param_grid={"ridge__alpha": [0.1, 1.0]},
                    return_train_score=True)
    rng = np.random.RandomState(0)
    docs = [" ".join(rng.choice(["good", "bad", "movie", "great", "awful", "plot"], 6))
            for _ in range(90)]
    labels = np.array([("good" in d) > ("bad" in d) for d in docs]).astype(int)
    text = Pipeline([("append", AppendWord()), ("words", CountVectorizer()),
                     ("clf", LogisticRegression())])
    same_as_sklearn("GridSearchCV", docs, labels, estimator=text,
                    param_grid={"clf__C": [0.1, 10.0]}, scoring="neg_log_loss",
                    return_train_score=True)
    print("ok")
