"""SQLAlchemy 2 models of the cscat store. Every table lives in the schema ``catalog``.

Tables hold what was ingested and computed; later migrations add the user-facing views
(``catalog.detection``, ``catalog.source_class``, ...) on top of them.

Versioning: a :class:`Release` is one catalog version. Result rows are valid from the
release that wrote them until the release that superseded them (``valid_to``, NULL while
current), so storage grows with changes and any past version can be read back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.csc_columns import DERIVED_COLUMNS, DETECTION_COLUMNS, DETECTION_KEY, SOURCE_COLUMNS

SCHEMA = "catalog"
SQL_TYPES = {"int": Integer, "bigint": BigInteger, "double": Double, "text": Text,
             "bool": Boolean}

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _run_fk(nullable: bool = True) -> Mapped[int | None]:
    return mapped_column(ForeignKey(f"{SCHEMA}.ingest_run.run_id"), nullable=nullable)


class IngestRun(Base):
    """One ingest (CSC, SIMBAD or file): what it covered, what it added, how it ended."""

    __tablename__ = "ingest_run"
    __table_args__ = (
        CheckConstraint("kind IN ('csc', 'simbad', 'file', 'simbad-file', 'sample', "
                        "'counterparts', 'labels')", "kind"),
        CheckConstraint("status IN ('running', 'completed', 'failed')", "status"),
    )

    run_id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(Text, comment="service URL or file path")
    started_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default="running")
    watermark: Mapped[dict | None] = mapped_column(JSONB, comment="e.g. the --until date")
    n_new_detections: Mapped[int] = mapped_column(Integer, server_default="0")
    n_new_sources: Mapped[int] = mapped_column(Integer, server_default="0")
    n_duplicates: Mapped[int] = mapped_column(Integer, server_default="0")
    n_rejected: Mapped[int] = mapped_column(Integer, server_default="0")
    message: Mapped[str | None] = mapped_column(Text)


class Observation(Base):
    """An ObsID whose detections are ingested: the incremental ingest's record of coverage."""

    __tablename__ = "observation"

    obsid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    obs_mjd: Mapped[float | None] = mapped_column(Double)
    n_detections: Mapped[int] = mapped_column(Integer)
    ingest_run_id: Mapped[int] = _run_fk(nullable=False)
    ingested_at: Mapped[datetime] = _now()


class RejectedRow(Base):
    """An input row that did not load, and why."""

    __tablename__ = "rejected_row"

    rejected_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    ingest_run_id: Mapped[int] = _run_fk(nullable=False)
    row_number: Mapped[int | None] = mapped_column(Integer, comment="0-based row of the input")
    natural_key: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict | None] = mapped_column(JSONB)


# The bulk tables (csc_source, csc_detection, detection_result, source_result) have no
# foreign keys: a row-by-row check per key costs most of a bulk load. Their writers derive
# every reference in the writing transaction and db.integrity checks them set-wise.
source_table = Table(
    "csc_source",
    Base.metadata,
    Column("source_id", BigInteger, Identity(), primary_key=True),
    *(Column(c.name, SQL_TYPES[c.sql_type], nullable=not c.required, comment=c.doc)
      for c in SOURCE_COLUMNS),
    Column("ingest_run_id", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    UniqueConstraint("name"),
    # cone searches: the Dec band by an index range scan (migration 0010)
    Index("ix_csc_source_dec_ra", "dec", "ra"),
)


class Source(Base):
    """A CSC master source."""

    __table__ = source_table
    source_id: Mapped[int]
    name: Mapped[str]
    ra: Mapped[float]
    dec: Mapped[float]


detection_table = Table(
    "csc_detection",
    Base.metadata,
    Column("detection_id", BigInteger, Identity(), primary_key=True),
    Column("source_id", BigInteger, nullable=False),
    *(Column(c.name, SQL_TYPES[c.sql_type], nullable=not c.required, comment=c.doc)
      for c in (*DETECTION_COLUMNS, *DERIVED_COLUMNS)),
    Column("ingest_run_id", Integer, nullable=False),
    # Natural key: master source + ObsID + OBI + region; an ambiguous observation detection
    # appears once under each of its master sources.
    UniqueConstraint("source_id", *DETECTION_KEY, postgresql_nulls_not_distinct=True),
    Index(None, "obsid"),
)


class Detection(Base):
    """A per-observation detection of a master source, raw CSC values and derived features."""

    __table__ = detection_table
    detection_id: Mapped[int]
    source_id: Mapped[int]
    obsid: Mapped[int]


class SimbadMatch(Base):
    """The current SIMBAD crossmatch of a source (``main_id`` NULL: no object within radius)."""

    __tablename__ = "simbad_match"
    __table_args__ = (Index("ix_simbad_match_changed_at", "changed_at"),
                      Index("ix_simbad_match_fetched_at", "fetched_at"))

    source_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.csc_source.source_id"), primary_key=True
    )
    main_id: Mapped[str | None] = mapped_column(Text)
    otype: Mapped[str | None] = mapped_column(Text, comment="SIMBAD type as returned")
    separation_arcsec: Mapped[float | None] = mapped_column(Double)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), comment="when main_id/otype last took their current value")
    ingest_run_id: Mapped[int] = _run_fk(nullable=False)


