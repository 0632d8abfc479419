"""Plan a search: candidates x folds -> one task graph in which equal work is one task.

This module is pure: it builds a dask graph (a dict of key -> task tuple)
and runs nothing.

What a key means
----------------
A task key names *what* the task computes, never which Python object
computes it::

    fit-PCA-<token(PCA and its parameters by value, input key, step params)>
    transform-PCA-<token(fit key, which rows)>
    union-FeatureUnion-<token(branch keys, weights)>
    score-LogisticRegression-<token(estimator by value, input key, scoring)>

The input key of the first step names the data (hashed by content) and the
fold (its index arrays), so every key transitively names the data and fold it
depends on.  Two candidates whose pipelines agree on a prefix produce the
same keys for that prefix: the dict keeps one task, and the scheduler runs it
once.  Equal parameter values that are distinct objects hash alike
(``estimator_token``).

How an estimator is decomposed
-------------------------------
- ``Pipeline``: every step but the last is a transformer node; the last is
  fitted and scored in one task (its fitted model is never shipped).  A
  nested Pipeline is a chain of nodes.
- ``FeatureUnion``: each kept branch is a node on the same input; a ``union``
  task stacks them (``transformer_weights`` applied).
- A transformer node is three tasks per fold: ``fit_transform`` on the
  training rows (what ``Pipeline.fit`` does), ``transform`` of the test rows,
  and, only when training scores are asked for, ``transform`` of the training
  rows (what ``Pipeline.predict`` does when scoring them).
- Anything else, and anything whose decomposition could change the result
  (a user's scoring callable that may look inside the pipeline, metadata
  routed into a nested container, pandas output of a union), is one opaque
  node: still shared between candidates that configure it alike.

Data enters the graph once, under a content-hashed key; folds are index
arrays; a task that needs raw rows slices them itself (``_tasks.take``), so no
per-fold copy of X is held by the graph.
"""

import copy
import hashlib
import inspect
import sys
from dataclasses import dataclass, field

from dask.base import tokenize
from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import FeatureUnion, Pipeline

from . import _compat, _tasks
from ._tasks import Const


def estimator_token(obj):
    """A hash of an estimator by value: its class and parameters, recursively.

    Equal-but-distinct parameter objects (two ``PCA(n_components=5)``) hash
    alike, which is what lets candidates share work.  The whole tree is
    described first and hashed once: a search over 10,000 candidates hashes
    10,000 estimators, so the cost of each hash shows.  A description made
    only of plain values (str, int, float, bool, None) is hashed from its
    ``repr``, which is exact for those; anything else (arrays, functions,
    objects) goes through dask's ``tokenize``.
    """
    if isinstance(obj, dict) and not obj:
        return _EMPTY_TOKEN
    plain = [True]
    description = _describe(obj, plain)
    if plain[0]:
        return combine(description)
    return tokenize(description)


def combine(*parts):
    """A token for a tuple of tokens, strings, ints and None.

    Cheaper than ``tokenize`` (no normalization dispatch): keys are made
    once per (candidate, fold), and their parts are already tokens.
    """
    return hashlib.md5(repr(parts).encode()).hexdigest()


_ESTIMATOR = "\0estimator"  # tags an estimator's description apart from user tuples
_PLAIN = (str, int, float, bool, type(None))


def _describe(obj, plain):
    """A nested tuple with the same value whenever ``obj`` is equal by parameters.

    ``plain[0]`` is cleared if a leaf is not of a ``_PLAIN`` type.
    """
    if isinstance(obj, BaseEstimator) or (
        hasattr(obj, "get_params") and not isinstance(obj, type)
    ):
        cls = type(obj)
        return (
            _ESTIMATOR, cls.__module__, cls.__qualname__,
            tuple((k, _describe(v, plain)) for k, v in _shallow_params(obj)),
        )
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(_describe(v, plain) for v in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((_describe(k, plain), _describe(v, plain))
                              for k, v in sorted(obj.items())))
    if type(obj) not in _PLAIN:
        plain[0] = False
    return obj


