"""``cscat export`` as a user runs it: every format, provenance, documented columns, the
version and family checks, and the round trip of a detection table through
``cscat ingest file`` into a fresh catalog."""

from __future__ import annotations

import json
import math
import warnings

import pandas as pd
import pytest
from astropy.io.votable import parse
from astropy.table import Table
from sqlalchemy import create_engine, text

from cscat.cli import main
from db import column_docs as cd
from db import engine as dbe
from tests.conftest import create_database

SUFFIX = {"votable": "vot", "fits": "fits", "parquet": "parquet", "csv": "csv", "ecsv": "ecsv"}
READ = {"votable": "votable", "fits": "fits", "parquet": "parquet", "csv": "ascii.csv",
        "ecsv": "ascii.ecsv"}


def read(path, fmt) -> Table:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Table.read(path, format=READ[fmt])


def provenance(path, fmt) -> dict:
    if fmt == "votable":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {i.name: i.value for i in parse(str(path)).resources[0].infos}
    if fmt == "csv":
        return json.loads(path.with_name(path.name + ".json").read_text())["provenance"]
    return {k.lower(): v for k, v in read(path, fmt).meta.items()}


def comments(engine) -> dict:
    with engine.connect() as conn:
        return {(v, c): t for v, c, t in cd.view_columns(conn)}