class SimbadMatchHistory(Base):
    """A SIMBAD match that a later refresh replaced with a different one."""

    __tablename__ = "simbad_match_history"

    history_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.csc_source.source_id"), index=True
    )
    main_id: Mapped[str | None] = mapped_column(Text)
    otype: Mapped[str | None] = mapped_column(Text)
    separation_arcsec: Mapped[float | None] = mapped_column(Double)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    replaced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ingest_run_id: Mapped[int] = _run_fk(nullable=False)


class SimbadChange(Base):
    """A source whose SIMBAD match changed and whose master result has not been rebuilt yet.

    The SIMBAD ingest queues the source in the transaction that changes the match; the next
    publish takes (deletes) the rows it can see in its own transaction, so a change committed
    while a publish runs stays queued for the next one (no wall-clock comparison)."""

    __tablename__ = "simbad_change"
    __table_args__ = (
        {"comment": "sources whose SIMBAD match changed since their master result was built"},
    )

    change_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source_id: Mapped[int] = mapped_column(BigInteger)
    queued_at: Mapped[datetime] = _now()
    ingest_run_id: Mapped[int | None] = mapped_column(Integer)


class FittedModel(Base):
    """A fitted classifier, stored as JSON arrays (never pickle), with its validation."""

    __tablename__ = "fitted_model"
    __table_args__ = (
        CheckConstraint("status IN ('candidate', 'active', 'retired', 'rejected')", "status"),
        Index("uq_fitted_model_one_active", "family", unique=True,
              postgresql_where="status = 'active'"),
    )

    model_id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    created_at: Mapped[datetime] = _now()
    status: Mapped[str] = mapped_column(Text, server_default="candidate")
    params: Mapped[dict] = mapped_column(JSONB)
    model: Mapped[dict] = mapped_column(JSONB, comment="ClusterThenLabel.to_dict()")
    validation: Mapped[dict | None] = mapped_column(JSONB)
    n_detections: Mapped[int] = mapped_column(Integer)
    n_labeled: Mapped[int] = mapped_column(Integer)
    input_digest: Mapped[str | None] = mapped_column(Text, comment="hash of the training input")
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)
    family: Mapped[str] = mapped_column(Text, server_default="ctl",
                                        comment="classifier family (classifier.FAMILIES)")
    taxonomy: Mapped[list[str] | None] = mapped_column(
        ARRAY(Text), comment="the model's classes, in the order of its probability arrays")
    label_set: Mapped[str] = mapped_column(Text, server_default="simbad",
                                           comment="the labels it was trained on")
    model_bytes: Mapped[bytes | None] = mapped_column(
        LargeBinary, comment="classifier.save(model) of families other than ctl (no pickle)")


class Release(Base):
    """A catalog version: what one update run changed, committed atomically."""

    __tablename__ = "release"

    release_id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    created_at: Mapped[datetime] = _now()
    model_id: Mapped[int | None] = mapped_column(ForeignKey(f"{SCHEMA}.fitted_model.model_id"))
    counts: Mapped[dict | None] = mapped_column(JSONB)
    flow_run_id: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


