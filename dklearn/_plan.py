"""Plan a search: candidates x folds -> one task graph in which equal work is one task.

This module builds a graph (a dict of key -> task tuple or constant, see
``_tasks``) and the kind of each task, and runs none of it: what it calls
of the user's objects is what scikit-learn's containers call before any
fit (``get_params``, their own checks of their steps, a column selector).

What a key means
----------------
A key names *what* a task computes, never which Python object computes it::

    fit-PCA-<hash(PCA by value, its input's key, its fit parameters)>
    union-FeatureUnion-<hash(the branches' keys, the weights)>
    score-LogisticRegression-<hash(estimator by value, input key, scoring)>

The input of a pipeline's first step names the data (hashed by content) and
the fold (its index arrays), so every key names, transitively, the data and
fold it depends on.  Two candidates whose pipelines agree on a prefix make
the same keys for it: the graph keeps one task, which runs once.  An
estimator is hashed by what ``clone`` keeps of it (``estimator_token``): its
class and parameters, recursively and by value (two equal ``PCA(5)`` hash
alike), its ``set_output`` and metadata-request settings, and, for a class
whose ``__sklearn_clone__`` keeps more (``FrozenEstimator``, prefit models),
its whole state.

The kind of a task (``kinds[key]``: ``"fit PCA"``, ``"score SVC"``) is what
the engine measures and places; glue tasks (stacking union branches,
slicing fit parameters) have none, and neither has a task that calls
scikit-learn's fit callbacks, which hold the caller's own objects: the
local engine runs those in the calling thread (a cluster runs them on its
workers).

What is decomposed, and the contracts it relies on
--------------------------------------------------
Only containers whose behaviour is scikit-learn's own, by exact class, are
split into shared steps; anything else (a subclass, a ``verbose`` one, one
routing metadata through its steps) is one opaque step, fitted and
scored by its own methods, and still shared between candidates that
configure it alike.  The contracts read from scikit-learn's code:

- ``_fit_and_score``: clone, ``set_params(**clone(params))``, slice the fold
  with ``_safe_split`` (precomputed kernels on both axes), ``fit`` on the
  training rows, then score the test rows and, if asked, the training rows
  with the scorer; a fit that raises is an ``error_score`` record, a score
  that raises a warning and ``error_score``.
- ``Pipeline.fit``: each step but the last ``fit_transform``s the previous
  output (``fit`` then ``transform`` if it has no ``fit_transform``), with its
  ``step__param`` fit parameters; the last step is fitted on the result.
  Scoring calls ``transform`` through the steps, then the last step's
  response method: so scikit-learn's own scorers give the same on the last
  step and the transformed rows (``_compat.scores_on_final_step``).  A
  user's scoring callable may look inside the pipeline: it gets the whole.
- imbalanced-learn's ``Pipeline``: the same up to its first sampler, whose
  ``fit_resample`` changes the training rows only; from that sampler on,
  the rest of the pipeline (``pipeline[i:]``) is the final step, whole.
- ``FeatureUnion``: each kept branch ``fit_transform``s the same input; the
  outputs are stacked side by side, multiplied by ``transformer_weights``.
- ``ColumnTransformer``: each branch sees its columns, resolved on the
  training rows of the fold (a callable selector is called on them, as
  ``fit`` does; a ``make_column_selector`` reads only names and dtypes, the
  same on every fold); the remainder is every column no branch names;
  outputs are stacked, sparse if their density is below
  ``sparse_threshold`` on the training rows.  Only on the raw input: a
  ColumnTransformer after another step is one opaque step.
- A step that asks to write into its input (``copy=False`` anywhere in a
  pipeline) may change the training rows (the first step, or a later one
  whose earlier steps hand their input back), which scikit-learn then
  scores the training score on, or what a union's other branches read:
  such a pipeline is fitted and scored whole, on the fold's own rows.  A
  step that writes without saying so (a function) meets the read-only
  sharing of ``_tasks``.
- ``clone`` keeps parameters, ``_metadata_request`` and
  ``_sklearn_output_config``, or whatever ``__sklearn_clone__`` returns:
  the key covers exactly that.

A step planned as a node is one task per fold that fits it on the training
rows and transforms the test rows (and the training rows, when training
scores are asked for) with the same fitted object, which then dies: no
other task sees a fitted step.  Data enters the graph once, under a
content-hashed key; folds are index arrays, and each task that starts from
the raw data slices its own rows (``_tasks.take_fold``).
"""

