"""Validation of detection and SIMBAD frames."""

from __future__ import annotations

import pandas as pd

from ingest.columns import conform
from ingest.validate import validate_detections, validate_simbad


def test_good_sample_passes(sample):
    v = validate_detections(sample.detections)
    assert v.rejected.empty and v.duplicates == 0
    assert len(v.good) == len(sample.detections)


def test_rejections_have_row_key_and_reason(sample):
    df = conform(sample.detections.head(30))
    df.loc[16, "hard_hm"] = 1.7
    df.loc[3, "var_mean_b"] = -0.5
    df.loc[5, "ks_prob_h"] = 1.2
    df.loc[7, "name"] = "CXO J1234"
    df.loc[9, "obsid"] = pd.NA
    df.loc[11, "ra"] = float("nan")
    v = validate_detections(df)
    assert v.rejected["row"].tolist() == [4, 6, 8, 10, 12, 17]
    msg = v.rejected.set_index("row")["message"]
    name, obsid = df.loc[16, "name"], df.loc[16, "obsid"]
    assert msg[17] == f"row 17 ({name}, obsid {obsid}): hard_hm=1.7 outside [-1, 1]"
    assert "var_mean_b=-0.5 outside [0, inf]" in msg[4]
    assert "ks_prob_h=1.2 outside [0, 1]" in msg[6]
    assert "is not 2CXO Jhhmmss.s±ddmmss" in msg[8]
    assert "obsid missing" in msg[10] and "ra missing" in msg[12]
    assert len(v.good) == 24
    assert v.rejected.loc[v.rejected["row"] == 17, "region_id"].iloc[0] == df.loc[16, "region_id"]


def test_several_reasons_are_joined(sample):
    df = conform(sample.detections.head(2))
    df.loc[0, ["hard_hs", "var_prob_b"]] = [-3.0, 2.0]
    reason = validate_detections(df).rejected["reason"].iloc[0]
    assert reason == "hard_hs=-3 outside [-1, 1]; var_prob_b=2 outside [0, 1]"


def test_duplicates_are_collapsed(sample):
    df = conform(sample.detections.head(10))
    v = validate_detections(pd.concat([df, df.iloc[[2, 2, 5]]], ignore_index=True))
    assert v.duplicates == 3 and len(v.good) == 10 and v.rejected.empty


def test_unparsable_numbers(sample):
    df = sample.detections.head(3).astype({"theta": object})
    df.loc[1, "theta"] = "far"
    v = validate_detections(df)
    assert v.rejected["reason"].tolist() == ["theta=far is not a number"]


def test_validate_simbad(sample):
    df = sample.simbad.copy()
    df.loc[0, "separation_arcsec"] = 3.0
    df.loc[0, "main_id"] = "x"
    df.loc[0, "otype"] = "Star"
    df.loc[1, "name"] = "nope"
    v = validate_simbad(df)
    assert v.rejected["row"].tolist() == [1, 2]
    assert "outside [0, 1]" in v.rejected["reason"][0]
    assert len(v.good) == len(df) - 2


def test_simbad_control_characters_are_rejected(sample):
    df = sample.simbad.copy()
    df.loc[0, ["main_id", "otype", "separation_arcsec"]] = ["M 31\x00", "Galaxy", 0.1]
    v = validate_simbad(df)
    assert v.rejected["row"].tolist() == [1]
    assert v.rejected["reason"][0] == "main_id 'M 31\\x00' contains a control character"
