"""Position index on csc_source (cone searches); every class probability of every family

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

* Every cone query (the explorer's search, ``/scs``, ``Catalog.cone``) selects
  ``dec BETWEEN :dec - :r AND :dec + :r`` and then the exact angular distance from ``ra``
  and ``dec``. A btree on ``(dec, ra)`` answers the band with an index range scan (the
  distance is computed from the index entries), instead of a sequential scan of every
  source.
* View ``catalog.source_family_probability``: the current probability of *every* class of
  each family's result for a source (``source_class_by_family`` gives only the chosen
  class's), with the interval where the family gives one; one row per source, family and
  class, in the order of the model's taxonomy. The explorer's source page charts it.

Adds an index and a view only: nothing stored is touched.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROBABILITY_VIEW = """
CREATE VIEW catalog.source_family_probability AS
SELECT r.source_id, s.name, m.family, r.model_id, t.class, t.k::integer AS class_index,
       r.prob_mean[t.k] AS probability, NULL::double precision AS probability_lo,
       NULL::double precision AS probability_hi, r.master_class AS predicted_class
FROM catalog.source_result r
JOIN catalog.csc_source s USING (source_id)
JOIN catalog.fitted_model m ON m.model_id = r.model_id
CROSS JOIN LATERAL unnest(m.taxonomy) WITH ORDINALITY AS t(class, k)
WHERE r.valid_to IS NULL AND r.prob_mean IS NOT NULL
UNION ALL
SELECT f.source_id, s.name, f.family, f.model_id, t.class, t.k::integer,
       f.probabilities[t.k], f.prob_lo[t.k], f.prob_hi[t.k], f.predicted_class
FROM catalog.family_source_result f
JOIN catalog.csc_source s USING (source_id)
JOIN catalog.fitted_model m ON m.model_id = f.model_id
CROSS JOIN LATERAL unnest(m.taxonomy) WITH ORDINALITY AS t(class, k)
WHERE f.valid_to IS NULL AND f.probabilities IS NOT NULL"""


def upgrade() -> None:
    op.create_index("ix_csc_source_dec_ra", "csc_source", ["dec", "ra"], schema="catalog")
    op.execute(PROBABILITY_VIEW)
    op.execute("COMMENT ON VIEW catalog.source_family_probability IS 'the current "
               "probability of every class of every family''s result of a source (one row "
               "per source, family and class), with its interval where the family gives one'")


def downgrade() -> None:
    op.execute("DROP VIEW catalog.source_family_probability")
    op.drop_index("ix_csc_source_dec_ra", "csc_source", schema="catalog")
