"""scikit-learn's own test suites, run against dklearn's classes.

dklearn promises to be a drop-in replacement, so the most demanding test it
can face is the one scikit-learn writes for itself.  This module imports the
test modules shipped inside the installed scikit-learn, points their search
classes at dklearn's, and hands their test functions to pytest:

- ``sklearn/model_selection/tests/test_search.py`` with ``GridSearchCV`` and
  ``RandomizedSearchCV`` replaced by ``dklearn.model_selection``'s;
- ``sklearn/tests/test_pipeline.py`` with its Pipeline / FeatureUnion names
  (and any search class it imports) replaced by ``dklearn``'s.

Tests appear as ``TestSklearnSearch::<name>`` and
``TestSklearnPipeline::<name>``, so that failures read like scikit-learn's
(the two modules share a test name, hence the classes).

How the swap is done
--------------------
Only the imported test module is changed, never ``sklearn.model_selection``:

1. its module globals ``GridSearchCV`` / ``RandomizedSearchCV`` are rebound,
   which covers every use inside a test body or a helper;
2. values that were built when the module was imported (a class or an
   instance listed in ``@pytest.mark.parametrize``) are swapped in each test's
   parametrize marks: a class for dklearn's class, an instance for a dklearn
   instance with the same parameters.  ``_check_swapped`` then fails loudly
   if a newer scikit-learn hides one somewhere this module does not look.

Fixtures: the tests use pytest's own (``capsys``) and, in some releases,
``global_random_seed``, which ``sklearn/conftest.py`` parametrizes; this
module's ``pytest_generate_tests`` does the same, so that conftest (and its
session-wide side effects on the project's other tests) is not loaded.

The whole module is skipped when the installed scikit-learn ships without
its tests.  ``EXPECTED_FAILURES`` lists the few tests that check something
dklearn differs in by design; they are strict xfails.  Everything else is
expected to pass: a failure is a dklearn bug.
"""

from collections.abc import Collection
import functools
import os
import warnings

import pytest
import sklearn

import dklearn.model_selection as dk_search
import dklearn.pipeline as dk_pipeline


def _import_suite(dotted):
    """The installed test module, or a module-level skip when it is not shipped."""
    with warnings.catch_warnings():
        # scikit-learn registers its own marks (thread_unsafe, ...) in its
        # conftest, which this project does not load.
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        try:
            return pytest.importorskip(
                dotted,
                reason=f"the installed scikit-learn does not ship {dotted}",
                exc_type=ModuleNotFoundError,
            )
        except TypeError:  # pytest < 8.2 has no exc_type
            return pytest.importorskip(dotted)


search_suite = _import_suite("sklearn.model_selection.tests.test_search")
pipeline_suite = _import_suite("sklearn.tests.test_pipeline")
halving_suite = _import_suite("sklearn.model_selection.tests.test_successive_halving")
validation_suite = _import_suite("sklearn.model_selection.tests.test_validation")

from sklearn import model_selection as sk_search  # noqa: E402
from sklearn import pipeline as sk_pipeline  # noqa: E402

# scikit-learn's object -> dklearn's object, by the name the test modules use.
SEARCH_SWAP = {
    "GridSearchCV": (sk_search.GridSearchCV, dk_search.GridSearchCV),
    "RandomizedSearchCV": (sk_search.RandomizedSearchCV, dk_search.RandomizedSearchCV),
}
HALVING_SWAP = {
    "HalvingGridSearchCV": (halving_suite.HalvingGridSearchCV, dk_search.HalvingGridSearchCV),
    "HalvingRandomSearchCV": (halving_suite.HalvingRandomSearchCV,
                              dk_search.HalvingRandomSearchCV),
}
VALIDATION_SWAP = {
    **SEARCH_SWAP,
    **{name: (getattr(sk_search, name), getattr(dk_search, name))
       for name in ("cross_validate", "cross_val_score", "cross_val_predict",
                    "validation_curve", "learning_curve", "permutation_test_score")},
}
PIPELINE_SWAP = {
    **SEARCH_SWAP,
    # dklearn.pipeline re-exports scikit-learn's own objects: rebinding them
    # changes nothing today, and keeps this suite honest if that ever changes.
    "Pipeline": (sk_pipeline.Pipeline, dk_pipeline.Pipeline),
    "FeatureUnion": (sk_pipeline.FeatureUnion, dk_pipeline.FeatureUnion),
    "make_pipeline": (sk_pipeline.make_pipeline, dk_pipeline.make_pipeline),
    "make_union": (sk_pipeline.make_union, dk_pipeline.make_union),
}


# ---------------------------------------------------------------------------
# The swap
# ---------------------------------------------------------------------------