import copy
import hashlib
import inspect
import pickle
import sys
import types
import weakref
from dataclasses import dataclass, field

from dask.base import tokenize
from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils.validation import validate_data

from . import _compat, _tasks
from ._own_code import is_own
from ._tasks import Const


def estimator_token(obj):
    """A hash of an estimator by what ``clone`` keeps of it: class, parameters, settings.

    Equal-but-distinct parameter objects (two ``PCA(n_components=5)``) hash
    alike, which is what lets candidates share work.  The whole tree is
    described first, as plain values (str, int, float, bool, None, whose
    ``repr`` is exact) and the tokens of other leaves (``token``), and hashed
    once: a search over 10,000 candidates hashes 10,000 estimators, so the
    cost of each hash shows.
    """
    if isinstance(obj, dict) and not obj:
        return _EMPTY_TOKEN
    return combine(_describe(obj))


def token(*values):
    """A hash of ``values`` by content (data, folds, scoring): see ``estimator_token``."""
    return combine(_describe(values))


def combine(*parts):
    """A token for a tuple of tokens, strings, ints and None (cheaper than ``tokenize``)."""
    return hashlib.md5(repr(parts).encode()).hexdigest()


_ESTIMATOR = "\0estimator"  # tags an estimator's description apart from user tuples
_PLAIN = (str, int, float, bool, type(None))
# Leaves dask hashes by content with a method of its own, never by pickling.
_DASK_HASHES = ("numpy", "pandas", "scipy", "pyarrow")
_CLASS_TOKENS = weakref.WeakKeyDictionary()  # class -> what its results depend on


def _describe(obj):
    """A nested tuple of plain values, the same whenever ``clone(obj)`` would be equal."""
    if hasattr(obj, "get_params") and not isinstance(obj, type):
        cls = type(obj)
        ident = (cls.__module__, cls.__qualname__)
        if not cls.__module__.startswith("sklearn."):  # (the checkpoint scope has its version)
            token = _CLASS_TOKENS.get(cls)
            if token is None:
                token = _CLASS_TOKENS[cls] = _class_token(cls)
            ident += (token,)
        if _owner(cls, "__sklearn_clone__") not in (None, BaseEstimator):
            # clone keeps more than the parameters (FrozenEstimator keeps
            # the fitted model): the key covers the whole state.
            return (_ESTIMATOR, *ident, "state", _state_token(obj))
        settings = tuple(
            (name, repr(getattr(obj, name)))
            for name in ("_sklearn_output_config", "_metadata_request")
            if getattr(obj, name, None)
        )
        return (
            _ESTIMATOR, *ident,
            tuple((k, _describe(v)) for k, v in _shallow_params(obj)), settings,
        )
    if type(obj) in (list, tuple):  # as clone: a subclass is a value of its own
        return (type(obj).__name__, tuple(_describe(v) for v in obj))
    if isinstance(obj, dict):
        # In its order: a dict's order is part of it (a function it is passed to may
        # iterate it), and clone keeps it.
        return ("dict", tuple((_describe(k), _describe(v)) for k, v in obj.items()))
    if type(obj) in _PLAIN:
        return obj
    return ("\0leaf", _leaf_token(obj))


def _leaf_token(obj):
    """A value's hash, made without unpickling it.

    Arrays, frames and objects with ``__dask_tokenize__`` go to dask's
    ``tokenize``.  Anything else is hashed from its pickle: by reference
    where pickle can, by value (cloudpickle) for what lives in ``__main__``
    or in a function.  dask's own way for such objects unpickles what it
    pickled, and unpickling, in the process that defined it, a class that
    cloudpickle sent by value overwrites that class's methods with copies
    whose globals are a snapshot: the user's class would stop seeing later
    changes to its module's globals.
    """
    if (hasattr(obj, "__dask_tokenize__")
            or type(obj).__module__.partition(".")[0] in _DASK_HASHES):
        return tokenize(obj)
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a lambda, a class made in a function
        data = None
    if data is None or b"__main__" in data:
        return _state_token(obj)
    return hashlib.md5(data).hexdigest()


