"""Steps that write into their input (copy=False) after a step that candidates share:
no candidate may see another's writes."""

from sklearn.datasets import make_regression
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tests.user_code._compare import same_as_sklearn

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
    print("ok")
