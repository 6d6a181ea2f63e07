"""What every column of the catalog's views means: unit, UCD and description, in one place.

PostgreSQL shows them as column comments (``\\d+ catalog.source_class`` in psql; applied by
migration 0007 and again at the end of every upgrade, so a view a later migration recreates
keeps them), the exports (``cscat export``), the cone search (``/scs``) and the Python client
put the same text on their columns. :func:`comment` is that text: the description, then the
unit in brackets. Units are VOUnit strings (astropy parses them), UCDs are UCD1+ words.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Connection, text

from classifier.taxonomy import AGGREGATION, CLASSES
from db.csc_columns import DERIVED_COLUMNS, DETECTION_COLUMNS, TAP_ALIASES


class ColumnDoc(NamedTuple):
    """One column: its meaning, VOUnit unit (None: dimensionless or text) and UCD1+."""

    description: str
    unit: str | None = None
    ucd: str | None = None


def comment(doc: ColumnDoc) -> str:
    """The one text of a column: the description, with its unit in brackets."""
    return doc.description + (f" [{doc.unit}]" if doc.unit else "")


def class_column(cls: str) -> str:
    """``Orion_V*`` -> ``orion_v``: the SQL name of a class in the probability columns."""
    return cls.lower().replace("*", "").strip("_")


D = ColumnDoc
ENERGY_FLUX = "erg.s**-1.cm**-2"
COUNT_RATE = "count.s**-1"

# -- shared columns -------------------------------------------------------------------------
SOURCE_ID = D("cscat's internal id of the CSC master source (stable within this database)",
              None, "meta.id")
NAME = D("CSC master source name, 2CXO Jhhmmss.s+ddmmss", None, "meta.id;meta.main")
RA = D("ICRS right ascension of the CSC master source", "deg", "pos.eq.ra;meta.main")
DEC = D("ICRS declination of the CSC master source", "deg", "pos.eq.dec;meta.main")
DETECTION_ID = D("cscat's internal id of the per-observation detection", None, "meta.id")
OBSID = D("Chandra observation id (ObsID)", None, "meta.id;obs")
OBI = D("observation interval within the ObsID", None, "meta.id;obs")
REGION_ID = D("detection region within the ObsID", None, "meta.id")
MODEL_ID = D("model version (catalog.model_version) that produced this result", None,
             "meta.version")
CATALOG_VERSION = D("catalog version (catalog.catalog_version) that published this result",
                    None, "meta.version")
FAMILY = D("classifier family (ctl, muwclass, claxboi, gbm)", None, "meta.code.class")
TAXONOMY = D("the model's class list, in the order of its probabilities", None, "meta.note")
LABEL_SET = D("label set the model was trained on (simbad: SIMBAD types)", None, "meta.id")


def _classes(prefix: str, what: str, ucd: str) -> dict[str, ColumnDoc]:
    return {f"{prefix}{class_column(c)}": D(what.format(c=c, agg=AGGREGATION[c]), None, ucd)
            for c in CLASSES}


# -- catalog.detection: the stored CSC columns (db.csc_columns) with units and UCDs ----------
_LIMITS = {"lolim": ("lower", "stat.min"), "hilim": ("upper", "stat.max")}
_CSC: dict[str, tuple[str | None, str]] = {  # stored name -> (unit, UCD)
    "match_type": (None, "meta.code"),
    "det_ra": ("deg", "pos.eq.ra"), "det_dec": ("deg", "pos.eq.dec"),
    "theta": ("arcmin", "pos.angDistance;instr.fov"),
    "flux_significance_b": (None, "stat.snr;em.X-ray"),
    "likelihood": (None, "stat.likelihood"),
    "flux_aper_b": (ENERGY_FLUX, "phot.flux;em.X-ray"),
    "powlaw_gamma": (None, "spect.index"),
    "powlaw_nh": ("1e+20cm**-2", "phys.columnDensity"),
    "bb_kt": ("keV", "phys.temperature"),
    "gti_start": ("s", "time.start;obs"), "gti_stop": ("s", "time.end;obs"),
    "gti_mjd_obs": ("d", "time.epoch;obs"),
}
_CSC_PREFIX: dict[str, tuple[str | None, str]] = {
    "hard_": (None, "phot.color;em.X-ray"),
    "var_prob_": (None, "stat.probability;src.var"),
    "ks_prob_": (None, "stat.probability;src.var"),
    "kp_prob_": (None, "stat.probability;src.var"),
    "var_mean_": (COUNT_RATE, "phot.count;stat.mean"),
    "var_sigma_": (COUNT_RATE, "stat.stdev;phot.count"),
    "var_min_": (COUNT_RATE, "phot.count;stat.min"),
    "var_max_": (COUNT_RATE, "phot.count;stat.max"),
    "var_ratio_": (None, "src.var;arith.ratio"),
    "var_newq_": (None, "src.var;arith.ratio"),
}
_BANDS = {"b": "broad (0.5-7 keV)", "h": "hard (2-7 keV)", "m": "medium (1.2-2 keV)",
          "s": "soft (0.5-1.2 keV)"}


def _csc_doc(name: str, doc: str) -> ColumnDoc:
    base, _, lim = name.rpartition("_")
    if lim in _LIMITS:  # a confidence limit: its column's unit, "<primary>;stat.min|max"
        parent = _csc_doc(base, "")
        side, word = _LIMITS[lim]
        return D(f"{side} confidence limit of {base} ({_origin(name)})", parent.unit,
                 f"{parent.ucd.split(';')[0]};{word}")
    text = doc
    if name in _CSC:
        unit, ucd = _CSC[name]
    else:
        prefix = next((p for p in _CSC_PREFIX if name.startswith(p)), None)
        if prefix is None:
            raise KeyError(f"no unit/UCD for CSC column {name}")
        unit, ucd = _CSC_PREFIX[prefix]
        band = name.rpartition("_")[2]
        if band in _BANDS and prefix != "hard_":
            text = f"{text}, {_BANDS[band]} band"
    for unit_text in (", deg", ", arcmin", ", keV", ", 1e20 cm^-2", ", erg s^-1 cm^-2"):
        text = text.replace(unit_text, "")
    return D(f"{text} ({_origin(name)})" if "(CSC" not in text else text, unit, ucd)


def _origin(name: str) -> str:
    if name in {c.name for c in DERIVED_COLUMNS}:
        return "derived by cscat from the CSC columns"
    return f"CSC {TAP_ALIASES.get(name, name)}"


DETECTION: dict[str, ColumnDoc] = {
    "name": NAME,
    "detection_id": DETECTION_ID,
    "source_id": SOURCE_ID,
    "obsid": OBSID, "obi": OBI, "region_id": REGION_ID,
    **{c.name: _csc_doc(c.name, c.doc) for c in DETECTION_COLUMNS + DERIVED_COLUMNS
       if c.name not in ("obsid", "obi", "region_id")},
    "ingest_run_id": D("ingest run (catalog.ingest_run) that loaded this detection", None,
                       "meta.id"),
    "ingested_at": D("when that ingest run started (UTC)", None, "time.processing"),
    "ingest_kind": D("what that ingest run read: csc (TAP), file or sample", None, "meta.code"),
}

SOURCE: dict[str, ColumnDoc] = {
    "source_id": SOURCE_ID, "name": NAME, "ra": RA, "dec": DEC,
    "err_ellipse_r0": D("major radius of the 95% confidence position error ellipse (CSC "
                        "err_ellipse_r0)", "arcsec", "stat.error;pos.errorEllipse"),
    "significance": D("highest flux significance of the source over its detections (CSC "
                      "significance)", None, "stat.snr"),
    "likelihood_class": D("CSC detection likelihood class: TRUE or MARGINAL", None,
                          "meta.code.qual"),
    "n_detections": D("number of per-observation detections stored for the source", None,
                      "meta.number"),
    "simbad_main_id": D("SIMBAD main identifier of the nearest object within the crossmatch "
                        "radius", None, "meta.id.cross"),
    "simbad_otype": D("SIMBAD object type of that object", None, "src.class"),
    "simbad_separation_arcsec": D("angular distance from the source to that SIMBAD object",
                                  "arcsec", "pos.angDistance"),
    "simbad_fetched_at": D("when the SIMBAD match was fetched (UTC)", None, "time.processing"),
    "simbad_class": D("reference class of the SIMBAD type (reference types only)", None,
                      "src.class"),
    "simbad_agg_class": D("aggregated class (AGN, Seyfert, XB, YSO) of the SIMBAD type", None,
                          "src.class"),
    "simbad_kind": D("kind of the SIMBAD type: reference (a training class), unlabeled "
                     "(uninformative or no type) or other", None, "meta.code.class"),
}

DETECTION_CLASS: dict[str, ColumnDoc] = {
    "detection_id": DETECTION_ID, "name": NAME, "source_id": SOURCE_ID,
    "obsid": OBSID, "obi": OBI, "region_id": REGION_ID,
    "model_id": MODEL_ID, "catalog_version": CATALOG_VERSION,
    "cluster": D("mixture component (cluster) the model assigned the detection to", None,
                 "meta.code.class"),
    "predicted_class": D("class predicted for this detection by the model", None,
                         "src.class"),
    "agg_predicted_class": D("aggregated class (AGN, Seyfert, XB, YSO) of predicted_class",
                             None, "src.class"),
    "reason": D("why the detection has no class (e.g. a missing feature); empty when "
                "classified", None, "meta.note"),
    **_classes("p_", "probability of class {c} (aggregated: {agg}) for this detection",
               "stat.probability"),
}

_HISTORY = {"source_id": SOURCE_ID, "name": NAME, "ra": RA, "dec": DEC,
            "catalog_version": CATALOG_VERSION,
            "valid_from": D("first catalog version in which this result is current", None,
                            "meta.version"),
            "valid_to": D("catalog version that superseded this result (empty: current)",
                          None, "meta.version"),
            "model_id": MODEL_ID,
            "adopted_class": D("the class to use: SIMBAD's for reference types, else the "
                               "model's soft-vote class", None, "src.class;meta.main"),
            "agg_adopted_class": D("aggregated class (AGN, Seyfert, XB, YSO) of adopted_class",
                                   None, "src.class"),
            "label_origin": D("where adopted_class comes from: simbad or model", None,
                              "meta.code"),
            "master_class": D("master class of the source's detections (hard vote, ties by "
                              "soft vote)", None, "src.class"),
            "agg_master_class": D("aggregated class of master_class", None, "src.class"),
            "hard_class": D("hard vote: the class most of the source's detections have", None,
                            "src.class"),
            "soft_class": D("soft vote: the class of highest mean probability", None,
                            "src.class"),
            "ambiguous": D("true when hard and soft vote disagree", None, "meta.code.qual"),
            "n_detections": D("number of classified detections the vote used", None,
                              "meta.number"),
            "simbad_otype": D("SIMBAD object type when this result was made", None,
                              "src.class"),
            "simbad_class": D("reference class of that SIMBAD type (reference types only)",
                              None, "src.class"),
            **_classes("mean_", "mean over the source's classified detections of the "
                       "probability of class {c} (aggregated: {agg})",
                       "stat.probability;stat.mean"),
            **_classes("std_", "standard deviation over the source's classified detections "
                       "of the probability of class {c}", "stat.stdev;stat.probability")}

CLASS_CHANGE: dict[str, ColumnDoc] = {
    "source_id": SOURCE_ID, "name": NAME,
    "catalog_version": D("catalog version in which the adopted class changed", None,
                         "meta.version"),
    "previous_version": D("catalog version of the previous result", None, "meta.version"),
    "previous_class": D("adopted class before the change (empty: none)", None, "src.class"),
    "class": D("adopted class after the change (empty: none)", None, "src.class"),
    "previous_origin": D("label_origin before the change: simbad or model", None,
                         "meta.code"),
    "label_origin": D("label_origin after the change: simbad or model", None, "meta.code"),
}

MODEL_VERSION: dict[str, ColumnDoc] = {
    "model_id": D("model version", None, "meta.version;meta.main"),
    "created_at": D("when the model was fitted (UTC)", None, "time.creation"),
    "status": D("candidate, active, retired or rejected", None, "meta.code.status"),
    "promoted_at": D("when the model became active (UTC)", None, "time.processing"),
    "n_detections": D("detections the model was fitted on", None, "meta.number"),
    "n_labeled": D("SIMBAD-labelled detections among them", None, "meta.number"),
    "input_digest": D("hash of the training input (detection ids and labels)", None,
                      "meta.checksum"),
    "params": D("fit parameters (JSON: features, n_components, random_state)", None,
                "meta.note"),
    "validation": D("validation report (JSON: accuracy, confusion matrices, per-class "
                    "recall)", None, "meta.note"),
    "note": D("why the model was promoted or not", None, "meta.note"),
    "family": FAMILY, "taxonomy": TAXONOMY, "label_set": LABEL_SET,
}

CATALOG_VERSION_VIEW: dict[str, ColumnDoc] = {
    "catalog_version": D("catalog version", None, "meta.version;meta.main"),
    "created_at": D("when the version was published (UTC)", None, "time.creation"),
    "model_id": D("model version active in this catalog version", None, "meta.version"),
    "counts": D("what the version wrote (JSON: detections classified, sources rebuilt, ...)",
                None, "meta.note"),
    "flow_run_id": D("Prefect flow run that published the version", None, "meta.id"),
    "note": D("what triggered the version", None, "meta.note"),
}

COUNTERPART: dict[str, ColumnDoc] = {
    "name": NAME,
    "catalogue": D("counterpart catalogue: gaia (Gaia DR3), 2mass (2MASS PSC) or allwise "
                   "(AllWISE)", None, "meta.id;meta.dataset"),
    "counterpart_id": D("the candidate's identifier in its catalogue", None, "meta.id.cross"),
    "ra": D("ICRS right ascension of the candidate", "deg", "pos.eq.ra"),
    "dec": D("ICRS declination of the candidate", "deg", "pos.eq.dec"),
    "separation_arcsec": D("angular distance from the X-ray position", "arcsec",
                           "pos.angDistance"),
    "sigma_arcsec": D("combined 1-sigma positional error of the pair (X-ray and candidate)",
                      "arcsec", "stat.error;pos"),
    "p_any": D("probability that the source has a counterpart in this catalogue (NWAY "
               "p_any)", None, "stat.probability"),
    "p_i": D("probability that this candidate is the counterpart (NWAY p_i)", None,
             "stat.probability"),
    "chosen": D("true for the adopted counterpart in this catalogue", None, "meta.code"),
    "g_mag": D("Gaia G magnitude", "mag", "phot.mag;em.opt"),
    "bp_mag": D("Gaia BP magnitude", "mag", "phot.mag;em.opt.B"),
    "rp_mag": D("Gaia RP magnitude", "mag", "phot.mag;em.opt.R"),
    "parallax": D("Gaia parallax", "mas", "pos.parallax"),
    "pm": D("Gaia total proper motion", "mas.yr**-1", "pos.pm"),
    "j_mag": D("2MASS J magnitude", "mag", "phot.mag;em.IR.J"),
    "h_mag": D("2MASS H magnitude", "mag", "phot.mag;em.IR.H"),
    "k_mag": D("2MASS Ks magnitude", "mag", "phot.mag;em.IR.K"),
    "w1_mag": D("AllWISE W1 (3.4 um) magnitude", "mag", "phot.mag;em.IR.3-4um"),
    "w2_mag": D("AllWISE W2 (4.6 um) magnitude", "mag", "phot.mag;em.IR.4-8um"),
    "w3_mag": D("AllWISE W3 (12 um) magnitude", "mag", "phot.mag;em.IR.8-15um"),
    "fetched_at": D("when the candidates were fetched from CDS X-Match (UTC)", None,
                    "time.processing"),
    **{f"e_{b}_mag": D(f"1-sigma error of {name}", "mag", "stat.error;phot.mag")
       for b, name in (("g", "g_mag"), ("bp", "bp_mag"), ("rp", "rp_mag"), ("j", "j_mag"),
                       ("h", "h_mag"), ("k", "k_mag"), ("w1", "w1_mag"), ("w2", "w2_mag"),
                       ("w3", "w3_mag"))},
}

TRAINING_LABEL: dict[str, ColumnDoc] = {
    "label_set": D("name of the imported label set (cscat ingest labels --set)", None,
                   "meta.id"),
    "name": NAME,
    "class": D("the class the label set gives the source", None, "src.class"),
    "created_at": D("when the label set was imported (UTC)", None, "time.creation"),
}

_BY_FAMILY: dict[str, ColumnDoc] = {
    "source_id": SOURCE_ID, "name": NAME, "family": FAMILY, "model_id": MODEL_ID,
    "catalog_version": CATALOG_VERSION,
    "valid_from": D("first catalog version in which this result holds", None,
                    "meta.version"),
    "valid_to": D("catalog version that replaced this result (empty: still current)", None,
                  "meta.version"),
    "class": D("the family's class of the source (ctl: its master class)", None,
               "src.class"),
    "coarse_class": D("the class on the shared coarse taxonomy (AGN, XRB, YSO, STAR, CV, NS, "
                      "unknown)", None, "src.class"),
    "probability": D("the family's probability of that class (ctl: mean over detections)",
                     None, "stat.probability"),
    "probability_lo": D("lower end of the probability's interval (muwclass: 2-sigma over "
                        "Monte Carlo draws; empty for families without one)", None,
                        "stat.probability;stat.min"),
    "probability_hi": D("upper end of the probability's interval", None,
                        "stat.probability;stat.max"),
    "outlier": D("outlier measure of the source for the family (claxboi)", None,
                 "stat.likelihood"),
    "n_detections": D("detections the source's inputs were built from", None, "meta.number"),
    "reason": D("why the family gives no class (empty when it does)", None, "meta.note"),
    "label_set": LABEL_SET,
}

SOURCE_CONSENSUS: dict[str, ColumnDoc] = {
    "source_id": SOURCE_ID, "name": NAME,
    **{f"{f}_class": D(f"coarse class given by the {f} family", None, "src.class")
       for f in ("ctl", "muwclass", "claxboi", "gbm")},
    "coarse_by_family": D("coarse class per family (JSON: family -> class)", None,
                          "meta.note"),
    "n_families": D("families that classified the source", None, "meta.number"),
    "majority_class": D("the coarse class most families give (empty on a tie)", None,
                        "src.class"),
    "n_agree": D("families giving the most frequent coarse class", None, "meta.number"),
    "disagreement": D("true when the families give more than one coarse class", None,
                      "meta.code.qual"),
    "all_agree": D("true when every family that classified the source gives the same coarse "
                   "class", None, "meta.code.qual"),
    "adopted_class": D("the catalog's adopted class (SIMBAD reference, else the primary "
                       "family's)", None, "src.class"),
    "adopted_coarse_class": D("the adopted class on the coarse taxonomy", None, "src.class"),
    "label_origin": D("where the adopted class comes from: simbad or model", None,
                      "meta.code"),
}

FAMILY_MODEL: dict[str, ColumnDoc] = {
    "family": FAMILY,
    "model_id": D("model version", None, "meta.version;meta.main"),
    "status": D("candidate, active, retired or rejected", None, "meta.code.status"),
    "label_set": LABEL_SET, "taxonomy": TAXONOMY,
    "created_at": D("when the model was fitted (UTC)", None, "time.creation"),
    "promoted_at": D("when the model became active (UTC)", None, "time.processing"),
    "n_detections": D("detections the model's training input was built from", None,
                      "meta.number"),
    "n_labeled": D("labelled rows of the training input", None, "meta.number"),
    "unit": D("what the family classifies: detection or source", None, "meta.code"),
    "n_test": D("held-out rows of the validation", None, "meta.number"),
    "accuracy": D("held-out accuracy on the model's own classes", None, "stat.fit.goodness"),
    "balanced_accuracy": D("held-out mean per-class recall on the model's own classes", None,
                           "stat.fit.goodness"),
    "agg_accuracy": D("held-out accuracy on the aggregated classes", None,
                      "stat.fit.goodness"),
    "coarse_accuracy": D("held-out accuracy on the coarse taxonomy", None,
                         "stat.fit.goodness"),
    "ece": D("held-out expected calibration error (own classes)", None, "stat.error"),
    "note": D("why the model was promoted or not", None, "meta.note"),
}

SOURCE_FAMILY_PROBABILITY: dict[str, ColumnDoc] = {
    "source_id": SOURCE_ID, "name": NAME, "family": FAMILY, "model_id": MODEL_ID,
    "class": D("a class of the family's model", None, "src.class"),
    "class_index": D("position of the class in the model's taxonomy (1-based)", None,
                     "meta.number"),
    "probability": D("the family's current probability of that class (ctl: mean over "
                     "detections)", None, "stat.probability"),
    "probability_lo": _BY_FAMILY["probability_lo"],
    "probability_hi": _BY_FAMILY["probability_hi"],
    "predicted_class": D("the class the family gives the source (ctl: its master class)",
                         None, "src.class"),
}

CLASS_COUNT_BY_VERSION: dict[str, ColumnDoc] = {
    "catalog_version": D("catalog version the counts are of", None, "meta.version;meta.main"),
    "adopted_class": _HISTORY["adopted_class"],
    "agg_adopted_class": _HISTORY["agg_adopted_class"],
    "label_origin": _HISTORY["label_origin"],
    "n_sources": D("sources with that adopted class and origin at that version (written by "
                   "the version's publish)", None, "meta.number"),
}

#: view (in schema catalog) -> column -> doc: every column of every view.
VIEWS: dict[str, dict[str, ColumnDoc]] = {
    "detection": DETECTION,
    "source": SOURCE,
    "detection_class": DETECTION_CLASS,
    "source_class_history": dict(_HISTORY),
    "source_class": dict(_HISTORY),
    "class_change": CLASS_CHANGE,
    "model_version": MODEL_VERSION,
    "catalog_version": CATALOG_VERSION_VIEW,
    "counterpart": COUNTERPART,
    "training_label": TRAINING_LABEL,
    "source_class_by_family": _BY_FAMILY,
    "source_class_by_family_history": dict(_BY_FAMILY),
    "source_consensus": SOURCE_CONSENSUS,
    "family_model": FAMILY_MODEL,
    "source_family_probability": SOURCE_FAMILY_PROBABILITY,
    "class_count_by_version": CLASS_COUNT_BY_VERSION,
}


def doc(view: str, column: str) -> ColumnDoc:
    """The doc of ``catalog.<view>.<column>`` (KeyError if there is none)."""
    return VIEWS[view][column]


# -- PostgreSQL column comments -------------------------------------------------------------
_VIEW_COLUMNS = """
SELECT c.relname AS view, a.attname AS col, col_description(c.oid, a.attnum) AS comment
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'catalog' AND c.relkind IN ('v', 'm') AND a.attnum > 0
  AND NOT a.attisdropped