def _class_token(cls):
    """What a class's results depend on besides its parameters, the same in every
    process: a key of a checkpoint must change when the class does.

    - Made by a function (``<locals>``): its value, since such classes share a
      name, not their code or what they closed over.
    - In an installed package with a version (LightGBM, imbalanced-learn):
      that version.
    - Else (the user's script, notebook or own module, which may be edited
      between two runs of a checkpointed search without a change to the
      version it declares): its code (``_code_token``).
    """
    if "<locals>" in cls.__qualname__:
        return _state_token(cls)
    package = sys.modules.get(cls.__module__.partition(".")[0])
    version = getattr(package, "__version__", None)
    if isinstance(version, str) and not is_own(cls.__module__):
        return version
    return _code_token(cls)


def _code_token(cls):
    """A hash of what a class runs, the same in every process.

    Its code and that of its bases of the user's own code (``_own_code``),
    and what that code reads, followed through: the functions and classes of
    the user's own code it names (in its module or another, a decorated
    method's own body in the decorator's closure), with their defaults, and
    the plain values, containers of them and arrays it names.  What an
    installed package or the standard library defines is named only (the
    checkpoint's scope holds the versions that matter).  (cloudpickle's
    bytes differ from process to process: it marks a class sent by value with
    a random id.)
    """
    parts, seen = [], set()

    def code(co, scope):
        if co in seen:
            return
        seen.add(co)
        parts.append((co.co_code, co.co_names, co.co_varnames))
        for const in co.co_consts:
            if isinstance(const, types.CodeType):
                code(const, scope)
            elif isinstance(const, frozenset):  # its order varies with the hash seed
                parts.append(sorted(map(repr, const)))
            else:
                parts.append(repr(const))
        for name in co.co_names:  # the globals it may read (and attributes it names)
            if name in scope:
                value(name, scope[name], co.co_names)

    def value(name, obj, names):
        if isinstance(obj, (types.FunctionType, type)):
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if not is_own(obj.__module__):
                parts.append((name, obj.__module__, obj.__qualname__))
            elif isinstance(obj, type):
                klass(obj)
            else:
                function(obj)
        elif isinstance(obj, types.ModuleType):
            if is_own(obj.__name__):  # ``helpers.adjust``: its members this code names
                members = vars(obj)
                for attribute in names:
                    if attribute in members and not isinstance(members[attribute],
                                                               types.ModuleType):
                        value(attribute, members[attribute], names)
        else:
            described = _plain(obj)
            if described is not None:
                parts.append((name, described))

    def function(fn):
        code(fn.__code__, fn.__globals__)
        parts.append((_plain(fn.__defaults__), _plain(fn.__kwdefaults__)))
        for cell in fn.__closure__ or ():
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            value("<closure>", contents, fn.__code__.co_names)

    def klass(k):
        for name, member in sorted(vars(k).items()):
            member = getattr(member, "__func__", member)  # staticmethod, classmethod
            if isinstance(member, property):
                member = member.fget
            if not isinstance(member, types.FunctionType):  # functools.lru_cache, say
                member = getattr(member, "__wrapped__", member)
            if isinstance(member, types.FunctionType):
                parts.append(name)
                function(member)
            elif type(member) in _PLAIN:
                parts.append((name, member))

    for base in cls.__mro__:
        if base is not cls and not is_own(base.__module__):
            parts.append((base.__module__, base.__qualname__))
        else:
            seen.add(id(base))
            klass(base)
    return hashlib.md5(repr(parts).encode()).hexdigest()


