"""Forests and boosted trees as plain numeric arrays (the family save format 2).

A scikit-learn ``RandomForestClassifier`` is stored as its parameters (JSON), its fitted
scalars (JSON) and, for all its trees together, one array per node field (``left_child``,
``right_child``, ``feature``, ``threshold``, ``impurity``, ``n_node_samples``,
``weighted_n_node_samples``, ``missing_go_to_left``) and the node values, with each tree's
node offset; loading rebuilds the same scikit-learn objects (``Tree.__setstate__`` with
those arrays), so ``predict_proba`` runs the same code on the same numbers.

A ``HistGradientBoostingClassifier`` is stored as its baseline, its classes and, per
predictor (iteration-major), the node fields of ``PREDICTOR_RECORD_DTYPE``; loading gives a
:class:`ArrayBooster` whose ``decision_function`` adds the predictors' values to the baseline
in scikit-learn's order through scikit-learn's own ``TreePredictor``.

Every array is checked before use (dtype, shape, finite values, node indices that point
forward within their tree, feature indices within range); anything else is refused with
a ``ValueError`` naming the array. No pickle, no code from the data.
"""

from __future__ import annotations

import numpy as np

TREE_LEAF = -1
TREE_UNDEFINED = -2

#: Node fields of a scikit-learn ``Tree`` and their dtypes.
FOREST_FIELDS = {
    "left_child": np.int64, "right_child": np.int64, "feature": np.int64,
    "threshold": np.float64, "impurity": np.float64, "n_node_samples": np.int64,
    "weighted_n_node_samples": np.float64, "missing_go_to_left": np.uint8,
}
#: Node fields of a ``TreePredictor`` (hist gradient boosting) and their dtypes.
BOOSTER_FIELDS = {
    "value": np.float64, "count": np.uint32, "feature_idx": np.int64,
    "num_threshold": np.float64, "missing_go_to_left": np.uint8, "left": np.uint32,
    "right": np.uint32, "gain": np.float64, "depth": np.uint32, "is_leaf": np.uint8,
    "bin_threshold": np.uint8, "is_categorical": np.uint8, "bitset_idx": np.uint32,
}
_JSON = (type(None), bool, int, float, str)


def _fail(msg: str):
    raise ValueError(f"saved model arrays: {msg}")


def _array(arrays: dict, key: str, dtype, ndim: int, length: int | None = None,
           finite: bool = False) -> np.ndarray:
    if key not in arrays:
        _fail(f"{key} is missing")
    a = arrays[key]
    if not isinstance(a, np.ndarray) or a.dtype != np.dtype(dtype) or a.ndim != ndim:
        _fail(f"{key} must be a {ndim}-d {np.dtype(dtype)} array, got "
              f"{getattr(a, 'dtype', type(a).__name__)} with shape {getattr(a, 'shape', '?')}")
    if length is not None and a.shape[0] != length:
        _fail(f"{key} has {a.shape[0]} rows, expected {length}")
    if finite and a.dtype.kind == "f":
        # a booster's split threshold may be +-inf (missing values go one way): NaN never
        bad = np.isnan(a) if key.endswith((".num_threshold", ".gain")) else ~np.isfinite(a)
        if bad.any():
            _fail(f"{key} has a non-finite value at {np.flatnonzero(bad.ravel())[0]}")
    return a


def _offsets(arrays: dict, key: str, n_parts: int, total: int) -> np.ndarray:
    off = _array(arrays, key, np.int64, 1, n_parts + 1)
    if off[0] != 0 or off[-1] != total or (np.diff(off) < 1).any():
        _fail(f"{key} must rise from 0 to {total} by at least 1 per tree")
    return off


def _check_children(left: np.ndarray, right: np.ndarray, leaf: np.ndarray, size: int,
                    what: str) -> None:
    """Internal nodes point to later nodes of the same tree (so traversal ends)."""
    idx = np.arange(size)
    inner = ~leaf
    for name, child in (("left", left), ("right", right)):
        c = child.astype(np.int64)
        if (inner & ((c <= idx) | (c >= size))).any():
            bad = int(np.flatnonzero(inner & ((c <= idx) | (c >= size)))[0])
            _fail(f"{what}: {name} child of node {bad} is out of its tree")


