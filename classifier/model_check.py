"""Validation of a serialized :class:`~classifier.model.ClusterThenLabel` before it is used.

A stored model is data from outside the program (a database row, a JSON file): every name,
shape and number in it is checked before anything is built from it, and the first problem
is reported in one line (``gmm.weights: negative value -0.2 at [3]``). Checked: the format
and its version; parameter names and types; feature names against a known list; classes
against the paper's classes; every array's shape from K (components), C (classes) and d
(features); finite values, with magnitudes a fitted model on transformed features can have;
mixture weights on the simplex; covariances and precisions symmetric positive
semi-definite, precisions consistent with their Cholesky factors; the transform's offsets and
ranges. Unusable (cluster, class) pairs may hold nulls.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .features import DEFAULT_FEATURES
from .taxonomy import CLASSES

FORMAT = "cscat.classifier.ClusterThenLabel"
FORMAT_VERSION = 1

#: Largest |mean| accepted: the method's features are min-max scaled or naturally O(1).
MAX_MEAN = 1e6
#: Largest |entry| of a covariance, precision or pseudo-inverse: d2 stays far from overflow.
MAX_MATRIX = 1e30
#: Tolerances: weights sum to 1 within this; symmetry and PSD relative to the matrix's scale.
WEIGHT_TOL = 1e-6
REL_TOL = 1e-6

_PARAMS = {"features", "log_features", "scale_features", "n_components", "random_state",
           "classes", "min_labeled", "chunk_size", "n_jobs"}
_GMM = {"weights", "means", "covariances", "precisions_cholesky", "precisions", "converged",
        "n_iter", "lower_bound"}


class InvalidModelError(ValueError):
    """A serialized model that must not be used; the message says what is wrong."""


def _fail(msg: str) -> None:
    raise InvalidModelError(msg)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _names(x, what: str, known: Sequence[str] | None) -> list[str]:
    if not isinstance(x, list) or not all(isinstance(v, str) for v in x):
        _fail(f"{what} is not a list of names")
    if len(set(x)) != len(x):
        _fail(f"{what} has duplicate names")
    if known is not None:
        bad = [v for v in x if v not in known]
        if bad:
            _fail(f"{what}: unknown name {bad[0][:80]!r} (known: {', '.join(known)})")
    return list(x)


def _array(x, what: str, shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as a float array of ``shape``; only numbers and nulls (-> NaN) are accepted."""
    try:
        raw = np.asarray(x)
    except ValueError:
        _fail(f"{what} is not a numeric array")
    if raw.dtype.kind == "O":
        flat = raw.ravel()
        if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                   for v in flat):
            _fail(f"{what} is not a numeric array")
    elif raw.dtype.kind not in "iuf":
        _fail(f"{what} is not a numeric array")
    if raw.shape != shape:
        _fail(f"{what} has shape {raw.shape}, expected {shape}")
    return np.array(raw, dtype="float64")


def _finite(a: np.ndarray, what: str, bound: float) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        _fail(f"{what}: non-finite value at {list(where)}")
    big = np.abs(a) > bound
    if big.any():
        where = tuple(int(i) for i in np.argwhere(big)[0])
        _fail(f"{what}: value {a[where]:.3g} at {list(where)} is larger than {bound:g}")


def _psd(m: np.ndarray, what: str) -> None:
    """``m`` (..., d, d): finite, bounded, symmetric, positive semi-definite."""
    _finite(m, what, MAX_MATRIX)
    if m.size == 0:
        return
    scale = np.maximum(np.abs(m).max(axis=(-2, -1)), np.finfo(float).tiny)
    asym = np.abs(m - np.swapaxes(m, -1, -2)).max(axis=(-2, -1)) / scale
    if (asym > REL_TOL).any():
        where = [int(i) for i in np.argwhere(asym > REL_TOL)[0]]
        _fail(f"{what}: matrix {where} is not symmetric")
    low = np.linalg.eigvalsh((m + np.swapaxes(m, -1, -2)) / 2).min(axis=-1)
    if (low < -REL_TOL * scale).any():
        where = [int(i) for i in np.argwhere(low < -REL_TOL * scale)[0]]
        _fail(f"{what}: matrix {where} is not positive semi-definite")


