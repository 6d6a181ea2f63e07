"""SQL of the classifier families other than ctl: their models, per-source features and
versioned per-source results (``catalog.family_source_result``).

Per-source features are built here from the stored detections (X-ray only today):
:data:`SOURCE_FEATURES` names each per-source column and how the source's detections are
aggregated (mean of hardness ratios and spectral fits, maximum of variability probabilities,
mean of variability ratios; NULL values are left out). The chosen counterpart of each
catalogue (``counterpart_match.cp_id`` and its ``counterpart_candidate`` row) joins as the
further columns of :data:`COUNTERPART_FEATURES` (``gaia_g``, ``e_gaia_g``, ``gaia_plx``,
``tmass_j``, ``wise_w1``, ... as named in ``classifier.families.features``); no counterpart:
NULL (NaN), as is normal.

Result rows are history, as ``source_result``'s: valid from the release that wrote them
until the release that superseded them, written in the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from db.catalog_store import PROBABILITY_NOISE, pg_array
from db.csc_columns import DETECTION_KEY
from db.load import copy_frame, read_frame
from db.models import SCHEMA

#: Per-source feature -> (aggregate, detection column). Column names are fixed here; SQL is
#: built from these strings only.
SOURCE_FEATURES: dict[str, tuple[str, str]] = {
    "hard_hm": ("avg", "hard_hm"), "hard_ms": ("avg", "hard_ms"), "hard_hs": ("avg", "hard_hs"),
    "bb_kt": ("avg", "bb_kt"), "powlaw_gamma": ("avg", "powlaw_gamma"),
    "var_prob_b": ("max", "var_prob_b"), "var_prob_h": ("max", "var_prob_h"),
    "var_prob_s": ("max", "var_prob_s"),
    "var_ratio_b": ("avg", "var_ratio_b"), "var_ratio_h": ("avg", "var_ratio_h"),
    "var_ratio_s": ("avg", "var_ratio_s"),
}  # fmt: skip
_AGGS = {"avg", "max"}
#: A float sum depends on its order: without one, a source's mean followed the detections'
#: physical order, which a crash and a vacuum can change (a rerun then differed from an
#: uninterrupted run in the last bits). The detection key is unique within a source.
_IN_KEY_ORDER = " ORDER BY " + ", ".join(f'd."{c}"' for c in DETECTION_KEY)

#: Per-source counterpart feature -> (catalogue, counterpart_candidate column): the chosen
#: counterpart's values. Fixed identifiers; SQL is built from these strings only.
COUNTERPART_FEATURES: dict[str, tuple[str, str]] = {
    **{f"{p}gaia_{b}": ("gaia", f"{p}{b}_mag") for b in ("g", "bp", "rp") for p in ("", "e_")},
    "gaia_plx": ("gaia", "parallax"), "gaia_pm": ("gaia", "pm"),
    **{f"{p}tmass_{b}": ("2mass", f"{p}{b}_mag") for b in "jhk" for p in ("", "e_")},
    **{f"{p}wise_{b}": ("allwise", f"{p}{b}_mag") for b in ("w1", "w2", "w3")
       for p in ("", "e_")},
}
_CP_ALIAS = {"gaia": "cg", "2mass": "ct", "allwise": "cw"}


def uses_counterparts(columns: Sequence[str]) -> bool:
    """Does a family reading ``columns`` use counterpart features?"""
    return any(c in COUNTERPART_FEATURES for c in columns)


def _counterpart_sql(keys: str = "") -> tuple[str, str]:
    """(select list, joins) of the chosen counterparts' values per source ``f``; ``keys``: an
    ``ARRAY[...]`` of the sources asked for, so each table is read by its key index."""
    sel, joins = [], []
    for cat, a in _CP_ALIAS.items():
        mk = f"AND m{a}.source_id = ANY({keys}) " if keys else ""
        ck = f"AND {a}.source_id = ANY({keys}) " if keys else ""
        joins.append(
            f"LEFT JOIN {SCHEMA}.counterpart_match m{a} ON m{a}.source_id = f.source_id "
            f"AND m{a}.catalogue = '{cat}' {mk}LEFT JOIN {SCHEMA}.counterpart_candidate {a} "
            f"ON {a}.source_id = f.source_id AND {a}.catalogue = '{cat}' "
            f"AND {a}.cp_id = m{a}.cp_id {ck}")
    for name, (cat, col) in COUNTERPART_FEATURES.items():
        if not name.isidentifier() or not col.isidentifier():
            raise ValueError(f"bad counterpart feature {name!r}")
        sel.append(f'{_CP_ALIAS[cat]}."{col}" AS "{name}"')
    return ", " + ", ".join(sel), "".join(joins)


def _want(conn: Connection, source_ids: Sequence[int]) -> None:
    conn.exec_driver_sql("CREATE TEMP TABLE want_family_source (source_id bigint PRIMARY KEY) "
                         "ON COMMIT DROP")
    ids = np.unique(np.asarray(source_ids, dtype=np.int64))
    copy_frame(conn, "pg_temp.want_family_source", pd.DataFrame({"source_id": ids}),
               ["source_id"])
    conn.exec_driver_sql("ANALYZE pg_temp.want_family_source")


def source_features(conn: Connection, source_ids: Sequence[int] | None = None,
                    counterparts: bool = True) -> pd.DataFrame:
    """Per source (all, or ``source_ids``): source_id, name, n_detections, the
    :data:`SOURCE_FEATURES`, the :data:`COUNTERPART_FEATURES` (unless not ``counterparts``)
    and the SIMBAD type, ordered by source_id."""
    parts = []
    for name, (agg, col) in SOURCE_FEATURES.items():
        if agg not in _AGGS or not name.isidentifier() or not col.isidentifier():
            raise ValueError(f"bad per-source feature {name!r}")
        parts.append(f'{agg}(d."{col}"{_IN_KEY_ORDER if agg == "avg" else ""}) AS "{name}"')
    join = where = keys = ""
    ids = None if source_ids is None else np.unique(np.asarray(source_ids, dtype=np.int64))
    if ids is not None and 0 < len(ids) <= KEYED_READ_MAX:
        # read by key: every table through its source_id index, only the sources asked for
        # (a join to a temp table let the planner hash whole tables: 0.22 s for 400 sources
        # at 100k detections); the ids are ints, inlined as COPY cannot bind parameters
        keys = "ARRAY[" + ",".join(str(int(i)) for i in ids) + "]::bigint[]"
        where = f"WHERE d.source_id = ANY({keys}) "
    elif ids is not None:
        _want(conn, ids)
        join = "JOIN pg_temp.want_family_source w USING (source_id) "
    sk = f" AND s.source_id = ANY({keys})" if keys else ""
    mk = f" AND m.source_id = ANY({keys})" if keys else ""
    cp_sel, cp_join = _counterpart_sql(keys) if counterparts else ("", "")
    frame = read_frame(conn, (
        f"SELECT f.*, s.name, m.otype AS simbad_otype{cp_sel} FROM ("
        f"SELECT d.source_id, count(*) AS n_detections, {', '.join(parts)} "
        f"FROM {SCHEMA}.csc_detection d {join}{where}GROUP BY d.source_id) f "
        f"JOIN {SCHEMA}.csc_source s ON s.source_id = f.source_id{sk} "
        f"LEFT JOIN {SCHEMA}.simbad_match m ON m.source_id = f.source_id{mk} "
        f"{cp_join}ORDER BY f.source_id"))
    if join:
        conn.exec_driver_sql("DROP TABLE pg_temp.want_family_source")
    return frame


#: Up to this many sources, :func:`source_features` reads by key (index lookups); more
#: (a refit's or a new model's whole catalog) go through a temp table and hash joins.
KEYED_READ_MAX = 20_000


def sources_without_result(conn: Connection, family: str, model_id: int) -> list[int]:
    """Sources with no current result under ``model_id`` of ``family`` (every source has
    detections: a source is stored with its first detection)."""
    return list(conn.execute(text(
        f"SELECT s.source_id FROM {SCHEMA}.csc_source s WHERE NOT EXISTS ("
        f"SELECT 1 FROM {SCHEMA}.family_source_result r WHERE r.family = :f "
        "AND r.source_id = s.source_id AND r.valid_to IS NULL AND r.model_id = :m) "
        "ORDER BY 1"), {"f": family, "m": int(model_id)}).scalars())


def only_these_lack_result(conn: Connection, family: str, model_id: int,
                           source_ids: Sequence[int]) -> bool:
    """Is every source outside ``source_ids`` covered by a current result under
    ``model_id``? Read from the queue of sources without a current result of the family
    (``catalog.source_pending``, kept by triggers: its rows outside ``source_ids``) and the
    index of current results by model (one of another model), in proportion to what is
    new, not to the catalog. A family the queue does not know gets the exact anti-join's
    answer (:func:`sources_without_result`)."""
    ids = [int(i) for i in np.unique(np.asarray(source_ids, dtype=np.int64))]
    if family not in PENDING_FAMILIES:
        return set(sources_without_result(conn, family, model_id)) <= set(ids)
    return bool(conn.execute(text(
        f"SELECT NOT EXISTS (SELECT 1 FROM {SCHEMA}.source_pending p "
        "WHERE p.step = :f AND p.source_id <> ALL(CAST(:ids AS bigint[])) "
        f"AND EXISTS (SELECT 1 FROM {SCHEMA}.csc_source s WHERE s.source_id = p.source_id)) "
        # two index ranges (below and above the model): an OR of both was a filter over
        # every current result of the family
        f"AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.family_source_result r WHERE r.family = :f "
        "AND r.valid_to IS NULL AND r.model_id < :m) "
        f"AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.family_source_result r WHERE r.family = :f "
        "AND r.valid_to IS NULL AND r.model_id > :m)"),
        {"f": family, "m": int(model_id), "ids": ids}).scalar_one())


#: The families whose sources without a current result are queued (migration 0013).
PENDING_FAMILIES = ("muwclass", "claxboi", "gbm")


# -- models --------------------------------------------------------------------------------
def store_family_model(conn: Connection, *, family: str, taxonomy: Sequence[str],
                       label_set: str, params: dict, summary: dict, model_bytes: bytes,
                       validation: dict | None, n_detections: int, n_labeled: int,
                       input_digest: str, note: str | None) -> int:
    """Store a fitted family model (status ``candidate``); returns its version."""
    return conn.execute(text(
        f"INSERT INTO {SCHEMA}.fitted_model (family, taxonomy, label_set, params, model, "
        "model_bytes, validation, n_detections, n_labeled, input_digest, note) VALUES "
        "(:f, CAST(:t AS text[]), :ls, CAST(:p AS jsonb), CAST(:m AS jsonb), :b, "
        "CAST(:v AS jsonb), :n, :l, :d, :note) RETURNING model_id"),
        {"f": family, "t": [str(c) for c in taxonomy], "ls": label_set,
         "p": json.dumps(params), "m": json.dumps(summary), "b": model_bytes,
         "v": json.dumps(validation), "n": n_detections, "l": n_labeled, "d": input_digest,
         "note": note}).scalar_one()


def reusable_family_candidate(conn: Connection, family: str, params: dict,
                              input_digest: str) -> dict | None:
    """The newest ``candidate`` model of ``family`` fitted on ``input_digest`` with
    ``params`` (with ``model_bytes``), or None: left by a process that ended between the
    family refit's commit and the publish (as ``catalog_store.reusable_candidate``)."""
    row = conn.execute(text(
        f"SELECT * FROM {SCHEMA}.fitted_model WHERE status = 'candidate' AND family = :f "
        "AND input_digest = :d AND params = CAST(:p AS jsonb) "
        "ORDER BY model_id DESC LIMIT 1"),
        {"f": family, "d": input_digest, "p": json.dumps(params)}).mappings().one_or_none()
    return dict(row) if row else None


