"""SQL API: user-facing views and functions in schema catalog, taxonomy table, reader role

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Views: catalog.detection, catalog.source, catalog.detection_class, catalog.source_class,
catalog.source_class_history, catalog.class_change, catalog.model_version,
catalog.catalog_version. Functions: catalog.source_class_as_of(version),
catalog.class_changes(from_version, to_version). Role: cscat_reader (read-only).

The downgrade keeps the source_result columns and the simbad_type rows it drops in
``catalog._migration_0002_*`` tables; the upgrade restores them from there, and rebuilds
what is not there from the data (the current SIMBAD match of each source), so a round trip
through 0001 loses nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the class order at this revision (classifier.taxonomy.CLASSES): the
# probability arrays are stored in this order and expanded to one column per class.
CLASSES = ["QSO", "AGN", "Seyfert_1", "Seyfert_2", "HMXB", "LMXB", "XB", "YSO", "TTau*", "Orion_V*"]
AGGREGATION = {
    "QSO": "AGN",
    "AGN": "AGN",
    "Seyfert_1": "Seyfert",
    "Seyfert_2": "Seyfert",
    "HMXB": "XB",
    "LMXB": "XB",
    "XB": "XB",
    "YSO": "YSO",
    "TTau*": "YSO",
    "Orion_V*": "YSO",
}
READER = "cscat_reader"
# Frozen copy of the SIMBAD type -> class table at this revision (classifier.taxonomy), used
# only to rebuild the columns this revision adds when no downgrade stash exists (publish
# re-syncs catalog.simbad_type from the live taxonomy).
REFERENCE_TYPES = {
    **{c: c for c in CLASSES},
    "Sy1": "Seyfert_1", "Sy2": "Seyfert_2", "HXB": "HMXB", "LXB": "LMXB", "XB*": "XB",
    "Y*O": "YSO", "TT*": "TTau*", "Or*": "Orion_V*", "Seyfert1": "Seyfert_1",
    "Seyfert2": "Seyfert_2", "HighMassXBin": "HMXB", "LowMassXBin": "LMXB", "XrayBin": "XB",
    "TTauri*": "TTau*", "OrionV*": "Orion_V*",
}
UNLABELED_TYPES = ["Star", "*", "X", "Radio", "Rad", "IR", "Infrared", "Blue", "blue", "blu",
                   "UV", "gamma", "gam", "PartofG", "PoG", "**"]
#: Where the downgrade keeps what it would otherwise drop, for the next upgrade to restore.
STASH_RESULT = "catalog._migration_0002_source_result"
STASH_TYPE = "catalog._migration_0002_simbad_type"
ADDED = ["simbad_otype", "simbad_class", "adopted_class", "agg_adopted_class", "label_origin"]


def column_name(cls: str) -> str:
    """``Orion_V*`` -> ``orion_v``: a plain SQL identifier for a class."""
    return cls.lower().replace("*", "").strip("_")


def _expand(array: str, prefix: str) -> str:
    return ",\n       ".join(
        f"{array}[{i}] AS {prefix}{column_name(c)}" for i, c in enumerate(CLASSES, start=1)
    )


def _aggregate(column: str) -> str:
    whens = " ".join(f"WHEN '{c}' THEN '{a}'" for c, a in AGGREGATION.items())
    return f"CASE {column} {whens} END"


def upgrade() -> None:
    op.create_table(
        "simbad_type",
        sa.Column("otype", sa.Text(), nullable=False),
        sa.Column("class", sa.Text(), nullable=True),
        sa.Column("agg_class", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('reference', 'unlabeled', 'other')", name=op.f("ck_simbad_type_kind")
        ),
        sa.PrimaryKeyConstraint("otype", name=op.f("pk_simbad_type")),
        schema="catalog",
        comment="SIMBAD type -> class, synced from classifier.taxonomy by every update",
    )
    for name, comment in [
        ("simbad_otype", "SIMBAD type when this result was made"),
        ("simbad_class", "class of that SIMBAD type (reference types only)"),
        ("adopted_class", "the class to use: SIMBAD's for references, else the model's"),
        ("agg_adopted_class", "aggregated adopted class"),
        ("label_origin", "where adopted_class comes from: simbad or model"),
    ]:
        op.add_column(
            "source_result", sa.Column(name, sa.Text(), comment=comment), schema="catalog"
        )
    op.create_check_constraint(
        op.f("ck_source_result_label_origin"),
        "source_result",
        "label_origin IN ('simbad', 'model')",
        schema="catalog",
    )
    op.create_index(
        "ix_source_result_valid", "source_result", ["valid_from", "valid_to"], schema="catalog"
    )
    op.create_index(
        "ix_source_result_adopted",
        "source_result",
        ["adopted_class"],
        schema="catalog",
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.create_index(
        "ix_detection_result_valid_from", "detection_result", ["valid_from"], schema="catalog"
    )

    _restore_or_rebuild()

    op.execute("""
