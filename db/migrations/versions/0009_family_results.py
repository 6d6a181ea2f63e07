"""Every classifier family in the catalog: models per family, per-source family results,
the coarse taxonomy and the per-family views

Revision ID: 0009
Revises: 0006_reader_role
Create Date: 2026-12-01

* ``fitted_model`` gets ``family`` (existing models: ``ctl``), ``taxonomy`` (the model's class
  list, in the order of its probability arrays; existing models: their stored ``classes``),
  ``label_set`` (``simbad``) and ``model_bytes`` (``classifier.save`` of the families other
  than ctl, whose ``model`` JSON is then only a summary). One active model *per family*.
* ``family_source_result``: versioned per-source results of the source families
  (probabilities in the order of the model's taxonomy, interval bounds, outlier measure,
  marginals). Detection families keep writing ``detection_result`` (keyed by the model).
* ``coarse_class``: family class -> coarse class (frozen copy of
  ``classifier.families.taxonomy`` at this revision; every publish re-syncs it).
* Views and functions: ``source_class_by_family_history``, ``source_class_by_family``,
  ``source_class_by_family_as_of(v)``, ``family_class_changes(a, b)``,
  ``source_consensus``, ``family_model``; ``model_version`` gains family, taxonomy and
  label_set (appended: its other columns are unchanged). ``source_class`` is untouched.

The downgrade keeps the other families' models and results in ``catalog._migration_0009_*``
tables; the next upgrade restores them, so a round trip loses nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen copy of classifier.families.taxonomy.COARSE_OF at this revision.
COARSE_OF = {
    "QSO": "AGN", "AGN": "AGN", "Seyfert_1": "AGN", "Seyfert_2": "AGN",
    "HMXB": "XRB", "LMXB": "XRB", "XB": "XRB",
    "YSO": "YSO", "TTau*": "YSO", "Orion_V*": "YSO", "Seyfert": "AGN",
    "CV": "CV", "HM-STAR": "STAR", "LM-STAR": "STAR", "NS": "NS", "NS_BIN": "NS",
}  # fmt: skip
#: The families at this revision (one column each in catalog.source_consensus).
FAMILIES = ["ctl", "muwclass", "claxboi", "gbm"]
STASH_MODEL = "catalog._migration_0009_fitted_model"
STASH_RESULT = "catalog._migration_0009_family_source_result"

MODEL_VERSION_0002 = """
CREATE OR REPLACE VIEW catalog.model_version AS
SELECT model_id, created_at, status, promoted_at, n_detections, n_labeled, input_digest,
       params, validation, note