_EMPTY_TOKEN = combine("dict", ())
_NO_PARAMS = Const({})  # read only: tasks copy parameters before use
_PARAM_NAMES = {}  # class -> sorted constructor parameter names, or None: ask get_params


def _shallow_params(obj):
    """``sorted(obj.get_params(deep=False).items())``, without its per-call cost.

    ``BaseEstimator.get_params`` inspects the constructor's signature on
    every call (tens of microseconds).  For a class that keeps scikit-learn's
    own ``get_params`` (so its parameters are its constructor's, whatever the
    instance), the names are read once; any other class is asked each time.
    """
    cls = type(obj)
    names = _PARAM_NAMES.get(cls, False)
    if names is False:
        names = _PARAM_NAMES[cls] = _constructor_names(cls)
        if names is not None and names != sorted(obj.get_params(deep=False)):
            names = _PARAM_NAMES[cls] = None
    if names is None:
        return sorted(obj.get_params(deep=False).items())
    return [(name, getattr(obj, name)) for name in names]


def with_params(template, params):
    """``clone(template).set_params(**params)``, for describing a candidate.

    The planner only reads the result (every task clones what it fits), so
    when ``template`` is a fresh clone with scikit-learn's own
    ``set_params`` and the parameters are its own (no ``step__param``), a
    shallow copy with the attributes set is the same estimator at a tenth of
    the cost; anything else takes the full path.
    """
    cls = type(template)
    names = _PARAM_NAMES.get(cls, False)
    if names is False:
        _shallow_params(template)
        names = _PARAM_NAMES[cls]
    if (
        names is not None
        and _owner(cls, "set_params") is BaseEstimator
        and all(k in names for k in params)  # names is short: a list is fine
    ):
        estimator = copy.copy(template)
        for key, value in params.items():
            setattr(estimator, key, value)
        return estimator
    return clone(template).set_params(**params)


def _owner(cls, attr):
    return next((c for c in cls.__mro__ if attr in vars(c)), None)


def _constructor_names(cls):
    """The parameter names of ``cls``, or None if its ``get_params`` is its own."""
    if any(_owner(cls, attr) is not BaseEstimator for attr in ("get_params", "_get_param_names")):
        return None
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return sorted(
        p.name for p in signature.parameters.values() if p.name != "self" and p.kind not in kinds
    )


@dataclass(frozen=True)
class SearchSpec:
    """What every task of one search shares (built once per ``fit``)."""

    X_key: str
    y_key: str
    folds: tuple  # ((train key, test key), ...) in split order
    fit_params: dict  # routed to the estimator's fit, unsliced
    score_params: dict  # routed to the scorer, unsliced
    config_key: str  # key of the Const(ScoreConfig)
    scorer_token: str
    decompose: bool  # False: every candidate is one opaque fit-and-score
    raise_errors: bool
    return_train_score: bool


@dataclass(frozen=True)
class Flow:
    """Where the data for one fold stands at some point of a pipeline.

    Each field is a graph argument (a key or an inline task) that evaluates
    to a ``_tasks.Part``: training rows as fitted, test rows, and training
    rows through ``transform`` (only when training scores are asked for).
    """

    train: object
    test: object
    train_again: object
    token: str