def _swap_value(value, pairs):
    """``value`` with scikit-learn's objects swapped for dklearn's, recursively.

    ``pairs`` is ``[(sklearn object, dklearn object), ...]``.  A class is
    swapped for the other class; an instance of a swapped class (built at
    import time, never fitted: its parameters are all it has) for a dklearn
    instance with the same parameters.
    """
    for sk_obj, dk_obj in pairs:
        if value is sk_obj:
            return dk_obj
        if isinstance(sk_obj, type) and type(value) is sk_obj:
            return dk_obj(**value.get_params(deep=False))
    # Containers are rebuilt only when something inside them was swapped, so
    # that values the tests compare by identity keep their identity.
    if isinstance(value, tuple) and hasattr(value, "_replace") and hasattr(value, "marks"):
        values = _swap_value(tuple(value.values), pairs)  # a pytest.param(...)
        return value if values is value.values else value._replace(values=values)
    if isinstance(value, (list, tuple)):
        items = [_swap_value(v, pairs) for v in value]
        if not any(new is not old for new, old in zip(items, value)):
            return value
        return type(value)._make(items) if hasattr(value, "_make") else type(value)(items)
    if isinstance(value, dict):
        items = {k: _swap_value(v, pairs) for k, v in value.items()}
        return items if any(items[k] is not value[k] for k in value) else value
    if isinstance(value, functools.partial):
        original = [value.func, value.args, value.keywords]
        parts = _swap_value(original, pairs)
        return value if parts is original else functools.partial(parts[0], *parts[1], **parts[2])
    return value


def _swap_marks(func, pairs):
    """Rebuild ``func``'s parametrize marks with swapped argument values."""
    marks = getattr(func, "pytestmark", None)
    if not marks:
        return
    new_marks = []
    for mark in marks:
        if mark.name == "parametrize":
            argvalues = mark.args[1]
            if not isinstance(argvalues, Collection):
                argvalues = list(argvalues)  # a generator: read it once, here
            swapped = _swap_value(argvalues, pairs)
            if swapped is not mark.args[1]:
                args = (mark.args[0], swapped, *mark.args[2:])
                mark = pytest.mark.parametrize(*args, **mark.kwargs).mark
        new_marks.append(mark)
    func.pytestmark = new_marks


def _swap_suite(module, swap):
    """Point ``module``'s names at dklearn's; return its test functions by name."""
    pairs = [(sk_obj, dk_obj) for sk_obj, dk_obj in swap.values() if sk_obj is not dk_obj]
    for name, (sk_obj, dk_obj) in swap.items():
        if getattr(module, name, None) is sk_obj:
            setattr(module, name, dk_obj)
    tests = {
        name: obj
        for name, obj in vars(module).items()
        if name.startswith("test_") and callable(obj) and not isinstance(obj, type)
    }
    for func in tests.values():
        _swap_marks(func, pairs)
    _check_swapped(module, tests, pairs)
    return tests


def _check_swapped(module, tests, pairs):
    """Fail if one of scikit-learn's swapped objects survived anywhere visible."""
    originals = [sk_obj for sk_obj, _ in pairs]

    def survives(value, seen):
        if id(value) in seen:
            return False
        seen.add(id(value))
        if any(value is sk or type(value) is sk for sk in originals):
            return True
        if isinstance(value, dict):
            value = list(value.values())
        elif isinstance(value, functools.partial):
            value = [value.func, value.args, value.keywords]
        return isinstance(value, (list, tuple)) and any(survives(v, seen) for v in value)

    found = [
        f"parametrize of {name}"
        for name, func in tests.items()
        for mark in getattr(func, "pytestmark", [])
        if mark.name == "parametrize" and survives(mark.args[1], set())
    ]
    found += [
        f"module global {name}"
        for name, value in vars(module).items()
        if not name.startswith("__") and survives(value, set())
    ]
    if found:
        raise RuntimeError(
            f"{module.__name__}: scikit-learn objects survived the swap to dklearn's "
            f"in {found}; extend tests/test_sklearn_suite.py to reach them."
        )


# ---------------------------------------------------------------------------
# Tests that cannot pass against dklearn, by design.  One line each: why.
# Keys are test function names; a value applies to every parametrization.
# ---------------------------------------------------------------------------

# The stack-inspecting version of that test arrived with scikit-learn 1.9.
_SKLEARN_AT_LEAST_1_9 = tuple(
    int("".join(c for c in part if c.isdigit()) or 0) for part in sklearn.__version__.split(".")[:2]
) >= (1, 9)