def _scalars(obj, skip: set[str]) -> dict:
    out = {}
    for k, v in vars(obj).items():
        if k in skip:
            continue
        if isinstance(v, np.integer):
            v = int(v)
        elif isinstance(v, np.floating):
            v = float(v)
        elif isinstance(v, tuple):
            v = list(v)
        if isinstance(v, list) and all(isinstance(x, _JSON) for x in v):
            out[k] = {"tuple": v} if isinstance(getattr(obj, k), tuple) else v
        elif isinstance(v, _JSON):
            out[k] = v
        else:
            raise ValueError(f"cannot store {type(obj).__name__}.{k} ({type(v).__name__})")
    return out


def _restore(obj, values: dict) -> None:
    for k, v in values.items():
        if not isinstance(k, str) or not k.isidentifier() or k.startswith("__"):
            _fail(f"bad attribute name {k!r}")
        if isinstance(v, dict):
            if set(v) != {"tuple"} or not isinstance(v["tuple"], list):
                _fail(f"bad value of {k}")
            v = tuple(v["tuple"])
        elif isinstance(v, list):
            if not all(isinstance(x, _JSON) for x in v):
                _fail(f"bad value of {k}")
        elif not isinstance(v, _JSON):
            _fail(f"bad value of {k}")
        setattr(obj, k, v)


# -- random forest -------------------------------------------------------------------------

def forest_to_arrays(forest, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON description, arrays named ``prefix.*``) of a fitted RandomForestClassifier."""
    from sklearn.ensemble import RandomForestClassifier

    if type(forest) is not RandomForestClassifier or getattr(forest, "n_outputs_", 1) != 1:
        raise ValueError("only a single-output RandomForestClassifier is stored as arrays")
    trees = forest.estimators_
    states = [t.tree_.__getstate__() for t in trees]
    nodes = np.concatenate([s["nodes"] for s in states])
    arrays = {f"{prefix}.{f}": np.ascontiguousarray(nodes[f], dtype=dt)
              for f, dt in FOREST_FIELDS.items()}
    arrays[f"{prefix}.values"] = np.concatenate([s["values"] for s in states]).astype(
        np.float64)
    arrays[f"{prefix}.offsets"] = np.r_[0, np.cumsum([s["node_count"] for s in states])
                                        ].astype(np.int64)
    arrays[f"{prefix}.max_depth"] = np.array([s["max_depth"] for s in states], np.int64)
    arrays[f"{prefix}.classes"] = np.asarray(forest.classes_)
    arrays[f"{prefix}.tree_classes"] = np.asarray(trees[0].classes_)
    tree_skip = {"tree_", "classes_"}
    desc = {
        "kind": "RandomForestClassifier",
        "forest": _scalars(forest, {"estimator", "estimator_", "estimators_", "classes_",
                                    "_sample_weight"}),
        "estimator": _scalars(forest.estimator_, set()),
        "trees": [_scalars(t, tree_skip) for t in trees],
        "n_features": int(trees[0].tree_.n_features),
        "n_classes": int(trees[0].tree_.n_classes[0]),
    }
    return desc, arrays


def forest_from_arrays(desc: dict, arrays: dict, prefix: str):
    """The RandomForestClassifier :func:`forest_to_arrays` described (checked first)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.tree._tree import Tree

    if not isinstance(desc, dict) or desc.get("kind") != "RandomForestClassifier":
        _fail(f"{prefix} is not a stored forest")
    try:
        n_features, n_classes = int(desc["n_features"]), int(desc["n_classes"])
        trees_meta = list(desc["trees"])
    except (KeyError, TypeError, ValueError):
        _fail(f"{prefix}: incomplete description")
    if n_features < 1 or n_classes < 1 or not trees_meta:
        _fail(f"{prefix}: empty forest")
    n_trees = len(trees_meta)
    left = _array(arrays, f"{prefix}.left_child", np.int64, 1)
    total = len(left)
    f = {k: _array(arrays, f"{prefix}.{k}", dt, 1, total, finite=True)
         for k, dt in FOREST_FIELDS.items()}
    values = _array(arrays, f"{prefix}.values", np.float64, 3, total, finite=True)
    if values.shape[1:] != (1, n_classes):
        _fail(f"{prefix}.values must be (nodes, 1, {n_classes}), got {values.shape}")
    off = _offsets(arrays, f"{prefix}.offsets", n_trees, total)
    depth = _array(arrays, f"{prefix}.max_depth", np.int64, 1, n_trees)
    if (depth < 0).any():
        _fail(f"{prefix}.max_depth is negative")
    classes = arrays.get(f"{prefix}.classes")
    tree_classes = arrays.get(f"{prefix}.tree_classes")
    for key, c in ((f"{prefix}.classes", classes), (f"{prefix}.tree_classes", tree_classes)):
        if not isinstance(c, np.ndarray) or c.ndim != 1 or len(c) != n_classes \
                or c.dtype.kind not in "iuf" or not np.isfinite(c.astype(float)).all():
            _fail(f"{key} must be {n_classes} finite numbers")
    forest = RandomForestClassifier()
    _restore(forest, desc.get("forest", {}))
    estimator = DecisionTreeClassifier()
    _restore(estimator, desc.get("estimator", {}))
    forest.estimator = DecisionTreeClassifier()
    forest.estimator_ = estimator
    forest.classes_ = classes
    forest._sample_weight = None
    trees = []
    for i, tmeta in enumerate(trees_meta):
        a, b = int(off[i]), int(off[i + 1])
        leaf = f["left_child"][a:b] == TREE_LEAF
        if ((f["right_child"][a:b] == TREE_LEAF) != leaf).any():
            _fail(f"{prefix}: tree {i} has a node with one child")
        _check_children(f["left_child"][a:b], f["right_child"][a:b], leaf, b - a,
                        f"{prefix} tree {i}")
        feat = f["feature"][a:b]
        if ((~leaf) & ((feat < 0) | (feat >= n_features))).any():
            _fail(f"{prefix}: tree {i} splits on a feature out of range")
        nodes = np.empty(b - a, dtype=Tree(n_features, np.array([n_classes]), 1)
                         .__getstate__()["nodes"].dtype)
        for k in FOREST_FIELDS:
            nodes[k] = f[k][a:b]
        tree = Tree(n_features, np.array([n_classes], dtype=np.intp), 1)
        tree.__setstate__({"max_depth": int(depth[i]), "node_count": b - a, "nodes": nodes,
                           "values": np.ascontiguousarray(values[a:b])})
        t = DecisionTreeClassifier()
        _restore(t, tmeta)
        t.classes_ = tree_classes
        t.tree_ = tree
        trees.append(t)
    forest.estimators_ = trees
    return forest