FROM catalog.fitted_model"""


def _coarse(column: str) -> str:
    return (f"CASE WHEN {column} IS NULL THEN NULL "
            f"ELSE coalesce((SELECT cc.coarse_class FROM catalog.coarse_class cc "
            f"WHERE cc.class = {column}), 'unknown') END")


def upgrade() -> None:
    op.add_column("fitted_model", sa.Column(
        "family", sa.Text(), server_default="ctl", nullable=False,
        comment="classifier family (classifier.FAMILIES)"), schema="catalog")
    op.add_column("fitted_model", sa.Column(
        "taxonomy", postgresql.ARRAY(sa.Text()), nullable=True,
        comment="the model's classes, in the order of its probability arrays"),
        schema="catalog")
    op.add_column("fitted_model", sa.Column(
        "label_set", sa.Text(), server_default="simbad", nullable=False,
        comment="the labels it was trained on"), schema="catalog")
    op.add_column("fitted_model", sa.Column(
        "model_bytes", sa.LargeBinary(), nullable=True,
        comment="classifier.save(model) of families other than ctl (no pickle)"),
        schema="catalog")
    op.execute("UPDATE catalog.fitted_model SET taxonomy = ARRAY(SELECT "
               "jsonb_array_elements_text(model->'classes')) "
               "WHERE jsonb_typeof(model->'classes') = 'array'")
    op.drop_index("uq_fitted_model_one_active", "fitted_model", schema="catalog")
    op.create_index("uq_fitted_model_one_active", "fitted_model", ["family"], unique=True,
                    schema="catalog", postgresql_where=sa.text("status = 'active'"))

    op.create_table(
        "family_source_result",
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.Column("family", sa.Text(), nullable=False),
        sa.Column("predicted_class", sa.Text(), nullable=True),
        sa.Column("probabilities", postgresql.ARRAY(sa.Double()), nullable=True,
                  comment="in the order of the model's taxonomy"),
        sa.Column("prob_lo", postgresql.ARRAY(sa.Double()), nullable=True,
                  comment="lower bound of each probability (families with intervals)"),
        sa.Column("prob_hi", postgresql.ARRAY(sa.Double()), nullable=True,
                  comment="upper bound of each probability (families with intervals)"),
        sa.Column("outlier", sa.Double(), nullable=True, comment="outlier measure (claxboi)"),
        sa.Column("marginals", postgresql.JSONB(astext_type=sa.Text()), nullable=True,
                  comment="per feature category: probabilities and the alternative class"),
        sa.Column("reason", sa.Text(), nullable=True, comment="why there is no class"),
        sa.Column("n_detections", sa.Integer(), nullable=False,
                  comment="detections the features were built from"),
        sa.Column("features", postgresql.ARRAY(sa.Double()), nullable=True,
                  comment="the per-source inputs the model was applied to, in the order of "
                          "its required columns (params->'inputs')"),
        sa.PrimaryKeyConstraint("source_id", "model_id", "valid_from",
                                name=op.f("pk_family_source_result")),
        schema="catalog",
    )
    op.create_index("ix_family_source_result_current", "family_source_result",
                    ["family", "source_id"], schema="catalog",
                    postgresql_where=sa.text("valid_to IS NULL"),
                    postgresql_include=["model_id"])
    op.create_index("ix_family_source_result_valid_from", "family_source_result",
                    ["valid_from"], schema="catalog")
    op.create_index("ix_family_source_result_valid_to", "family_source_result",
                    ["valid_to"], schema="catalog")
    op.create_table(
        "coarse_class",
        sa.Column("class", sa.Text(), nullable=False),
        sa.Column("coarse_class", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("class", name=op.f("pk_coarse_class")),
        schema="catalog",
        comment="family class -> coarse class, synced from classifier.families.taxonomy",
    )
    conn = op.get_bind()
    conn.execute(sa.text("INSERT INTO catalog.coarse_class (class, coarse_class) "
                         "VALUES (:c, :k)"), [{"c": c, "k": k} for c, k in COARSE_OF.items()])
    _restore_stash(conn)
    _views()


def _restore_stash(conn) -> None:
    if not conn.execute(sa.text(f"SELECT to_regclass('{STASH_MODEL}') IS NOT NULL")
                        ).scalar_one():
        return
    if not conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM catalog.release)")).scalar_one():
        # the catalog was emptied below this revision (a reset): nothing to restore
        op.execute(f"DROP TABLE {STASH_MODEL}")
        op.execute(f"DROP TABLE IF EXISTS {STASH_RESULT}")
        return
    cols = conn.execute(sa.text(
        "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position) "
        "FROM information_schema.columns WHERE table_schema = 'catalog' "
        "AND table_name = '_migration_0009_fitted_model'")).scalar_one()
    op.execute(f"INSERT INTO catalog.fitted_model ({cols}) OVERRIDING SYSTEM VALUE "
               f"SELECT {cols} FROM {STASH_MODEL}")
    op.execute("SELECT setval(pg_get_serial_sequence('catalog.fitted_model', 'model_id'), "
               "(SELECT max(model_id) FROM catalog.fitted_model))")
    op.execute(f"INSERT INTO catalog.family_source_result SELECT * FROM {STASH_RESULT}")
    op.execute(f"DROP TABLE {STASH_MODEL}")
    op.execute(f"DROP TABLE {STASH_RESULT}")


def _views() -> None:
    op.execute(f"""
