"""Real data classifies, or says why not (skipped without ``../shared``).

The real CSC 2.1 file has no names, positions or ObsIDs (added here, one detection per row,
named in file order so that the catalog's order is the file's) and no var_min_b/var_max_b,
so var_newq_b cannot be derived. On a catalog of only its rows:

* refit with the paper's 12 features refuses with the real cause (var_newq_b), not a
  transform detail, and stores nothing;
* refit with ``features = "paper11"`` is promoted and publishes; the validation figures it
  stores equal ``python -m classifier.validate_file`` on the same file (the whole report:
  accuracies, confusion matrices, counts);
* with generated sample detections beside them, a paper12 refit cannot classify the real
  rows: it is not promoted and says why with a count per reason; forced in anyway, the CLI
  counts those rows as unclassified, never as classified.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from classifier import derive_features
from cscat import commands
from db import ingest_store, oracle, report
from db.load import load_detections
from db.settings import Settings
from ingest import files
from ingest.sample import generate_sample
from ingest.sample_source import SampleCsc, SampleSimbad
from ingest.sky import csc_names
from ingest.validate import validate_detections
from pipeline import classify, ingest
from pipeline.errors import RefitError

PROJECT = Path(__file__).resolve().parents[1]
FILE = "csc21_sources_simbad.csv"
RATIOS = ["var_ratio_b", "var_ratio_h", "var_ratio_s"]


def q(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


@pytest.fixture(scope="module")
def real(shared_data, tmp_path_factory):
    """The real file with names (increasing in file order), positions and ObsIDs."""
    df = pd.read_csv(shared_data / FILE)
    i = np.arange(len(df))
    df["ra"] = 0.01 + 0.02 * i  # 4.8 s of RA apart: distinct names in file order
    df["dec"] = -89.5
    df["name"] = csc_names(df["ra"], df["dec"])
    df["obsid"] = 1 + i // 100
    df["obi"] = 0
    df["region_id"] = i % 100 + 1
    assert df["name"].is_monotonic_increasing and df["name"].is_unique
    out = tmp_path_factory.mktemp("real")
    simbad = pd.DataFrame({"name": df["name"], "main_id": "obj " + df["row_id"].astype(str),
                           "main_type": df["simbad_otype"], "angDist": 0.5})
    return df, files.write_table(simbad, out / "simbad.csv")


@pytest.fixture(scope="module")
def catalog(engine, real):
    """The real rows in the catalog, through the db layer (``ingest file`` does not yet take
    the derived var_ratio_* columns), and their SIMBAD types through ``ingest simbad-file``."""
    df, simbad_csv = real
    checked = validate_detections(df)
    assert checked.rejected.empty and len(checked.good) == len(df)
    # as ingest does (derive_features), then the file's own var_ratio_* (var_newq_b stays NaN)
    frame = derive_features(checked.good).assign(**{c: df[c].to_numpy() for c in RATIOS})
    assert frame["var_newq_b"].isna().all()
    run = ingest_store.start_run(engine, "file", FILE)
    with engine.begin() as conn:
        counts = load_detections(conn, frame, run)
    ingest_store.finish_run(engine, run, "completed")
    assert counts.new_detections == len(df)
    sim = ingest.ingest_simbad_frame(engine, files.read_simbad_table(simbad_csv),
                                     str(simbad_csv))
    assert sim.simbad["new"] == len(df)
    return df


def test_paper12_on_real_rows_names_the_real_cause(engine, catalog):
    with pytest.raises(RefitError) as err:
        classify.refit(engine, Settings(features="paper12"))
    msg = str(err.value)
    n = f"{len(catalog):,}"
    assert f"var_newq_b is missing in {n} of {n}" in msg and '"paper11"' in msg, msg
    assert "bb_kt" not in msg
    assert q(engine, "SELECT count(*) FROM catalog.fitted_model") == 0


def test_paper11_validation_equals_validate_file(engine, catalog, shared_data, tmp_path):
    settings = Settings(features="paper11", n_components=6, random_state=42)
    fitted = classify.refit(engine, settings)
    assert fitted.promote, fitted.reason
    assert fitted.n_unclassifiable == 0 and fitted.n_detections == len(catalog)
    release = classify.publish(engine, settings, promote=fitted.model_id)
    assert release is not None and release.detections_classified == len(catalog)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT validation FROM catalog.model_version "
                                   "WHERE model_id = :m"), {"m": fitted.model_id}).scalar_one()
    out = tmp_path / "report.json"
    features = classify.model_params(settings)["features"]
    run = subprocess.run([sys.executable, "-m", "classifier.validate_file",
                          str(shared_data / FILE), "--features", *features,
                          "--json", str(out)], capture_output=True, text=True, cwd=PROJECT,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    reference = json.loads(out.read_text())
    for block in ("fine", "aggregated"):
        assert stored[block]["accuracy"] == reference[block]["accuracy"]
        assert stored[block]["counts"] == reference[block]["counts"]
        assert stored[block]["confusion"] == reference[block]["confusion"]
    assert stored == reference
    det = report.release_detections(engine, release.catalog_version)
    assert det["unclassified"] == 0 and det["classified"] == len(catalog)
    # the oracle (`cscat check`) on the real-data catalog: every published source result
    # recomputed from the stored detections and results
    checked = oracle.check(engine, settings)
    assert checked.ok, oracle.format_differences(checked)
    assert checked.n_sources == len(catalog), checked.verdict()
    # switching the configured feature set makes `update` refit
    assert classify.needs_refit(engine, settings)[0] is False
    again, why = classify.needs_refit(engine, Settings(features="paper12"))
    assert again and "paper12" in why


def test_paper12_with_sample_rows_is_not_promoted_and_unclassified_is_not_classified(
        engine, catalog, capsys):
    sample = generate_sample(600, seed=8)
    ingest.ingest_csc(engine, SampleCsc(sample))
    ingest.ingest_simbad(engine, SampleSimbad(sample, 1), refresh_days=None)
    n_sample = q(engine, "SELECT count(*) FROM catalog.csc_detection") - len(catalog)
    fitted = classify.refit(engine, Settings(features="paper12", max_unclassifiable_share=0.1))
    n_real = len(catalog)
    assert not fitted.promote
    assert fitted.unclassifiable.get("invalid features: var_newq_b is NaN") == n_real
    assert fitted.n_unclassifiable >= n_real
    assert f"{fitted.n_unclassifiable:,} of {n_real + n_sample:,} detections" in fitted.reason
    assert f"{n_real:,} × invalid features: var_newq_b is NaN" in fitted.reason
    assert q(engine, "SELECT status FROM catalog.fitted_model WHERE model_id = :m",
             m=fitted.model_id) == "rejected"
    commands._print_refit(vars(fitted))
    said = capsys.readouterr().out
    assert "not promoted" in said and "var_newq_b is NaN" in said
    # forced in (as `cscat reclassify --model N` would): real rows are unclassified
    release = classify.publish(engine, Settings(features="paper12"), promote=fitted.model_id,
                               reclassify_all=True)
    det = report.release_detections(engine, release.catalog_version)
    assert det["reasons"]["invalid features: var_newq_b is NaN"] == n_real
    assert det["classified"] + det["unclassified"] == n_real + n_sample
    assert det["classified"] == q(engine, "SELECT count(*) FROM catalog.detection_class "
                                          "WHERE reason IS NULL AND predicted_class IS NOT NULL")
    commands._print_release(release.as_dict())
    said = capsys.readouterr().out
    assert (f"{det['classified']:,} detections classified, {det['unclassified']:,} "
            "unclassified") in said
    assert f"{n_real:>6,} × invalid features: var_newq_b is NaN" in said
