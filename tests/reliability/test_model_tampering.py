"""Security: a tampered model in the database is refused with a message; nothing is published.

A real model is fitted and published on a small generated catalog; then tampered copies of
its JSON are stored as new model versions (SQL in a feature name, NaN, huge means, null
matrices, negative weights, ...). Promoting one (``reclassify --model N``) or publishing with
a tampered *active* model must raise one message naming the version and the fault, leave the
catalog exactly as it was (versions, results, model statuses) and run none of the SQL.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from classifier import ClusterThenLabel, InvalidModelError
from db import catalog_store as store
from db.settings import Settings
from ingest.sample import generate_sample
from ingest.sample_source import SampleCsc, SampleSimbad
from pipeline import classify, ingest

AREA = "security: models"
PROJECT = Path(__file__).resolve().parents[2]
INJECTION = "hard_hm, (SELECT lo_from_bytea(0, 'pwned'::bytea)) AS pwned"


@pytest.fixture(scope="module")
def catalog(engine):
    """A published catalog (version 1) and its active model's row."""
    sample = generate_sample(700, seed=13)
    settings = Settings(n_components=6, random_state=42)
    ingest.ingest_csc(engine, SampleCsc(sample))
    ingest.ingest_simbad(engine, SampleSimbad(sample, 1), refresh_days=None)
    fitted = classify.refit(engine, settings)
    assert fitted.promote
    assert classify.publish(engine, settings, promote=fitted.model_id) is not None
    with engine.connect() as conn:
        active = store.active_model(conn)
    return settings, active


def state(engine) -> tuple:
    """Everything a publish could change, plus large objects (the injection's side effect)."""
    with engine.connect() as conn:
        return tuple(conn.execute(text(sql)).all() for sql in (
            "SELECT release_id, model_id FROM catalog.release ORDER BY 1",
            "SELECT count(*), max(valid_from) FROM catalog.detection_result",
            "SELECT count(*), max(valid_from) FROM catalog.source_result",
            "SELECT model_id, status FROM catalog.fitted_model ORDER BY 1",
            "SELECT count(*) FROM pg_largeobject_metadata",
        ))


def _set(d: dict, path: str, value) -> dict:
    out = copy.deepcopy(d)
    *head, last = path.split(".")
    node = out
    for k in head:
        node = node[k]
    node[last] = value
    return out


def _usable(d: dict) -> tuple[int, int]:
    counts = np.array(d["class_counts"])
    k, c = np.argwhere(counts >= d["min_labeled"])[0]
    return int(k), int(c)


def tamperings(m: dict) -> dict[str, tuple[dict, str]]:
    """case -> (tampered model dict, words the refusal must contain)."""
    feats = list(m["params"]["features"])
    bad_feats = [INJECTION, *feats[1:]]
    inj = _set(_set(m, "params.features", bad_feats), "transform.features", bad_feats)
    k, c = _usable(m)
    nan_means = copy.deepcopy(m)
    nan_means["gmm"]["means"][0][0] = None  # JSON null -> NaN
    huge = copy.deepcopy(m)
    huge["class_means"][k][c] = [1e300] * len(feats)  # would give d2 = inf, p = NaN
    neg = copy.deepcopy(m)
    neg["gmm"]["weights"][0] -= 0.5
    neg["gmm"]["weights"][1] += 0.5  # still sums to 1
    unsummed = copy.deepcopy(m)
    unsummed["gmm"]["weights"][0] += 0.5
    not_psd = copy.deepcopy(m)
    not_psd["class_pinv"][k][c] = (-np.array(m["class_pinv"][k][c])).tolist()
    asym = copy.deepcopy(m)
    asym["gmm"]["covariances"][0][0][1] += 1.0
    chol = copy.deepcopy(m)
    chol["gmm"]["precisions_cholesky"][0][0][0] *= 2.0
    strings = copy.deepcopy(m)
    strings["gmm"]["means"][0][0] = "0.5"
    return {
        "SQL in a feature name": (inj, "unknown name"),
        "unknown class": (_set(m, "classes", ["QSO'); DROP TABLE catalog.release; --",
                                              *m["classes"][1:]]), "classes: unknown name"),
        "unknown parameter": (_set(m, "params.evil", 1), "unknown parameter"),
        "NaN in the mixture's means": (nan_means, "non-finite"),
        "huge class means (NaN probabilities)": (huge, "larger than"),
        "null class pseudo-inverses": (_set(m, "class_pinv", None), "class_pinv has shape"),
        "null mixture covariances": (_set(m, "gmm.covariances", None), "gmm.covariances"),
        "negative mixture weights": (neg, "negative value"),
        "weights not summing to 1": (unsummed, "sum to"),
        "pseudo-inverse not PSD": (not_psd, "positive semi-definite"),
        "covariance not symmetric": (asym, "not symmetric"),
        "precision Cholesky inconsistent": (chol, "precisions_cholesky"),
        "more components than arrays": (_set(m, "params.n_components", 7), "shape"),
        "numbers as strings": (strings, "not a numeric array"),
        "transform range zero": (_set(m, "transform.range", [0.0] * len(feats)),
                                 "transform.range"),
        "not an object": (_set(m, "gmm", "pwned"), "gmm is not an object"),
    }


