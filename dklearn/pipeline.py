"""Pipeline, FeatureUnion, make_pipeline and make_union: scikit-learn's own.

The 2017 dask-learn needed its own Pipeline because its search could only
decompose that class.  dklearn's search decomposes scikit-learn's Pipeline,
FeatureUnion and ColumnTransformer directly, so the best drop-in replacement
is the original itself: every attribute, method, repr and ``isinstance``
check is scikit-learn's by construction.  These names exist so that the post's
``from dklearn.pipeline import Pipeline`` keeps working.
"""

from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline, make_union

__all__ = ["FeatureUnion", "Pipeline", "make_pipeline", "make_union"]
