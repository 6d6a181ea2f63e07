"""Reading detection and SIMBAD tables from files."""

from __future__ import annotations

import pandas as pd
import pytest

from ingest import IngestError
from ingest.columns import STORED_NAMES, conform
from ingest.files import read_simbad_table, read_table, write_table
from ingest.validate import validate_detections


def test_real_csc_votable(example_vot):
    raw = read_table(example_vot)
    assert raw.attrs["ignored_columns"] == ["separation", "err_ellipse_r1", "err_ellipse_ang",
                                            "var_sigma_u"]
    df = conform(raw)
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
    got = conform(read_table(write_table(want, tmp_path / f"det{suffix}")))
    pd.testing.assert_frame_equal(got, want, check_exact=True)


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


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".fits", ".vot"])
def test_one_bad_value_rejects_its_row_only(tmp_path, sample, suffix):
    df = conform(sample.detections.head(3)).astype({"obsid": str, "theta": str})
    df.loc[1, "obsid"] = "four"  # text columns: every format can hold these
    df.loc[2, "theta"] = "1.5e400"
    v = validate_detections(read_table(write_table(df, tmp_path / f"v{suffix}")))
    assert v.rejected["row"].tolist() == [2, 3]
    assert v.rejected["reason"].tolist() == ["obsid=four is not a number",
                                             "theta=1.5e400 is not finite"]
    assert v.good["name"].tolist() == [df.loc[0, "name"]]


def test_csc_export_names_and_ignored_columns(tmp_path, sample):
    det = conform(sample.detections.head(4))
    export = det.rename(columns={"flux_aper_b_lolim": "flux_aper_lolim_b",
                                 "flux_aper_b_hilim": "flux_aper_hilim_b",
                                 "likelihood": "likelihood_b"}).assign(
        separation=0.1, src_area_b=3.0, likelihood=99.0)
    raw = read_table(write_table(export, tmp_path / "e.csv"))
    assert raw.attrs["ignored_columns"] == ["likelihood (superseded by likelihood_b)",
                                            "separation", "src_area_b"]
    pd.testing.assert_frame_equal(conform(raw), det, check_exact=True)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".fits", ".vot"])
def test_duplicate_column_names_are_an_error(tmp_path, sample, suffix):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from astropy.table import Table

    df = conform(sample.detections.head(2))[["name", "ra", "dec", "obsid"]]
    path = tmp_path / f"d{suffix}"
    if suffix == ".csv":
        path.write_text("name,ra,dec,obsid,RA\n" + "".join(
            f"{r.name},{r.ra},{r.dec},{r.obsid},1.0\n" for r in df.itertuples()))
    elif suffix == ".parquet":
        t = pa.Table.from_pandas(df.astype({"name": str}), preserve_index=False)
        pq.write_table(t.append_column("ra", pa.array([1.0, 2.0])), path)
    elif suffix == ".fits":
        t = Table.from_pandas(df.astype({"name": str}))
        t["RA"] = [1.0, 2.0]
        t.write(path)
    else:
        body = write_table(df, tmp_path / "ok.vot").read_bytes()
        path.write_bytes(body.replace(b'name="obsid"', b'name="ra"'))
    with pytest.raises(IngestError, match=r"duplicate column names 'ra', '(ra|RA)'"):
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
