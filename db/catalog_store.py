"""SQL of the classification catalog: models, releases, versioned results, the update lock.

Result rows are history: a row is valid from the release that wrote it until the release
that superseded it (``valid_to``). Writing a release therefore closes the rows it replaces
and inserts the new ones, all in the caller's transaction, so a release is atomic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, text

from db.csc_columns import DERIVED_COLUMNS, DETECTION_COLUMNS
from db.load import copy_frame, read_frame
from db.models import SCHEMA

#: pg_advisory_lock key held by a catalog update ("cscat" in ASCII).
UPDATE_LOCK_KEY = 0x6373636174


class CatalogBusy(RuntimeError):
    """Another update holds the catalog lock."""


@contextmanager
def update_lock(engine: Engine, wait: bool = False) -> Iterator[None]:
    """Hold the catalog's advisory lock: one update at a time, across processes."""
    with engine.connect() as conn:
        if wait:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": UPDATE_LOCK_KEY})
        elif not conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                              {"k": UPDATE_LOCK_KEY}).scalar_one():
            holder = conn.execute(text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND objid = :lo LIMIT 1"), {"lo": UPDATE_LOCK_KEY & 0xFFFFFFFF}).scalar()
            raise CatalogBusy(f"another catalog update is running (server pid {holder}); "
                              "try again when it has finished")
        conn.commit()
        try:
            yield
        except BaseException:
            try:  # a lost connection released the lock already: show the cause, not this
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": UPDATE_LOCK_KEY})
                conn.commit()
            except Exception:
                pass
            raise
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": UPDATE_LOCK_KEY})
        conn.commit()


# -- taxonomy ------------------------------------------------------------------------------
def sync_taxonomy(conn: Connection, table: pd.DataFrame) -> None:
    """Replace ``catalog.simbad_type`` with ``table`` (otype, class, agg_class, kind)."""
    conn.execute(text(f"DELETE FROM {SCHEMA}.simbad_type"))
    cols = ["otype", "class", "agg_class", "kind"]
    copy_frame(conn, f"{SCHEMA}.simbad_type", table, cols)


# -- inputs --------------------------------------------------------------------------------
#: Detection columns a model may read as features, by name: the numeric columns of
#: ``catalog.csc_detection`` (raw and derived). SQL is built from these strings only, never
#: from the names a caller (or a stored model) passes.
FEATURE_COLUMNS: dict[str, str] = {
    c.name: c.name for c in (*DETECTION_COLUMNS, *DERIVED_COLUMNS) if c.sql_type == "double"}


class UnknownFeature(ValueError):
    """A feature name that is not a numeric detection column."""


def feature_select_list(features: Sequence[str]) -> str:
    """``d."f1", d."f2", `` for known feature columns; refuses any other name."""
    unknown = [f for f in features if f not in FEATURE_COLUMNS]
    if unknown:
        raise UnknownFeature(f"unknown feature {str(unknown[0])[:80]!r}: not a numeric column "
                             "of catalog.csc_detection")
    return "".join(f'd."{FEATURE_COLUMNS[f]}", ' for f in features)


def detection_features(conn: Connection, features: Sequence[str], *,
                       without_result_of: int | None = None) -> pd.DataFrame:
    """Detections with their features and their source's SIMBAD type.

    ``features`` must be numeric detection columns (:data:`FEATURE_COLUMNS`).
    ``without_result_of``: only detections with no current result under that model.
    """
    cols = feature_select_list(features)
    m = None if without_result_of is None else int(without_result_of)
    # Candidates, found by index in proportion to their number (not to the catalog's size):
    # the queue of detections with no current result, and those whose current result is
    # another model's; NOT EXISTS then keeps exactly those with no current result under m.
    where = "" if m is None else (
        f" WHERE d.detection_id IN (SELECT u.detection_id FROM {SCHEMA}.unclassified_detection u "
        f"UNION ALL SELECT o.detection_id FROM {SCHEMA}.detection_result o "
        f"WHERE o.valid_to IS NULL AND (o.model_id < {m} OR o.model_id > {m})) "
        f"AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.detection_result r "
        f"WHERE r.detection_id = d.detection_id AND r.model_id = {m} "
        f"AND r.valid_to IS NULL)")
    return read_frame(conn, (
        f"SELECT d.detection_id, d.source_id, s.name, d.obsid, {cols}m.otype AS simbad_otype "
        f"FROM {SCHEMA}.csc_detection d JOIN {SCHEMA}.csc_source s USING (source_id) "
        f"LEFT JOIN {SCHEMA}.simbad_match m ON m.source_id = d.source_id{where} "
        f"ORDER BY s.name, d.obsid, d.detection_id"))


def count_detections(conn: Connection) -> int:
    return conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.csc_detection")).scalar_one()


def detections_per_otype(conn: Connection) -> tuple[int, pd.Series]:
    """(number of detections, detections per SIMBAD type of their source), read from
    ``catalog.detection_tally`` (kept by triggers; ``''``: no type): the refit decision
    reads a few rows, no detection."""
    rows = conn.execute(text(f"SELECT otype, sum(n_detections) FROM {SCHEMA}.detection_tally "
                             "GROUP BY otype")).all()
    n = sum(int(r[1]) for r in rows)
    return n, pd.Series({r[0]: int(r[1]) for r in rows if r[0] != "" and r[1]},
                        dtype="int64")


def compact_tally(conn: Connection) -> None:
    """Replace the committed rows of ``catalog.detection_tally`` by one per type (in the
    publish transaction, under the update lock; writers only append rows, never wait)."""
    conn.execute(text(
        f"WITH d AS (DELETE FROM {SCHEMA}.detection_tally RETURNING otype, n_detections) "
        f"INSERT INTO {SCHEMA}.detection_tally (otype, n_detections) SELECT otype, "
        "sum(n_detections) FROM d GROUP BY otype HAVING sum(n_detections) <> 0"))


# -- models --------------------------------------------------------------------------------
class ModelRefused(ValueError):
    """A stored model that fails validation (tampered or corrupt): it is never used."""


def _checked(row: dict) -> dict:
    """``row`` if its model passes ``classifier.model_check``; else :class:`ModelRefused`."""
    from classifier.model_check import InvalidModelError, check_model_dict

    try:
        check_model_dict(row["model"])
    except InvalidModelError as e:
        raise ModelRefused(f"model version {row['model_id']} is refused: {e} (run "
                           "`cscat refit`, or `cscat reclassify --model N` with a valid "
                           "model)") from None
    return row


def active_model(conn: Connection, *, check: bool = True) -> dict | None:
    """The active model's row (``model`` is the classifier's dict), or None.

    ``check``: validate the stored model first (:class:`ModelRefused` if it fails); only
    callers that read nothing but its counts and validation figures pass False.
    """
    row = conn.execute(text(f"SELECT * FROM {SCHEMA}.fitted_model WHERE status = 'active' "
                            "AND family = 'ctl'"))
    found = row.mappings().one_or_none()
    if found is None:
        return None
    return _checked(dict(found)) if check else dict(found)


def model_row(conn: Connection, model_id: int) -> dict:
    """A model's row, validated (:class:`ModelRefused`); LookupError if there is none."""
    row = conn.execute(text(f"SELECT * FROM {SCHEMA}.fitted_model WHERE model_id = :m"),
                       {"m": model_id}).mappings().one_or_none()
    if row is None:
        raise LookupError(f"no model version {model_id}")
    return _checked(dict(row))


def store_model(conn: Connection, *, model: dict, params: dict, validation: dict | None,
                n_detections: int, n_labeled: int, input_digest: str,
                note: str | None = None) -> int:
    """Store a fitted model as JSON (status ``candidate``); returns its version."""
    return conn.execute(text(
        f"INSERT INTO {SCHEMA}.fitted_model (params, model, validation, n_detections, "
        "n_labeled, input_digest, note, taxonomy) VALUES (CAST(:p AS jsonb), "
        "CAST(:m AS jsonb), CAST(:v AS jsonb), :n, :l, :d, :note, CAST(:t AS text[])) "
        "RETURNING model_id"),
        {"p": json.dumps(params), "m": json.dumps(model), "v": json.dumps(validation),
         "n": n_detections, "l": n_labeled, "d": input_digest, "note": note,
         "t": [str(c) for c in model.get("classes") or []] or None}).scalar_one()


def set_model_status(conn: Connection, model_id: int, status: str) -> None:
    """Promote (``active``: the previous active one retires) or reject a model."""
    if status == "active":
        conn.execute(text(f"UPDATE {SCHEMA}.fitted_model SET status = 'retired' "
                          "WHERE status = 'active' AND model_id <> :m AND family = "
                          f"(SELECT family FROM {SCHEMA}.fitted_model WHERE model_id = :m)"),
                     {"m": model_id})
        conn.execute(text(f"UPDATE {SCHEMA}.fitted_model SET status = 'active', "
                          "promoted_at = now() WHERE model_id = :m"), {"m": model_id})
    else:
        conn.execute(text(f"UPDATE {SCHEMA}.fitted_model SET status = :s WHERE model_id = :m"),
                     {"s": status, "m": model_id})


def reusable_candidate(conn: Connection, params: dict, input_digest: str) -> dict | None:
    """The newest ``candidate`` model fitted on ``input_digest`` with ``params`` (validated,
    :class:`ModelRefused`), or None. A candidate outlives only a process that ended between
    the refit's commit and the publish (every publish resolves the others): refitting on
    the same input would store a second, identical model version."""
    row = conn.execute(text(
        f"SELECT * FROM {SCHEMA}.fitted_model WHERE status = 'candidate' "
        "AND input_digest = :d AND params = CAST(:p AS jsonb) "
        "ORDER BY model_id DESC LIMIT 1"),
        {"d": input_digest, "p": json.dumps(params)}).mappings().one_or_none()
    return None if row is None else _checked(dict(row))


def resolve_candidates(conn: Connection, keep: int | None) -> int:
    """Reject every ``candidate`` model but ``keep`` (a publish promotes at most one; the
    others were left by a process that ended before publishing them); how many."""
    return conn.execute(text(
        f"UPDATE {SCHEMA}.fitted_model SET status = 'rejected', "
        "note = concat_ws('; ', note, CAST(:m AS text)) "
        "WHERE status = 'candidate' AND model_id IS DISTINCT FROM CAST(:k AS bigint)"),
        {"k": keep, "m": "not promoted: a later publish did not promote it"}).rowcount


# -- releases and results ------------------------------------------------------------------
def latest_release(conn: Connection) -> dict | None:
    row = conn.execute(text(f"SELECT * FROM {SCHEMA}.release ORDER BY release_id DESC LIMIT 1"))
    found = row.mappings().one_or_none()
    return dict(found) if found else None


def create_release(conn: Connection, model_id: int | None, flow_run_id: str | None = None,
                   note: str | None = None) -> int:
    """A new catalog version, numbered after the last one (callers hold the update lock,
    and a rolled-back version leaves no gap in the numbering)."""
    return conn.execute(text(
        f"INSERT INTO {SCHEMA}.release (release_id, model_id, flow_run_id, note) "
        f"VALUES ((SELECT coalesce(max(release_id), 0) + 1 FROM {SCHEMA}.release), :m, :f, :n) "
        "RETURNING release_id"), {"m": model_id, "f": flow_run_id, "n": note}).scalar_one()


def finish_release(conn: Connection, release_id: int, counts: dict) -> None:
    conn.execute(text(f"UPDATE {SCHEMA}.release SET counts = CAST(:c AS jsonb) "
                      "WHERE release_id = :r"), {"c": json.dumps(counts), "r": release_id})


def start_classification(conn: Connection, model_id: int, release_id: int) -> int:
    return conn.execute(text(
        f"INSERT INTO {SCHEMA}.classification_run (model_id, release_id) VALUES (:m, :r) "
        "RETURNING run_id"), {"m": model_id, "r": release_id}).scalar_one()


def finish_classification(conn: Connection, run_id: int, n: int) -> None:
    conn.execute(text(f"UPDATE {SCHEMA}.classification_run SET status = 'completed', "
                      "finished_at = now(), n_detections = :n WHERE run_id = :id"),
                 {"n": n, "id": run_id})


def pg_array(matrix: np.ndarray) -> pd.Series:
    """Rows of a float matrix as PostgreSQL array literals (NULL where the row is all NaN).

    Arrow formats each double as its shortest round-trip text (``nan`` for NaN), so
    PostgreSQL reads back exactly the same values; vectorized in C++ (``np.char.mod`` was
    ~10x slower and dominated a million-detection publish).
    """
    if matrix.size == 0:
        return pd.Series([], dtype=object)
    matrix = np.asarray(matrix, dtype="float64")
    cols = [pa.array(matrix[:, j]).cast(pa.string()) for j in range(matrix.shape[1])]
    body = pc.binary_join_element_wise(*cols, ",")
    out = pc.binary_join_element_wise("{", body, "}", "").to_numpy(zero_copy_only=False)
    out = out.astype(object)
    out[np.isnan(matrix).all(axis=1)] = None
    return pd.Series(out, dtype=object)


#: Probabilities that differ by no more than this are the same result (float noise).
PROBABILITY_NOISE = 1e-12


def write_detection_results(conn: Connection, results: pd.DataFrame, classes: Sequence[str],
                            model_id: int, release_id: int, run_id: int, *,
                            only_changed: bool = False) -> int:
    """Insert per-detection results (``detection_id, cluster, predicted_class, reason`` and
    one probability column per class, in ``classes`` order); close what they replace.

    ``only_changed``: skip results equal to the detection's current one (same model,
    cluster, class and reason, probabilities within ``PROBABILITY_NOISE``: the same model
    applied to another batch of rows may differ in the last bits), so reapplying a model
    changes nothing.
    Returns how many results were written."""
    if results.empty:
        return 0
    frame = pd.DataFrame({
        "detection_id": results["detection_id"].to_numpy(),
        "model_id": model_id, "valid_from": release_id,
        "cluster": results["cluster"].astype("Int64").to_numpy(),
        "predicted_class": results["predicted_class"].astype("object").to_numpy(),
        "probabilities": pg_array(results[list(classes)].to_numpy(dtype=float)).to_numpy(),
        "reason": results["reason"].astype("object").to_numpy(),
        "classification_run_id": run_id,
    })
    if only_changed:
        return _write_changed_detection_results(conn, frame, release_id)
    conn.exec_driver_sql("CREATE TEMP TABLE stage_result (detection_id bigint) ON COMMIT DROP")
    copy_frame(conn, "pg_temp.stage_result", frame, ["detection_id"])
    conn.exec_driver_sql("ANALYZE pg_temp.stage_result")  # temp tables get no autovacuum
    conn.execute(text(
        f"UPDATE {SCHEMA}.detection_result r SET valid_to = :rel FROM pg_temp.stage_result s "
        "WHERE r.detection_id = s.detection_id AND r.valid_to IS NULL"), {"rel": release_id})
    conn.exec_driver_sql("DROP TABLE pg_temp.stage_result")
    copy_frame(conn, f"{SCHEMA}.detection_result", frame, list(frame.columns))
    return len(frame)


def _write_changed_detection_results(conn: Connection, frame: pd.DataFrame,
                                     release_id: int) -> int:
    cols = list(frame.columns)
    conn.exec_driver_sql(
        "CREATE TEMP TABLE stage_full_result ON COMMIT DROP AS "
        f"SELECT {', '.join(cols)} FROM {SCHEMA}.detection_result WITH NO DATA")
    copy_frame(conn, "pg_temp.stage_full_result", frame, cols)
    conn.exec_driver_sql("ANALYZE pg_temp.stage_full_result")
    same = " AND ".join(f"c.{c} IS NOT DISTINCT FROM n.{c}"
                        for c in ("model_id", "cluster", "predicted_class", "reason"))
    # probabilities equal to within PROBABILITY_NOISE (NaN equals NaN in PostgreSQL)
    close = ("(c.probabilities IS NOT DISTINCT FROM n.probabilities OR "
             "(cardinality(c.probabilities) = cardinality(n.probabilities) AND NOT EXISTS ("
             "SELECT 1 FROM unnest(c.probabilities, n.probabilities) AS u(a, b) "
             "WHERE NOT (u.a = u.b OR abs(u.a - u.b) <= :eps))))")
    conn.execute(text(
        f"DELETE FROM pg_temp.stage_full_result n USING {SCHEMA}.detection_result c "
        f"WHERE c.detection_id = n.detection_id AND c.valid_to IS NULL AND {same} AND {close}"),
        {"eps": PROBABILITY_NOISE})
    conn.execute(text(
        f"UPDATE {SCHEMA}.detection_result r SET valid_to = :rel "
        "FROM pg_temp.stage_full_result s "
        "WHERE r.detection_id = s.detection_id AND r.valid_to IS NULL"), {"rel": release_id})
    n = conn.execute(text(
        f"INSERT INTO {SCHEMA}.detection_result ({', '.join(cols)}) "
        f"SELECT {', '.join(cols)} FROM pg_temp.stage_full_result")).rowcount
    conn.exec_driver_sql("DROP TABLE pg_temp.stage_full_result")
    return n


def affected_sources(conn: Connection, release_id: int) -> list[int]:
    """Sources whose master result may change in ``release_id``, each once: those with new
    detection results in it, and those the SIMBAD ingest queued in ``simbad_change``.

    The queue rows this statement sees are deleted in the caller's transaction (so a
    rolled-back publish leaves them); a change committed after it stays queued for the next
    publish. (A source gets its first master result in the release that first classifies
    its detections, so no scan over every source is needed.)"""
    return list(conn.execute(text(
        f"WITH queued AS (DELETE FROM {SCHEMA}.simbad_change RETURNING source_id) "
        f"SELECT d.source_id FROM {SCHEMA}.detection_result r "
        f"JOIN {SCHEMA}.csc_detection d USING (detection_id) WHERE r.valid_from = :rel "
        "UNION SELECT source_id FROM queued ORDER BY 1"),
        {"rel": release_id}).scalars())


def master_inputs(conn: Connection, source_ids: Sequence[int], n_classes: int) -> pd.DataFrame:
    """Current per-detection probabilities of ``source_ids`` (each source once) with name,
    obsid, obi, region_id and SIMBAD type, in the vote's total order (name, obsid, obi,
    region_id)."""
    conn.exec_driver_sql("CREATE TEMP TABLE want_source (source_id bigint) ON COMMIT DROP")
    ids = np.unique(np.asarray(source_ids, dtype=np.int64))
    copy_frame(conn, "pg_temp.want_source", pd.DataFrame({"source_id": ids}), ["source_id"])
    conn.exec_driver_sql("ANALYZE pg_temp.want_source")  # plans by the real row count
    probs = ", ".join(f"r.probabilities[{i + 1}] AS p{i}" for i in range(n_classes))
    frame = read_frame(conn, (
        f"SELECT d.source_id, s.name, d.obsid, d.obi, d.region_id, r.model_id, {probs}, "
        f"m.otype AS simbad_otype "
        f"FROM pg_temp.want_source w JOIN {SCHEMA}.csc_detection d USING (source_id) "
        f"JOIN {SCHEMA}.csc_source s ON s.source_id = d.source_id "
        f"JOIN {SCHEMA}.detection_result r ON r.detection_id = d.detection_id "
        f"AND r.valid_to IS NULL "
        f"LEFT JOIN {SCHEMA}.simbad_match m ON m.source_id = d.source_id "
        f"ORDER BY s.name, d.obsid, d.obi, d.region_id"))
    conn.exec_driver_sql("DROP TABLE pg_temp.want_source")
    return frame


SOURCE_RESULT_COLUMNS = [
    "source_id", "model_id", "hard_class", "soft_class", "master_class", "agg_master_class",
    "ambiguous", "n_detections", "prob_mean", "prob_std", "simbad_otype", "simbad_class",
    "adopted_class", "agg_adopted_class", "label_origin",
]
_COMPARED = [c for c in SOURCE_RESULT_COLUMNS if c != "source_id"]


def write_source_results(conn: Connection, results: pd.DataFrame, release_id: int) -> int:
    """Write master results that differ from the current ones; returns how many changed.

    ``results`` has ``SOURCE_RESULT_COLUMNS`` with ``prob_mean``/``prob_std`` as float
    matrices' rows already formatted as PostgreSQL array literals.
    """
    if results.empty:
        return 0
    cols = SOURCE_RESULT_COLUMNS
    conn.exec_driver_sql(
        "CREATE TEMP TABLE stage_source_result ON COMMIT DROP AS "
        f"SELECT {', '.join(cols)} FROM {SCHEMA}.source_result WITH NO DATA")
    copy_frame(conn, "pg_temp.stage_source_result", results[cols], cols)
    conn.exec_driver_sql("ANALYZE pg_temp.stage_source_result")
    differs = " OR ".join(f"c.{c} IS DISTINCT FROM n.{c}" for c in _COMPARED)
    changed = f"""
        SELECT n.source_id FROM pg_temp.stage_source_result n
        LEFT JOIN {SCHEMA}.source_result c ON c.source_id = n.source_id AND c.valid_to IS NULL
        WHERE c.source_id IS NULL OR {differs}"""
    conn.exec_driver_sql(f"CREATE TEMP TABLE changed_source ON COMMIT DROP AS {changed}")
    conn.exec_driver_sql("ANALYZE pg_temp.changed_source")
    conn.execute(text(
        f"UPDATE {SCHEMA}.source_result c SET valid_to = :rel FROM pg_temp.changed_source x "
        "WHERE c.source_id = x.source_id AND c.valid_to IS NULL"), {"rel": release_id})
    n = conn.execute(text(
        f"INSERT INTO {SCHEMA}.source_result (valid_from, {', '.join(cols)}) "
        f"SELECT :rel, {', '.join('n.' + c for c in cols)} FROM pg_temp.stage_source_result n "
        "JOIN pg_temp.changed_source x USING (source_id)"), {"rel": release_id}).rowcount
    conn.exec_driver_sql("DROP TABLE pg_temp.changed_source")
    conn.exec_driver_sql("DROP TABLE pg_temp.stage_source_result")
    return n


def write_class_counts(conn: Connection, release_id: int) -> None:
    """Store the sources per (adopted class, aggregated class, origin) at ``release_id``
    (``catalog.class_counts_as_of``), in the release's transaction, after its source
    results: the previous version's counts plus the rows this version opened, minus those
    it closed (read by index: proportional to the changes, not to the catalog). Classes
    with no source have no row."""
    conn.execute(text(f"""
        INSERT INTO {SCHEMA}.version_class_count (release_id, adopted_class,
                                                  agg_adopted_class, label_origin, n_sources)
        SELECT :rel, adopted_class, agg_adopted_class, label_origin, sum(n) FROM (
            SELECT adopted_class, agg_adopted_class, label_origin, n_sources AS n
            FROM {SCHEMA}.version_class_count WHERE release_id = :rel - 1
            UNION ALL
            SELECT adopted_class, agg_adopted_class, label_origin, count(*)
            FROM {SCHEMA}.source_result WHERE valid_from = :rel GROUP BY 1, 2, 3
            UNION ALL
            SELECT adopted_class, agg_adopted_class, label_origin, -count(*)
            FROM {SCHEMA}.source_result WHERE valid_to = :rel GROUP BY 1, 2, 3) AS d
        GROUP BY 2, 3, 4 HAVING sum(n) <> 0"""), {"rel": release_id})