def scalar_rows(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_export_sources_in_every_format(vo_env, tmp_path, capsys, fmt):
    path = tmp_path / f"sources.{SUFFIX[fmt]}"
    assert main(["export", "--format", fmt, "--output", str(path)]) == 0
    out = capsys.readouterr().out
    eng = vo_env["engine"]
    current = dict(scalar_rows(eng, "SELECT name, adopted_class FROM catalog.source_class"))
    assert out.startswith(f"exported {len(current):,} sources (") and "catalog version 2" in out
    t = read(path, fmt)
    assert len(t) == len(current)
    got = {n: (None if (c is None or (hasattr(c, "mask") and c.mask) or c == "") else c)
           for n, c in zip(t["name"], t["adopted_class"].filled(""), strict=True)}
    assert got == current
    prov = provenance(path, fmt)
    assert int(prov["catalog_version"]) == 2 and prov["family"] == "ctl"
    assert str(prov["model_versions"]) == "1" and "catalog.source_class" in prov["query"]
    assert prov["created"][:4] == "2026" or prov["created"][:2] == "20"
    assert json.loads(prov["models"])[0]["model_id"] == 1
    want = comments(eng)
    if fmt == "csv":
        cols = json.loads(path.with_name(path.name + ".json").read_text())["columns"]
        descs = {c: v["description"] for c, v in cols.items()}
        units = {c: v["unit"] for c, v in cols.items()}
    else:
        descs = {c: t[c].description for c in t.colnames}
        units = {c: (str(t[c].unit) if t[c].unit else None) for c in t.colnames}
    assert set(descs) == {c for v, c in want if v == "source_class_history"}
    for c, d in descs.items():  # the same text as psql \d+ shows
        assert " ".join(d.split()) == want[("source_class_history", c)], c
    assert units["ra"] == "deg" and units["mean_yso"] is None


def test_export_as_of_a_version(vo_env, tmp_path, capsys):
    path = tmp_path / "v1.parquet"
    assert main(["export", "--version", "1", "--output", str(path)]) == 0
    t = read(path, "parquet")
    want = dict(scalar_rows(vo_env["engine"], "SELECT name, adopted_class FROM "
                            "catalog.source_class_as_of(1)"))
    assert len(t) == len(want) < len(scalar_rows(vo_env["engine"],
                                                 "SELECT 1 FROM catalog.source_class"))
    assert {n: (None if c == "" else c) for n, c in
            zip(t["name"], t["adopted_class"].filled(""), strict=True)} == want
    assert t.meta["catalog_version"] == 1 and "source_class_as_of" in t.meta["query"]
    assert json.loads(t.meta["query_parameters"]) == {"version": 1}


@pytest.mark.parametrize(("args", "words"), [
    (["--family", "gbm"], "--family 'gbm': the catalog holds results of ctl only"),
    (["--version", "99"], "catalog version 99 does not exist; the versions are 1 to 2"),
    (["--table", "detections", "--version", "1"], "current catalog version (2) only"),
    (["--format", "votable", "--output", "/nonexistent/dir/x.vot"], "cannot write"),
    (["--output", "x.txt"], "cannot tell the format from .txt suffix"),
])
def test_export_errors_are_one_line(vo_env, tmp_path, capsys, args, words):
    if "--output" not in args:
        args = [*args, "--output", str(tmp_path / "x.vot")]
    assert main(["export", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cscat: error: ") and words in err and len(err.splitlines()) == 1


def test_family_of_the_catalog_is_accepted(vo_env, tmp_path):
    assert main(["export", "--family", "ctl", "--output", str(tmp_path / "x.ecsv")]) == 0


DETECTION_COLUMNS = [c for c in cd.VIEWS["detection"]
                     if c not in ("detection_id", "source_id", "ingest_run_id", "ingested_at",
                                  "ingest_kind")]
SOURCE_COLUMNS = ["name", "ra", "dec", "err_ellipse_r0", "significance", "likelihood_class"]


def detections(engine) -> pd.DataFrame:
    cols = ", ".join(f'd."{c}"' for c in DETECTION_COLUMNS)
    src = ", ".join(f's."{c}" AS "src_{c}"' for c in SOURCE_COLUMNS)
    with engine.connect() as conn:
        frame = pd.read_sql(text(f"SELECT {cols}, {src} FROM catalog.detection d "
                                 "JOIN catalog.csc_source s USING (source_id)"), conn)
    return frame.sort_values(["name", "obsid", "obi", "region_id"]).reset_index(drop=True)


def same(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """Columns whose values differ (NULL equals NULL; floats exactly)."""
    bad = []
    for c in a.columns:
        for x, y in zip(a[c], b[c], strict=True):
            xn = x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA
            yn = y is None or (isinstance(y, float) and math.isnan(y)) or y is pd.NA
            if xn != yn or (not xn and x != y):
                bad.append(f"{c}: {x!r} != {y!r}")
                break
    return bad


@pytest.mark.parametrize("fmt", ["votable", "fits", "parquet", "csv"])
def test_exported_detections_reingest_into_a_fresh_catalog(vo_env, pg_server, tmp_path,
                                                           capsys, monkeypatch, fmt):
    path = tmp_path / f"detections.{SUFFIX[fmt]}"
    assert main(["export", "--table", "detections", "--output", str(path)]) == 0
    original = detections(vo_env["engine"])
    assert "detections" in capsys.readouterr().out
    t = read(path, fmt)
    assert len(t) == len(original)
    if fmt == "csv":  # plain CSV: the descriptions are in the sidecar
        desc = json.loads(path.with_name(path.name + ".json").read_text())["columns"]
        assert desc["p_yso"]["description"] == cd.comment(cd.doc("detection_class", "p_yso"))
    else:
        assert " ".join(t["p_yso"].description.split()) == cd.comment(
            cd.doc("detection_class", "p_yso"))
    fresh = create_database(pg_server, f"t_vo_roundtrip_{fmt}")
    monkeypatch.setenv("CSCAT_DATABASE_URL", fresh)
    dbe.reset()
    try:
        assert main(["ingest", "file", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"new detections: {len(original)}" in out and "rejected: 0" in out
        eng = create_engine(fresh)
        again = detections(eng)
        eng.dispose()
    finally:
        dbe.reset()
    assert len(again) == len(original)
    assert same(original, again) == []


def test_a_streamed_export_in_many_chunks_equals_one_fetch(vo_env, monkeypatch):
    from db import export, vo

    with dbe.reader_connection() as conn:
        sql, _ = vo.detections_query()
        whole = vo.fetch(conn, sql)
        monkeypatch.setattr(vo, "CHUNK_ROWS", 100)
        table = export.build(conn, table="detections")
    assert len(whole) > 900 and len(table) == len(whole)
    streamed = table.to_pandas()
    for c in ("name", "obsid", "hard_hm", "p_yso", "predicted_class"):
        a, b = whole[c].astype(object), streamed[c].astype(object)
        assert [None if pd.isna(x) else x for x in a] == [None if pd.isna(x) else x
                                                          for x in b], c