class ClassificationRun(Base):
    """One application of a model to detections."""

    __tablename__ = "classification_run"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'completed', 'failed')", "status"),
    )

    run_id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.fitted_model.model_id"))
    release_id: Mapped[int | None] = mapped_column(ForeignKey(f"{SCHEMA}.release.release_id"))
    started_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default="running")
    n_detections: Mapped[int] = mapped_column(Integer, server_default="0")


class DetectionResult(Base):
    """A per-detection classification, valid from one release until superseded.

    No foreign keys (a bulk table: see the note above ``source_table``); db.integrity checks
    its references."""

    __tablename__ = "detection_result"
    __table_args__ = (
        Index("ix_detection_result_current", "detection_id",
              postgresql_where="valid_to IS NULL"),
        Index("ix_detection_result_valid_from", "valid_from"),
        Index("ix_detection_result_current_model", "model_id", "detection_id",
              postgresql_where=text("valid_to IS NULL")),
    )

    detection_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    valid_from: Mapped[int] = mapped_column(Integer, primary_key=True)
    valid_to: Mapped[int | None] = mapped_column(Integer)
    cluster: Mapped[int | None] = mapped_column(SmallInteger)
    predicted_class: Mapped[str | None] = mapped_column(Text)
    probabilities: Mapped[list[float] | None] = mapped_column(
        ARRAY(Double), comment="in the order of the model's classes"
    )
    reason: Mapped[str | None] = mapped_column(Text, comment="why there is no class")
    classification_run_id: Mapped[int] = mapped_column(Integer)


class UnclassifiedDetection(Base):
    """A detection with no current result under any model: the queue a publish classifies
    first (kept by statement triggers on ``csc_detection`` and ``detection_result``)."""

    __tablename__ = "unclassified_detection"
    __table_args__ = (
        {"comment": "detections with no current result under any model (kept by triggers)"},
    )

    detection_id: Mapped[int] = mapped_column(BigInteger, primary_key=True,
                                              autoincrement=False)


class SourcePending(Base):
    """A source not yet crossmatched by an ingest step (``simbad``: no SIMBAD match;
    ``counterparts``: no counterpart match of the first catalogue), or without a current
    result of a source family (step: the family): the queue those steps read (kept by
    statement triggers on ``csc_source``, ``simbad_match``, ``counterpart_match`` and
    ``family_source_result``)."""

    __tablename__ = "source_pending"
    __table_args__ = (
        CheckConstraint("step IN ('simbad', 'counterparts', 'muwclass', 'claxboi', 'gbm')",
                        "step"),
        {"comment": "sources not yet crossmatched with SIMBAD / counterparts, or without a "
                    "current result of a source family (kept by triggers)"},
    )

    step: Mapped[str] = mapped_column(Text, primary_key=True)
    source_id: Mapped[int] = mapped_column(BigInteger, primary_key=True,
                                           autoincrement=False)


#: Changes of the detections per SIMBAD type of their source (``''``: none; the count is
#: the sum per type), appended by statement triggers on ``csc_detection`` and
#: ``simbad_match`` and compacted by each publish: the refit decision's counts. No key (a
#: derived cache; writers only append, so they never wait for each other).
detection_tally_table = Table(
    "detection_tally",
    Base.metadata,
    Column("otype", Text, nullable=False,
           comment="SIMBAD type of the detections' source ('' for none)"),
    Column("n_detections", BigInteger, nullable=False,
           comment="a change of the count (the count: the sum per type)"),
    comment="detections per SIMBAD type of their source (kept by triggers)",
)