def _plain(obj, depth=0):
    """A plain value, an array, an estimator (a function's default, say) or a container of
    them, described; None for anything else (a logger, a client: no content to hash)."""
    if type(obj) in _PLAIN:
        return obj
    if not isinstance(obj, type) and (hasattr(obj, "__array__") or hasattr(obj, "get_params")):
        return _describe(obj)
    if depth < 4 and type(obj) in (list, tuple, dict, set, frozenset):
        if isinstance(obj, dict):
            items = [(_plain(k, depth + 1), _plain(v, depth + 1)) for k, v in obj.items()]
        else:
            items = [_plain(item, depth + 1) for item in obj]
        if isinstance(obj, (set, frozenset)):
            items.sort(key=repr)  # their order varies with the hash seed
        return (type(obj).__name__, tuple(items))
    return None


def _state_token(obj):
    import cloudpickle

    try:
        return hashlib.md5(cloudpickle.dumps(obj)).hexdigest()
    except Exception:  # noqa: BLE001 - cannot be pickled: a key of its own
        return f"id-{id(obj)}"


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
        and _owner(cls, "__sklearn_clone__") in (None, BaseEstimator)
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
    """What every task of one search shares (built once per graph)."""

    X_key: str
    y_key: str
    folds: tuple  # ((train key, test key), ...) in split order
    train_rows: tuple  # the training indices of each fold (callable column selectors)
    fit_params: dict  # routed to the estimator's fit, unsliced
    score_params: dict  # routed to the scorer, unsliced
    config_key: str  # key of the Const(ScoreConfig)
    scorer_token: str
    decompose: bool  # False: every candidate is one opaque fit-and-score
    raise_errors: bool
    return_train_score: bool
    response_methods: object = None  # what the scorers call on a last step (``_compat``)


@dataclass(frozen=True)
class Flow:
    """Where one fold stands at some point of a pipeline: a graph argument
    (a key or an inline task) that evaluates to a ``_tasks.Fold``, and a token
    that names it.  ``in_columns``: it is in a ColumnTransformer's branch, whose
    errors the ColumnTransformer reports its own way."""

    arg: object
    token: str
    in_columns: bool = False

    @property
    def raw(self):
        return self.token.startswith("raw-")


