"""A ColumnTransformer whose column selector is a function of the data: scikit-learn
calls it on each fold's training rows."""

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.user_code._compare import same_as_sklearn


def many_values(X):
    return [c for c in X.columns if X[c].nunique() >= 10]


if __name__ == "__main__":
    rng = np.random.RandomState(0)
    n = 100
    # 'code' has 10 values in all, one of them on a single row: a fold
    # without that row sees 9, and the selector leaves the column out there.
    code = np.array([f"c{i % 9}" for i in range(n)], dtype=object)
    code[0] = "c9"
    frame = pd.DataFrame({"code": code, "x": rng.normal(size=n), "z": rng.normal(size=n)})
    y = (frame["x"] + (frame["code"] == "c1") > 0).astype(int).to_numpy()
    ct = ColumnTransformer([("many", OneHotEncoder(handle_unknown="ignore"), many_values),
                            ("num", StandardScaler(), ["x", "z"])])
    pipe = Pipeline([("ct", ct), ("clf", LogisticRegression())])
    same_as_sklearn("GridSearchCV", frame, y, estimator=pipe, param_grid={"clf__C": [0.1, 10.0]},
                    cv=KFold(5), return_train_score=True)
    print("ok")