class SourceResult(Base):
    """A master (per-source) classification, valid from one release until superseded.

    No foreign keys (a bulk table); db.integrity checks its references."""

    __tablename__ = "source_result"
    __table_args__ = (
        Index("ix_source_result_current", "source_id", postgresql_where="valid_to IS NULL"),
        Index("ix_source_result_valid", "valid_from", "valid_to"),
        Index("ix_source_result_valid_to", "valid_to"),
        CheckConstraint("label_origin IN ('simbad', 'model')", "label_origin"),
    )

    source_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    valid_from: Mapped[int] = mapped_column(Integer, primary_key=True)
    valid_to: Mapped[int | None] = mapped_column(Integer)
    model_id: Mapped[int] = mapped_column(Integer)
    hard_class: Mapped[str | None] = mapped_column(Text)
    soft_class: Mapped[str | None] = mapped_column(Text)
    master_class: Mapped[str | None] = mapped_column(Text)
    agg_master_class: Mapped[str | None] = mapped_column(Text)
    ambiguous: Mapped[bool | None] = mapped_column(Boolean)
    n_detections: Mapped[int] = mapped_column(Integer)
    prob_mean: Mapped[list[float] | None] = mapped_column(ARRAY(Double))
    prob_std: Mapped[list[float] | None] = mapped_column(ARRAY(Double))
    simbad_otype: Mapped[str | None] = mapped_column(
        Text, comment="SIMBAD type when this result was made")
    simbad_class: Mapped[str | None] = mapped_column(
        Text, comment="class of that SIMBAD type (reference types only)")
    adopted_class: Mapped[str | None] = mapped_column(
        Text, comment="the class to use: SIMBAD's for references, else the model's")
    agg_adopted_class: Mapped[str | None] = mapped_column(Text, comment="aggregated adopted class")
    label_origin: Mapped[str | None] = mapped_column(
        Text, comment="where adopted_class comes from: simbad or model")


#: Class columns of ``catalog.source_class`` (frozen at migration 0014, in the order of
#: ``source_result``'s probability arrays).
_CURRENT_CLASSES = ("qso", "agn", "seyfert_1", "seyfert_2", "hmxb", "lmxb", "xb", "yso",
                    "ttau", "orion_v")

#: The current per-source result: the ``source_result`` row with ``valid_to IS NULL`` with
#: its source's name and position and the probabilities as columns, kept by statement
#: triggers on ``source_result`` and ``csc_source`` in the writing transaction (migration
#: 0014). ``catalog.source_class`` reads it; the covering index makes a class/probability
#: filter an index-only range scan. No foreign key (a derived bulk table).
source_class_current_table = Table(
    "source_class_current",
    Base.metadata,
    Column("source_id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("ra", Double, nullable=False),
    Column("dec", Double, nullable=False),
    Column("valid_from", Integer, nullable=False),
    Column("model_id", Integer, nullable=False),
    *(Column(c, Text) for c in ("adopted_class", "agg_adopted_class", "label_origin",
                                "master_class", "agg_master_class", "hard_class",
                                "soft_class")),
    Column("ambiguous", Boolean),
    Column("n_detections", Integer, nullable=False),
    Column("simbad_otype", Text),
    Column("simbad_class", Text),
    *(Column(f"{stat}_{c}", Double) for stat in ("mean", "std") for c in _CURRENT_CLASSES),
    Index("ix_source_class_current_name", "name"),
    Index("ix_source_class_current_adopted", "adopted_class"),
    Index("ix_source_class_current_class", "agg_adopted_class", "label_origin",
          postgresql_include=["adopted_class", "name", "ra", "dec",
                              *(f"mean_{c}" for c in _CURRENT_CLASSES)]),
    comment="the current per-source result (catalog.source_class), kept by triggers on "
            "source_result and csc_source",
)

#: Sources per (adopted class, aggregated class, origin) at each catalog version, written by
#: the publish in the version's transaction (``catalog.class_counts_as_of(v)``; migration
#: 0014). Classes with no source at a version have no row.
version_class_count_table = Table(
    "version_class_count",
    Base.metadata,
    Column("release_id", Integer, nullable=False),
    Column("adopted_class", Text),
    Column("agg_adopted_class", Text),
    Column("label_origin", Text),
    Column("n_sources", BigInteger, nullable=False),
    Index("ix_version_class_count_release", "release_id"),
    comment="sources per adopted class and origin at each catalog version (written by the "
            "publish of that version)",
)


class SimbadType(Base):
    """SIMBAD type -> class, a copy of ``classifier.taxonomy`` for SQL (synced on update)."""

    __tablename__ = "simbad_type"
    __table_args__ = (
        CheckConstraint("kind IN ('reference', 'unlabeled', 'other')", "kind"),
        {"comment": "SIMBAD type -> class, synced from classifier.taxonomy by every update"},
    )

    otype: Mapped[str] = mapped_column(Text, primary_key=True)
    class_: Mapped[str | None] = mapped_column("class", Text)
    agg_class: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)


