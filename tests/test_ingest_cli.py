"""Issue 4 acceptance: ``cscat ingest file`` into PostgreSQL, run in-process.

``cscat.cli.main([...])`` runs against this module's own migrated database (the ``db_url``
fixture sets ``CSCAT_DATABASE_URL``). State isolation: the autouse ``clean`` fixture empties
the catalog tables (``TRUNCATE ... RESTART IDENTITY CASCADE``) before each test.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from cscat.cli import main
from ingest.files import write_table
from ingest.sample import Sample, generate_sample

CATALOG_TABLES = ("ingest_run", "observation", "rejected_row", "csc_source", "csc_detection",
                  "simbad_match", "simbad_match_history")
KEY = ["name", "obsid", "obi", "region_id"]
FLOATS = ["ra", "dec", "det_ra", "hard_hm", "hard_ms", "var_mean_b", "var_sigma_b",
          "flux_aper_b", "powlaw_gamma", "gti_mjd_obs", "var_prob_s"]


@pytest.fixture(scope="module")
def sample() -> Sample:
    return generate_sample(60, seed=5)


@pytest.fixture(autouse=True)
def clean(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "TRUNCATE " + ", ".join(f"catalog.{t}" for t in CATALOG_TABLES)
            + " RESTART IDENTITY CASCADE")


def query(engine: Engine, sql: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(text(sql), conn, params=params)


def scalar(engine: Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def stored(engine: Engine) -> pd.DataFrame:
    return query(engine, "SELECT s.name, s.ra, s.dec, s.likelihood_class, d.* "
                         "FROM catalog.csc_detection d "
                         "JOIN catalog.csc_source s USING (source_id) "
                         "ORDER BY s.name, d.obsid, d.obi, d.region_id")


def ingest_file(path: Path, capsys) -> tuple[int, str, str]:
    rc = main(["ingest", "file", str(path)])
    out = capsys.readouterr()
    return rc, out.out, out.err


# -- 6. the real CSC 2.1 VOTable example ----------------------------------------------------
def test_real_votable_example_loads_once(engine, shared_data, capsys):
    path = shared_data / "csc21_tap_example.vot"
    if not path.exists():
        pytest.skip(f"{path} is not present")
    rc, out, err = ingest_file(path, capsys)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"ingest file from {path}: completed (run ")
    assert "new detections: 1   new sources: 1   duplicates skipped: 0   rejected: 0" in out

    got = stored(engine)
    assert len(got) == 1
    row = got.iloc[0]
    assert row["name"] == "2CXO J004307.5-092302" and row["obsid"] == 4884
    assert row["hard_ms"] == pytest.approx(-0.13616489693941, rel=1e-13)
    assert row["hard_hm"] == pytest.approx(0.23110555902561, rel=1e-13)
    assert row["var_prob_b"] == pytest.approx(0.50165526192568, rel=1e-13)
    assert row["var_mean_b"] == pytest.approx(0.0038287120278008738, rel=1e-13)
    assert row["var_max_b"] == pytest.approx(0.007166455525771607, rel=1e-13)
    assert row["var_min_b"] == pytest.approx(0.003322752613583475, rel=1e-13)
    assert row["var_sigma_b"] == pytest.approx(0.0007008065460605226, rel=1e-13)
    assert row["ra"] == pytest.approx(10.781298349312351, rel=1e-13)
    # derived features, computed at ingest and stored beside the raw columns
    assert row["var_ratio_b"] == pytest.approx(row["var_sigma_b"] / row["var_mean_b"], rel=1e-12)
    assert row["var_ratio_b"] == pytest.approx(0.183039764, rel=1e-8)
    assert row["var_newq_b"] == pytest.approx(
        (row["var_max_b"] + row["var_min_b"]) / 2 / row["var_mean_b"], rel=1e-12)
    assert row["var_newq_b"] == pytest.approx(1.369808968, rel=1e-8)
    assert pd.isna(row["obi"]) and pd.isna(row["region_id"])  # not in this file

    rc, out, err = ingest_file(path, capsys)
    assert rc == 0, err
    assert "new detections: 0   new sources: 0   duplicates skipped: 1   rejected: 0" in out
    assert scalar(engine, "SELECT count(*) FROM catalog.csc_detection") == 1
    assert scalar(engine, "SELECT count(*) FROM catalog.csc_source") == 1
    runs = query(engine, "SELECT status, n_new_detections, n_duplicates FROM catalog.ingest_run "
                         "ORDER BY run_id")
    assert runs.values.tolist() == [["completed", 1, 0], ["completed", 0, 1]]


# -- 7. bad rows are rejected with reasons; malformed files write nothing -------------------
def test_bad_rows_are_rejected_with_reasons(engine, sample, tmp_path, capsys):
    df = sample.detections.iloc[:30].reset_index(drop=True).copy()
    assert not df.duplicated(KEY).any()
    df.loc[3, "hard_hm"] = 1.7
    df.loc[7, "var_mean_b"] = -0.25
    df.loc[11, "var_prob_s"] = 1.5
    df["obsid"] = df["obsid"].astype("Int64")
    df.loc[15, "obsid"] = pd.NA
    df = pd.concat([df, df.iloc[[20]]], ignore_index=True)  # row 31 repeats row 21
    path = write_table(df, tmp_path / "bad.csv")

    rc, out, err = ingest_file(path, capsys)
    assert rc == 0, err
    assert "new detections: 26   new sources:" in out
    assert "duplicates skipped: 1   rejected: 4" in out
    for reason in ("hard_hm outside [-1, 1]", "var_mean_b outside [0, inf]",
                   "var_prob_s outside [0, 1]", "obsid missing"):
        assert f"rejected      1 × {reason}" in out
    assert "catalog.rejected_row where ingest_run_id = 1" in out

    rej = query(engine, "SELECT row_number, natural_key, reason FROM catalog.rejected_row "
                        "ORDER BY row_number")
    # row numbers: 1-based data rows of the file (the header is not counted)
    assert rej["row_number"].tolist() == [4, 8, 12, 16]
    reasons = rej["reason"].tolist()
    assert reasons[0].startswith(f"row 4 ({df.loc[3, 'name']}, obsid {df.loc[3, 'obsid']}): ")
    assert reasons[0].endswith("hard_hm=1.7 outside [-1, 1]")
    assert reasons[1].endswith("var_mean_b=-0.25 outside [0, inf]")
    assert reasons[2].endswith("var_prob_s=1.5 outside [0, 1]")
    assert reasons[3].endswith("obsid missing") and "obsid ?" in reasons[3]
    assert rej["natural_key"][0].startswith(df.loc[3, "name"] + " obsid=")

    got = stored(engine)
    good = df.drop(index=[3, 7, 11, 15, 30])
    assert len(got) == len(good) == 26
    assert not got.duplicated(KEY).any()
    assert set(zip(got["name"], got["obsid"], strict=True)) == \
        set(zip(good["name"], good["obsid"].astype(int), strict=True))
    run = query(engine, "SELECT status, n_new_detections, n_duplicates, n_rejected "
                        "FROM catalog.ingest_run").iloc[0].tolist()
    assert run == ["completed", 26, 1, 4]


def _truncated_parquet(sample: Sample, tmp_path: Path) -> Path:
    full = write_table(sample.detections.iloc[:20], tmp_path / "full.parquet")
    data = full.read_bytes()
    path = tmp_path / "truncated.parquet"
    path.write_bytes(data[: len(data) // 2])
    return path


def _garbage_vot(sample: Sample, tmp_path: Path) -> Path:
    path = tmp_path / "garbage.vot"
    path.write_text('<?xml version="1.0"?>\n<VOTABLE><RESOURCE><TABLE>oops <<< & not xml')
    return path


@pytest.mark.parametrize("make", [_truncated_parquet, _garbage_vot])
def test_malformed_file_is_one_error_line_and_writes_nothing(engine, sample, tmp_path, capsys,
                                                             make):
    path = make(sample, tmp_path)
    rc, out, err = ingest_file(path, capsys)
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"cscat: error: {path}: not a readable ")
    assert "Traceback" not in err
    # the file is read before any run starts: no run record, no rows
    for table in ("csc_detection", "csc_source", "ingest_run", "rejected_row"):
        assert scalar(engine, f"SELECT count(*) FROM catalog.{table}") == 0, table


# -- 8. Parquet, FITS and CSV round trips load identical values -----------------------------
@pytest.mark.parametrize("suffix", [".parquet", ".fits", ".csv"])
def test_round_trip_loads_identical_values(engine, sample, tmp_path, capsys, suffix):
    df = sample.detections.iloc[10:70].reset_index(drop=True)
    # a NaN in an optional float column, to check NULL survives the round trip
    df = df.assign(powlaw_gamma=df["powlaw_gamma"].where(df.index != 5))
    path = write_table(df, tmp_path / f"slice{suffix}")
    rc, out, err = ingest_file(path, capsys)
    assert rc == 0, err
    assert f"new detections: {len(df)}   new sources: {df['name'].nunique()}" in out

    got = stored(engine).set_index(KEY)
    want = df.set_index(KEY).loc[got.index]
    assert len(got) == len(df)
    for col in FLOATS:
        a, b = got[col].to_numpy(float), want[col].to_numpy(float)
        assert np.array_equal(a, b, equal_nan=True), col  # exact, not approximately
    assert math.isnan(got.loc[tuple(df.loc[5, KEY]), "powlaw_gamma"])
    assert (got["match_type"] == want["match_type"]).all()
    assert (got["likelihood_class"] == want["likelihood_class"]).all()


# -- issue 9 §2/§4/§6: CSC export names, derived columns, one bad value rejects one row ----
def test_csc_export_names_load_and_ignored_columns_are_reported(engine, sample, tmp_path,
                                                                capsys):
    df = sample.detections.iloc[:12].reset_index(drop=True)
    export = df.rename(columns={"flux_aper_b_lolim": "flux_aper_lolim_b",
                                "flux_aper_b_hilim": "flux_aper_hilim_b",
                                "likelihood": "likelihood_b"}).assign(separation=0.2,
                                                                      src_area_b=4.0)
    rc, out, err = ingest_file(write_table(export, tmp_path / "export.vot"), capsys)
    assert rc == 0, err
    assert "ignored 2 column(s) cscat does not store: separation, src_area_b" in out
    got = stored(engine).set_index(KEY)
    want = df.set_index(KEY).loc[got.index]
    for col in ("flux_aper_b_lolim", "flux_aper_b_hilim", "likelihood"):
        assert np.array_equal(got[col].to_numpy(float), want[col].to_numpy(float),
                              equal_nan=True), col


def test_derived_columns_are_kept_when_the_raw_ones_are_absent(engine, sample, tmp_path,
                                                               capsys):
    df = sample.detections.iloc[:10].reset_index(drop=True)
    raw = [f"var_{k}_{b}" for k in ("sigma", "mean", "min", "max") for b in "bhms"]
    given = df.drop(columns=raw).assign(
        var_ratio_b=np.linspace(0.1, 1.0, 10), var_ratio_h=0.25, var_ratio_s=np.nan,
        var_newq_b=1.5)
    rc, out, err = ingest_file(write_table(given, tmp_path / "derived.parquet"), capsys)
    assert rc == 0, err
    assert "ignored" not in out
    got = query(engine, "SELECT var_ratio_b, var_ratio_h, var_ratio_s, var_newq_b, var_mean_b "
                        "FROM catalog.csc_detection ORDER BY var_ratio_b")
    assert got["var_ratio_b"].tolist() == given["var_ratio_b"].tolist()
    assert (got["var_ratio_h"] == 0.25).all() and got["var_ratio_s"].isna().all()
    assert (got["var_newq_b"] == 1.5).all() and got["var_mean_b"].isna().all()


def test_computed_derived_values_win_over_given_ones(engine, sample, tmp_path, capsys):
    df = sample.detections.iloc[:5].reset_index(drop=True).assign(var_ratio_b=99.0)
    rc, _, err = ingest_file(write_table(df, tmp_path / "both.csv"), capsys)
    assert rc == 0, err
    got = query(engine, "SELECT var_ratio_b, var_sigma_b / var_mean_b AS r "
                        "FROM catalog.csc_detection")
    assert np.allclose(got["var_ratio_b"], got["r"], rtol=1e-12)


@pytest.mark.parametrize("suffix", [".csv", ".vot", ".fits", ".parquet"])
def test_one_unparsable_number_rejects_that_row_only(engine, sample, tmp_path, capsys, suffix):
    df = sample.detections.iloc[:8].reset_index(drop=True).astype({"theta": str})
    df.loc[5, "theta"] = "far away"
    rc, out, err = ingest_file(write_table(df, tmp_path / f"one{suffix}"), capsys)
    assert rc == 0, err
    assert "new detections: 7" in out and "rejected: 1" in out
    assert "rejected      1 × theta is not a number" in out
    rej = query(engine, "SELECT row_number, reason FROM catalog.rejected_row")
    assert rej.values.tolist() == [[6, f"row 6 ({df.loc[5, 'name']}, obsid "
                                       f"{df.loc[5, 'obsid']}): theta='far away' is not a number"]]


def test_duplicate_column_names_are_one_error_line(engine, sample, tmp_path, capsys):
    df = sample.detections.iloc[:3]
    path = write_table(df, tmp_path / "dup.csv")
    text_ = path.read_text().splitlines()
    path.write_text("\n".join([text_[0] + ",Hard_HM"] + [t + ",0.5" for t in text_[1:]]) + "\n")
    rc, out, err = ingest_file(path, capsys)
    assert rc == 2 and out == ""
    assert err.strip() == (f"cscat: error: {path}: duplicate column names 'hard_hm', 'Hard_HM':"
                           " each column must be named once (names are compared ignoring case)")
    assert scalar(engine, "SELECT count(*) FROM catalog.ingest_run") == 0