def test_the_real_model_passes_validation(catalog, record):
    _, active = catalog
    try:
        ClusterThenLabel.from_dict(active["model"])
        held, detail = True, ""
    except InvalidModelError as e:
        held, detail = False, str(e)
    assert record(AREA, "the pipeline's own model is accepted", held, detail)


CASES = [
    "SQL in a feature name", "unknown class", "unknown parameter",
    "NaN in the mixture's means", "huge class means (NaN probabilities)",
    "null class pseudo-inverses", "null mixture covariances", "negative mixture weights",
    "weights not summing to 1", "pseudo-inverse not PSD", "covariance not symmetric",
    "precision Cholesky inconsistent", "more components than arrays", "numbers as strings",
    "transform range zero", "not an object"]


def test_every_tampering_is_tried(catalog):
    assert list(tamperings(catalog[1]["model"])) == CASES


@pytest.mark.parametrize("case", CASES)
def test_promoting_a_tampered_model_is_refused(catalog, engine, record, case):
    settings, active = catalog
    tampered, words = tamperings(active["model"])[case]
    with engine.begin() as conn:
        model_id = store.store_model(conn, model=tampered, params=active["params"],
                                     validation=active["validation"], n_detections=1,
                                     n_labeled=1, input_digest="tampered", note=case)
    before = state(engine)
    try:
        classify.publish(engine, settings, promote=model_id, reclassify_all=True)
        held, detail = False, "published"
    except store.ModelRefused as e:
        msg = str(e)
        held = (f"model version {model_id} is refused" in msg and words in msg
                and "\n" not in msg)
        detail = msg[:200]
    after = state(engine)
    held = held and after == before
    if after != before:
        detail += " (the catalog changed)"
    assert record(AREA, f"promote: {case}", held, detail), detail


def test_a_tampered_active_model_is_refused(catalog, engine, record):
    settings, active = catalog
    bad = tamperings(active["model"])["negative mixture weights"][0]
    with engine.begin() as conn:
        conn.execute(text("UPDATE catalog.fitted_model SET model = CAST(:m AS jsonb) "
                          "WHERE model_id = :id"), {"m": json.dumps(bad), "id": active["model_id"]})
    try:
        before = state(engine)
        try:
            classify.publish(engine, settings, reclassify_all=True)
            held, detail = False, "published"
        except store.ModelRefused as e:
            held, detail = f"model version {active['model_id']} is refused" in str(e), str(e)
        held = held and state(engine) == before
        assert record(AREA, "publish with a tampered active model", held, detail), detail
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE catalog.fitted_model SET model = CAST(:m AS jsonb) "
                              "WHERE model_id = :id"),
                         {"m": json.dumps(active["model"]), "id": active["model_id"]})


def test_feature_sql_comes_only_from_the_known_columns(catalog, engine, record):
    before = state(engine)
    with engine.connect() as conn:
        try:
            store.detection_features(conn, ["hard_hm", INJECTION])
            held = False
        except store.UnknownFeature:
            held = True
    held = held and state(engine) == before
    assert record(AREA, "detection_features refuses a name outside the column list", held)


def test_overflowing_probabilities_get_a_reason(catalog, record):
    """Defence in depth: if a model in memory still overflows, no bare NaN probabilities."""
    _, active = catalog
    model = ClusterThenLabel.from_dict(active["model"])
    model.class_pinv_ = np.where(np.isnan(model.class_pinv_), np.nan, 1e308)
    X = generate_sample(50, seed=3).detections
    from classifier import derive_features

    out = model.predict(derive_features(X)[model.features_])
    nan = out[list(model.classes_)].isna().any(axis=1)
    held = bool(nan.any()) and out.loc[nan, "reason"].notna().all()
    assert record(AREA, "non-finite probabilities always have a reason", held)


def test_cli_says_one_line(catalog, engine, db_url, record, prefect_api):
    """`cscat reclassify --model N` with a tampered model: one `cscat: error:` line, exit 2
    (its flow runs under the session's real Prefect server: no temporary one to start)."""
    _, active = catalog
    tampered, _ = tamperings(active["model"])["SQL in a feature name"]
    with engine.begin() as conn:
        model_id = store.store_model(conn, model=tampered, params=active["params"],
                                     validation=None, n_detections=1, n_labeled=1,
                                     input_digest="tampered", note="cli")
    before = state(engine)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(CSCAT_DATABASE_URL=db_url, PYTHONPATH=str(PROJECT), PREFECT_API_URL=prefect_api)
    run = subprocess.run([sys.executable, "-m", "cscat", "reclassify", "--model", str(model_id)],
                         env=env, capture_output=True, text=True, timeout=600, cwd=PROJECT)
    err = [line for line in run.stderr.splitlines() if line.startswith("cscat: error:")]
    held = (run.returncode == 2 and len(err) == 1 and "Traceback" not in run.stderr
            and f"model version {model_id} is refused" in err[0] and state(engine) == before)
    assert record(AREA, "cscat reclassify --model <tampered>: one error line, exit 2", held,
                  (err[0] if err else run.stderr[-300:])), run.stderr[-2000:]