#: Catalogues of counterparts (``ingest.counterparts.CATALOGUES``).
COUNTERPART_CATALOGUES = ("gaia", "2mass", "allwise")
_CATALOGUE_CHECK = "catalogue IN ('gaia', '2mass', 'allwise')"
#: Magnitude and astrometry columns of a counterpart candidate (VizieR units).
COUNTERPART_VALUES = ("g_mag", "bp_mag", "rp_mag", "parallax", "pm", "j_mag", "h_mag",
                      "k_mag", "w1_mag", "w2_mag", "w3_mag")
#: Their 1-sigma magnitude errors (VizieR ``e_Gmag`` ...; revision 0012).
COUNTERPART_ERRORS = ("e_g_mag", "e_bp_mag", "e_rp_mag", "e_j_mag", "e_h_mag", "e_k_mag",
                      "e_w1_mag", "e_w2_mag", "e_w3_mag")


counterpart_candidate_table = Table(
    "counterpart_candidate",
    Base.metadata,
    Column("source_id", BigInteger, primary_key=True),
    Column("catalogue", Text, primary_key=True),
    Column("cp_id", Text, primary_key=True, comment="the catalogue's own id"),
    Column("ra", Double, nullable=False),
    Column("dec", Double, nullable=False),
    Column("separation_arcsec", Double, nullable=False),
    Column("sigma_arcsec", Double, nullable=False, comment="1-sigma position error"),
    Column("p_any", Double, nullable=False,
           comment="probability that the source has a counterpart in this catalogue"),
    Column("p_i", Double, nullable=False, comment="probability that this candidate is it"),
    Column("chosen", Boolean, nullable=False),
    *(Column(c, Double) for c in COUNTERPART_VALUES),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("ingest_run_id", Integer, nullable=False),
    *(Column(c, Double, comment="1-sigma error of " + c[2:]) for c in COUNTERPART_ERRORS),
    CheckConstraint(_CATALOGUE_CHECK, "catalogue"),
    comment="every counterpart candidate of the current match (a bulk table: no foreign "
            "keys; replaced per source when its match is refreshed)",
)


class CounterpartCandidate(Base):
    """A Gaia DR3 / 2MASS / AllWISE object within a source's search radius, with NWAY's
    probabilities (replaced when the source's counterparts are refreshed)."""

    __table__ = counterpart_candidate_table
    source_id: Mapped[int]
    catalogue: Mapped[str]
    cp_id: Mapped[str]


class CounterpartMatch(Base):
    """The current counterpart of a source in one catalogue (``cp_id`` NULL: none chosen)."""

    __tablename__ = "counterpart_match"
    __table_args__ = (CheckConstraint(_CATALOGUE_CHECK, "catalogue"),
                      Index("ix_counterpart_match_fetched_at", "fetched_at"))

    source_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.csc_source.source_id"), primary_key=True)
    catalogue: Mapped[str] = mapped_column(Text, primary_key=True)
    cp_id: Mapped[str | None] = mapped_column(Text, comment="the chosen candidate")
    p_any: Mapped[float] = mapped_column(Double)
    p_i: Mapped[float | None] = mapped_column(Double, comment="p_i of the best candidate")
    separation_arcsec: Mapped[float | None] = mapped_column(Double)
    n_candidates: Mapped[int] = mapped_column(Integer)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), comment="when cp_id last took its current value")
    ingest_run_id: Mapped[int] = _run_fk(nullable=False)


class CounterpartChange(Base):
    """A source whose chosen counterparts changed since the families that use counterpart
    features last classified it (queued by the counterpart ingest in the transaction that
    changes the match, taken by the next publish, as ``simbad_change``)."""

    __tablename__ = "counterpart_change"
    __table_args__ = (
        {"comment": "sources whose chosen counterparts changed since the families using "
                    "them last classified them"},
    )

    change_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source_id: Mapped[int] = mapped_column(BigInteger)
    queued_at: Mapped[datetime] = _now()
    ingest_run_id: Mapped[int | None] = mapped_column(Integer)


