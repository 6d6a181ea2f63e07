"""The per-family views and functions: what they return, checked against the tables, and
readable by the read-only role."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import text

from classifier.families.taxonomy import COARSE_OF


def q(engine, sql: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(text(sql), conn, params=params)


def test_as_of_and_changes_per_family_agree_with_the_history(engine, catalog):
    hist = q(engine, "SELECT family, source_id, class, valid_from, valid_to "
                     "FROM catalog.source_class_by_family_history")

    def as_of(v):
        h = hist[(hist.valid_from <= v) & (hist.valid_to.isna() | (hist.valid_to > v))]
        return h.set_index(["family", "source_id"])["class"]

    for v in (1, 2):
        got = q(engine, "SELECT family, source_id, class FROM "
                        "catalog.source_class_by_family_as_of(:v)", v=v)
        assert got.set_index(["family", "source_id"])["class"].sort_index().equals(
            as_of(v).sort_index())
    a, b = as_of(1), as_of(2)
    j = pd.concat([a.rename("a"), b.rename("b")], axis=1)
    changed = j[j.a.astype(object).fillna("\0") != j.b.astype(object).fillna("\0")]
    got = q(engine, "SELECT family, source_id, from_class, to_class FROM "
                    "catalog.family_class_changes(1, 2)").set_index(["family", "source_id"])
    assert sorted(got.index) == sorted(changed.index)
    assert set(got.index.get_level_values(0)) == {"ctl", "muwclass", "claxboi", "gbm"}
    # existing sources changed, for every family (the sample's epoch 2 changes classes)
    assert got.from_class.notna().groupby(level=0).sum().min() > 0


def test_consensus_counts_and_coarse_classes(engine, catalog):
    by = q(engine, "SELECT source_id, family, class, coarse_class FROM "
                   "catalog.source_class_by_family WHERE class IS NOT NULL")
    assert (by.coarse_class == by["class"].map(COARSE_OF).fillna("unknown")).all()
    con = q(engine, "SELECT * FROM catalog.source_consensus").set_index("source_id")
    n = by.groupby("source_id").size()
    assert (con.n_families == n.reindex(con.index)).all()
    top = by.groupby(["source_id", "coarse_class"]).size().groupby(level=0).max()
    assert (con.n_agree == top.reindex(con.index)).all()
    assert (con.all_agree == (con.n_agree == con.n_families)).all()
    assert (con.disagreement == ~con.all_agree).all()
    assert con.majority_class.isna().sum() > 0 and con.all_agree.sum() > 0
    for f in ("ctl", "muwclass", "claxboi", "gbm"):
        mine = by[by.family == f].set_index("source_id").coarse_class
        assert (con.loc[mine.index, f"{f}_class"] == mine).all()


def test_source_class_keeps_its_columns_and_the_reader_reads_the_new_views(engine, catalog):
    cols = q(engine, "SELECT column_name FROM information_schema.columns WHERE "
                     "table_schema = 'catalog' AND table_name = 'source_class' "
                     "ORDER BY ordinal_position").column_name.tolist()
    assert cols[:3] == ["source_id", "name", "ra"] and "family" not in cols
    rights = q(engine, """SELECT
        has_table_privilege('cscat_reader', 'catalog.source_class_by_family', 'SELECT') AS a,
        has_table_privilege('cscat_reader', 'catalog.source_consensus', 'SELECT') AS b,
        has_table_privilege('cscat_reader', 'catalog.family_model', 'SELECT') AS c,
        has_function_privilege('cscat_reader',
            'catalog.family_class_changes(integer, integer)', 'EXECUTE') AS d,
        has_function_privilege('cscat_reader',
            'catalog.source_class_by_family_as_of(integer)', 'EXECUTE') AS e,
        has_table_privilege('cscat_reader', 'catalog.fitted_model', 'SELECT') AS f""")
    assert rights.iloc[0].tolist() == [True, True, True, True, True, False]
