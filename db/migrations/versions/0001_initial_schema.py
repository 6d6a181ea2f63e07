"""initial schema: sources, detections, SIMBAD, ingest runs, models, versioned results

Revision ID: 0001
Revises:
Create Date: 2026-11-22 01:41:23.897967

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema.

    The bulk tables (csc_source, csc_detection, detection_result, source_result) carry no
    foreign keys: row-by-row checks cost ~8 µs per key and row here, most of a bulk load or
    a million-detection publish. db.load and db.catalog_store derive every reference in the
    writing transaction, and db.integrity checks them set-wise.
    """
    version = op.get_bind().execute(sa.text("SHOW server_version_num")).scalar()
    if int(version) < 150000:
        raise RuntimeError(
            f"cscat needs PostgreSQL >= 15 (NULLS NOT DISTINCT); server is {version}"
        )
    op.create_table(
        "fitted_model",
        sa.Column("model_id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), server_default="candidate", nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "model",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="ClusterThenLabel.to_dict()",
        ),
        sa.Column("validation", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("n_detections", sa.Integer(), nullable=False),
        sa.Column("n_labeled", sa.Integer(), nullable=False),
        sa.Column("input_digest", sa.Text(), nullable=True, comment="hash of the training input"),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('candidate', 'active', 'retired', 'rejected')",
            name=op.f("ck_fitted_model_status"),
        ),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_fitted_model")),
        schema="catalog",
    )
    op.create_index(
        "uq_fitted_model_one_active",
        "fitted_model",
        ["status"],
        unique=True,
        schema="catalog",
        postgresql_where="status = 'active'",
    )
    op.create_table(
        "ingest_run",
        sa.Column("run_id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False, comment="service URL or file path"),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), server_default="running", nullable=False),
        sa.Column(
            "watermark",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="e.g. the --until date",
        ),
        sa.Column("n_new_detections", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_new_sources", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_duplicates", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_rejected", sa.Integer(), server_default="0", nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('csc', 'simbad', 'file', 'simbad-file', 'sample')",
            name=op.f("ck_ingest_run_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')", name=op.f("ck_ingest_run_status")
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_ingest_run")),
        schema="catalog",
    )
    op.create_table(
        "csc_source",
        sa.Column("source_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False, comment="2CXO Jhhmmss.s±ddmmss"),
        sa.Column("ra", sa.Double(), nullable=False, comment="ICRS RA, deg"),
        sa.Column("dec", sa.Double(), nullable=False, comment="ICRS Dec, deg"),
        sa.Column(
            "err_ellipse_r0", sa.Double(), nullable=True, comment="95% error ellipse major radius"
        ),
        sa.Column("significance", sa.Double(), nullable=True, comment="highest flux significance"),
        sa.Column("likelihood_class", sa.Text(), nullable=True, comment="TRUE or MARGINAL"),
        sa.Column("ingest_run_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_csc_source")),
        sa.UniqueConstraint("name", name=op.f("uq_csc_source_name")),
        schema="catalog",
    )
    op.create_table(
        "observation",
        sa.Column("obsid", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("obs_mjd", sa.Double(), nullable=True),
        sa.Column("n_detections", sa.Integer(), nullable=False),
        sa.Column("ingest_run_id", sa.Integer(), nullable=False),
        sa.Column(
            "ingested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["ingest_run_id"],
            ["catalog.ingest_run.run_id"],
            name=op.f("fk_observation_ingest_run_id_ingest_run"),
        ),
        sa.PrimaryKeyConstraint("obsid", name=op.f("pk_observation")),
        schema="catalog",
    )
    op.create_table(
        "rejected_row",
        sa.Column("rejected_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("ingest_run_id", sa.Integer(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=True, comment="0-based row of the input"),
        sa.Column("natural_key", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["ingest_run_id"],
            ["catalog.ingest_run.run_id"],
            name=op.f("fk_rejected_row_ingest_run_id_ingest_run"),
        ),
        sa.PrimaryKeyConstraint("rejected_id", name=op.f("pk_rejected_row")),
        schema="catalog",
    )
    op.create_table(
        "release",
        sa.Column("release_id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("flow_run_id", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["catalog.fitted_model.model_id"],
            name=op.f("fk_release_model_id_fitted_model"),
        ),
        sa.PrimaryKeyConstraint("release_id", name=op.f("pk_release")),
        schema="catalog",
    )
    op.create_table(
        "classification_run",
        sa.Column("run_id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), server_default="running", nullable=False),
        sa.Column("n_detections", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')",
            name=op.f("ck_classification_run_status"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["catalog.fitted_model.model_id"],
            name=op.f("fk_classification_run_model_id_fitted_model"),
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["catalog.release.release_id"],
            name=op.f("fk_classification_run_release_id_release"),
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_classification_run")),
        schema="catalog",
    )
    op.create_table(
        "csc_detection",
        sa.Column("detection_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("obsid", sa.Integer(), nullable=False, comment="Chandra ObsID"),
        sa.Column("obi", sa.Integer(), nullable=True, comment="observation interval"),
        sa.Column(
            "region_id", sa.Integer(), nullable=True, comment="detection region within the ObsID"
        ),
        sa.Column(
            "match_type",
            sa.Text(),
            nullable=True,
            comment="u: unique, a: ambiguous master association",
        ),
        sa.Column("det_ra", sa.Double(), nullable=True, comment="per-observation RA, deg"),
        sa.Column("det_dec", sa.Double(), nullable=True, comment="per-observation Dec, deg"),
        sa.Column("theta", sa.Double(), nullable=True, comment="off-axis angle, arcmin"),
        sa.Column("flux_significance_b", sa.Double(), nullable=True, comment="broad-band S/N"),
        sa.Column("likelihood", sa.Double(), nullable=True, comment="detection log-likelihood"),
        sa.Column("flux_aper_b", sa.Double(), nullable=True, comment="broad aperture photon flux"),
        sa.Column(
            "flux_aper_b_lolim",
            sa.Double(),
            nullable=True,
            comment="lower confidence limit of flux_aper_b",
        ),
        sa.Column(
            "flux_aper_b_hilim",
            sa.Double(),
            nullable=True,
            comment="upper confidence limit of flux_aper_b",
        ),
        sa.Column("hard_hm", sa.Double(), nullable=True, comment="hard-medium hardness ratio"),
        sa.Column(
            "hard_hm_lolim", sa.Double(), nullable=True, comment="lower confidence limit of hard_hm"
        ),
        sa.Column(
            "hard_hm_hilim", sa.Double(), nullable=True, comment="upper confidence limit of hard_hm"
        ),
        sa.Column("hard_hs", sa.Double(), nullable=True, comment="hard-soft hardness ratio"),
        sa.Column(
            "hard_hs_lolim", sa.Double(), nullable=True, comment="lower confidence limit of hard_hs"
        ),
        sa.Column(
            "hard_hs_hilim", sa.Double(), nullable=True, comment="upper confidence limit of hard_hs"
        ),
        sa.Column("hard_ms", sa.Double(), nullable=True, comment="medium-soft hardness ratio"),
        sa.Column(
            "hard_ms_lolim", sa.Double(), nullable=True, comment="lower confidence limit of hard_ms"
        ),
        sa.Column(
            "hard_ms_hilim", sa.Double(), nullable=True, comment="upper confidence limit of hard_ms"
        ),
        sa.Column(
            "powlaw_gamma", sa.Double(), nullable=True, comment="absorbed power-law photon index"
        ),
        sa.Column(
            "powlaw_gamma_lolim",
            sa.Double(),
            nullable=True,
            comment="lower confidence limit of powlaw_gamma",
        ),
        sa.Column(
            "powlaw_gamma_hilim",
            sa.Double(),
            nullable=True,
            comment="upper confidence limit of powlaw_gamma",
        ),
        sa.Column("powlaw_nh", sa.Double(), nullable=True, comment="power-law N_H, 1e20 cm^-2"),
        sa.Column("bb_kt", sa.Double(), nullable=True, comment="black-body kT, keV"),
        sa.Column(
            "bb_kt_lolim", sa.Double(), nullable=True, comment="lower confidence limit of bb_kt"
        ),
        sa.Column(
            "bb_kt_hilim", sa.Double(), nullable=True, comment="upper confidence limit of bb_kt"
        ),
        sa.Column(
            "var_prob_b",
            sa.Double(),
            nullable=True,
            comment="Gregory-Loredo variability probability",
        ),
        sa.Column(
            "var_prob_h",
            sa.Double(),
            nullable=True,
            comment="Gregory-Loredo variability probability",
        ),
        sa.Column(
            "var_prob_m",
            sa.Double(),
            nullable=True,
            comment="Gregory-Loredo variability probability",
        ),
        sa.Column(
            "var_prob_s",
            sa.Double(),
            nullable=True,
            comment="Gregory-Loredo variability probability",
        ),
        sa.Column(
            "var_mean_b", sa.Double(), nullable=True, comment="mean count rate of the light curve"
        ),
        sa.Column(
            "var_mean_h", sa.Double(), nullable=True, comment="mean count rate of the light curve"
        ),
        sa.Column(
            "var_mean_m", sa.Double(), nullable=True, comment="mean count rate of the light curve"
        ),
        sa.Column(
            "var_mean_s", sa.Double(), nullable=True, comment="mean count rate of the light curve"
        ),
        sa.Column(
            "var_sigma_b", sa.Double(), nullable=True, comment="count-rate standard deviation"
        ),
        sa.Column(
            "var_sigma_h", sa.Double(), nullable=True, comment="count-rate standard deviation"
        ),
        sa.Column(
            "var_sigma_m", sa.Double(), nullable=True, comment="count-rate standard deviation"
        ),
        sa.Column(
            "var_sigma_s", sa.Double(), nullable=True, comment="count-rate standard deviation"
        ),
        sa.Column("var_min_b", sa.Double(), nullable=True, comment="minimum count rate"),
        sa.Column("var_min_h", sa.Double(), nullable=True, comment="minimum count rate"),
        sa.Column("var_min_m", sa.Double(), nullable=True, comment="minimum count rate"),
        sa.Column("var_min_s", sa.Double(), nullable=True, comment="minimum count rate"),
        sa.Column("var_max_b", sa.Double(), nullable=True, comment="maximum count rate"),
        sa.Column("var_max_h", sa.Double(), nullable=True, comment="maximum count rate"),
        sa.Column("var_max_m", sa.Double(), nullable=True, comment="maximum count rate"),
        sa.Column("var_max_s", sa.Double(), nullable=True, comment="maximum count rate"),
        sa.Column(
            "ks_prob_b",
            sa.Double(),
            nullable=True,
            comment="Kolmogorov-Smirnov variability probability",
        ),
        sa.Column(
            "ks_prob_h",
            sa.Double(),
            nullable=True,
            comment="Kolmogorov-Smirnov variability probability",
        ),
        sa.Column(
            "ks_prob_m",
            sa.Double(),
            nullable=True,
            comment="Kolmogorov-Smirnov variability probability",
        ),
        sa.Column(
            "ks_prob_s",
            sa.Double(),
            nullable=True,
            comment="Kolmogorov-Smirnov variability probability",
        ),
        sa.Column(
            "kp_prob_b", sa.Double(), nullable=True, comment="Kuiper variability probability"
        ),
        sa.Column(
            "kp_prob_h", sa.Double(), nullable=True, comment="Kuiper variability probability"
        ),
        sa.Column(
            "kp_prob_m", sa.Double(), nullable=True, comment="Kuiper variability probability"
        ),
        sa.Column(
            "kp_prob_s", sa.Double(), nullable=True, comment="Kuiper variability probability"
        ),
        sa.Column(
            "gti_start", sa.Double(), nullable=True, comment="start of good time, Chandra seconds"
        ),
        sa.Column(
            "gti_stop", sa.Double(), nullable=True, comment="end of good time, Chandra seconds"
        ),
        sa.Column("gti_mjd_obs", sa.Double(), nullable=True, comment="observation start, MJD"),
        sa.Column("var_ratio_b", sa.Double(), nullable=True, comment="var_sigma_b / var_mean_b"),
        sa.Column("var_ratio_h", sa.Double(), nullable=True, comment="var_sigma_h / var_mean_h"),
        sa.Column("var_ratio_s", sa.Double(), nullable=True, comment="var_sigma_s / var_mean_s"),
        sa.Column(
            "var_newq_b",
            sa.Double(),
            nullable=True,
            comment="((var_max_b + var_min_b) / 2) / var_mean_b",
        ),
        sa.Column("ingest_run_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("detection_id", name=op.f("pk_csc_detection")),
        sa.UniqueConstraint(
            "source_id",
            "obsid",
            "obi",
            "region_id",
            name=op.f("uq_csc_detection_source_id_obsid_obi_region_id"),
            postgresql_nulls_not_distinct=True,
        ),
        schema="catalog",
    )
    op.create_index(
        op.f("ix_csc_detection_obsid"), "csc_detection", ["obsid"], unique=False, schema="catalog"
    )
    op.create_table(
        "simbad_match",
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("main_id", sa.Text(), nullable=True),
        sa.Column("otype", sa.Text(), nullable=True, comment="SIMBAD type as returned"),
        sa.Column("separation_arcsec", sa.Double(), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="when main_id/otype last took their current value",
        ),
        sa.Column("ingest_run_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ingest_run_id"],
            ["catalog.ingest_run.run_id"],
            name=op.f("fk_simbad_match_ingest_run_id_ingest_run"),
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["catalog.csc_source.source_id"],
            name=op.f("fk_simbad_match_source_id_csc_source"),
        ),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_simbad_match")),
        schema="catalog",
    )
    op.create_table(
        "simbad_match_history",
        sa.Column("history_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("main_id", sa.Text(), nullable=True),
        sa.Column("otype", sa.Text(), nullable=True),
        sa.Column("separation_arcsec", sa.Double(), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ingest_run_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ingest_run_id"],
            ["catalog.ingest_run.run_id"],
            name=op.f("fk_simbad_match_history_ingest_run_id_ingest_run"),
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["catalog.csc_source.source_id"],
            name=op.f("fk_simbad_match_history_source_id_csc_source"),
        ),
        sa.PrimaryKeyConstraint("history_id", name=op.f("pk_simbad_match_history")),
        schema="catalog",
    )
    op.create_index(
        op.f("ix_simbad_match_history_source_id"),
        "simbad_match_history",
        ["source_id"],
        unique=False,
        schema="catalog",
    )
    op.create_table(
        "source_result",
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("hard_class", sa.Text(), nullable=True),
        sa.Column("soft_class", sa.Text(), nullable=True),
        sa.Column("master_class", sa.Text(), nullable=True),
        sa.Column("agg_master_class", sa.Text(), nullable=True),
        sa.Column("ambiguous", sa.Boolean(), nullable=True),
        sa.Column("n_detections", sa.Integer(), nullable=False),
        sa.Column("prob_mean", postgresql.ARRAY(sa.Double()), nullable=True),
        sa.Column("prob_std", postgresql.ARRAY(sa.Double()), nullable=True),
        sa.PrimaryKeyConstraint("source_id", "valid_from", name=op.f("pk_source_result")),
        schema="catalog",
    )
    op.create_index(
        "ix_source_result_current",
        "source_result",
        ["source_id"],
        unique=False,
        schema="catalog",
        postgresql_where="valid_to IS NULL",
    )
    op.create_table(
        "detection_result",
        sa.Column("detection_id", sa.BigInteger(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.Column("cluster", sa.SmallInteger(), nullable=True),
        sa.Column("predicted_class", sa.Text(), nullable=True),
        sa.Column(
            "probabilities",
            postgresql.ARRAY(sa.Double()),
            nullable=True,
            comment="in the order of the model's classes",
        ),
        sa.Column("reason", sa.Text(), nullable=True, comment="why there is no class"),
        sa.Column("classification_run_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "detection_id", "model_id", "valid_from", name=op.f("pk_detection_result")
        ),
        schema="catalog",
    )
    op.create_index(
        "ix_detection_result_current",
        "detection_result",
        ["detection_id"],
        unique=False,
        schema="catalog",
        postgresql_where="valid_to IS NULL",
    )


def downgrade() -> None:
    """Downgrade schema (and what the downgrade of 0002 kept for its next upgrade)."""
    op.execute("DROP TABLE IF EXISTS catalog._migration_0002_source_result")
    op.execute("DROP TABLE IF EXISTS catalog._migration_0002_simbad_type")
    op.drop_index(
        "ix_detection_result_current",
        table_name="detection_result",
        schema="catalog",
        postgresql_where="valid_to IS NULL",
    )
    op.drop_table("detection_result", schema="catalog")
    op.drop_index(
        "ix_source_result_current",
        table_name="source_result",
        schema="catalog",
        postgresql_where="valid_to IS NULL",
    )
    op.drop_table("source_result", schema="catalog")
    op.drop_index(
        op.f("ix_simbad_match_history_source_id"),
        table_name="simbad_match_history",
        schema="catalog",
    )
    op.drop_table("simbad_match_history", schema="catalog")
    op.drop_table("simbad_match", schema="catalog")
    op.drop_index(op.f("ix_csc_detection_obsid"), table_name="csc_detection", schema="catalog")
    op.drop_table("csc_detection", schema="catalog")
    op.drop_table("classification_run", schema="catalog")
    op.drop_table("release", schema="catalog")
    op.drop_table("rejected_row", schema="catalog")
    op.drop_table("observation", schema="catalog")
    op.drop_table("csc_source", schema="catalog")
    op.drop_table("ingest_run", schema="catalog")
    op.drop_index(
        "uq_fitted_model_one_active",
        table_name="fitted_model",
        schema="catalog",
        postgresql_where="status = 'active'",
    )
    op.drop_table("fitted_model", schema="catalog")