# -- hist gradient boosting ----------------------------------------------------------------

class ArrayBooster:
    """A fitted HistGradientBoostingClassifier's prediction from its stored arrays:
    ``decision_function`` (as scikit-learn's, bit-identically), ``classes_``, ``n_iter_``."""

    def __init__(self, baseline: np.ndarray, classes: np.ndarray, nodes: list, n_iter: int,
                 n_features: int) -> None:
        self._baseline_prediction = baseline  # (1, K)
        self.classes_ = classes
        self.n_iter_ = int(n_iter)
        self.n_features_in_ = int(n_features)
        self.n_trees_per_iteration_ = baseline.shape[1]
        self._nodes = nodes  # iteration-major: n_iter * K node arrays

    @classmethod
    def from_hgb(cls, model) -> ArrayBooster:
        from sklearn.ensemble import HistGradientBoostingClassifier

        if isinstance(model, ArrayBooster):
            return model
        if type(model) is not HistGradientBoostingClassifier:
            raise ValueError("not a HistGradientBoostingClassifier")
        if model.is_categorical_ is not None and np.any(model.is_categorical_):
            raise ValueError("a booster with categorical features is not stored as arrays")
        nodes = [p.nodes for it in model._predictors for p in it]
        return cls(np.asarray(model._baseline_prediction, np.float64),
                   np.asarray(model.classes_), nodes, model.n_iter_, model.n_features_in_)

    def to_arrays(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        nodes = np.concatenate(self._nodes)
        arrays = {f"{prefix}.{f}": np.ascontiguousarray(nodes[f], dtype=dt)
                  for f, dt in BOOSTER_FIELDS.items()}
        arrays[f"{prefix}.offsets"] = np.r_[0, np.cumsum([len(n) for n in self._nodes])
                                            ].astype(np.int64)
        arrays[f"{prefix}.baseline"] = self._baseline_prediction
        arrays[f"{prefix}.classes"] = np.asarray(self.classes_)
        desc = {"kind": "HistGradientBoostingClassifier", "n_iter": self.n_iter_,
                "n_trees_per_iteration": int(self.n_trees_per_iteration_),
                "n_features": self.n_features_in_}
        return desc, arrays

    @classmethod
    def from_arrays(cls, desc: dict, arrays: dict, prefix: str) -> ArrayBooster:
        from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

        if not isinstance(desc, dict) or desc.get("kind") != "HistGradientBoostingClassifier":
            _fail(f"{prefix} is not a stored booster")
        try:
            n_iter, k = int(desc["n_iter"]), int(desc["n_trees_per_iteration"])
            n_features = int(desc["n_features"])
        except (KeyError, TypeError, ValueError):
            _fail(f"{prefix}: incomplete description")
        if n_iter < 1 or k < 1 or n_features < 1:
            _fail(f"{prefix}: empty booster")
        value = _array(arrays, f"{prefix}.value", np.float64, 1)
        total = len(value)
        f = {name: _array(arrays, f"{prefix}.{name}", dt, 1, total, finite=True)
             for name, dt in BOOSTER_FIELDS.items()}
        off = _offsets(arrays, f"{prefix}.offsets", n_iter * k, total)
        baseline = _array(arrays, f"{prefix}.baseline", np.float64, 2, 1, finite=True)
        if baseline.shape != (1, k):
            _fail(f"{prefix}.baseline must be (1, {k}), got {baseline.shape}")
        classes = arrays.get(f"{prefix}.classes")
        if not isinstance(classes, np.ndarray) or classes.ndim != 1 \
                or classes.dtype.kind not in "iuf" or len(classes) != max(k, 2) \
                or not np.isfinite(classes.astype(float)).all():
            _fail(f"{prefix}.classes must be {max(k, 2)} finite numbers")
        if f["is_categorical"].any():
            _fail(f"{prefix}: categorical splits are not supported")
        nodes = []
        for i in range(n_iter * k):
            a, b = int(off[i]), int(off[i + 1])
            leaf = f["is_leaf"][a:b].astype(bool)
            if (f["is_leaf"][a:b] > 1).any() or not leaf.any():
                _fail(f"{prefix}: predictor {i} has a bad is_leaf")
            _check_children(f["left"][a:b], f["right"][a:b], leaf, b - a,
                            f"{prefix} predictor {i}")
            feat = f["feature_idx"][a:b]
            if ((~leaf) & ((feat < 0) | (feat >= n_features))).any():
                _fail(f"{prefix}: predictor {i} splits on a feature out of range")
            n = np.zeros(b - a, dtype=PREDICTOR_RECORD_DTYPE)
            for name in BOOSTER_FIELDS:
                n[name] = f[name][a:b]
            nodes.append(n)
        return cls(baseline, classes, nodes, n_iter, n_features)

    def decision_function(self, X) -> np.ndarray:
        """As ``HistGradientBoostingClassifier.decision_function`` (same order of sums)."""
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[-1]} features, the booster expects "
                             f"{self.n_features_in_}")
        k = self.n_trees_per_iteration_
        raw = np.zeros((X.shape[0], k), dtype=self._baseline_prediction.dtype, order="F")
        raw += self._baseline_prediction
        no_cat = np.zeros((0, 8), dtype=np.uint32)
        f_idx_map = np.zeros(self.n_features_in_, dtype=np.uint32)
        n_threads = _openmp_effective_n_threads(None)
        for i, nodes in enumerate(self._nodes):
            p = TreePredictor(nodes, no_cat, no_cat)
            raw[:, i % k] += p.predict(X, known_cat_bitsets=no_cat, f_idx_map=f_idx_map,
                                       n_threads=n_threads)
        return raw.ravel() if k == 1 else raw


__all__ = ["ArrayBooster", "forest_from_arrays", "forest_to_arrays"]