@dataclass
class Planner:
    """Accumulates the graph of one search, candidate by candidate."""

    spec: SearchSpec
    graph: dict = field(default_factory=dict)
    data: object = None  # X itself: ColumnTransformer column selectors read it
    kinds: dict = field(default_factory=dict)
    # Tokens of the current candidate's objects, by id: its folds reuse them.
    _memo: dict = field(default_factory=dict, repr=False)
    _current: object = field(default=None, repr=False)
    _memo_folds: dict = field(default_factory=dict, repr=False)
    _memo_inputs: dict = field(default_factory=dict, repr=False)
    _memo_columns: dict = field(default_factory=dict, repr=False)
    _memo_checks: dict = field(default_factory=dict, repr=False)
    _memo_refuses: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        # A class's token covers the globals and helper functions its code reads,
        # which a notebook's next cell may change: made again for each search.
        _CLASS_TOKENS.clear()

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
        if callback is not None or not self.spec.decompose:
            return self._final(estimator, flow, self.spec.fit_params, fold, label, callback)
        return self._final_node(estimator, flow, self.spec.fit_params, fold, label)

    # -- data ---------------------------------------------------------------

    def _raw(self, estimator, fold):
        pairwise = self._cached(("pairwise", id(estimator)), _compat.is_pairwise, estimator)
        flow = self._memo_folds.get((fold, pairwise))
        if flow is None:
            # Slicing reads only the estimator's 'pairwise' tag, so every
            # candidate with the same tag shares this inline task (one
            # object per fold, not per task: 50,000 tasks hold less).
            spec = self.spec
            train_key, test_key = spec.folds[fold]
            task = (_tasks.take_fold, spec.X_key, spec.y_key, train_key, test_key,
                    Const(estimator) if pairwise else None)
            token = combine(spec.X_key, spec.y_key, train_key, test_key, pairwise)
            flow = Flow(task, f"raw-{token}")
            self._memo_folds[fold, pairwise] = flow
        return flow

    def _token(self, obj):
        """``estimator_token(obj)``, computed once per object of the current candidate."""
        if isinstance(obj, dict) and not obj:
            return _EMPTY_TOKEN
        return self._cached(id(obj), estimator_token, obj)

    def _passes(self, container):
        """Whether its own fit accepts a container (``_compat.passes_own_checks``), once per
        configuration: the checks read its own parameters and its steps' names and
        classes, not the steps' parameters (a search of 100,000 candidates asks)."""
        return self._cached(("passes", id(container)), self._passes_now, container)

    def _passes_now(self, container):
        outline = (type(container),
                   tuple((k, _outline(v)) for k, v in _shallow_params(container)))
        passes = self._memo_checks.get(outline)
        if passes is None:
            passes = self._memo_checks[outline] = _compat.passes_own_checks(container)
        return passes

    def _score_refused(self, pipeline):
        """``_compat.pipeline_score_refuses``, once per configuration: it reads the
        steps' classes and metadata requests, not their parameters (0.6 ms a call)."""
        if not _compat.routing_enabled():
            return False
        outline = (type(pipeline), tuple(
            (name, type(value), repr(getattr(value, "__dict__", {}).get("_metadata_request")))
            for name, value in pipeline.get_params(deep=True).items()
            if hasattr(value, "get_params") and not isinstance(value, type)))
        refused = self._memo_refuses.get(outline)
        if refused is None:
            refused = self._memo_refuses[outline] = _compat.pipeline_score_refuses(pipeline)
        return refused

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
        # The unsliced parameters are a constant of the graph, like X: an
        # engine sends them to each worker once.
        data_key = f"fitparams-{estimator_token(params)}"
        self.graph.setdefault(data_key, Const(params))
        # Sliced inside each task that reads them, as scikit-learn slices them for
        # each fit: a fit or a metric may write into its sample_weight.
        return (_tasks.fold_params, self.spec.X_key, data_key, rows)

    # -- final step -----------------------------------------------------------

    def _final_node(self, estimator, flow, params, fold, label):
        split = self._cached(("pipeline", id(estimator)), _split_pipeline, estimator)
        if split is None or not self._passes(estimator):
            return self._final(estimator, flow, params, fold, label)
        prefix, last = split
        methods = self.spec.response_methods
        if methods and not isinstance(last, tuple) and (
                not all(any(hasattr(last, m) for m in group) for group in methods)
                or (("score",) in methods and self._cached(
                    ("refuses", id(estimator)), self._score_refused, estimator))):
            # The scorer's error would name the last step, or Pipeline.score's
            # routing would refuse to score: scored whole, it fails as in
            # scikit-learn.
            return self._final(estimator, flow, params, fold, label)
        try:
            steps = _compat.pipeline_step_params(estimator, params)
        except Exception:
            # Parameters the Pipeline rejects: its own fit raises in the
            # task, and the failure is reported as scikit-learn reports it.
            return self._final(estimator, flow, params, fold, label)
        for name, step in prefix:
            flow = self._transformer(step, flow, steps.get(name, {}), fold)
        if isinstance(last, tuple):  # a rest of the pipeline, whole, and its steps' names
            rest, names = last
            rest_params = {f"{n}__{k}": v for n in names for k, v in
                           steps.get(n, {}).get("fit", {}).items()}
            return self._final(rest, flow, rest_params, fold, label)
        name = estimator.steps[-1][0]
        return self._final_node(last, flow, steps.get(name, {}).get("fit", {}), fold, label)

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
            if callback is None:  # with callbacks, the caller's objects: the caller's thread
                self.kinds[key] = f"score {type(estimator).__name__}"
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
                flow.arg,
                self._sliced_params(params, fold, "train"),
                self._sliced_params(spec.score_params, fold, "test"),
                self._sliced_params(spec.score_params, fold, "train")
                if spec.return_train_score else _NO_PARAMS,
                spec.config_key,
            ]
        return inputs

    # -- transformers ---------------------------------------------------------

    def _transformer(self, step, flow, params, fold):
        if step is None or (isinstance(step, str) and step == "passthrough"):
            return flow
        has_params = any(params.get(m) for m in params)
        if not has_params:
            split = _split_pipeline(step, final=False)
            if split is not None and self._passes(step):
                for _, sub in split[0]:
                    flow = self._transformer(sub, flow, {}, fold)
                return flow
            # (A union with a branch that writes into the input they all read
            # never gets here: its pipeline runs whole, see ``_split_pipeline``.)
            if not _compat.has_pandas_output(step):
                if type(step) is FeatureUnion and not step.verbose and self._passes(step):
                    return self._union(step, flow, fold)
                if _is_column_transformer(step) and flow.raw and self._passes(step):
                    branches = self._column_branches(step, fold)
                    if branches is not None:
                        return self._columns(step, branches, flow, fold)
        return self._leaf(step, flow, params, fold)

    def _leaf(self, step, flow, params, fold):
        name = type(step).__name__
        key = f"fit-{name}-{combine(self._token(step), flow.token, self._token(params))}"
        if key not in self.graph:
            self.graph[key] = (
                _tasks.fit_transform, Const(step), flow.arg,
                self._sliced_params_dict(params, fold), Const(self.spec.raise_errors),
                Const(self.spec.return_train_score), Const(flow.in_columns),
            )
            self.kinds[key] = f"fit {name}"
        return Flow(key, key, flow.in_columns)

    def _sliced_params_dict(self, params, fold):
        """Per-method step parameters ({'fit': ..., 'fit_transform': ...}), sliced."""
        if not any(params.get(m) for m in params):
            return _NO_PARAMS
        merged = {}
        for method, values in params.items():
            for k, v in values.items():
                merged[f"{method}\0{k}"] = v
        return (_tasks.per_method, self._sliced_params(merged, fold, "train"))

    def _union(self, union, flow, fold):
        kept = [
            (name, t) for name, t in union.transformer_list
            if not (isinstance(t, str) and t == "drop")
        ]
        if not kept:
            return self._empty(flow, by_shape=True)
        weights = union.transformer_weights or {}
        branches = [self._transformer(t, flow, {}, fold) for _, t in kept]
        config = Const(([name for name, _ in kept], [weights.get(name) for name, _ in kept],
                        self.spec.raise_errors))
        token = combine("union", *[b.token for b in branches], estimator_token(config.value))
        return self._glue(f"union-{type(union).__name__}-{token}",
                          (_tasks.stack, config, [b.arg for b in branches]))

    def _columns(self, ct, branches, flow, fold):
        """A ColumnTransformer: one shared sub-flow per (columns, transformer) branch."""
        if not branches:
            return self._empty(flow, by_shape=False)
        flows = []
        raise_errors = Const(self.spec.raise_errors)
        for _, trans, cols in branches:
            selected = Flow((_tasks.select_columns, flow.arg, Const(cols), raise_errors),
                            combine("columns", estimator_token(cols), flow.token),
                            in_columns=True)
            flows.append(self._transformer(trans, selected, {}, fold))
        weights = ct.transformer_weights or {}
        config = Const((
            [name for name, _, _ in branches],
            [weights.get(name) for name, _, _ in branches],
            ct.sparse_threshold,
            self.spec.raise_errors,
        ))
        token = combine("columns", *[f.token for f in flows], estimator_token(config.value))
        return self._glue(f"union-{type(ct).__name__}-{token}",
                          (_tasks.stack_columns, config, [f.arg for f in flows]))

    def _empty(self, flow, by_shape):
        config = Const((by_shape, self.spec.raise_errors))
        return self._glue(f"empty-{by_shape:d}-{flow.token}",
                          (_tasks.empty_union, flow.arg, config))

    def _glue(self, key, task):
        self.graph.setdefault(key, task)
        return Flow(key, key)

    def _column_branches(self, ct, fold):
        """The branches ``ct`` would fit on this fold's training rows (memoized)."""
        per_fold = any(callable(cols) and not _is_column_selector(cols)
                       for _, _, cols in ct.transformers)
        memo = (self._token(ct), fold if per_fold else None)
        if memo not in self._memo_columns:
            X = self.data
            if per_fold and X is not None:
                X = _compat.safe_indexing(X, self.spec.train_rows[fold])
            self._memo_columns[memo] = _column_branches(ct, X)
        return self._memo_columns[memo]