ORDER BY c.relname, a.attnum"""

#: The migration that introduced the comments; below it they are not applied.
REVISION = "0007"


def view_columns(conn: Connection) -> list[tuple[str, str, str | None]]:
    """(view, column, current comment) of every view column in schema catalog."""
    return [tuple(r) for r in conn.execute(text(_VIEW_COLUMNS))]


def apply_comments(conn: Connection, *, clear: bool = False) -> int:
    """Set ``COMMENT ON COLUMN`` of every documented view column that exists and differs
    (``clear``: remove them); the number of comments changed.

    Identifiers and text are quoted by the server (``format('%I', '%L')``); only the names
    the database itself lists are commented.
    """
    changes = []
    for view, col, current in view_columns(conn):
        d = VIEWS.get(view, {}).get(col)
        if d is None:
            continue
        wanted = None if clear else comment(d)
        if current != wanted:
            changes.append({"v": view, "c": col, "t": wanted})
    for ch in changes:
        stmt = conn.execute(text("SELECT format('COMMENT ON COLUMN catalog.%I.%I IS %s', "
                                 "CAST(:v AS text), CAST(:c AS text), "
                                 "coalesce(quote_literal(CAST(:t AS text)), 'NULL'))"),
                            ch).scalar_one()
        conn.exec_driver_sql(stmt.replace("%", "%%"))
    return len(changes)


def apply_comments_if_current(conn: Connection, migration_context, script) -> None:
    """:func:`apply_comments` if the database is at or above :data:`REVISION` (end of every
    upgrade, so views recreated by later migrations get their comments back)."""
    for head in migration_context.get_current_heads():
        if any(rev.revision == REVISION for rev in script.iterate_revisions(head, "base")):
            apply_comments(conn)
            return
