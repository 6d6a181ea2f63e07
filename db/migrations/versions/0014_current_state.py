"""Current-state table of the per-source classification; class counts per catalog version

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02

* ``catalog.source_class_current``: one row per source with a current master result, the
  columns of ``catalog.source_class`` (the current rows of ``source_class_history``: the
  ``source_result`` row with ``valid_to IS NULL``, the source's name and position, the mean
  and std probabilities as columns). Statement triggers on ``source_result`` (insert,
  update, delete, truncate) and ``csc_source`` (update, delete, truncate) keep it, in the
  transaction that writes the result: the publish's release, or any other writer. The view
  ``catalog.source_class`` reads it (same columns, same order) instead of filtering the
  whole history; ``source_class_history`` and the ``as_of`` functions are unchanged.
  Its indexes: the source, the name, and (aggregated class, origin) covering the name, the
  position and every mean probability, so a class/probability filter is an index-only
  range scan. ``source_result``'s partial indexes on the current rows' classes
  (``ix_source_result_adopted``, ``ix_source_result_current_agg``) served only the old
  view's filters: dropped (a publish then maintains two indexes less).
* ``catalog.version_class_count``: per catalog version, the sources per
  (adopted_class, agg_adopted_class, label_origin) at that version, written by the publish
  in the version's transaction (``db.catalog_store.write_class_counts``: the previous
  version's counts plus the result rows the version opened, minus those it closed). View
  ``catalog.class_count_by_version``, function ``catalog.class_counts_as_of(version)``.

Both are derived from ``source_result`` (``db.oracle`` checks them against it and against its
own recomputation): the upgrade fills them from the history; the downgrade drops them (the
next upgrade fills them again, equal) and restores the view and the two indexes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen copy of the class order at this revision (migration 0002's CLASSES): the order
#: of source_result's probability arrays.
CLASSES = ["QSO", "AGN", "Seyfert_1", "Seyfert_2", "HMXB", "LMXB", "XB", "YSO", "TTau*", "Orion_V*"]
CURRENT = "catalog.source_class_current"


def _col(cls: str) -> str:
    return cls.lower().replace("*", "").strip("_")


MEANS = [f"mean_{_col(c)}" for c in CLASSES]
STDS = [f"std_{_col(c)}" for c in CLASSES]
#: Text columns taken as they are from source_result.
RESULT_TEXT = ["adopted_class", "agg_adopted_class", "label_origin", "master_class",
               "agg_master_class", "hard_class", "soft_class"]
#: The table's columns, in order; and how each is computed from source_result r and
#: csc_source s.
COLUMNS = ["source_id", "name", "ra", "dec", "valid_from", "model_id", *RESULT_TEXT,
           "ambiguous", "n_detections", "simbad_otype", "simbad_class", *MEANS, *STDS]
_FROM = {"source_id": "r.source_id", "name": "s.name", "ra": "s.ra", "dec": "s.dec",
         **{m: f"r.prob_mean[{i}]" for i, m in enumerate(MEANS, start=1)},
         **{m: f"r.prob_std[{i}]" for i, m in enumerate(STDS, start=1)}}
SELECT_LIST = ", ".join(_FROM.get(c, f"r.{c}") for c in COLUMNS)
INSERT_CURRENT = f"INSERT INTO {CURRENT} ({', '.join(COLUMNS)}) SELECT {SELECT_LIST}"

#: catalog.source_class as 0002 defined it (restored by the downgrade).
SOURCE_CLASS_0002 = """
CREATE OR REPLACE VIEW catalog.source_class AS
SELECT * FROM catalog.source_class_history WHERE valid_to IS NULL"""
#: The same columns, in the same order, from the current-state table.
SOURCE_CLASS_0014 = f"""
CREATE OR REPLACE VIEW catalog.source_class AS
SELECT source_id, name, ra, dec, valid_from AS catalog_version, valid_from,
       NULL::integer AS valid_to, model_id, adopted_class, agg_adopted_class, label_origin,
       master_class, agg_master_class, hard_class, soft_class, ambiguous, n_detections,
       simbad_otype, simbad_class, {", ".join(MEANS)}, {", ".join(STDS)}