def active_family_model(conn: Connection, family: str) -> dict | None:
    """The active model row of ``family`` (with ``model_bytes``), or None."""
    row = conn.execute(text(f"SELECT * FROM {SCHEMA}.fitted_model WHERE status = 'active' "
                            "AND family = :f"), {"f": family}).mappings().one_or_none()
    return dict(row) if row else None


def adopted_family(conn: Connection, primary_family: str) -> str:
    """The family whose class ``source_class`` adopts: ``primary_family`` once it has an
    active model, else ``ctl`` (a catalog whose primary family is not fitted or promoted
    yet keeps ctl's vote instead of leaving every model-labelled source without a class)."""
    if primary_family == "ctl":
        return "ctl"
    active = conn.execute(text(
        f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.fitted_model WHERE status = 'active' "
        "AND family = :f)"), {"f": primary_family}).scalar_one()
    return primary_family if active else "ctl"


def active_family_params(conn: Connection) -> dict[str, dict]:
    """Family -> (model_id, params) of every active model, without its bytes (the refit
    decision reads no model)."""
    rows = conn.execute(text(f"SELECT family, model_id, params FROM {SCHEMA}.fitted_model "
                             "WHERE status = 'active'")).mappings().all()
    return {r["family"]: {"model_id": r["model_id"], "params": r["params"]} for r in rows}


