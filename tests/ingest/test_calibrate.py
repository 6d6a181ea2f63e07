"""The calibration scripts rewrite the committed statistics from the real data, byte for
byte, and keep them when the data is absent."""

from __future__ import annotations

import json

import pandas as pd

from ingest import calibrate_counterparts, calibrate_sample


def test_counterpart_stats_are_rewritten_byte_for_byte(shared_data, tmp_path, monkeypatch,
                                                       capsys):
    out = tmp_path / "counterpart_stats.json"
    monkeypatch.setattr(calibrate_counterparts, "OUT", out)
    assert calibrate_counterparts.main(["x", str(shared_data / "muwclass_td")]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    committed = calibrate_counterparts.__file__.replace("calibrate_counterparts.py",
                                                        "counterpart_stats.json")
    assert out.read_bytes() == open(committed, "rb").read()


def test_sample_stats_of_a_part_of_the_real_file(shared_data, tmp_path, monkeypatch):
    """(The whole file takes a minute: ``python -m ingest.calibrate_sample`` rewrites
    ``ingest/sample_stats.json`` unchanged.)"""
    part = tmp_path / "part.csv"
    df = pd.read_csv(shared_data / "csc21_sources_simbad.csv", keep_default_na=False)
    paper = df["simbad_otype"].isin(calibrate_sample.PAPER_TYPES)
    pd.concat([df[paper].groupby("simbad_otype").head(30), df[~paper].head(60)]).to_csv(
        part, index=False)
    out = tmp_path / "sample_stats.json"
    monkeypatch.setattr(calibrate_sample, "OUT", out)
    made = []
    calibrate = calibrate_sample.calibrate
    monkeypatch.setattr(calibrate_sample, "calibrate", lambda p: made.append(calibrate(p))
                        or made[-1])
    assert calibrate_sample.main(["x", str(part)]) == 0
    assert out.read_text() == json.dumps(made[0], separators=(",", ":")) + "\n"
    assert made[0]["format"] == "cscat.sample_stats/2" and set(made[0]["classes"]) == {
        *calibrate_sample.PAPER_TYPES, "other"}


def test_absent_data_keeps_the_statistics(tmp_path, monkeypatch, capsys):
    for mod, name in ((calibrate_counterparts, "counterpart_stats.json"),
                      (calibrate_sample, "sample_stats.json")):
        out = tmp_path / name
        out.write_text("kept")
        monkeypatch.setattr(mod, "OUT", out)
        assert mod.main(["x", str(tmp_path / "absent")]) == 1
        assert capsys.readouterr().err == f"{tmp_path / 'absent'} not found; keeping {out}\n"
        assert out.read_text() == "kept"