FROM {CURRENT}"""

TRIGGERS_SQL = f"""
-- A result row inserted current is its source's current row; one updated or deleted while
-- current leaves it (and the updated row, if still current, enters it). Only the transition
-- tables are read: the cost is that of the rows written. A second current row of a source
-- (which source_result must never hold) is refused by the primary key.
CREATE FUNCTION catalog.tr_source_class_current() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM {CURRENT} c USING old_rows o
        WHERE o.valid_to IS NULL AND c.source_id = o.source_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        {INSERT_CURRENT} FROM new_rows r JOIN catalog.csc_source s USING (source_id)
        WHERE r.valid_to IS NULL;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tr_source_result_current_insert AFTER INSERT ON catalog.source_result
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_source_class_current();
CREATE TRIGGER tr_source_result_current_update AFTER UPDATE ON catalog.source_result
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_source_class_current();
CREATE TRIGGER tr_source_result_current_delete AFTER DELETE ON catalog.source_result
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_source_class_current();

CREATE FUNCTION catalog.tr_source_class_current_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {CURRENT} c USING old_rows o WHERE c.source_id = o.source_id;
    RETURN NULL;
END $$;

-- a source's name or position changed; a source removed
CREATE FUNCTION catalog.tr_source_class_current_source() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {CURRENT} c SET name = n.name, ra = n.ra, dec = n.dec FROM new_rows n
    WHERE c.source_id = n.source_id
      AND (c.name, c.ra, c.dec) IS DISTINCT FROM (n.name, n.ra, n.dec);
    RETURN NULL;
END $$;
CREATE TRIGGER tr_csc_source_current_update AFTER UPDATE ON catalog.csc_source
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_source_class_current_source();
CREATE TRIGGER tr_csc_source_current_delete AFTER DELETE ON catalog.csc_source
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_source_class_current_delete();

-- TRUNCATE fires no delete trigger: emptying either table empties the current rows
CREATE FUNCTION catalog.tr_source_class_current_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {CURRENT};
    RETURN NULL;
END $$;
CREATE TRIGGER tr_source_result_current_truncate AFTER TRUNCATE ON catalog.source_result
    FOR EACH STATEMENT EXECUTE FUNCTION catalog.tr_source_class_current_truncate();
CREATE TRIGGER tr_csc_source_current_truncate AFTER TRUNCATE ON catalog.csc_source
    FOR EACH STATEMENT EXECUTE FUNCTION catalog.tr_source_class_current_truncate();
"""

DROP_TRIGGERS_SQL = """
DROP TRIGGER tr_csc_source_current_truncate ON catalog.csc_source;
DROP TRIGGER tr_source_result_current_truncate ON catalog.source_result;
DROP TRIGGER tr_csc_source_current_delete ON catalog.csc_source;
DROP TRIGGER tr_csc_source_current_update ON catalog.csc_source;
DROP TRIGGER tr_source_result_current_delete ON catalog.source_result;
DROP TRIGGER tr_source_result_current_update ON catalog.source_result;
DROP TRIGGER tr_source_result_current_insert ON catalog.source_result;
DROP FUNCTION catalog.tr_source_class_current_truncate();
DROP FUNCTION catalog.tr_source_class_current_source();
DROP FUNCTION catalog.tr_source_class_current_delete();
DROP FUNCTION catalog.tr_source_class_current();
"""

#: Per version v: the sources per class at v, from the history in one pass (each result row
#: counts +1 at its valid_from and -1 at its valid_to; the running sum over versions).
BACKFILL_COUNTS = """
INSERT INTO catalog.version_class_count (release_id, adopted_class, agg_adopted_class,
                                         label_origin, n_sources)
WITH delta AS (
    SELECT valid_from AS v, adopted_class, agg_adopted_class, label_origin, count(*) AS n
    FROM catalog.source_result GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT valid_to, adopted_class, agg_adopted_class, label_origin, -count(*)
    FROM catalog.source_result WHERE valid_to IS NOT NULL GROUP BY 1, 2, 3, 4),
keys AS (SELECT DISTINCT adopted_class, agg_adopted_class, label_origin FROM delta),
running AS (
    SELECT r.release_id, k.adopted_class, k.agg_adopted_class, k.label_origin,
           (SELECT coalesce(sum(d.n), 0) FROM delta d WHERE d.v <= r.release_id
              AND d.adopted_class IS NOT DISTINCT FROM k.adopted_class
              AND d.agg_adopted_class IS NOT DISTINCT FROM k.agg_adopted_class
              AND d.label_origin IS NOT DISTINCT FROM k.label_origin) AS n
    FROM catalog.release r CROSS JOIN keys k)