def family_model_row(conn: Connection, model_id: int) -> dict | None:
    row = conn.execute(text(f"SELECT * FROM {SCHEMA}.fitted_model WHERE model_id = :m"),
                       {"m": int(model_id)}).mappings().one_or_none()
    return dict(row) if row else None


# -- results -------------------------------------------------------------------------------
RESULT_COLUMNS = ["source_id", "model_id", "family", "predicted_class", "probabilities",
                  "prob_lo", "prob_hi", "outlier", "reason", "n_detections", "features"]


def result_frame(source_ids: np.ndarray, n_detections: np.ndarray, family: str, model_id: int,
                 pred: pd.DataFrame, classes: Sequence[str],
                 inputs: np.ndarray) -> pd.DataFrame:
    """Rows for :func:`write_family_results` from a family's ``predict`` frame (index
    aligned with ``source_ids``): probabilities, interval bounds (``p_<class>_lo``/``_hi``)
    and outlier measure where the family gives them."""
    classes = list(classes)
    P = pred[classes].to_numpy(dtype="float64")

    def arr(suffix: str):
        cols = [f"p_{c}_{suffix}" for c in classes]
        if not all(c in pred.columns for c in cols):
            return None
        return pg_array(pred[cols].to_numpy(dtype="float64")).to_numpy()

    lo, hi = arr("lo"), arr("hi")
    out = pd.DataFrame({
        "source_id": np.asarray(source_ids, dtype=np.int64), "model_id": int(model_id),
        "family": family,
        "predicted_class": pred["predicted_class"].astype("object").to_numpy(),
        "probabilities": pg_array(P).to_numpy(),
        "prob_lo": lo if lo is not None else None, "prob_hi": hi if hi is not None else None,
        "outlier": (pd.array(pred["outlier"].to_numpy("float64"), dtype="Float64")
                    if "outlier" in pred else None),
        "reason": pred["reason"].astype("object").to_numpy(),
        "n_detections": np.asarray(n_detections, dtype=np.int64),
        "features": pg_array(inputs).to_numpy(),
    })
    out["predicted_class"] = out["predicted_class"].where(out["predicted_class"].notna(), None)
    return out