@dataclass
class Planner:
    """Accumulates the graph of one search, candidate by candidate."""

    spec: SearchSpec
    graph: dict = field(default_factory=dict)
    data: object = None  # X itself: ColumnTransformer column callables read it
    # Tokens of the current candidate's objects, by id: its folds reuse them.
    _memo: dict = field(default_factory=dict, repr=False)
    _current: object = field(default=None, repr=False)
    _memo_folds: dict = field(default_factory=dict, repr=False)
    _memo_inputs: dict = field(default_factory=dict, repr=False)

    def candidate(self, estimator, fold, label, callback=None):
        """Key of the task that yields this (candidate, fold)'s result record.

        ``label`` is (params, fold, n_splits, candidate, n_candidates) for
        verbose output and callbacks, else None.  ``callback`` (scikit-learn's
        fit callbacks, per evaluation) makes the task this evaluation's own:
        the whole estimator, a key of its own.
        """
        if estimator is not self._current:
            self._current, self._memo = estimator, {}
        flow = self._raw(estimator, fold)
        if callback is not None:
            return self._final(estimator, flow, self.spec.fit_params, fold, label, callback)
        if not self.spec.decompose:
            return self._final(estimator, flow, self.spec.fit_params, fold, label)
        return self._final_node(estimator, flow, self.spec.fit_params, fold, label)

    # -- data ---------------------------------------------------------------

    def _raw(self, estimator, fold):
        pairwise = self._cached(("pairwise", id(estimator)), _compat.is_pairwise, estimator)
        flow = self._memo_folds.get((fold, pairwise))
        if flow is None:
            # Slicing reads only the estimator's 'pairwise' tag, so every
            # candidate with the same tag shares these inline tasks (one
            # object per fold, not per task: 50,000 tasks hold less).
            spec = self.spec
            train_key, test_key = spec.folds[fold]
            if pairwise:
                tags = Const(estimator)
                train = (_tasks.take, tags, spec.X_key, spec.y_key, train_key)
                test = (_tasks.take, tags, spec.X_key, spec.y_key, test_key, train_key)
            else:
                train = (_tasks.take_rows, spec.X_key, spec.y_key, train_key)
                test = (_tasks.take_rows, spec.X_key, spec.y_key, test_key)
            token = f"raw-{combine(spec.X_key, fold, pairwise)}"
            flow = self._memo_folds[fold, pairwise] = Flow(train, test, train, token)
        return flow

    def _token(self, obj):
        """``estimator_token(obj)``, computed once per object of the current candidate."""
        if isinstance(obj, dict) and not obj:
            return _EMPTY_TOKEN
        return self._cached(id(obj), estimator_token, obj)

    def _cached(self, key, func, obj):
        hit = self._memo.get(key)
        if hit is None or hit[0] is not obj:  # the object keeps its id alive
            hit = self._memo[key] = (obj, func(obj))
        return hit[1]

    def _sliced_params(self, params, fold, side):
        """A graph argument for ``params`` restricted to one side of a fold."""
        if not params:
            return _NO_PARAMS
        rows = self.spec.folds[fold][0 if side == "train" else 1]
        # The unsliced parameters are a data entry of the graph, like X: an
        # engine sends them to each worker once.
        data_key = f"fitparams-{estimator_token(params)}"
        self.graph.setdefault(data_key, Const(params))
        key = f"params-{combine(data_key, rows)}"
        self.graph.setdefault(key, (_tasks.fold_params, self.spec.X_key, data_key, rows))
        return key

    # -- final step -----------------------------------------------------------

    def _final_node(self, estimator, flow, params, fold, label):
        if self._cached(("pipeline", id(estimator)), _decomposable_pipeline, estimator):
            try:
                steps = _compat.pipeline_step_params(estimator, params)
            except Exception:
                # Parameters the Pipeline rejects: let its own fit raise in
                # the task, so the failure is reported as scikit-learn does.
                return self._final(estimator, flow, params, fold, label)
            for name, step in estimator.steps[:-1]:
                flow = self._transformer(step, flow, steps.get(name, {}), fold)
            name, last = estimator.steps[-1]
            last_params = steps.get(name, {}).get("fit", {})
            return self._final_node(last, flow, last_params, fold, label)
        return self._final(estimator, flow, params, fold, label)

    def _final(self, estimator, flow, params, fold, label, callback=None):
        spec = self.spec
        key = "score-{}-{}".format(
            type(estimator).__name__,
            combine(self._token(estimator), flow.token, self._token(params),
                    spec.scorer_token, None if callback is None else label[1:]),
        )
        if key not in self.graph:
            self.graph[key] = (
                _tasks.fit_and_score,
                self._cached(("const", id(estimator)), Const, estimator),  # one per candidate
                self._inputs(flow, params, fold),
                None if label is None else Const(label),
                callback,
            )
        return key

    def _inputs(self, flow, params, fold):
        """The arguments of a final task besides the estimator: one list per flow and fold.

        Every candidate that ends on the same flow shares the list object, so
        50,000 tasks are small tuples that point to a few lists.
        """
        memo = (flow.token, self._token(params), fold)
        inputs = self._memo_inputs.get(memo)
        if inputs is None:
            spec = self.spec
            inputs = self._memo_inputs[memo] = [
                flow.train,
                flow.test,
                flow.train_again if spec.return_train_score else None,
                self._sliced_params(params, fold, "train"),
                self._sliced_params(spec.score_params, fold, "test"),
                self._sliced_params(spec.score_params, fold, "train")
                if spec.return_train_score
                else _NO_PARAMS,
                spec.config_key,
            ]
        return inputs

    # -- transformers ---------------------------------------------------------

    def _transformer(self, step, flow, params, fold):
        if step is None or (isinstance(step, str) and step == "passthrough"):
            return flow
        has_params = any(params.get(m) for m in params)
        if _decomposable_pipeline(step, final=False) and not has_params:
            for _, sub in step.steps:
                flow = self._transformer(sub, flow, {}, fold)
            return flow
        if not has_params and not _compat.has_pandas_output(step):
            if isinstance(step, FeatureUnion):
                return self._union(step, flow, fold)
            if _is_column_transformer(step) and flow.token.startswith("raw"):
                branches = _column_branches(step, self.data)
                if branches is not None:
                    return self._columns(step, branches, flow, fold)
        return self._leaf(step, flow, params, fold)

    def _leaf(self, step, flow, params, fold):
        name = type(step).__name__
        token = combine(self._token(step), flow.token, self._token(params))
        fit_key = f"fit-{name}-{token}"
        if fit_key not in self.graph:
            fit_params = self._sliced_params_dict(params, fold)
            self.graph[fit_key] = (
                _tasks.fit_transform, Const(step), flow.train, fit_params, self.spec.raise_errors,
            )
            self.graph[f"transform-{name}-{token}-test"] = (_tasks.transform, fit_key, flow.test)
            if self.spec.return_train_score:
                self.graph[f"transform-{name}-{token}-train"] = (
                    _tasks.transform, fit_key, flow.train_again,
                )
        return Flow(
            fit_key,
            f"transform-{name}-{token}-test",
            f"transform-{name}-{token}-train" if self.spec.return_train_score else None,
            fit_key,
        )

    def _sliced_params_dict(self, params, fold):
        """Per-method step parameters ({'fit': ..., 'fit_transform': ...}), sliced."""
        if not any(params.get(m) for m in params):
            return _NO_PARAMS
        merged = {}
        for method, values in params.items():
            for k, v in values.items():
                merged[f"{method}\0{k}"] = v
        key = self._sliced_params(merged, fold, "train")
        nested_key = f"stepparams-{key}"
        self.graph.setdefault(nested_key, (_unflatten, key))
        return nested_key

    def _union(self, union, flow, fold):
        kept = [
            (name, t) for name, t in union.transformer_list
            if not (isinstance(t, str) and t == "drop")
        ]
        weights = union.transformer_weights or {}
        if not kept:
            return self._map(flow, _tasks.empty_union, "empty")
        branches = [self._transformer(t, flow, {}, fold) for _, t in kept]
        w = Const([weights.get(name) for name, _ in kept])
        token = combine("union", *[b.token for b in branches], estimator_token(w.value))
        name = type(union).__name__
        keys = {}
        for side in ("train", "test", "train_again"):
            if side == "train_again" and not self.spec.return_train_score:
                keys[side] = None
                continue
            key = f"union-{name}-{token}-{side}"
            self.graph.setdefault(
                key, (_tasks.stack, w, [getattr(b, side) for b in branches])
            )
            keys[side] = key
        return Flow(keys["train"], keys["test"], keys["train_again"], token)

    def _columns(self, ct, branches, flow, fold):
        """A ColumnTransformer: one shared sub-flow per (columns, transformer) branch."""
        if not branches:
            return self._map(flow, _tasks.empty_union, "empty")
        flows = []
        for _, trans, cols in branches:
            selected = self._map(flow, _tasks.columns, tokenize("columns", cols), cols)
            flows.append(self._transformer(trans, selected, {}, fold))
        weights = ct.transformer_weights or {}
        config = Const((
            [name for name, _, _ in branches],
            [weights.get(name) for name, _, _ in branches],
            ct.sparse_threshold,
        ))
        token = combine("columns", *[f.token for f in flows], estimator_token(config.value))
        name = type(ct).__name__
        train_key = f"union-{name}-{token}-train"
        self.graph.setdefault(train_key, (_tasks.stack_columns, config, [f.train for f in flows]))
        keys = {"train": train_key}
        for side in ("test", "train_again"):
            if side == "train_again" and not self.spec.return_train_score:
                keys[side] = None
                continue
            key = f"union-{name}-{token}-{side}"
            self.graph.setdefault(
                key, (_tasks.stack_columns, config, [getattr(f, side) for f in flows], train_key)
            )
            keys[side] = key
        return Flow(keys["train"], keys["test"], keys["train_again"], token)

    def _map(self, flow, func, tag, *args):
        token = combine(tag, flow.token)
        sides = {}
        for side in ("train", "test", "train_again"):
            arg = getattr(flow, side)
            sides[side] = None if arg is None else (func, arg, *map(Const, args))
        return Flow(sides["train"], sides["test"], sides["train_again"], token)