def check_model_dict(d, known_features: Sequence[str] | None = DEFAULT_FEATURES,
                     known_classes: Sequence[str] | None = CLASSES) -> None:
    """Raise :class:`InvalidModelError` naming the first problem of a ``to_dict`` model.

    ``known_features`` / ``known_classes``: the names a model may use (None: any names).
    """
    if not isinstance(d, dict):
        _fail("not a JSON object")
    if d.get("format") != FORMAT:
        _fail(f"not a {FORMAT} dict (format={d.get('format')!r})")
    if d.get("version") != FORMAT_VERSION:
        _fail(f"unsupported version {d.get('version')!r}, expected {FORMAT_VERSION}")
    p = d.get("params")
    if not isinstance(p, dict):
        _fail("params is not an object")
    extra = sorted(set(p) - _PARAMS)
    if extra:
        _fail(f"params: unknown parameter {extra[0]!r}")
    feats = _names(p.get("features"), "params.features", known_features)
    if not feats:
        _fail("params.features is empty")
    K = p.get("n_components")
    if not _is_int(K) or not 1 <= K <= 1000:
        _fail(f"params.n_components must be an integer in [1, 1000], not {K!r}")
    for key in ("random_state", "min_labeled", "n_jobs"):
        if p.get(key) is not None and not _is_int(p.get(key)):
            _fail(f"params.{key} must be an integer or null, not {p.get(key)!r}")
    if not _is_int(p.get("chunk_size", 1)) or p.get("chunk_size", 1) < 1:
        _fail(f"params.chunk_size must be a positive integer, not {p.get('chunk_size')!r}")
    classes = _names(d.get("classes"), "classes", known_classes)
    if not classes:
        _fail("classes is empty")
    if (p.get("classes") is not None
            and _names(p["classes"], "params.classes", known_classes) != classes):
        _fail("params.classes differ from classes")
    for key in ("log_features", "scale_features"):
        if p.get(key) is not None and not set(_names(p[key], f"params.{key}", feats)) <= set(feats):
            _fail(f"params.{key} are not features")
    if not _is_int(d.get("min_labeled")) or d["min_labeled"] < 2:
        _fail(f"min_labeled must be an integer >= 2, not {d.get('min_labeled')!r}")
    if not _is_int(d.get("n_fit_rows")) or d["n_fit_rows"] < 0:
        _fail(f"n_fit_rows must be a non-negative integer, not {d.get('n_fit_rows')!r}")
    n, C = len(feats), len(classes)
    _check_transform(d.get("transform"), feats)
    _check_gmm(d.get("gmm"), K, n)
    counts = _array(d.get("class_counts"), "class_counts", (K, C))
    if (counts < 0).any() or (counts != np.round(counts)).any():
        _fail("class_counts must be non-negative integers")
    usable = counts >= d["min_labeled"]
    means = _array(d.get("class_means"), "class_means", (K, C, n))
    _finite(means[usable], "class_means of usable classes", MAX_MEAN)
    pinv = _array(d.get("class_pinv"), "class_pinv", (K, C, n, n))
    _psd(pinv[usable], "class_pinv of usable classes")


def _check_transform(t, feats: list[str]) -> None:
    if not isinstance(t, dict):
        _fail("transform is not an object")
    if _names(t.get("features"), "transform.features", None) != feats:
        _fail("transform.features differ from params.features")
    logf = _names(t.get("log_features"), "transform.log_features", feats)
    scal = _names(t.get("scale_features"), "transform.scale_features", feats)
    if set(logf) & set(scal):
        _fail("transform: a feature is both log and scale")
    n = len(feats)
    offset = _array(t.get("offset"), "transform.offset", (n,))
    lo = _array(t.get("min"), "transform.min", (n,))
    rng = _array(t.get("range"), "transform.range", (n,))
    for a, what in ((offset, "transform.offset"), (lo, "transform.min"),
                    (rng, "transform.range")):
        _finite(a, what, MAX_MATRIX)
    if (rng <= 0).any():
        _fail("transform.range must be positive")
    is_log = np.array([f in logf for f in feats], dtype=bool)
    if (offset[is_log] <= 0).any() or (offset[~is_log] != 0).any():
        _fail("transform.offset must be positive for log features and 0 for the others")


def _check_gmm(g, K: int, n: int) -> None:
    if not isinstance(g, dict):
        _fail("gmm is not an object")
    missing = sorted(_GMM - set(g))
    if missing:
        _fail(f"gmm: missing {missing[0]!r}")
    w = _array(g["weights"], "gmm.weights", (K,))
    _finite(w, "gmm.weights", 1.0 + WEIGHT_TOL)
    if (w < 0).any():
        i = int(np.argmax(w < 0))
        _fail(f"gmm.weights: negative value {w[i]:g} at [{i}]")
    if abs(w.sum() - 1.0) > WEIGHT_TOL:
        _fail(f"gmm.weights sum to {w.sum():.9g}, not 1")
    _finite(_array(g["means"], "gmm.means", (K, n)), "gmm.means", MAX_MEAN)
    _psd(_array(g["covariances"], "gmm.covariances", (K, n, n)), "gmm.covariances")
    prec = _array(g["precisions"], "gmm.precisions", (K, n, n))
    _psd(prec, "gmm.precisions")
    chol = _array(g["precisions_cholesky"], "gmm.precisions_cholesky", (K, n, n))
    _finite(chol, "gmm.precisions_cholesky", MAX_MATRIX)
    rebuilt = chol @ np.swapaxes(chol, -1, -2)
    scale = np.maximum(np.abs(prec).max(axis=(-2, -1)), 1.0)
    off = np.abs(rebuilt - prec).max(axis=(-2, -1)) / scale
    if (off > REL_TOL).any():
        _fail(f"gmm.precisions_cholesky of component {int(np.argmax(off > REL_TOL))} "
              "does not give gmm.precisions")
    if not isinstance(g["converged"], bool):
        _fail("gmm.converged must be true or false")
    if not _is_int(g["n_iter"]) or g["n_iter"] < 0:
        _fail("gmm.n_iter must be a non-negative integer")
    lb = g["lower_bound"]
    if not isinstance(lb, (int, float)) or isinstance(lb, bool) or not np.isfinite(lb):
        _fail("gmm.lower_bound must be a finite number")