def _outline(value):
    """A container's parameter as its own checks read it: steps by name and class."""
    if isinstance(value, (list, tuple)):
        return tuple(_outline(v) for v in value)
    if hasattr(value, "get_params") and not isinstance(value, type):
        return type(value)
    return repr(value)


def _is_column_transformer(step):
    # Not imported here: sklearn.compose costs 4.5 MB of the client's memory,
    # and a step can only be a ColumnTransformer once the caller imported it.
    compose = sys.modules.get("sklearn.compose")
    return (compose is not None and type(step) is compose.ColumnTransformer
            and not step.verbose)


def _is_column_selector(cols):
    compose = sys.modules.get("sklearn.compose")
    return compose is not None and type(cols) is compose.make_column_selector


def _column_branches(ct, X):
    """[(name, transformer, columns)] that ColumnTransformer.fit on ``X`` would fit, or None.

    The remainder is every column no transformer names, as in scikit-learn.
    None means "keep the ColumnTransformer whole" (its own fit then raises
    whatever error the configuration deserves).
    """
    if X is None or not hasattr(X, "shape") or len(X.shape) != 2:
        return None
    if getattr(getattr(X, "columns", None), "nlevels", 1) > 1:
        return None  # columns named by tuples: its own fit decides what they select
    try:
        # Its fit first checks the input's column names (all strings, or none):
        # the same on every fold.
        validate_data(clone(ct), X=X, skip_check_array=True)
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
    except Exception:  # noqa: BLE001
        return None
    return branches