CREATE VIEW catalog.source_class_by_family_history AS
SELECT r.source_id, s.name, m.family, r.model_id, r.valid_from AS catalog_version,
       r.valid_from, r.valid_to, r.master_class AS class,
       {_coarse("r.master_class")} AS coarse_class,
       r.prob_mean[array_position(m.taxonomy, r.master_class)] AS probability,
       NULL::double precision AS probability_lo, NULL::double precision AS probability_hi,
       NULL::double precision AS outlier, r.n_detections, NULL::text AS reason, m.label_set
FROM catalog.source_result r
JOIN catalog.csc_source s USING (source_id)
JOIN catalog.fitted_model m ON m.model_id = r.model_id
UNION ALL
SELECT f.source_id, s.name, f.family, f.model_id, f.valid_from AS catalog_version,
       f.valid_from, f.valid_to, f.predicted_class AS class,
       {_coarse("f.predicted_class")} AS coarse_class,
       f.probabilities[array_position(m.taxonomy, f.predicted_class)] AS probability,
       f.prob_lo[array_position(m.taxonomy, f.predicted_class)] AS probability_lo,
       f.prob_hi[array_position(m.taxonomy, f.predicted_class)] AS probability_hi,
       f.outlier, f.n_detections, f.reason, m.label_set
FROM catalog.family_source_result f
JOIN catalog.csc_source s USING (source_id)
JOIN catalog.fitted_model m ON m.model_id = f.model_id""")
    op.execute("""
CREATE VIEW catalog.source_class_by_family AS
SELECT * FROM catalog.source_class_by_family_history WHERE valid_to IS NULL""")
    op.execute("""
CREATE FUNCTION catalog.source_class_by_family_as_of(version integer)
RETURNS SETOF catalog.source_class_by_family_history LANGUAGE sql STABLE AS $$
    SELECT * FROM catalog.source_class_by_family_history h
    WHERE h.valid_from <= version AND (h.valid_to IS NULL OR h.valid_to > version)
$$""")
    op.execute("""
COMMENT ON FUNCTION catalog.source_class_by_family_as_of(integer) IS
    'Every family''s per-source classification as it was at catalog version VERSION'""")
    op.execute("""
CREATE FUNCTION catalog.family_class_changes(from_version integer, to_version integer)
RETURNS TABLE (family text, source_id bigint, name text, from_class text, to_class text,
               from_coarse_class text, to_coarse_class text)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(a.family, b.family), coalesce(a.source_id, b.source_id),
           coalesce(a.name, b.name), a.class, b.class, a.coarse_class, b.coarse_class
    FROM catalog.source_class_by_family_as_of(from_version) a
    FULL JOIN catalog.source_class_by_family_as_of(to_version) b
      ON a.family = b.family AND a.source_id = b.source_id
    WHERE a.class IS DISTINCT FROM b.class
$$""")
    per_family = ",\n       ".join(
        f"max(coarse_class) FILTER (WHERE family = '{f}') AS {f}_class" for f in FAMILIES)
    op.execute(f"""
CREATE VIEW catalog.source_consensus AS
WITH c AS (SELECT source_id, family, coarse_class FROM catalog.source_class_by_family
           WHERE coarse_class IS NOT NULL),
     votes AS (SELECT source_id, coarse_class, count(*) AS n FROM c GROUP BY 1, 2),
     ranked AS (SELECT source_id, coarse_class, n,
                       rank() OVER (PARTITION BY source_id ORDER BY n DESC) AS rk
                FROM votes),
     top AS (SELECT source_id, CASE WHEN count(*) = 1 THEN min(coarse_class) END
                        AS majority_class, max(n) AS n_agree
             FROM ranked WHERE rk = 1 GROUP BY source_id),
     per AS (SELECT source_id, {per_family},
                    jsonb_object_agg(family, coarse_class) AS coarse_by_family,
                    count(*) AS n_families, count(DISTINCT coarse_class) AS n_distinct
             FROM c GROUP BY source_id)
