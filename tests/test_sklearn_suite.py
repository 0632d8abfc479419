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

The whole module is skipped when the installed scikit-learn ships without
its tests.  ``EXPECTED_FAILURES`` lists the few tests that check something
dklearn differs in by design; they are strict xfails.  Everything else is
expected to pass: a failure is a dklearn bug.
"""

import functools
import os
import warnings

import pytest

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

from sklearn import model_selection as sk_search  # noqa: E402
from sklearn import pipeline as sk_pipeline  # noqa: E402

# scikit-learn's object -> dklearn's object, by the name the test modules use.
SEARCH_SWAP = {
    "GridSearchCV": (sk_search.GridSearchCV, dk_search.GridSearchCV),
    "RandomizedSearchCV": (sk_search.RandomizedSearchCV, dk_search.RandomizedSearchCV),
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
    if isinstance(value, tuple) and hasattr(value, "_replace") and hasattr(value, "marks"):
        return value._replace(values=_swap_value(tuple(value.values), pairs))  # pytest.param
    if isinstance(value, (list, tuple)):
        return type(value)(_swap_value(v, pairs) for v in value)
    if isinstance(value, dict):
        return {k: _swap_value(v, pairs) for k, v in value.items()}
    if isinstance(value, functools.partial):
        return functools.partial(
            _swap_value(value.func, pairs),
            *_swap_value(value.args, pairs),
            **_swap_value(value.keywords, pairs),
        )
    return value


def _swap_marks(func, pairs):
    """Rebuild ``func``'s parametrize marks with swapped argument values."""
    marks = getattr(func, "pytestmark", None)
    if not marks:
        return
    new_marks = []
    for mark in marks:
        if mark.name == "parametrize":
            args = (mark.args[0], _swap_value(mark.args[1], pairs), *mark.args[2:])
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


def _check_swapped(module, tests, swap):
    """Fail if a scikit-learn search class survived the swap anywhere visible."""
    leftovers = {sk for sk, dk in swap.values() if sk is not dk}

    def survivors(value, seen):
        if id(value) in seen:
            return []
        seen.add(id(value))
        if any(value is sk or type(value) is sk for sk in leftovers):
            return [value]
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, (list, tuple)):
            return [s for v in value for s in survivors(v, seen)]
        if isinstance(value, functools.partial):
            return survivors([value.func, value.args, value.keywords], seen)
        return []

    found = []
    for name, func in tests.items():
        for mark in getattr(func, "pytestmark", []):
            if mark.name == "parametrize" and survivors(mark.args[1], set()):
                found.append(f"{name} (parametrize)")
    for name, value in vars(module).items():
        if name not in swap and survivors(value, set()):
            found.append(f"module global {name}")
    if found:
        raise RuntimeError(
            f"{module.__name__}: scikit-learn's search classes survived the swap "
            f"in {found}; extend tests/test_sklearn_suite.py to reach them."
        )


# ---------------------------------------------------------------------------
# Tests that cannot pass against dklearn, by design.  One line each: why.
# Keys are test function names; a value applies to every parametrization.
# ---------------------------------------------------------------------------

EXPECTED_FAILURES = {
    "search": {},
    "pipeline": {},
}


def _expose(tests, expected_failures):
    """A namespace of staticmethods pytest collects, xfails applied."""
    unknown = set(expected_failures) - set(tests)
    if unknown:
        raise RuntimeError(f"EXPECTED_FAILURES names unknown tests: {sorted(unknown)}")
    namespace = {}
    for name, func in tests.items():
        reason = expected_failures.get(name)
        if reason is not None:
            func = pytest.mark.xfail(strict=True, reason=reason)(func)
        namespace[name] = staticmethod(func)
    return namespace


class TestSklearnSearch:
    """sklearn/model_selection/tests/test_search.py against dklearn's search classes."""

    locals().update(
        _expose(_swap_suite(search_suite, SEARCH_SWAP), EXPECTED_FAILURES["search"])
    )


class TestSklearnPipeline:
    """sklearn/tests/test_pipeline.py with dklearn's names."""

    locals().update(
        _expose(_swap_suite(pipeline_suite, PIPELINE_SWAP), EXPECTED_FAILURES["pipeline"])
    )


# ---------------------------------------------------------------------------
# Fixtures scikit-learn's conftest provides (sklearn/conftest.py is not loaded)
# ---------------------------------------------------------------------------


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
