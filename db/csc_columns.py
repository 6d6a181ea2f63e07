"""The CSC columns cscat stores: one place for their names, SQL types, valid ranges and
where the CSC 2.1 TAP service delivers them.

Stored names are mostly those of the service (``csc21.master_source``,
``csc21.observation_source``); the few stored under another name, delivered by another
table or not delivered at all are listed in ``TAP_SOURCES``. ``DOCUMENTED_TAP_COLUMNS`` is
the project's own list of the service's column names it relies on, taken from the CSC 2.1
documentation (the CXC command-line client's column lists, the paper's ADQL, the CSC FAQ):
the loopback fake TAP service refuses any other name, as the real one would.
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
    choices: tuple[str, ...] | None = None  # the only values a text column may take


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
    Column("likelihood_class", "text", doc="TRUE or MARGINAL", choices=("TRUE", "MARGINAL")),
)

#: Natural key of a detection, beside the master source name.
DETECTION_KEY: tuple[str, ...] = ("obsid", "obi", "region_id")

#: Per-observation detection columns, as delivered by ``observation_source``.
DETECTION_COLUMNS: tuple[Column, ...] = (
    Column("obsid", "int", required=True, valid=(0, None), doc="Chandra ObsID"),
    Column("obi", "int", valid=(0, None), doc="observation interval"),
    Column("region_id", "int", valid=(0, None), doc="detection region within the ObsID"),
    Column("match_type", "text", doc="u: unique, a: ambiguous master association",
           choices=("u", "a", "n")),
    Column("det_ra", "double", valid=(0.0, 360.0), doc="per-observation RA, deg"),
    Column("det_dec", "double", valid=(-90.0, 90.0), doc="per-observation Dec, deg"),
    Column("theta", "double", valid=NON_NEGATIVE, doc="off-axis angle, arcmin"),
    Column("flux_significance_b", "double", valid=NON_NEGATIVE, doc="broad-band S/N"),
    Column("likelihood", "double", valid=NON_NEGATIVE, doc="detection log-likelihood"),
    # CSC's flux_aper_b is the energy flux (photflux_aper_b the photon flux; migration 0011)
    *_with_limits("flux_aper_b", valid=NON_NEGATIVE,
                  doc="aperture-corrected net energy flux, broad band, erg s^-1 cm^-2"),
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

#: Derived per-detection features stored beside the raw columns (computed by ``classifier``;
#: a file may give them instead of their raw inputs).
DERIVED_COLUMNS: tuple[Column, ...] = (
    Column("var_ratio_b", "double", valid=NON_NEGATIVE, doc="var_sigma_b / var_mean_b"),
    Column("var_ratio_h", "double", valid=NON_NEGATIVE, doc="var_sigma_h / var_mean_h"),
    Column("var_ratio_s", "double", valid=NON_NEGATIVE, doc="var_sigma_s / var_mean_s"),
    Column("var_newq_b", "double", valid=NON_NEGATIVE,
           doc="((var_max_b + var_min_b) / 2) / var_mean_b"),
)

#: Range of each integer SQL type: a value outside it cannot be stored and is rejected.
INT_RANGE: dict[str, tuple[int, int]] = {"int": (-(2**31), 2**31 - 1),
                                         "bigint": (-(2**63), 2**63 - 1)}

#: Where the TAP service delivers stored columns that are not ``<default table>.<name>``
#: (the default: ``master_source`` for SOURCE_COLUMNS, ``observation_source`` for
#: DETECTION_COLUMNS): (table, TAP column name), or None when the service has no documented
#: column for it (``observation_source`` documents no per-observation position).
TAP_SOURCES: dict[str, tuple[str, str] | None] = {
    "match_type": ("master_stack_assoc", "match_type"),
    "likelihood": ("observation_source", "likelihood_b"),
    "flux_aper_b_lolim": ("observation_source", "flux_aper_lolim_b"),
    "flux_aper_b_hilim": ("observation_source", "flux_aper_hilim_b"),
    "det_ra": None,
    "det_dec": None,
}

#: Stored columns the TAP service does not deliver (NA after a TAP ingest).
NOT_FROM_TAP: tuple[str, ...] = tuple(k for k, v in TAP_SOURCES.items() if v is None)

#: TAP (and CSC export) names of columns stored under another name: stored -> TAP name.
TAP_ALIASES: dict[str, str] = {k: v[1] for k, v in TAP_SOURCES.items()
                               if v is not None and v[1] != k}

#: The CSC 2.1 TAP column names cscat relies on, per table, as documented (see the module
#: docstring). Kept here by hand, not derived from the columns above, so that a wrong name
#: in a query is caught by the fake service and by the test against the documentation.
DOCUMENTED_TAP_COLUMNS: dict[str, frozenset[str]] = {
    "master_source": frozenset({
        "name", "ra", "dec", "err_ellipse_r0", "significance", "likelihood_class"}),
    "master_stack_assoc": frozenset({"name", "detect_stack_id", "region_id", "match_type"}),
    "stack_source": frozenset({"detect_stack_id", "region_id"}),
    "stack_observation_assoc": frozenset({"detect_stack_id", "region_id", "obsid", "obi"}),
    "observation_source": frozenset({
        "obsid", "obi", "region_id", "theta", "flux_significance_b", "likelihood_b",
        "flux_aper_b", "flux_aper_lolim_b", "flux_aper_hilim_b",
        "hard_hm", "hard_hm_lolim", "hard_hm_hilim", "hard_hs", "hard_hs_lolim",
        "hard_hs_hilim", "hard_ms", "hard_ms_lolim", "hard_ms_hilim",
        "powlaw_gamma", "powlaw_gamma_lolim", "powlaw_gamma_hilim", "powlaw_nh",
        "bb_kt", "bb_kt_lolim", "bb_kt_hilim",
        *(f"{v}_{b}" for v in ("var_prob", "var_mean", "var_sigma", "var_min", "var_max",
                               "ks_prob", "kp_prob") for b in "bhms"),
        "gti_start", "gti_stop", "gti_mjd_obs"}),
}


def tap_source(col: Column) -> tuple[str, str] | None:
    """(TAP table, TAP column name) delivering a stored column, or None."""
    if col.name in TAP_SOURCES:
        return TAP_SOURCES[col.name]
    table = "master_source" if col in SOURCE_COLUMNS else "observation_source"
    return table, col.name


def names(columns: tuple[Column, ...]) -> list[str]:
    """The column names, in order."""
    return [c.name for c in columns]