def marginal_columns(pred: pd.DataFrame, classes: Sequence[str]) -> tuple[list[str],
                                                                          pd.DataFrame]:
    """Per feature category (claxboi's ``p_<category>_<class>``, ``alt_without_<category>``):
    the category names and a frame m0.. (probability arrays) and a0.. (alternative class)."""
    cats = [c.removeprefix("alt_without_") for c in pred.columns
            if str(c).startswith("alt_without_")]
    cols = {}
    for i, k in enumerate(cats):
        cols[f"m{i}"] = pg_array(pred[[f"p_{k}_{c}" for c in classes]].to_numpy(float)
                                 ).to_numpy()
        alt = pred[f"alt_without_{k}"].astype("object")
        cols[f"a{i}"] = alt.where(alt.notna(), None).to_numpy()
    return cats, pd.DataFrame(cols)


def write_family_results(conn: Connection, frame: pd.DataFrame, release_id: int,
                         categories: Sequence[str] = (),
                         marginals: pd.DataFrame | None = None) -> int:
    """Write the results of ``frame`` (:data:`RESULT_COLUMNS`) that differ from the
    source's current one of the same family (probabilities within ``PROBABILITY_NOISE``),
    closing what they replace; returns how many were written."""
    if frame.empty:
        return 0
    cats = list(categories)
    extra = [f"m{i}" for i in range(len(cats))] + [f"a{i}" for i in range(len(cats))]
    conn.exec_driver_sql(
        "CREATE TEMP TABLE stage_family_result ON COMMIT DROP AS "
        f"SELECT {', '.join(RESULT_COLUMNS)}, marginals FROM {SCHEMA}.family_source_result "
        "WITH NO DATA")
    for i in range(len(cats)):
        conn.exec_driver_sql(f"ALTER TABLE pg_temp.stage_family_result ADD COLUMN m{i} "
                             f"double precision[], ADD COLUMN a{i} text")
    staged = frame[RESULT_COLUMNS].reset_index(drop=True)
    if cats:
        staged = pd.concat([staged, marginals.reset_index(drop=True)], axis=1)
    copy_frame(conn, "pg_temp.stage_family_result", staged, RESULT_COLUMNS + extra)
    if cats:
        pairs = ", ".join(f"CAST(:k{i} AS text), CASE WHEN m{i} IS NULL THEN NULL ELSE "
                          f"jsonb_build_object('p', to_jsonb(m{i}), 'alt', a{i}) END"
                          for i in range(len(cats)))
        conn.execute(text(f"UPDATE pg_temp.stage_family_result SET marginals = "
                          f"jsonb_strip_nulls(jsonb_build_object({pairs})) "
                          "WHERE probabilities IS NOT NULL"),
                     {f"k{i}": k for i, k in enumerate(cats)})
    conn.exec_driver_sql("ANALYZE pg_temp.stage_family_result")
    same = " AND ".join(f"c.{c} IS NOT DISTINCT FROM n.{c}" for c in (
        "model_id", "predicted_class", "reason", "n_detections", "marginals"))
    close = " AND ".join(
        f"(c.{a} IS NOT DISTINCT FROM n.{a} OR (cardinality(c.{a}) = cardinality(n.{a}) "
        f"AND NOT EXISTS (SELECT 1 FROM unnest(c.{a}, n.{a}) AS u(x, y) "
        "WHERE NOT (u.x = u.y OR abs(u.x - u.y) <= :eps))))"
        for a in ("probabilities", "prob_lo", "prob_hi", "features"))
    conn.execute(text(
        f"DELETE FROM pg_temp.stage_family_result n USING {SCHEMA}.family_source_result c "
        "WHERE c.family = n.family AND c.source_id = n.source_id AND c.valid_to IS NULL "
        f"AND {same} AND {close} AND (c.outlier IS NOT DISTINCT FROM n.outlier "
        "OR abs(c.outlier - n.outlier) <= :eps)"), {"eps": PROBABILITY_NOISE})
    conn.execute(text(
        f"UPDATE {SCHEMA}.family_source_result r SET valid_to = :rel "
        "FROM pg_temp.stage_family_result s WHERE r.family = s.family "
        "AND r.source_id = s.source_id AND r.valid_to IS NULL"), {"rel": release_id})
    cols = RESULT_COLUMNS + ["marginals"]
    n = conn.execute(text(
        f"INSERT INTO {SCHEMA}.family_source_result (valid_from, {', '.join(cols)}) "
        f"SELECT :rel, {', '.join(cols)} FROM pg_temp.stage_family_result"),
        {"rel": release_id}).rowcount
    conn.exec_driver_sql("DROP TABLE pg_temp.stage_family_result")
    return n