def _empty_selection(cols):
    if hasattr(cols, "dtype") and getattr(cols.dtype, "kind", None) == "b":
        return not cols.any()
    if hasattr(cols, "__len__") and not isinstance(cols, str):
        return len(cols) == 0 or (all(isinstance(c, bool) for c in cols) and not any(cols))
    return False


def _writes_in_place(step):
    """Whether a step, or an estimator inside it, asks to write into its input
    (scikit-learn's ``copy=False``)."""
    try:
        params = step.get_params(deep=True)
    except Exception:  # noqa: BLE001 - 'passthrough', None, a non-estimator
        return False
    return any(value is False and name.rpartition("__")[2] in ("copy", "copy_X", "copy_x")
               for name, value in params.items())


def _split_pipeline(estimator, final=True):
    """How a pipeline splits into shared steps: (prefix steps, last), or None: keep it whole.

    ``last`` is the final estimator, or (the rest of the pipeline, its step
    names) for imbalanced-learn's Pipeline, whose rest from the first
    sampler on runs whole.  ``final=False``: the pipeline is a transformer
    step of another one (every step is then a prefix step).
    """
    cls = type(estimator)
    imblearn = cls.__module__.startswith("imblearn.") and cls.__name__ == "Pipeline"
    if not (cls is Pipeline or imblearn) or not isinstance(estimator, Pipeline):
        return None
    if estimator.verbose or getattr(estimator, "transform_input", None):
        return None  # it prints per step, or sends metadata through its steps
    steps = estimator.steps
    if not steps or (final and _writes_in_place(estimator)):
        # A step asks to write into its input: the training rows, if it is the
        # first or every step before it hands its input back (an identity
        # FunctionTransformer), or what a union's other branches read next.
        # scikit-learn scores the training score on rows so written, and its
        # transformers copy a read-only input rather than fail (check_array's
        # force_writeable), which a shared step could not notice: only the
        # whole pipeline, in one task, on the fold's own rows, does the same.
        return None
    if imblearn:
        if _compat.routing_enabled():
            return None
        first = next((i for i, (_, s) in enumerate(steps) if hasattr(s, "fit_resample")), None)
        if first is not None:
            if not final:
                return None  # as a transformer, its samplers act: keep it whole
            names = [name for name, _ in steps[first:]]
            return steps[:first], (estimator[first:], names)
    if not final:
        return steps, None
    last = steps[-1][1]
    if last is None or isinstance(last, str):
        return None
    return steps[:-1], last
