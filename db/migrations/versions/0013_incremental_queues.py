"""An update decides what is new without reading every source or detection

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02

* ``catalog.source_pending (step, source_id)``: the sources never crossmatched with SIMBAD
  (step ``simbad``: no ``simbad_match`` row) and never matched with counterparts (step
  ``counterparts``: no ``counterpart_match`` row of catalogue ``gaia``, the first one, as
  ``db.counterpart_store.sources_for_counterparts`` asks). Statement triggers keep it: a new
  ``csc_source`` row is pending for both steps, a new match takes it off, a deleted match puts
  it back. The two steps read the queue (and the stale matches by ``fetched_at``), not an
  anti-join over every source.
* The same queue holds, per source family of 0009 (step ``muwclass``, ``claxboi``,
  ``gbm``), the sources with no current ``family_source_result`` row of that family (kept by
  triggers on ``csc_source`` and ``family_source_result``): a publish checks that only the
  sources it is about to classify lack a result by reading the queue, not by counting every
  source and every result. ``ix_family_source_result_current_model`` finds a current result
  of another model (after a promotion) by index.
* ``catalog.detection_tally (otype, n_detections)``: detections per SIMBAD type of their
  source (``''``: no type) as rows of changes (the count is the sum per type), appended by
  statement triggers on ``csc_detection`` (insert, delete) and ``simbad_match`` (insert,
  update, delete), so concurrent writers never wait for each other; a publish compacts them.
  The refit decision reads these few rows, not a join over every detection. No key: a
  derived cache (compacted, it is one row per type; a downgrade/upgrade rebuilds it so).
* ``ix_simbad_match_fetched_at``: the stale matches by index.

No foreign keys (as ``unclassified_detection``): an id whose source is gone is not found by
the readers' join. ``db.integrity`` checks both against a recount.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The catalogue whose match row tells a source was matched (COUNTERPART_CATALOGUES[0]).
FIRST_CATALOGUE = "gaia"
#: The source families at this revision (frozen copy of migration 0009's, without ctl).
FAMILIES = ("muwclass", "claxboi", "gbm")
STEPS = ("simbad", "counterparts", *FAMILIES)
_STEP_VALUES = ", ".join(f"('{s}')" for s in STEPS)
_STEP_LIST = ", ".join(f"'{s}'" for s in STEPS)

def _upsert(deltas: str) -> str:
    """Append the (otype, n) rows of ``deltas`` to the tally (rows are added, never updated
    by writers: concurrent writers do not wait for each other; a publish compacts them)."""
    return ("INSERT INTO catalog.detection_tally (otype, n_detections) "
            f"SELECT otype, sum(n) FROM ({deltas}) AS q GROUP BY otype HAVING sum(n) <> 0")


def _moved(moved: str) -> str:
    """Move the detections of the (old_type, new_type, source_id) rows of ``moved``."""
    return _upsert(
        f"WITH mv AS ({moved}), moved_count AS (SELECT mv.old_type, mv.new_type, count(*) AS c "
        "FROM mv JOIN catalog.csc_detection x ON x.source_id = mv.source_id "
        "GROUP BY 1, 2) SELECT new_type AS otype, c AS n FROM moved_count "
        "UNION ALL SELECT old_type, -c FROM moved_count")


TRIGGERS_SQL = f"""
CREATE FUNCTION catalog.tr_source_pending_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog.source_pending (step, source_id)
    SELECT st.step, n.source_id FROM new_rows n
    CROSS JOIN (VALUES {_STEP_VALUES}) AS st(step)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER tr_csc_source_pending AFTER INSERT ON catalog.csc_source
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_source_pending_new();

CREATE FUNCTION catalog.tr_simbad_match_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        DELETE FROM catalog.source_pending p USING new_rows n
        WHERE p.step = 'simbad' AND p.source_id = n.source_id;
    ELSE
        INSERT INTO catalog.source_pending (step, source_id)
        SELECT DISTINCT 'simbad', o.source_id FROM old_rows o
        WHERE EXISTS (SELECT 1 FROM catalog.csc_source s WHERE s.source_id = o.source_id)
          AND NOT EXISTS (SELECT 1 FROM catalog.simbad_match m WHERE m.source_id = o.source_id)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tr_simbad_match_pending_insert AFTER INSERT ON catalog.simbad_match
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_simbad_match_pending();
CREATE TRIGGER tr_simbad_match_pending_delete AFTER DELETE ON catalog.simbad_match
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_simbad_match_pending();