def sync_coarse_classes(conn: Connection, table: pd.DataFrame) -> None:
    """Replace ``catalog.coarse_class`` with ``table`` (class, coarse_class)."""
    conn.execute(text(f"DELETE FROM {SCHEMA}.coarse_class"))
    copy_frame(conn, f"{SCHEMA}.coarse_class", table, ["class", "coarse_class"])


def take_counterpart_changes(conn: Connection) -> list[int]:
    """The sources the counterpart ingest queued (``counterpart_change``), each once; the
    queue rows this statement sees are deleted in the caller's transaction (a rolled-back
    publish leaves them; a change committed meanwhile stays for the next publish)."""
    return list(conn.execute(text(
        f"WITH queued AS (DELETE FROM {SCHEMA}.counterpart_change RETURNING source_id) "
        "SELECT DISTINCT source_id FROM queued ORDER BY 1")).scalars())


# -- the primary family (catalog.source_class's adopted class) -----------------------------
def current_classes(conn: Connection, family: str, source_ids: Sequence[int]) -> pd.Series:
    """The current class of ``family`` per source of ``source_ids`` (index source_id; NULL
    where it cannot classify; sources without a result are absent)."""
    rows = conn.execute(text(
        f"SELECT source_id, predicted_class FROM {SCHEMA}.family_source_result "
        "WHERE family = :f AND valid_to IS NULL AND source_id = ANY(CAST(:ids AS bigint[]))"),
        {"f": family, "ids": [int(i) for i in np.unique(np.asarray(source_ids, np.int64))]}
    ).all()
    return pd.Series([r[1] for r in rows], index=pd.Index([int(r[0]) for r in rows],
                                                          name="source_id"), dtype="object")


def changed_in_release(conn: Connection, family: str, release_id: int) -> list[int]:
    """Sources whose ``family`` result was (re)written by ``release_id``."""
    return list(conn.execute(text(
        f"SELECT source_id FROM {SCHEMA}.family_source_result WHERE family = :f "
        "AND valid_from = :rel ORDER BY 1"), {"f": family, "rel": int(release_id)}).scalars())


def previous_primary_family(conn: Connection, release_id: int) -> str | None:
    """The primary family of the latest finished release before ``release_id`` (``ctl`` for
    releases from before the setting was recorded; None when there is none)."""
    row = conn.execute(text(
        f"SELECT coalesce(counts->>'primary_family', 'ctl') FROM {SCHEMA}.release "
        "WHERE release_id < :rel AND counts IS NOT NULL ORDER BY release_id DESC LIMIT 1"),
        {"rel": int(release_id)}).one_or_none()
    return row[0] if row else None


def all_sources(conn: Connection) -> list[int]:
    return list(conn.execute(text(f"SELECT source_id FROM {SCHEMA}.csc_source ORDER BY 1"))
                .scalars())