class CounterpartMatchHistory(Base):
    """A counterpart match that a later refresh replaced with a different chosen one."""

    __tablename__ = "counterpart_match_history"

    history_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source_id: Mapped[int] = mapped_column(
        ForeignKey(f"{SCHEMA}.csc_source.source_id"), index=True)
    catalogue: Mapped[str] = mapped_column(Text)
    cp_id: Mapped[str | None] = mapped_column(Text)
    p_any: Mapped[float] = mapped_column(Double)
    p_i: Mapped[float | None] = mapped_column(Double)
    separation_arcsec: Mapped[float | None] = mapped_column(Double)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    replaced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ingest_run_id: Mapped[int] = _run_fk(nullable=False)


class LabelSet(Base):
    """A curated training set (source name -> class), e.g. the MUWCLASS training set."""

    __tablename__ = "label_set"

    set_id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    origin: Mapped[str] = mapped_column(Text, comment="the imported file")
    n_labels: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(Text, comment="sha256 of the sorted (name, class) rows")
    created_at: Mapped[datetime] = _now()
    ingest_run_id: Mapped[int] = _run_fk(nullable=False)


class Label(Base):
    """One source's class in a label set (by CSC name: it need not be ingested yet)."""

    __tablename__ = "label"

    set_id: Mapped[int] = mapped_column(ForeignKey(f"{SCHEMA}.label_set.set_id"),
                                        primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True, comment="CSC source name")
    class_: Mapped[str] = mapped_column("class", Text)

class FamilySourceResult(Base):
    """A per-source result of a source family's model, valid from one release until
    superseded. Probabilities (and the interval bounds) are in the order of the model's
    ``taxonomy``. No foreign keys (a bulk table)."""

    __tablename__ = "family_source_result"
    __table_args__ = (
        Index("ix_family_source_result_current", "family", "source_id",
              postgresql_where=text("valid_to IS NULL"), postgresql_include=["model_id"]),
        Index("ix_family_source_result_valid_from", "valid_from"),
        Index("ix_family_source_result_valid_to", "valid_to"),
        Index("ix_family_source_result_current_model", "family", "model_id",
              postgresql_where=text("valid_to IS NULL")),
    )

    source_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    valid_from: Mapped[int] = mapped_column(Integer, primary_key=True)
    valid_to: Mapped[int | None] = mapped_column(Integer)
    family: Mapped[str] = mapped_column(Text)
    predicted_class: Mapped[str | None] = mapped_column(Text)
    probabilities: Mapped[list[float] | None] = mapped_column(
        ARRAY(Double), comment="in the order of the model's taxonomy")
    prob_lo: Mapped[list[float] | None] = mapped_column(
        ARRAY(Double), comment="lower bound of each probability (families with intervals)")
    prob_hi: Mapped[list[float] | None] = mapped_column(
        ARRAY(Double), comment="upper bound of each probability (families with intervals)")
    outlier: Mapped[float | None] = mapped_column(Double, comment="outlier measure (claxboi)")
    marginals: Mapped[dict | None] = mapped_column(
        JSONB, comment="per feature category: probabilities and the alternative class")
    reason: Mapped[str | None] = mapped_column(Text, comment="why there is no class")
    n_detections: Mapped[int] = mapped_column(Integer, comment="detections the features "
                                                               "were built from")
    features: Mapped[list[float] | None] = mapped_column(
        ARRAY(Double), comment="the per-source inputs the model was applied to, in the "
                               "order of its required columns (params->'inputs')")


class CoarseClass(Base):
    """Family class -> coarse class, a copy of ``classifier.families.taxonomy`` for SQL."""

    __tablename__ = "coarse_class"
    __table_args__ = (
        {"comment": "family class -> coarse class, synced from classifier.families.taxonomy"},
    )

    class_: Mapped[str] = mapped_column("class", Text, primary_key=True)
    coarse_class: Mapped[str] = mapped_column(Text)


#: Tables whose row counts ``cscat status`` shows.
MAIN_TABLES = ("csc_source", "csc_detection", "observation", "simbad_match", "fitted_model",
               "release", "detection_result", "source_result", "family_source_result", "ingest_run",
               "rejected_row", "counterpart_candidate", "counterpart_match",
               "counterpart_match_history")