CREATE FUNCTION catalog.tr_counterpart_match_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        DELETE FROM catalog.source_pending p USING new_rows n
        WHERE p.step = 'counterparts' AND p.source_id = n.source_id
          AND n.catalogue = '{FIRST_CATALOGUE}';
    ELSE
        INSERT INTO catalog.source_pending (step, source_id)
        SELECT DISTINCT 'counterparts', o.source_id FROM old_rows o
        WHERE o.catalogue = '{FIRST_CATALOGUE}'
          AND EXISTS (SELECT 1 FROM catalog.csc_source s WHERE s.source_id = o.source_id)
          AND NOT EXISTS (SELECT 1 FROM catalog.counterpart_match m
                          WHERE m.source_id = o.source_id
                            AND m.catalogue = '{FIRST_CATALOGUE}')
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tr_counterpart_match_pending_insert AFTER INSERT ON catalog.counterpart_match
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_counterpart_match_pending();
CREATE TRIGGER tr_counterpart_match_pending_delete AFTER DELETE ON catalog.counterpart_match
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_counterpart_match_pending();

-- a current family result takes its source off that family's queue; closing or deleting
-- the last current one puts it back
CREATE FUNCTION catalog.tr_family_result_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO catalog.source_pending (step, source_id)
        SELECT DISTINCT o.family, o.source_id FROM old_rows o
        WHERE o.valid_to IS NULL AND o.family IN ({_STEP_LIST})
          AND EXISTS (SELECT 1 FROM catalog.csc_source s WHERE s.source_id = o.source_id)
          AND NOT EXISTS (SELECT 1 FROM catalog.family_source_result r
                          WHERE r.family = o.family AND r.source_id = o.source_id
                            AND r.valid_to IS NULL)
        ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        DELETE FROM catalog.source_pending p USING new_rows n
        WHERE p.step = n.family AND p.source_id = n.source_id AND n.valid_to IS NULL;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tr_family_result_pending_insert AFTER INSERT ON catalog.family_source_result
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_family_result_pending();
CREATE TRIGGER tr_family_result_pending_update AFTER UPDATE ON catalog.family_source_result
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_family_result_pending();
CREATE TRIGGER tr_family_result_pending_delete AFTER DELETE ON catalog.family_source_result
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_family_result_pending();

-- detections per SIMBAD type: a detection counts under its source's current type
CREATE FUNCTION catalog.tr_tally_detections() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_upsert("SELECT coalesce(m.otype, '') AS otype, count(*) AS n FROM new_rows x "
                 "LEFT JOIN catalog.simbad_match m ON m.source_id = x.source_id GROUP BY 1")};
    ELSE
        {_upsert("SELECT coalesce(m.otype, '') AS otype, -count(*) AS n FROM old_rows x "
                 "LEFT JOIN catalog.simbad_match m ON m.source_id = x.source_id GROUP BY 1")};
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tr_csc_detection_tally_insert AFTER INSERT ON catalog.csc_detection
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_tally_detections();
CREATE TRIGGER tr_csc_detection_tally_delete AFTER DELETE ON catalog.csc_detection
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_tally_detections();

