"""Format 2 of the family save format: forests and boosters as plain arrays
(``classifier.families.arrays``). Round trips predict bit-identically (format 1 archives
still load), no skops in a format-2 muwclass/gbm archive, and tampered arrays are refused
with a message naming them."""

from __future__ import annotations

import importlib.util
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classifier import load, save

_spec = importlib.util.spec_from_file_location(
    "families_contract", Path(__file__).with_name("test_families_contract.py"))
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)


@pytest.fixture(scope="module")
def fitted():
    X, y = contract.toy(n=400, seed=3)
    return X, {n: contract.make(n).fit(X, y) for n in ("muwclass", "gbm")}


def _members(blob: bytes) -> dict[str, bytes]:
    z = zipfile.ZipFile(io.BytesIO(blob))
    return {n: z.read(n) for n in z.namelist()}


def _arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(_members(blob)["arrays.npz"]), allow_pickle=False) as a:
        return {k: a[k] for k in a.files}


def _rebuild(blob: bytes, arrays=None, meta=None) -> bytes:
    parts = _members(blob)
    if arrays is not None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        parts["arrays.npz"] = buf.getvalue()
    if meta is not None:
        parts["meta.json"] = json.dumps(meta).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for k, v in parts.items():
            z.writestr(k, v)
    return out.getvalue()


@pytest.mark.parametrize("name", ["muwclass", "gbm"])
def test_format_2_has_no_skops_and_round_trips(name, fitted):
    X, models = fitted
    m = models[name]
    blob = save(m)
    meta = json.loads(_members(blob)["meta.json"])
    assert meta["version"] == 2 and meta["estimators"] == []
    assert "estimators.skops" not in _members(blob)
    m2 = load(blob)
    pd.testing.assert_frame_equal(m.predict(X), m2.predict(X))
    assert np.array_equal(m.predict_proba(X).to_numpy(), m2.predict_proba(X).to_numpy(),
                          equal_nan=True)
    assert save(m2) == blob  # a loaded model saves to the same bytes
    old = save(m, version=1)  # the previous format still loads, to the same predictions
    assert "estimators.skops" in _members(old)
    assert np.array_equal(load(old).predict_proba(X).to_numpy(),
                          m2.predict_proba(X).to_numpy(), equal_nan=True)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_booster_arrays_give_sklearns_decision_function(n_classes):
    from sklearn.ensemble import HistGradientBoostingClassifier

    from classifier.families.arrays import ArrayBooster

    rng = np.random.default_rng(n_classes)
    X = rng.normal(size=(500, 4))
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values: splits with a side for NaN
    y = rng.integers(0, n_classes, 500) + (X[:, 0] > 0)
    h = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    desc, arrays = ArrayBooster.from_hgb(h).to_arrays("~m")
    b = ArrayBooster.from_arrays(json.loads(json.dumps(desc)), arrays, "~m")
    assert np.array_equal(b.decision_function(X), h.decision_function(X))
    assert b.decision_function(X).shape == h.decision_function(X).shape


def _tamper(name, key_end, fn):
    def apply(arrays):
        key = next(k for k in arrays if k.endswith(key_end))
        arrays[key] = fn(arrays[key].copy())
        return key
    return name, apply


def _set(i, v):
    def f(a):
        a[i] = v
        return a
    return f


TAMPERED = [
    _tamper("muwclass", ".left_child", _set(0, 0)),            # points back to itself
    _tamper("muwclass", ".right_child", _set(0, 10**9)),       # out of the tree
    _tamper("muwclass", ".feature", _set(0, 999)),             # no such feature
    _tamper("muwclass", ".threshold", _set(0, np.nan)),
    _tamper("muwclass", ".values", lambda a: a.astype(np.float32)),
    _tamper("muwclass", ".offsets", lambda a: a[:-1]),
    _tamper("muwclass", ".values", lambda a: a[:, :, :-1].copy()),
    _tamper("gbm", ".left", _set(0, 0)),
    _tamper("gbm", ".feature_idx", _set(0, -5)),
    _tamper("gbm", ".value", _set(1, np.inf)),
    _tamper("gbm", ".baseline", lambda a: a[:, :-1].copy()),
    _tamper("gbm", ".is_categorical", _set(0, 1)),
    _tamper("gbm", ".offsets", lambda a: a[::-1].copy()),
]


@pytest.mark.parametrize("name,apply", TAMPERED)
def test_tampered_arrays_are_refused(name, apply, fitted):
    _, models = fitted
    blob = save(models[name])
    arrays = _arrays(blob)
    key = apply(arrays)
    with pytest.raises(ValueError, match="saved model arrays") as e:
        load(_rebuild(blob, arrays=arrays))
    assert key.split(".")[0] in str(e.value)


def test_missing_array_and_unknown_kind_are_refused(fitted):
    _, models = fitted
    blob = save(models["gbm"])
    arrays = _arrays(blob)
    del arrays[next(k for k in arrays if k.endswith(".num_threshold"))]
    with pytest.raises(ValueError, match="num_threshold is missing"):
        load(_rebuild(blob, arrays=arrays))
    meta = json.loads(_members(blob)["meta.json"])
    meta["array_estimators"]["model_"]["kind"] = "os.system"
    with pytest.raises(ValueError, match="unknown stored estimator kind"):
        load(_rebuild(blob, meta=meta))
    meta = json.loads(_members(blob)["meta.json"])
    meta["array_estimators"]["__class__"] = meta["array_estimators"].pop("model_")
    with pytest.raises(ValueError, match="not a fitted attribute"):
        load(_rebuild(blob, meta=meta))


def test_tampered_forest_attribute_name_is_refused(fitted):
    _, models = fitted
    blob = save(models["muwclass"])
    meta = json.loads(_members(blob)["meta.json"])
    meta["array_estimators"]["forest_"]["forest"]["__dict__"] = 1
    with pytest.raises(ValueError, match="bad attribute name"):
        load(_rebuild(blob, meta=meta))
