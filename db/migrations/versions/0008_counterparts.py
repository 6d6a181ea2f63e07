"""Counterparts (Gaia DR3, 2MASS, AllWISE) with NWAY probabilities; curated label sets

Revision ID: 0008
Revises: 0006_reader_role
Create Date: 2026-12-01

Tables ``counterpart_candidate`` (every candidate of the current match), ``counterpart_match``
(per source and catalogue: the chosen one, or none), ``counterpart_match_history`` (matches a
refresh replaced), ``label_set`` and ``label`` (imported training sets); views
``catalog.counterpart`` and ``catalog.training_label``, readable by ``cscat_reader`` (its
grants are re-applied by ``db/migrations/env.py`` after every upgrade). Ingest runs may be of
kind ``counterparts`` and ``labels``. Adds only: nothing stored before is touched.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "catalog"
VALUES = ("g_mag", "bp_mag", "rp_mag", "parallax", "pm", "j_mag", "h_mag", "k_mag",
          "w1_mag", "w2_mag", "w3_mag")
CAT_CHECK = "catalogue IN ('gaia', '2mass', 'allwise')"
OLD_KINDS = "kind IN ('csc', 'simbad', 'file', 'simbad-file', 'sample')"
NEW_KINDS = ("kind IN ('csc', 'simbad', 'file', 'simbad-file', 'sample', 'counterparts', "
             "'labels')")
TZ = sa.DateTime(timezone=True)


def _run_fk(name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["ingest_run_id"], [f"{S}.ingest_run.run_id"],
                                   name=op.f(f"fk_{name}_ingest_run_id_ingest_run"))


def _source_fk(name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["source_id"], [f"{S}.csc_source.source_id"],
                                   name=op.f(f"fk_{name}_source_id_csc_source"))


def upgrade() -> None:
    op.drop_constraint(op.f("ck_ingest_run_kind"), "ingest_run", schema=S, type_="check")
    op.create_check_constraint(op.f("ck_ingest_run_kind"), "ingest_run", NEW_KINDS, schema=S)
    op.create_table(
        "counterpart_candidate",
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("catalogue", sa.Text(), nullable=False),
        sa.Column("cp_id", sa.Text(), nullable=False, comment="the catalogue's own id"),
        sa.Column("ra", sa.Double(), nullable=False),
        sa.Column("dec", sa.Double(), nullable=False),
        sa.Column("separation_arcsec", sa.Double(), nullable=False),
        sa.Column("sigma_arcsec", sa.Double(), nullable=False,
                  comment="1-sigma position error"),
        sa.Column("p_any", sa.Double(), nullable=False,
                  comment="probability that the source has a counterpart in this catalogue"),
        sa.Column("p_i", sa.Double(), nullable=False,
                  comment="probability that this candidate is it"),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        *(sa.Column(c, sa.Double(), nullable=True) for c in VALUES),
        sa.Column("fetched_at", TZ, nullable=False),
        sa.Column("ingest_run_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(CAT_CHECK, name=op.f("ck_counterpart_candidate_catalogue")),
        sa.PrimaryKeyConstraint("source_id", "catalogue", "cp_id",
                                name=op.f("pk_counterpart_candidate")),
        schema=S,
        comment="every counterpart candidate of the current match (a bulk table: no foreign "
                "keys; replaced per source when its match is refreshed)",
    )
    op.create_table(
        "counterpart_match",
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("catalogue", sa.Text(), nullable=False),
        sa.Column("cp_id", sa.Text(), nullable=True, comment="the chosen candidate"),
        sa.Column("p_any", sa.Double(), nullable=False),
        sa.Column("p_i", sa.Double(), nullable=True, comment="p_i of the best candidate"),
        sa.Column("separation_arcsec", sa.Double(), nullable=True),
        sa.Column("n_candidates", sa.Integer(), nullable=False),
        sa.Column("fetched_at", TZ, nullable=False),
        sa.Column("changed_at", TZ, nullable=False,
                  comment="when cp_id last took its current value"),
        sa.Column("ingest_run_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(CAT_CHECK, name=op.f("ck_counterpart_match_catalogue")),
        _source_fk("counterpart_match"), _run_fk("counterpart_match"),
        sa.PrimaryKeyConstraint("source_id", "catalogue", name=op.f("pk_counterpart_match")),
        schema=S,
    )
    op.create_index(op.f("ix_counterpart_match_fetched_at"), "counterpart_match", ["fetched_at"],
                    schema=S)
    op.create_table(
        "counterpart_match_history",
        sa.Column("history_id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("catalogue", sa.Text(), nullable=False),
        sa.Column("cp_id", sa.Text(), nullable=True),
        sa.Column("p_any", sa.Double(), nullable=False),
        sa.Column("p_i", sa.Double(), nullable=True),
        sa.Column("separation_arcsec", sa.Double(), nullable=True),
        sa.Column("fetched_at", TZ, nullable=False),
        sa.Column("replaced_at", TZ, nullable=False),
        sa.Column("ingest_run_id", sa.Integer(), nullable=False),
        _source_fk("counterpart_match_history"), _run_fk("counterpart_match_history"),
        sa.PrimaryKeyConstraint("history_id", name=op.f("pk_counterpart_match_history")),
        schema=S,
    )
    op.create_index(op.f("ix_counterpart_match_history_source_id"), "counterpart_match_history",
                    ["source_id"], schema=S)
    op.create_table(
        "label_set",
        sa.Column("set_id", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False, comment="the imported file"),
        sa.Column("n_labels", sa.Integer(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False,
                  comment="sha256 of the sorted (name, class) rows"),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("ingest_run_id", sa.Integer(), nullable=False),
        _run_fk("label_set"),
        sa.PrimaryKeyConstraint("set_id", name=op.f("pk_label_set")),
        sa.UniqueConstraint("name", name=op.f("uq_label_set_name")),
        schema=S,
    )
    op.create_table(
        "label",
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False, comment="CSC source name"),
        sa.Column("class", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["set_id"], [f"{S}.label_set.set_id"],
                                name=op.f("fk_label_set_id_label_set")),
        sa.PrimaryKeyConstraint("set_id", "name", name=op.f("pk_label")),
        schema=S,
    )
    op.execute(f"""
        CREATE VIEW {S}.counterpart AS
        SELECT s.name, c.catalogue, c.cp_id AS counterpart_id, c.ra, c.dec,
               c.separation_arcsec, c.sigma_arcsec, c.p_any, c.p_i, c.chosen,
               c.g_mag, c.bp_mag, c.rp_mag, c.parallax, c.pm, c.j_mag, c.h_mag, c.k_mag,
               c.w1_mag, c.w2_mag, c.w3_mag, c.fetched_at
        FROM {S}.counterpart_candidate c JOIN {S}.csc_source s USING (source_id)""")
    op.execute(f"""COMMENT ON VIEW {S}.counterpart IS
        'every Gaia DR3 / 2MASS / AllWISE candidate counterpart of each source with NWAY''s '
        'p_any (the source has a counterpart in that catalogue) and p_i (this candidate is '
        'it); chosen: the one adopted (highest p_i, p_any >= counterpart_min_p_any)'""")
    op.execute(f"""
        CREATE VIEW {S}.training_label AS
        SELECT ls.name AS label_set, l.name, l.class, ls.created_at
        FROM {S}.label l JOIN {S}.label_set ls USING (set_id)""")
    op.execute(f"COMMENT ON VIEW {S}.training_label IS "
               "'imported curated training sets: (label set, CSC source name, class)'")


def downgrade() -> None:
    op.execute(f"DROP VIEW {S}.training_label")
    op.execute(f"DROP VIEW {S}.counterpart")
    op.drop_table("label", schema=S)
    op.drop_table("label_set", schema=S)
    op.drop_index(op.f("ix_counterpart_match_history_source_id"), "counterpart_match_history",
                  schema=S)
    op.drop_table("counterpart_match_history", schema=S)
    op.drop_index(op.f("ix_counterpart_match_fetched_at"), "counterpart_match", schema=S)
    op.drop_table("counterpart_match", schema=S)
    op.drop_table("counterpart_candidate", schema=S)
    op.execute(f"DELETE FROM {S}.rejected_row WHERE ingest_run_id IN (SELECT run_id FROM "
               f"{S}.ingest_run WHERE kind IN ('counterparts', 'labels'))")
    op.execute(f"DELETE FROM {S}.ingest_run WHERE kind IN ('counterparts', 'labels')")
    op.drop_constraint(op.f("ck_ingest_run_kind"), "ingest_run", schema=S, type_="check")
    op.create_check_constraint(op.f("ck_ingest_run_kind"), "ingest_run", OLD_KINDS, schema=S)