SELECT release_id, adopted_class, agg_adopted_class, label_origin, n FROM running
WHERE n <> 0"""


def upgrade() -> None:
    cols = [sa.Column("source_id", sa.BigInteger(), nullable=False),
            sa.Column("name", sa.Text(), nullable=False),
            sa.Column("ra", sa.Double(), nullable=False),
            sa.Column("dec", sa.Double(), nullable=False),
            sa.Column("valid_from", sa.Integer(), nullable=False),
            sa.Column("model_id", sa.Integer(), nullable=False),
            *(sa.Column(c, sa.Text()) for c in RESULT_TEXT),
            sa.Column("ambiguous", sa.Boolean()),
            sa.Column("n_detections", sa.Integer(), nullable=False),
            sa.Column("simbad_otype", sa.Text()),
            sa.Column("simbad_class", sa.Text()),
            *(sa.Column(c, sa.Double()) for c in MEANS + STDS)]
    op.create_table(
        "source_class_current", *cols,
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_source_class_current")),
        schema="catalog",
        comment="the current per-source result (catalog.source_class), kept by triggers on "
                "source_result and csc_source")
    op.execute(f"{INSERT_CURRENT} FROM catalog.source_result r "
               "JOIN catalog.csc_source s USING (source_id) WHERE r.valid_to IS NULL")
    op.create_index("ix_source_class_current_name", "source_class_current", ["name"],
                    schema="catalog")
    op.create_index("ix_source_class_current_adopted", "source_class_current",
                    ["adopted_class"], schema="catalog")
    op.create_index("ix_source_class_current_class", "source_class_current",
                    ["agg_adopted_class", "label_origin"], schema="catalog",
                    postgresql_include=["adopted_class", "name", "ra", "dec", *MEANS])
    op.execute(TRIGGERS_SQL)
    op.execute(SOURCE_CLASS_0014)
    op.drop_index("ix_source_result_current_agg", "source_result", schema="catalog")
    op.drop_index("ix_source_result_adopted", "source_result", schema="catalog")

    op.create_table(
        "version_class_count",
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("adopted_class", sa.Text(), nullable=True),
        sa.Column("agg_adopted_class", sa.Text(), nullable=True),
        sa.Column("label_origin", sa.Text(), nullable=True),
        sa.Column("n_sources", sa.BigInteger(), nullable=False),
        schema="catalog",
        comment="sources per adopted class and origin at each catalog version (written by "
                "the publish of that version)")
    op.create_index("ix_version_class_count_release", "version_class_count", ["release_id"],
                    schema="catalog")
    op.execute(BACKFILL_COUNTS)
    op.execute("""
CREATE VIEW catalog.class_count_by_version AS
SELECT release_id AS catalog_version, adopted_class, agg_adopted_class, label_origin, n_sources
FROM catalog.version_class_count""")
    op.execute("""
CREATE FUNCTION catalog.class_counts_as_of(version integer)
RETURNS SETOF catalog.class_count_by_version LANGUAGE sql STABLE AS $$
    SELECT * FROM catalog.class_count_by_version c WHERE c.catalog_version = version
$$""")
    op.execute("""
COMMENT ON FUNCTION catalog.class_counts_as_of(integer) IS
    'Sources per adopted class and origin at catalog version VERSION (what '
    'source_class_as_of(VERSION) gives, counted when the version was published)'""")


def downgrade() -> None:
    op.execute("DROP FUNCTION catalog.class_counts_as_of(integer)")
    op.execute("DROP VIEW catalog.class_count_by_version")
    op.drop_index("ix_version_class_count_release", "version_class_count", schema="catalog")
    op.drop_table("version_class_count", schema="catalog")
    op.execute(SOURCE_CLASS_0002)
    op.execute(DROP_TRIGGERS_SQL)
    op.drop_table("source_class_current", schema="catalog")
    op.create_index("ix_source_result_adopted", "source_result", ["adopted_class"],
                    schema="catalog", postgresql_where=sa.text("valid_to IS NULL"))
    op.create_index("ix_source_result_current_agg", "source_result",
                    ["agg_adopted_class", "label_origin"], schema="catalog",
                    postgresql_where=sa.text("valid_to IS NULL"))
