"""``cscat ingest labels FILE --set NAME``: a curated training set as a label set."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from cscat.cli import main
from db.label_store import label_set
from ingest import IngestError
from ingest.labels import read_labels


def write(tmp_path, rows: str, name: str = "labels.csv"):
    p = tmp_path / name
    p.write_text(rows)
    return p


def test_read_labels_accepts_muwclass_spelling_and_collapses_repeats(tmp_path):
    p = write(tmp_path, "name,Class,ref\n2CXO J000150.5+233015,LM-STAR,x\n"
                        "2CXO J000701.5+730308,NS,y\n2CXO J000150.5+233015,LM-STAR,z\n")
    got = read_labels(p)
    assert got.to_dict("list") == {"name": ["2CXO J000150.5+233015", "2CXO J000701.5+730308"],
                                   "class": ["LM-STAR", "NS"]}


@pytest.mark.parametrize(("rows", "message"), [
    ("name,class\n2CXO J000150.5+233015,AGN\nJ0001+23,AGN\n",
     r"labels.csv: row 2: name is 'J0001\+23'; expected a CSC name 2CXO Jhhmmss.s±ddmmss"),
    ("name,class\n2CXO J000150.5+233015,AGN\n,AGN\n", r"row 2: name is an empty cell"),
    ("name,class\n2CXO J000150.5+233015,\n", r"row 1 \(2CXO J000150.5\+233015\): empty class"),
    ("name,class\n2CXO J000150.5+233015,AGN\n2CXO J000150.5+233015,YSO\n",
     r"row 2 \(2CXO J000150.5\+233015\): class 'YSO' differs from 'AGN' given in row 1"),
    ("source,class\n2CXO J000150.5+233015,AGN\n", r"no name column"),
    ("name,type\n2CXO J000150.5+233015,AGN\n", r"no class column \(tried class, label\)"),
])
def test_bad_rows_are_one_error_naming_file_and_row(tmp_path, rows, message):
    with pytest.raises(IngestError, match=message):
        read_labels(write(tmp_path, rows))


@pytest.fixture
def clean(engine):
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE catalog.label, catalog.label_set, catalog.ingest_run "
                             "RESTART IDENTITY CASCADE")


def test_cli_imports_a_set_reimport_is_a_no_op_other_labels_are_refused(
        engine, clean, tmp_path, capsys):
    p = write(tmp_path, "name,class\n2CXO J000150.5+233015,AGN\n2CXO J000701.5+730308,NS\n")
    assert main(["ingest", "labels", str(p), "--set", "curated"]) == 0
    out = capsys.readouterr().out
    assert "label set 'curated': 2 labels (new); AGN 1, NS 1" in out
    got = label_set("curated", engine)
    assert got[["name", "class"]].to_dict("list") == {
        "name": ["2CXO J000150.5+233015", "2CXO J000701.5+730308"], "class": ["AGN", "NS"]}
    assert got["source_id"].isna().all()  # not ingested: still labelled by name
    assert main(["ingest", "labels", str(p), "--set", "curated"]) == 0
    assert "(unchanged)" in capsys.readouterr().out
    p2 = write(tmp_path, "name,class\n2CXO J000150.5+233015,YSO\n", "other.csv")
    assert main(["ingest", "labels", str(p2), "--set", "curated"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cscat: error: label set 'curated' exists with other labels (2 rows); a "
                   "label set is never changed once stored: import under another --set name"]
    assert label_set("curated", engine)["class"].tolist() == ["AGN", "NS"]
    with engine.connect() as conn:
        kinds = conn.execute(text("SELECT status FROM catalog.ingest_run WHERE kind = 'labels' "
                                  "ORDER BY run_id")).scalars().all()
    assert kinds == ["completed", "completed", "failed"]


def test_cli_bad_row_is_one_line_and_nothing_is_stored(engine, clean, tmp_path, capsys):
    p = write(tmp_path, "name,class\n2CXO J000150.5+233015,AGN\nnot a name,AGN\n")
    assert main(["ingest", "labels", str(p), "--set", "bad"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cscat: error: {p}: row 2: name is 'not a name'; expected a CSC name "
                   "2CXO Jhhmmss.s±ddmmss"]
    with pytest.raises(LookupError, match="no label set 'bad'"):
        label_set("bad", engine)


def test_the_muwclass_training_set(engine, clean, shared_data, capsys):
    path = shared_data / "muwclass_td" / "td_classes.csv"
    assert main(["ingest", "labels", str(path), "--set", "muwclass"]) == 0
    capsys.readouterr()
    got = label_set("muwclass", engine)
    raw = pd.read_csv(path, usecols=["name", "Class"]).drop_duplicates()
    assert len(got) == raw["name"].nunique() == 3797
    exp = raw.set_index("name")["Class"].sort_index()
    assert (got.set_index("name")["class"].sort_index() == exp).all()
    assert got["class"].value_counts()["AGN"] == 1573
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM catalog.training_label "
                              "WHERE label_set = 'muwclass'")).scalar_one()
    assert n == 3797
