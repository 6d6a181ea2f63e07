"""Reading detection and SIMBAD tables from files."""

from __future__ import annotations

import pandas as pd
import pytest

from ingest import IngestError
from ingest.columns import STORED_NAMES, conform
from ingest.files import read_simbad_table, read_table, write_table


def test_real_csc_votable(example_vot):
    df = read_table(example_vot)
    assert list(df.columns) == STORED_NAMES and len(df) == 1
    row = df.iloc[0]
    assert row["name"] == "2CXO J004307.5-092302" and row["obsid"] == 4884
    assert row["hard_ms"] == pytest.approx(-0.13616489693941, abs=1e-14)
    assert row["hard_hm"] == pytest.approx(0.23110555902561, abs=1e-14)
    assert row["ra"] == pytest.approx(10.781298349312351)  # master position
    assert row["var_min_b"] == pytest.approx(0.003322752613583475)
    assert row["likelihood_class"] == "TRUE"
    assert pd.isna(row["obi"]) and pd.isna(row["region_id"]) and pd.isna(row["det_ra"])
    assert pd.isna(row["powlaw_gamma"]) and pd.isna(row["bb_kt"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".fits", ".vot"])
def test_round_trip(tmp_path, sample, suffix):
    want = conform(sample.detections.head(300))
    got = read_table(write_table(want, tmp_path / f"det{suffix}"))
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)


def test_missing_required_column(tmp_path, sample):
    path = write_table(sample.detections.head(5).drop(columns=["obsid"]), tmp_path / "x.csv")
    with pytest.raises(IngestError, match=r"x\.csv: missing required column\(s\) obsid"):
        read_table(path)


@pytest.mark.parametrize("content, match", [
    (b"<VOTABLE><RESOURCE><TABLE><FIELD", "not a readable votable"),
    (b"SIMPLE  =  nonsense", "not a readable fits"),
])
def test_malformed_files(tmp_path, content, match):
    suffix = ".vot" if b"VOTABLE" in content else ".fits"
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(IngestError, match=match) as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_bad_value_names_the_column(tmp_path, sample):
    df = sample.detections.head(3).astype({"obsid": object})
    df.loc[1, "obsid"] = "four"
    path = write_table(df, tmp_path / "v.csv")
    with pytest.raises(IngestError, match="obsid"):
        read_table(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(IngestError, match="unknown table format"):
        read_table(tmp_path / "a.txt")
    with pytest.raises(IngestError, match="no such file"):
        read_table(tmp_path / "a.csv")


def test_simbad_export_spellings(tmp_path):
    df = pd.DataFrame({
        "Name": ["2CXO J000001.0+000001", "2CXO J000001.0+000001", "2CXO J000002.0+000002",
                 "2CXO J000003.0-000003"],
        "MAIN_ID": ["far", "near", "", "* alf"],
        "main_type": ["X", "QSO", "", "Star"],
        "angDist": [0.9, 0.2, None, 0.5],
    })
    got = read_simbad_table(write_table(df, tmp_path / "s.csv"))
    assert got["name"].tolist() == ["2CXO J000001.0+000001", "2CXO J000002.0+000002",
                                    "2CXO J000003.0-000003"]
    assert got["main_id"].tolist()[0] == "near" and pd.isna(got["main_id"][1])
    assert got["otype"].tolist()[2] == "Star"
    with pytest.raises(IngestError, match="no otype column"):
        read_simbad_table(write_table(df.drop(columns="main_type"), tmp_path / "t.csv"))