def _is_column_transformer(step):
    # Not imported here: sklearn.compose costs 4.5 MB of the client's memory,
    # and a step can only be a ColumnTransformer once the caller imported it.
    compose = sys.modules.get("sklearn.compose")
    return compose is not None and isinstance(step, compose.ColumnTransformer)


def _column_branches(ct, X):
    """[(name, transformer, columns)] that ColumnTransformer.fit would fit, or None.

    Columns are resolved on the whole X (callables such as
    make_column_selector look at column names and dtypes, which folds share);
    the remainder is every column no transformer names, as in scikit-learn.
    None means "keep the ColumnTransformer whole" (its own fit then raises
    whatever error the configuration deserves).
    """
    if X is None or not hasattr(X, "shape") or len(X.shape) != 2:
        return None
    try:
        used, branches = set(), []
        for name, trans, cols in ct.transformers:
            if callable(cols):
                cols = cols(X)
            used.update(_compat.column_indices(X, cols))
            if not (isinstance(trans, str) and trans == "drop") and not _empty_selection(cols):
                branches.append((name, trans, cols))
        if not (isinstance(ct.remainder, str) and ct.remainder == "drop"):
            rest = sorted(set(range(X.shape[1])) - used)
            if rest:
                branches.append(("remainder", ct.remainder, rest))
    except Exception:
        return None
    return branches


def _empty_selection(cols):
    if hasattr(cols, "dtype") and getattr(cols.dtype, "kind", None) == "b":
        return not cols.any()
    if hasattr(cols, "__len__") and not isinstance(cols, str):
        return len(cols) == 0 or (all(isinstance(c, bool) for c in cols) and not any(cols))
    return False


def _unflatten(flat):
    out = {}
    for k, v in flat.items():
        method, name = k.split("\0", 1)
        out.setdefault(method, {})[name] = v
    return out


def _decomposable_pipeline(estimator, final=True):
    """Whether the search may split this Pipeline into shared steps."""
    if not isinstance(estimator, Pipeline):
        return False
    if getattr(estimator, "transform_input", None):
        return False  # metadata flows through the steps: keep it whole
    steps = estimator.steps
    if not steps:
        return False
    if final:
        last = steps[-1][1]
        return not (last is None or isinstance(last, str))
    return True