CREATE VIEW catalog.detection AS
SELECT s.name, d.*, r.started_at AS ingested_at, r.kind AS ingest_kind
FROM catalog.csc_detection d
JOIN catalog.csc_source s USING (source_id)
JOIN catalog.ingest_run r ON r.run_id = d.ingest_run_id""")

    op.execute("""
CREATE VIEW catalog.source AS
SELECT s.source_id, s.name, s.ra, s.dec, s.err_ellipse_r0, s.significance, s.likelihood_class,
       (SELECT count(*) FROM catalog.csc_detection d WHERE d.source_id = s.source_id)
           AS n_detections,
       m.main_id AS simbad_main_id, m.otype AS simbad_otype,
       m.separation_arcsec AS simbad_separation_arcsec, m.fetched_at AS simbad_fetched_at,
       t.class AS simbad_class, t.agg_class AS simbad_agg_class,
       CASE WHEN m.source_id IS NULL THEN NULL
            WHEN m.otype IS NULL THEN 'unlabeled'
            ELSE coalesce(t.kind, 'other') END AS simbad_kind
FROM catalog.csc_source s
LEFT JOIN catalog.simbad_match m USING (source_id)
LEFT JOIN catalog.simbad_type t ON t.otype = m.otype""")

    op.execute(f"""
CREATE VIEW catalog.detection_class AS
SELECT r.detection_id, s.name, d.source_id, d.obsid, d.obi, d.region_id,
       r.model_id, r.valid_from AS catalog_version, r.cluster, r.predicted_class,
       {_aggregate("r.predicted_class")} AS agg_predicted_class, r.reason,
       {_expand("r.probabilities", "p_")}
FROM catalog.detection_result r
JOIN catalog.csc_detection d USING (detection_id)
JOIN catalog.csc_source s ON s.source_id = d.source_id
WHERE r.valid_to IS NULL""")

    op.execute(f"""
CREATE VIEW catalog.source_class_history AS
SELECT r.source_id, s.name, s.ra, s.dec,
       r.valid_from AS catalog_version, r.valid_from, r.valid_to, r.model_id,
       r.adopted_class, r.agg_adopted_class, r.label_origin,
       r.master_class, r.agg_master_class, r.hard_class, r.soft_class, r.ambiguous,
       r.n_detections, r.simbad_otype, r.simbad_class,
       {_expand("r.prob_mean", "mean_")},
       {_expand("r.prob_std", "std_")}
FROM catalog.source_result r
JOIN catalog.csc_source s USING (source_id)""")

    op.execute("""
CREATE VIEW catalog.source_class AS
SELECT * FROM catalog.source_class_history WHERE valid_to IS NULL""")

    op.execute("""
CREATE FUNCTION catalog.source_class_as_of(version integer)
RETURNS SETOF catalog.source_class_history LANGUAGE sql STABLE AS $$
    SELECT * FROM catalog.source_class_history h
    WHERE h.valid_from <= version AND (h.valid_to IS NULL OR h.valid_to > version)
$$""")
    op.execute("""
COMMENT ON FUNCTION catalog.source_class_as_of(integer) IS
    'The per-source classification as it was at catalog version VERSION'""")

    op.execute("""
CREATE FUNCTION catalog.class_changes(from_version integer, to_version integer)
RETURNS TABLE (source_id bigint, name text, from_class text, to_class text,
               from_origin text, to_origin text)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(a.source_id, b.source_id), coalesce(a.name, b.name),
           a.adopted_class, b.adopted_class, a.label_origin, b.label_origin
    FROM catalog.source_class_as_of(from_version) a
    FULL JOIN catalog.source_class_as_of(to_version) b USING (source_id)
    WHERE a.adopted_class IS DISTINCT FROM b.adopted_class
$$""")

    op.execute("""
CREATE VIEW catalog.class_change AS
SELECT new.source_id, s.name, new.valid_from AS catalog_version,
       old.valid_from AS previous_version,
       old.adopted_class AS previous_class, new.adopted_class AS class,
       old.label_origin AS previous_origin, new.label_origin AS label_origin
FROM catalog.source_result new
JOIN catalog.source_result old
  ON old.source_id = new.source_id AND old.valid_to = new.valid_from
JOIN catalog.csc_source s ON s.source_id = new.source_id
WHERE old.adopted_class IS DISTINCT FROM new.adopted_class""")

    op.execute("""
CREATE VIEW catalog.model_version AS
SELECT model_id, created_at, status, promoted_at, n_detections, n_labeled, input_digest,
       params, validation, note
FROM catalog.fitted_model""")

    op.execute("""
CREATE VIEW catalog.catalog_version AS
SELECT release_id AS catalog_version, created_at, model_id, counts, flow_run_id, note
FROM catalog.release""")

    op.execute(f"""
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER}') THEN
        CREATE ROLE {READER} NOLOGIN;
    END IF;
