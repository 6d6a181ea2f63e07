"""``save(model) -> bytes`` and ``load(bytes)`` for every family, without pickle.

The bytes are a zip archive:

* ``meta.json``: format, version, family name, constructor parameters and the JSON-valued
  learned attributes (floats are written with ``repr`` precision, so they round-trip);
* ``arrays.npz``: the numpy-array learned attributes (read with ``allow_pickle=False``);
* format 2 (what :func:`save` writes): forests (``RandomForestClassifier``) and boosters
  (``HistGradientBoostingClassifier``) as plain numeric arrays in ``arrays.npz`` too, under
  ``~<attribute>.<field>`` (``classifier.families.arrays``: checked before use, rebuilt as the
  same scikit-learn trees), described in ``meta.json``'s ``array_estimators``; loading them is
  a few array copies (a skops forest of 27 MB took 9.4 s);
* ``estimators.skops``: any other scikit-learn estimator (format 1: forest and booster too),
  in skops' secure format, loaded only if every type its schema names is in
  :data:`TRUSTED_TYPES` (an explicit list; skops' own defaults are not relied on). Format 1
  archives still load.

``ctl`` is stored as its own JSON (``ClusterThenLabel.to_dict``) in ``model.json``.
Loading never executes code from the archive; ``load(save(m))`` predicts bit-identically.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from sklearn.base import BaseEstimator

FORMAT = "cscat.classifier.family"
VERSION = 2
#: Versions :func:`load` reads (1: estimators in skops only).
READ_VERSIONS = (1, 2)

#: Types skops may build when loading (anything else is refused).
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "builtins.dict", "builtins.list", "builtins.str", "builtins.tuple", "builtins.int",
        "builtins.float", "builtins.bool", "builtins.slice",
        "numpy.dtype", "numpy.float64", "numpy.int64", "numpy.uint64", "numpy.ndarray",
        "numpy.random._generator.Generator", "numpy.random.mtrand.RandomState",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting."
        "HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn._loss.loss.HalfMultinomialLoss", "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss", "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss.link.MultinomialLogit", "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.Interval",
    }
)  # fmt: skip


def skops_types(raw: bytes) -> set[str]:
    """Every ``module.class`` a skops file would build (read from its schema, not loaded)."""
    found: set[str] = set()

    def walk(o) -> None:
        if isinstance(o, dict):
            if "__module__" in o and "__class__" in o:
                found.add(f"{o['__module__']}.{o['__class__']}")
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    try:
        walk(json.loads(zipfile.ZipFile(io.BytesIO(raw)).read("schema.json")))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise ValueError(f"corrupt estimators in saved model ({e})") from None
    return found



def _registry() -> dict[str, type]:
    from . import FAMILIES

    return FAMILIES


def _family_name(model) -> str:
    for name, cls in _registry().items():
        if type(model) is cls:
            return name
    raise TypeError(f"not a registered family: {type(model).__name__}")


def _json_safe(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    return v


def _put(z: zipfile.ZipFile, name: str, data: bytes | str) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # stable bytes
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, data)


def save(model, version: int = VERSION) -> bytes:
    """Serialise a fitted family model (see the module docstring); ``version=1`` writes the
    previous format (every estimator in skops; a model loaded from format 2 holds an
    :class:`~classifier.families.arrays.ArrayBooster`, which only format 2 can store)."""
    if version not in READ_VERSIONS:
        raise ValueError(f"unknown model format version {version!r}")
    name = _family_name(model)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        meta = {"format": FORMAT, "version": version, "family": name}
        if name == "ctl":
            _put(z, "meta.json", json.dumps(meta))
            _put(z, "model.json", json.dumps(model.to_dict()))
        else:
            _write_state(z, model, meta, arrays_ok=version >= 2)
    return buf.getvalue()


def _write_state(z: zipfile.ZipFile, model, meta: dict, arrays_ok: bool = True) -> None:
    model._check_fitted()
    import skops.io as sio

    from .arrays import ArrayBooster, forest_to_arrays

    arrays, estimators, values, described, est_arrays = {}, {}, {}, {}, {}
    for attr in model._state:
        v = getattr(model, attr)
        if isinstance(v, np.ndarray):
            arrays[attr] = v
        elif not arrays_ok and isinstance(v, ArrayBooster):
            raise ValueError(f"{attr} was loaded from format 2 and is saved only in format 2")
        elif not arrays_ok and isinstance(v, BaseEstimator):
            estimators[attr] = v
        elif isinstance(v, ArrayBooster) or _is_booster(v):
            described[attr], more = ArrayBooster.from_hgb(v).to_arrays(f"~{attr}")
            est_arrays.update(more)
        elif _is_forest(v):
            try:
                described[attr], more = forest_to_arrays(v, f"~{attr}")
                est_arrays.update(more)
            except ValueError:  # e.g. a class_weight dict: kept in skops
                estimators[attr] = v
        elif isinstance(v, BaseEstimator):
            estimators[attr] = v
        else:
            values[attr] = _json_safe(v)
    meta["params"] = _json_safe(model.get_params())
    meta["values"] = values
    meta["arrays"] = sorted(arrays)
    meta["estimators"] = sorted(estimators)
    if arrays_ok:
        meta["array_estimators"] = described
    _put(z, "meta.json", json.dumps(meta))
    a = io.BytesIO()
    np.savez(a, **arrays, **est_arrays)
    _put(z, "arrays.npz", a.getvalue())
    if estimators:
        _put(z, "estimators.skops", sio.dumps(estimators))


def _is_forest(v) -> bool:
    from sklearn.ensemble import RandomForestClassifier

    return type(v) is RandomForestClassifier


def _is_booster(v) -> bool:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return type(v) is HistGradientBoostingClassifier


def load(data: bytes):
    """Rebuild a model saved by :func:`save` (ValueError for anything else)."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        meta = json.loads(z.read("meta.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise ValueError(f"not a saved cscat classifier model ({e})") from None
    if meta.get("format") != FORMAT or meta.get("version") not in READ_VERSIONS:
        raise ValueError(
            f"unsupported model format {meta.get('format')!r} version {meta.get('version')!r}"
        )
    reg = _registry()
    name = meta.get("family")
    if name not in reg:
        raise ValueError(f"unknown family {name!r}; known: {', '.join(reg)}")
    cls = reg[name]
    if name == "ctl":
        # any feature names: a family's columns are its own; shapes and values are still
        # checked, and the catalog's SQL takes column names only from its fixed list
        return cls.from_dict(json.loads(z.read("model.json")), known_features=None,
                             known_classes=None)
    params = meta["params"]
    model = cls(**params)
    for k, v in meta["values"].items():
        setattr(model, k, v)
    described = meta.get("array_estimators", {}) if meta["version"] >= 2 else {}
    if not isinstance(described, dict):
        raise ValueError("saved model: array_estimators must be a mapping")
    with np.load(io.BytesIO(z.read("arrays.npz")), allow_pickle=False) as arrs:
        for k in meta["arrays"]:
            setattr(model, k, arrs[k])
        est_arrays = {k: arrs[k] for k in arrs.files if k.startswith("~")}
    if described:
        from .arrays import ArrayBooster, forest_from_arrays

        for attr, desc in described.items():
            if attr not in cls._state:
                raise ValueError(f"saved model: {attr!r} is not a fitted attribute of {name}")
            kind = desc.get("kind") if isinstance(desc, dict) else None
            if kind == "RandomForestClassifier":
                setattr(model, attr, forest_from_arrays(desc, est_arrays, f"~{attr}"))
            elif kind == "HistGradientBoostingClassifier":
                setattr(model, attr, ArrayBooster.from_arrays(desc, est_arrays, f"~{attr}"))
            else:
                raise ValueError(f"saved model: unknown stored estimator kind {kind!r}")
    if meta["estimators"]:
        import skops.io as sio

        raw = z.read("estimators.skops")
        types = skops_types(raw)
        bad = sorted(types - TRUSTED_TYPES)
        if bad:
            raise ValueError(f"saved model contains types that are not trusted: {bad}")
        est = sio.loads(raw, trusted=sorted(types))
        for k in meta["estimators"]:
            setattr(model, k, est[k])
    return model