SELECT per.source_id, s.name, {", ".join(f"per.{f}_class" for f in FAMILIES)},
       per.coarse_by_family, per.n_families, top.majority_class, top.n_agree,
       per.n_distinct > 1 AS disagreement, top.n_agree = per.n_families AS all_agree,
       sr.adopted_class, {_coarse("sr.adopted_class")} AS adopted_coarse_class,
       sr.label_origin
FROM per JOIN top USING (source_id)
JOIN catalog.csc_source s ON s.source_id = per.source_id
LEFT JOIN catalog.source_result sr ON sr.source_id = per.source_id AND sr.valid_to IS NULL""")
    op.execute("""
CREATE VIEW catalog.family_model AS
SELECT family, model_id, status, label_set, taxonomy, created_at, promoted_at,
       n_detections, n_labeled, validation->>'unit' AS unit,
       (validation->>'n_test')::int AS n_test,
       (validation->'fine'->>'accuracy')::double precision AS accuracy,
       (SELECT avg(v::double precision) FROM jsonb_each_text(validation->'fine'->'recall')
        AS r(k, v) WHERE v IS NOT NULL) AS balanced_accuracy,
       (validation->'aggregated'->>'accuracy')::double precision AS agg_accuracy,
       (validation->'coarse'->>'accuracy')::double precision AS coarse_accuracy,
       (validation->'calibration'->'fine'->>'ece')::double precision AS ece,
       note
FROM catalog.fitted_model""")
    op.execute(MODEL_VERSION_0002.rstrip().removesuffix("FROM catalog.fitted_model")
               .replace("params, validation, note",
                        "params, validation, note, family, taxonomy, label_set")
               + "\nFROM catalog.fitted_model")


def downgrade() -> None:
    for view in ["family_model", "source_consensus", "source_class_by_family"]:
        op.execute(f"DROP VIEW catalog.{view}")
    op.execute("DROP FUNCTION catalog.family_class_changes(integer, integer)")
    op.execute("DROP FUNCTION catalog.source_class_by_family_as_of(integer)")
    op.execute("DROP VIEW catalog.source_class_by_family_history")
    op.execute("DROP VIEW catalog.model_version")
    op.execute(MODEL_VERSION_0002.replace("CREATE OR REPLACE", "CREATE"))
    # keep what the downgrade would drop (if anything), for the next upgrade to restore
    op.execute(f"DROP TABLE IF EXISTS {STASH_MODEL}")
    op.execute(f"DROP TABLE IF EXISTS {STASH_RESULT}")
    conn = op.get_bind()
    if conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM catalog.fitted_model "
                            "WHERE family <> 'ctl')")).scalar_one():
        op.execute(f"CREATE TABLE {STASH_MODEL} AS SELECT * FROM catalog.fitted_model "
                   "WHERE family <> 'ctl'")
        op.execute(f"CREATE TABLE {STASH_RESULT} AS SELECT * FROM catalog.family_source_result")
        for t in (STASH_MODEL, STASH_RESULT):
            op.execute(f"COMMENT ON TABLE {t} IS 'kept by the downgrade of revision 0009 for "
                       "its next upgrade to restore'")
    op.execute("DELETE FROM catalog.fitted_model WHERE family <> 'ctl'")
    op.drop_table("coarse_class", schema="catalog")
    op.drop_index("ix_family_source_result_valid_to", "family_source_result", schema="catalog")
    op.drop_index("ix_family_source_result_valid_from", "family_source_result",
                  schema="catalog")
    op.drop_index("ix_family_source_result_current", "family_source_result", schema="catalog")
    op.drop_table("family_source_result", schema="catalog")
    op.drop_index("uq_fitted_model_one_active", "fitted_model", schema="catalog")
    op.create_index("uq_fitted_model_one_active", "fitted_model", ["status"], unique=True,
                    schema="catalog", postgresql_where=sa.text("status = 'active'"))
    for col in ("model_bytes", "label_set", "taxonomy", "family"):
        op.drop_column("fitted_model", col, schema="catalog")