# These tests find "the caller" of a fit or a score by looking for a frame
# of that name on the stack of the thread that runs it.  scikit-learn's
# default n_jobs=None fits in the calling thread; dklearn's default fits
# where it runs fastest, a worker thread (where the caller's frames are not)
# unless the rule sends those tiny fits to the calling thread.  scikit-learn
# with n_jobs=2 fails them too.  Not strict: either may happen.
_STACK = "fits in a worker thread: the test inspects the calling thread's stack"

EXPECTED_FAILURES = {
    "search": {
        "test_multi_metric_search_forwards_metadata":
            _STACK if (os.cpu_count() or 1) > 1 and _SKLEARN_AT_LEAST_1_9 else None,
    },
    "pipeline": {},
    "halving": {
        # FastClassifier's get_params reports 'whatever' for every one of the
        # parameters a..z the grid sets: to dklearn its candidates are one
        # estimator, fitted once per fold, which is the point of dklearn (a
        # task is named by the parameters get_params reports).  These two
        # tests need a fit per candidate: one scores with a random scorer and
        # expects no two equal scores, the other counts the fits.
        "test_cv_results": "candidates equal by get_params share their fits",
        "test_base_estimator_inputs": "candidates equal by get_params share their fits",
    },
    "validation": {
        "test_validation_functions_routing": _STACK if (os.cpu_count() or 1) > 1 else None,
        "test_learning_curve_exploit_incremental_learning_routing":
            _STACK if (os.cpu_count() or 1) > 1 else None,
    },
}


def _suite_class(name, doc, tests, expected_failures):
    """A class pytest collects, holding the tests as staticmethods, xfails applied."""
    unknown = set(expected_failures) - set(tests)
    if unknown:
        raise RuntimeError(f"EXPECTED_FAILURES names unknown tests: {sorted(unknown)}")
    namespace = {"__doc__": doc, "__module__": __name__}
    expected_failures = {k: v for k, v in expected_failures.items() if v is not None}
    for test_name, func in tests.items():
        reason = expected_failures.get(test_name)
        if reason is not None:
            func = pytest.mark.xfail(strict=False, reason=reason)(func)
        namespace[test_name] = staticmethod(func)
    return type(name, (), namespace)


TestSklearnSearch = _suite_class(
    "TestSklearnSearch",
    "sklearn/model_selection/tests/test_search.py against dklearn's search classes.",
    _swap_suite(search_suite, SEARCH_SWAP),
    EXPECTED_FAILURES["search"],
)

TestSklearnPipeline = _suite_class(
    "TestSklearnPipeline",
    "sklearn/tests/test_pipeline.py with dklearn's Pipeline names and search classes.",
    _swap_suite(pipeline_suite, PIPELINE_SWAP),
    EXPECTED_FAILURES["pipeline"],
)


# ---------------------------------------------------------------------------
# Fixtures scikit-learn's conftest provides (sklearn/conftest.py is not loaded)
# ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_engine_memory():
    """Each test starts as a fresh process would: with no kind's measurements.

    What one test's fits measured would otherwise decide where another's
    run (the cost model remembers, see dklearn/_engines/cost.py), and
    scikit-learn's tests that keep state in their estimators' module (a
    list of the fits seen) assume the fits run in this process.
    """
    from dklearn._engines import cost

    saved = dict(cost._KNOWN)
    cost._KNOWN.clear()
    yield
    cost._KNOWN.clear()
    cost._KNOWN.update(saved)


def pytest_generate_tests(metafunc):
    """``global_random_seed``, parametrized as scikit-learn's conftest does.

    SKLEARN_TESTS_GLOBAL_RANDOM_SEED: unset -> 42; 'all' -> 0..99; 'a-b' or 'n'.
    """
    if "global_random_seed" not in metafunc.fixturenames:
        return
    spec = os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED")
    if spec is None:
        seeds = [42]
    elif spec == "all":
        seeds = list(range(100))
    elif "-" in spec:
        start, stop = spec.split("-")
        seeds = list(range(int(start), int(stop) + 1))
    else:
        seeds = [int(spec)]
    metafunc.parametrize("global_random_seed", seeds)


TestSklearnHalving = _suite_class(
    "TestSklearnHalving",
    "sklearn/model_selection/tests/test_successive_halving.py against dklearn's halving searches.",
    _swap_suite(halving_suite, HALVING_SWAP),
    EXPECTED_FAILURES["halving"],
)

TestSklearnValidation = _suite_class(
    "TestSklearnValidation",
    "sklearn/model_selection/tests/test_validation.py against dklearn's cross-validation "
    "functions.",
    _swap_suite(validation_suite, VALIDATION_SWAP),
    EXPECTED_FAILURES["validation"],
)
