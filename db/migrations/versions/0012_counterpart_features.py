"""Counterpart features of the families: magnitude errors and the counterpart change queue

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

* ``counterpart_candidate`` gets the 1-sigma magnitude errors VizieR gives (``e_g_mag`` ...
  ``e_w3_mag``; NULL for rows stored before, until their next refresh), so the families'
  Monte Carlo draws have widths; ``catalog.counterpart`` shows them (appended columns: the
  others are unchanged).
* ``counterpart_change``: sources whose chosen counterparts changed since the families using
  counterpart features last classified them (queued by the counterpart ingest in the
  transaction that changes the match; the next publish takes them, as ``simbad_change``).

Adds only: nothing stored before is touched.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen copy of db.models.COUNTERPART_ERRORS at this revision.
ERRORS = ("e_g_mag", "e_bp_mag", "e_rp_mag", "e_j_mag", "e_h_mag", "e_k_mag", "e_w1_mag",
          "e_w2_mag", "e_w3_mag")


VIEW = """
    CREATE OR REPLACE VIEW catalog.counterpart AS
    SELECT s.name, c.catalogue, c.cp_id AS counterpart_id, c.ra, c.dec,
           c.separation_arcsec, c.sigma_arcsec, c.p_any, c.p_i, c.chosen,
           c.g_mag, c.bp_mag, c.rp_mag, c.parallax, c.pm, c.j_mag, c.h_mag, c.k_mag,
           c.w1_mag, c.w2_mag, c.w3_mag, c.fetched_at{extra}
    FROM catalog.counterpart_candidate c JOIN catalog.csc_source s USING (source_id)"""


def upgrade() -> None:
    for c in ERRORS:
        op.add_column("counterpart_candidate",
                      sa.Column(c, sa.Double(), nullable=True,
                                comment="1-sigma error of " + c[2:]),
                      schema="catalog")
    op.execute(VIEW.format(extra="".join(f", c.{c}" for c in ERRORS)))
    op.create_table(
        "counterpart_change",
        sa.Column("change_id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("ingest_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("change_id", name=op.f("pk_counterpart_change")),
        schema="catalog",
        comment="sources whose chosen counterparts changed since the families using them "
                "last classified them",
    )


def downgrade() -> None:
    op.drop_table("counterpart_change", schema="catalog")
    op.execute("DROP VIEW catalog.counterpart")  # columns cannot be dropped by REPLACE
    op.execute(VIEW.format(extra="").replace("CREATE OR REPLACE", "CREATE"))
    op.execute("""COMMENT ON VIEW catalog.counterpart IS
        'every Gaia DR3 / 2MASS / AllWISE candidate counterpart of each source with NWAY''s '
        'p_any (the source has a counterpart in that catalogue) and p_i (this candidate is '
        'it); chosen: the one adopted (highest p_i, p_any >= counterpart_min_p_any)'""")
    op.execute("GRANT SELECT ON catalog.counterpart TO cscat_reader")
    for c in reversed(ERRORS):
        op.drop_column("counterpart_candidate", c, schema="catalog")