END $$""")
    op.execute(f"GRANT USAGE ON SCHEMA catalog TO {READER}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA catalog TO {READER}")
    op.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA catalog TO {READER}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA catalog GRANT SELECT ON TABLES TO {READER}")


def _restore_or_rebuild() -> None:
    """Fill the added columns and catalog.simbad_type: from the downgrade's stash when there
    is one, else rebuilt from the data (the current SIMBAD match of each source; sources with
    other known SIMBAD types get no adopted class, as with classify_other_types = false)."""
    conn = op.get_bind()
    stashed = conn.execute(sa.text(f"SELECT to_regclass('{STASH_RESULT}') IS NOT NULL")
                           ).scalar_one()
    if stashed:
        op.execute(f"INSERT INTO catalog.simbad_type SELECT * FROM {STASH_TYPE}")
    else:
        rows = [{"o": o, "c": c, "a": AGGREGATION[c], "k": "reference"}
                for o, c in REFERENCE_TYPES.items()]
        rows += [{"o": o, "c": None, "a": None, "k": "unlabeled"} for o in UNLABELED_TYPES]
        conn.execute(sa.text("INSERT INTO catalog.simbad_type (otype, class, agg_class, kind) "
                             "VALUES (:o, :c, :a, :k)"), rows)
    missing = "" if not stashed else (
        f" AND NOT EXISTS (SELECT 1 FROM {STASH_RESULT} x "
        "WHERE x.source_id = r.source_id AND x.valid_from = r.valid_from)")
    op.execute(f"""
UPDATE catalog.source_result r SET
    simbad_otype = m.otype,
    simbad_class = CASE WHEN m.kind = 'reference' THEN m.class END,
    adopted_class = CASE WHEN m.kind = 'reference' THEN m.class
                         WHEN m.kind = 'unlabeled' THEN r.soft_class END,
    label_origin = CASE WHEN m.kind = 'reference' THEN 'simbad'
                        WHEN m.kind = 'unlabeled' AND r.soft_class IS NOT NULL THEN 'model' END
FROM (SELECT s.source_id, nullif(btrim(sm.otype), '') AS otype, t.class,
             CASE WHEN nullif(btrim(sm.otype), '') IS NULL THEN 'unlabeled'
                  ELSE coalesce(t.kind, 'other') END AS kind
      FROM catalog.csc_source s
      LEFT JOIN catalog.simbad_match sm ON sm.source_id = s.source_id
      LEFT JOIN catalog.simbad_type t ON t.otype = btrim(sm.otype)) m
WHERE m.source_id = r.source_id{missing}""")
    op.execute(f"UPDATE catalog.source_result r SET agg_adopted_class = "
               f"{_aggregate('r.adopted_class')} WHERE true{missing}")
    if stashed:
        sets = ", ".join(f"{c} = x.{c}" for c in ADDED)
        op.execute(f"UPDATE catalog.source_result r SET {sets} FROM {STASH_RESULT} x "
                   "WHERE x.source_id = r.source_id AND x.valid_from = r.valid_from")
        op.execute(f"DROP TABLE {STASH_RESULT}")
        op.execute(f"DROP TABLE {STASH_TYPE}")


def downgrade() -> None:
    # Keep what this downgrade drops, so that upgrading again restores it exactly.
    op.execute(f"DROP TABLE IF EXISTS {STASH_RESULT}")
    op.execute(f"DROP TABLE IF EXISTS {STASH_TYPE}")
    op.execute(f"CREATE TABLE {STASH_RESULT} AS SELECT source_id, valid_from, "
               f"{', '.join(ADDED)} FROM catalog.source_result")
    op.execute(f"CREATE TABLE {STASH_TYPE} AS SELECT * FROM catalog.simbad_type")
    for t in (STASH_RESULT, STASH_TYPE):
        op.execute(f"COMMENT ON TABLE {t} IS 'kept by the downgrade of revision 0002 for "
                   "its next upgrade to restore'")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA catalog REVOKE SELECT ON TABLES FROM {READER}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA catalog FROM {READER}")
    op.execute(f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA catalog FROM {READER}")
    op.execute(f"REVOKE USAGE ON SCHEMA catalog FROM {READER}")
    for view in ["catalog_version", "model_version", "class_change"]:
        op.execute(f"DROP VIEW catalog.{view}")
    op.execute("DROP FUNCTION catalog.class_changes(integer, integer)")
    op.execute("DROP FUNCTION catalog.source_class_as_of(integer)")
    for view in ["source_class", "source_class_history", "detection_class", "source", "detection"]:
        op.execute(f"DROP VIEW catalog.{view}")
    op.drop_index("ix_detection_result_valid_from", "detection_result", schema="catalog")
    op.drop_index("ix_source_result_adopted", "source_result", schema="catalog")
    op.drop_index("ix_source_result_valid", "source_result", schema="catalog")
    op.drop_constraint(op.f("ck_source_result_label_origin"), "source_result", schema="catalog")
    for name in [
        "label_origin",
        "agg_adopted_class",
        "adopted_class",
        "simbad_class",
        "simbad_otype",
    ]:
        op.drop_column("source_result", name, schema="catalog")
    op.drop_table("simbad_type", schema="catalog")