-- a source's new, changed or removed type moves its detections between types
CREATE FUNCTION catalog.tr_tally_simbad() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_moved("SELECT '' AS old_type, coalesce(n.otype, '') AS new_type, n.source_id "
                "FROM new_rows n")};
    ELSIF TG_OP = 'UPDATE' THEN
        {_moved("SELECT coalesce(o.otype, '') AS old_type, coalesce(n.otype, '') AS new_type, "
                "n.source_id FROM old_rows o JOIN new_rows n USING (source_id) "
                "WHERE coalesce(o.otype, '') <> coalesce(n.otype, '')")};
    ELSE
        {_moved("SELECT coalesce(o.otype, '') AS old_type, '' AS new_type, o.source_id "
                "FROM old_rows o")};
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tr_simbad_match_tally_insert AFTER INSERT ON catalog.simbad_match
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_tally_simbad();
CREATE TRIGGER tr_simbad_match_tally_update AFTER UPDATE ON catalog.simbad_match
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_tally_simbad();
CREATE TRIGGER tr_simbad_match_tally_delete AFTER DELETE ON catalog.simbad_match
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_tally_simbad();
"""

DROP_SQL = """
DROP TRIGGER tr_family_result_pending_delete ON catalog.family_source_result;
DROP TRIGGER tr_family_result_pending_update ON catalog.family_source_result;
DROP TRIGGER tr_family_result_pending_insert ON catalog.family_source_result;
DROP FUNCTION catalog.tr_family_result_pending();
DROP TRIGGER tr_simbad_match_tally_delete ON catalog.simbad_match;
DROP TRIGGER tr_simbad_match_tally_update ON catalog.simbad_match;
DROP TRIGGER tr_simbad_match_tally_insert ON catalog.simbad_match;
DROP TRIGGER tr_csc_detection_tally_delete ON catalog.csc_detection;
DROP TRIGGER tr_csc_detection_tally_insert ON catalog.csc_detection;
DROP TRIGGER tr_counterpart_match_pending_delete ON catalog.counterpart_match;
DROP TRIGGER tr_counterpart_match_pending_insert ON catalog.counterpart_match;
DROP TRIGGER tr_simbad_match_pending_delete ON catalog.simbad_match;
DROP TRIGGER tr_simbad_match_pending_insert ON catalog.simbad_match;
DROP TRIGGER tr_csc_source_pending ON catalog.csc_source;
DROP FUNCTION catalog.tr_tally_simbad();
DROP FUNCTION catalog.tr_tally_detections();
DROP FUNCTION catalog.tr_counterpart_match_pending();
DROP FUNCTION catalog.tr_simbad_match_pending();
DROP FUNCTION catalog.tr_source_pending_new();
"""

BACKFILL_SQL = f"""
INSERT INTO catalog.source_pending (step, source_id)
SELECT 'simbad', s.source_id FROM catalog.csc_source s
WHERE NOT EXISTS (SELECT 1 FROM catalog.simbad_match m WHERE m.source_id = s.source_id);
INSERT INTO catalog.source_pending (step, source_id)
SELECT 'counterparts', s.source_id FROM catalog.csc_source s
WHERE NOT EXISTS (SELECT 1 FROM catalog.counterpart_match m
                  WHERE m.source_id = s.source_id AND m.catalogue = '{FIRST_CATALOGUE}');
INSERT INTO catalog.source_pending (step, source_id)
SELECT f.family, s.source_id FROM catalog.csc_source s
CROSS JOIN (VALUES {", ".join(f"('{f}')" for f in FAMILIES)}) AS f(family)
WHERE NOT EXISTS (SELECT 1 FROM catalog.family_source_result r WHERE r.family = f.family
                  AND r.source_id = s.source_id AND r.valid_to IS NULL);
INSERT INTO catalog.detection_tally (otype, n_detections)
SELECT coalesce(m.otype, ''), count(*) FROM catalog.csc_detection d
LEFT JOIN catalog.simbad_match m ON m.source_id = d.source_id GROUP BY 1;
"""


def upgrade() -> None:
    op.create_table(
        "source_pending",
        sa.Column("step", sa.Text(), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(f"step IN ({_STEP_LIST})",
                           name=op.f("ck_source_pending_step")),
        sa.PrimaryKeyConstraint("step", "source_id", name=op.f("pk_source_pending")),
        schema="catalog",
        comment="sources not yet crossmatched with SIMBAD / counterparts, or without a current "
                "result of a source family (kept by triggers)",
    )
    op.create_table(
        "detection_tally",
        sa.Column("otype", sa.Text(), nullable=False,
                  comment="SIMBAD type of the detections' source ('' for none)"),
        sa.Column("n_detections", sa.BigInteger(), nullable=False,
                  comment="a change of the count (the count: the sum per type)"),
        schema="catalog",
        comment="detections per SIMBAD type of their source (kept by triggers)",
    )
    op.create_index("ix_simbad_match_fetched_at", "simbad_match", ["fetched_at"],
                    schema="catalog")
    op.create_index("ix_family_source_result_current_model", "family_source_result",
                    ["family", "model_id"], schema="catalog",
                    postgresql_where=sa.text("valid_to IS NULL"))
    op.execute(BACKFILL_SQL)
    op.execute(TRIGGERS_SQL)


def downgrade() -> None:
    op.execute(DROP_SQL)
    op.drop_index("ix_family_source_result_current_model", "family_source_result",
                  schema="catalog")
    op.drop_index("ix_simbad_match_fetched_at", "simbad_match", schema="catalog")
    op.drop_table("detection_tally", schema="catalog")
    op.drop_table("source_pending", schema="catalog")
