"""Catalog-scale indexes; class_changes reads only the sources that changed between versions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Indexes for the queries whose cost must not grow with the catalog: SIMBAD matches changed
since a release (``affected_sources``), result rows closed in a version range
(``class_changes``, ``catalog.class_change``), the current results of a class
(``catalog.source_class`` filtered by aggregated class and origin), current results by model.

``catalog.unclassified_detection`` queues the detections with no current result (statement
triggers on ``csc_detection`` and ``detection_result`` keep it), so a publish finds what to
classify without an anti-join over every detection. No foreign key, like csc_detection's own
references (a row-by-row key check would cost most of a bulk load): an id whose detection is
gone is simply not found by the publish's join.

``catalog.class_changes(a, b)`` returns the same rows as before but first restricts itself to
the sources with a result row starting or ending in (least(a, b), greatest(a, b)]: any other
source has the same row (or none) at both versions, so it cannot differ.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLASS_CHANGES_0002 = """
CREATE OR REPLACE FUNCTION catalog.class_changes(from_version integer, to_version integer)
RETURNS TABLE (source_id bigint, name text, from_class text, to_class text,
               from_origin text, to_origin text)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(a.source_id, b.source_id), coalesce(a.name, b.name),
           a.adopted_class, b.adopted_class, a.label_origin, b.label_origin
    FROM catalog.source_class_as_of(from_version) a
    FULL JOIN catalog.source_class_as_of(to_version) b USING (source_id)
    WHERE a.adopted_class IS DISTINCT FROM b.adopted_class
$$"""

CLASS_CHANGES_0003 = """
CREATE OR REPLACE FUNCTION catalog.class_changes(from_version integer, to_version integer)
RETURNS TABLE (source_id bigint, name text, from_class text, to_class text,
               from_origin text, to_origin text)
LANGUAGE sql STABLE AS $$
    WITH candidate AS (
        SELECT r.source_id FROM catalog.source_result r
        WHERE r.valid_from > least(from_version, to_version)
          AND r.valid_from <= greatest(from_version, to_version)
        UNION
        SELECT r.source_id FROM catalog.source_result r
        WHERE r.valid_to > least(from_version, to_version)
          AND r.valid_to <= greatest(from_version, to_version)
    )
    SELECT coalesce(a.source_id, b.source_id), coalesce(a.name, b.name),
           a.adopted_class, b.adopted_class, a.label_origin, b.label_origin
    FROM (SELECT h.* FROM catalog.source_class_as_of(from_version) h
          WHERE h.source_id IN (SELECT c.source_id FROM candidate c)) a
    FULL JOIN (SELECT h.* FROM catalog.source_class_as_of(to_version) h
               WHERE h.source_id IN (SELECT c.source_id FROM candidate c)) b USING (source_id)
    WHERE a.adopted_class IS DISTINCT FROM b.adopted_class
$$"""

QUEUE_SQL = """
CREATE FUNCTION catalog.tr_queue_new_detections() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog.unclassified_detection (detection_id)
    SELECT detection_id FROM new_rows ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER tr_csc_detection_queue AFTER INSERT ON catalog.csc_detection
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_queue_new_detections();

-- a current result takes a detection off the queue
CREATE FUNCTION catalog.tr_dequeue_classified() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM catalog.unclassified_detection u USING new_rows n
    WHERE u.detection_id = n.detection_id AND n.valid_to IS NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER tr_detection_result_dequeue AFTER INSERT ON catalog.detection_result
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_dequeue_classified();

-- closing (or deleting) a detection's last current result puts it back on the queue
CREATE FUNCTION catalog.tr_requeue_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog.unclassified_detection (detection_id)
    SELECT DISTINCT o.detection_id FROM old_rows o
    WHERE o.valid_to IS NULL
      AND EXISTS (SELECT 1 FROM catalog.csc_detection d WHERE d.detection_id = o.detection_id)
      AND NOT EXISTS (SELECT 1 FROM catalog.detection_result r
                      WHERE r.detection_id = o.detection_id AND r.valid_to IS NULL)
    ON CONFLICT DO NOTHING;
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM catalog.unclassified_detection u USING new_rows n
        WHERE u.detection_id = n.detection_id AND n.valid_to IS NULL;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tr_detection_result_requeue_update AFTER UPDATE ON catalog.detection_result
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_requeue_closed();
CREATE TRIGGER tr_detection_result_requeue_delete AFTER DELETE ON catalog.detection_result
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION catalog.tr_requeue_closed();
"""

QUEUE_DROP = """
DROP TRIGGER tr_detection_result_requeue_delete ON catalog.detection_result;
DROP TRIGGER tr_detection_result_requeue_update ON catalog.detection_result;
DROP TRIGGER tr_detection_result_dequeue ON catalog.detection_result;
DROP TRIGGER tr_csc_detection_queue ON catalog.csc_detection;
DROP FUNCTION catalog.tr_requeue_closed();
DROP FUNCTION catalog.tr_dequeue_classified();
DROP FUNCTION catalog.tr_queue_new_detections();
"""

COMMENT = """
COMMENT ON FUNCTION catalog.class_changes(integer, integer) IS
    'Sources whose adopted class differs between catalog versions FROM_VERSION and TO_VERSION'"""


def upgrade() -> None:
    op.create_index("ix_simbad_match_changed_at", "simbad_match", ["changed_at"],
                    schema="catalog")
    op.create_index("ix_source_result_valid_to", "source_result", ["valid_to"],
                    schema="catalog")
    op.create_index("ix_source_result_current_agg", "source_result",
                    ["agg_adopted_class", "label_origin"], schema="catalog",
                    postgresql_where=sa.text("valid_to IS NULL"))
    op.execute(CLASS_CHANGES_0003)
    op.execute(COMMENT)
    op.create_index("ix_detection_result_current_model", "detection_result",
                    ["model_id", "detection_id"], schema="catalog",
                    postgresql_where=sa.text("valid_to IS NULL"))
    op.create_table(
        "unclassified_detection",
        sa.Column("detection_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("detection_id", name=op.f("pk_unclassified_detection")),
        schema="catalog",
        comment="detections with no current result under any model (kept by triggers)",
    )
    op.execute(
        "INSERT INTO catalog.unclassified_detection (detection_id) "
        "SELECT d.detection_id FROM catalog.csc_detection d WHERE NOT EXISTS "
        "(SELECT 1 FROM catalog.detection_result r "
        "WHERE r.detection_id = d.detection_id AND r.valid_to IS NULL)")
    op.execute(QUEUE_SQL)


def downgrade() -> None:
    op.execute(QUEUE_DROP)
    op.drop_table("unclassified_detection", schema="catalog")
    op.drop_index("ix_detection_result_current_model", "detection_result", schema="catalog")
    op.execute(CLASS_CHANGES_0002)
    op.drop_index("ix_source_result_current_agg", "source_result", schema="catalog")
    op.drop_index("ix_source_result_valid_to", "source_result", schema="catalog")
    op.drop_index("ix_simbad_match_changed_at", "simbad_match", schema="catalog")
