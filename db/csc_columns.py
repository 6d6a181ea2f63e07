"""The CSC columns cscat stores: one place for their names, SQL types and valid ranges.

Names are those of the CSC 2.x TAP service (``csc21.master_source`` and
``csc21.observation_source``). Ingest asks for exactly these columns, the schema stores
them as delivered, and validation rejects rows whose values fall outside ``valid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SqlType = Literal["int", "bigint", "double", "text", "bool"]


@dataclass(frozen=True)
class Column:
    """One stored CSC column."""

    name: str
    sql_type: SqlType
    required: bool = False
    valid: tuple[float | None, float | None] | None = None  # inclusive (low, high)
    doc: str = ""


def _band(prefix: str, bands: str, valid=None, doc: str = "") -> list[Column]:
    return [Column(f"{prefix}_{b}", "double", valid=valid, doc=doc) for b in bands]


def _with_limits(name: str, valid=None, doc: str = "") -> list[Column]:
    return [
        Column(name, "double", valid=valid, doc=doc),
        Column(f"{name}_lolim", "double", valid=valid, doc=f"lower confidence limit of {name}"),
        Column(f"{name}_hilim", "double", valid=valid, doc=f"upper confidence limit of {name}"),
    ]


PROBABILITY = (0.0, 1.0)
HARDNESS = (-1.0, 1.0)
NON_NEGATIVE = (0.0, None)

#: Master-source columns (one row per CSC master source).
SOURCE_COLUMNS: tuple[Column, ...] = (
    Column("name", "text", required=True, doc="2CXO Jhhmmss.s±ddmmss"),
    Column("ra", "double", required=True, valid=(0.0, 360.0), doc="ICRS RA, deg"),
    Column("dec", "double", required=True, valid=(-90.0, 90.0), doc="ICRS Dec, deg"),
    Column("err_ellipse_r0", "double", valid=NON_NEGATIVE, doc="95% error ellipse major radius"),
    Column("significance", "double", valid=NON_NEGATIVE, doc="highest flux significance"),
    Column("likelihood_class", "text", doc="TRUE or MARGINAL"),
)

#: Natural key of a detection, beside the master source name.
DETECTION_KEY: tuple[str, ...] = ("obsid", "obi", "region_id")

#: Per-observation detection columns, as delivered by ``observation_source``.
DETECTION_COLUMNS: tuple[Column, ...] = (
    Column("obsid", "int", required=True, valid=(0, None), doc="Chandra ObsID"),
    Column("obi", "int", valid=(0, None), doc="observation interval"),
    Column("region_id", "int", valid=(0, None), doc="detection region within the ObsID"),
    Column("match_type", "text", doc="u: unique, a: ambiguous master association"),
    Column("det_ra", "double", valid=(0.0, 360.0), doc="per-observation RA, deg"),
    Column("det_dec", "double", valid=(-90.0, 90.0), doc="per-observation Dec, deg"),
    Column("theta", "double", valid=NON_NEGATIVE, doc="off-axis angle, arcmin"),
    Column("flux_significance_b", "double", valid=NON_NEGATIVE, doc="broad-band S/N"),
    Column("likelihood", "double", valid=NON_NEGATIVE, doc="detection log-likelihood"),
    *_with_limits("flux_aper_b", valid=NON_NEGATIVE, doc="broad aperture photon flux"),
    *_with_limits("hard_hm", valid=HARDNESS, doc="hard-medium hardness ratio"),
    *_with_limits("hard_hs", valid=HARDNESS, doc="hard-soft hardness ratio"),
    *_with_limits("hard_ms", valid=HARDNESS, doc="medium-soft hardness ratio"),
    *_with_limits("powlaw_gamma", doc="absorbed power-law photon index"),
    Column("powlaw_nh", "double", valid=NON_NEGATIVE, doc="power-law N_H, 1e20 cm^-2"),
    *_with_limits("bb_kt", valid=NON_NEGATIVE, doc="black-body kT, keV"),
    *_band("var_prob", "bhms", valid=PROBABILITY, doc="Gregory-Loredo variability probability"),
    *_band("var_mean", "bhms", valid=NON_NEGATIVE, doc="mean count rate of the light curve"),
    *_band("var_sigma", "bhms", valid=NON_NEGATIVE, doc="count-rate standard deviation"),
    *_band("var_min", "bhms", valid=NON_NEGATIVE, doc="minimum count rate"),
    *_band("var_max", "bhms", valid=NON_NEGATIVE, doc="maximum count rate"),
    *_band("ks_prob", "bhms", valid=PROBABILITY, doc="Kolmogorov-Smirnov variability probability"),
    *_band("kp_prob", "bhms", valid=PROBABILITY, doc="Kuiper variability probability"),
    Column("gti_start", "double", doc="start of good time, Chandra seconds"),
    Column("gti_stop", "double", doc="end of good time, Chandra seconds"),
    Column("gti_mjd_obs", "double", doc="observation start, MJD"),
)

#: Derived per-detection features stored beside the raw columns (computed by ``classifier``).
DERIVED_COLUMNS: tuple[Column, ...] = (
    Column("var_ratio_b", "double", doc="var_sigma_b / var_mean_b"),
    Column("var_ratio_h", "double", doc="var_sigma_h / var_mean_h"),
    Column("var_ratio_s", "double", doc="var_sigma_s / var_mean_s"),
    Column("var_newq_b", "double", doc="((var_max_b + var_min_b) / 2) / var_mean_b"),
)

#: TAP names of detection columns stored under another name (master and detection share ra/dec).
TAP_ALIASES: dict[str, str] = {"det_ra": "ra", "det_dec": "dec"}


def names(columns: tuple[Column, ...]) -> list[str]:
    """The column names, in order."""
    return [c.name for c in columns]
