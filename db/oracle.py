"""The catalog's oracle: every current per-source result recomputed from scratch.

``check(engine, settings)`` reads the stored detections, their current per-detection results
and the current SIMBAD matches, recomputes each source's master result with plain numpy
(written apart from ``classifier.voting.master_vote``, never calling it) and compares it
with what ``catalog.source_class`` publishes: ``n_detections``, ``mean_*``, ``std_*``
(ddof 1), hard and soft vote, ``ambiguous``, ``master_class``, the adopted class, its origin,
the aggregated classes, the SIMBAD type and class, the model.

The rules, from the paper and the README: a detection counts when all its probabilities are
present; its class is the argmax of its probabilities (ties: the model's first class); the
hard vote is the most frequent detection class, ties going to the class of the detection
first in (ObsID, OBI, region) order, NULLs last; the soft vote is the argmax of the mean
probabilities (ties within 1e-12 accept either); ``ambiguous`` when they differ; the adopted
class is SIMBAD's for a reference type, else the soft vote (or, with ``primary_family`` other
than ctl, that family's class as ``db.family_oracle`` recomputes it) when the type is
uninformative or missing (or any other type with ``classify_other_types``). A SIMBAD change
ingested but not yet published (queued in ``catalog.simbad_change``) is *pending*, not wrong.

``catalog.source_class`` reads the current-state table ``source_class_current`` (kept by
triggers), so the comparison above is that table's against the recomputation; the table must
also equal the current rows of the history (``source_class_history``), and the class counts
the publish stored per version (``catalog.class_counts_as_of``) a recount of the history as
of every version (so the newest ones, those of the recomputed current rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from classifier.taxonomy import AGGREGATION, CLASSES, SIMBAD_TO_CLASS, UNINFORMATIVE
from db.family_store import adopted_family
from db.load import read_frame
from db.models import SCHEMA
from db.settings import Settings

#: Relative and absolute tolerance of the probability means and standard deviations.
TOLERANCE = 1e-9
#: Columns compared, in the order differences are reported.
TEXT_COLUMNS = ["hard_class", "soft_class", "master_class", "agg_master_class", "simbad_otype",
                "simbad_class", "adopted_class", "agg_adopted_class", "label_origin"]
SIMBAD_COLUMNS = {"simbad_otype", "simbad_class", "adopted_class", "agg_adopted_class",
                  "label_origin"}


def column_name(cls: str) -> str:
    """``Orion_V*`` -> ``orion_v``, as the SQL views name a class."""
    return cls.lower().replace("*", "").strip("_")


@dataclass
class CheckResult:
    """What the oracle found. ``differences``: source_id, name, column, stored, expected."""

    n_sources: int
    n_detections: int
    differences: pd.DataFrame
    n_pending_simbad: int = 0
    n_unclassified_detections: int = 0
    problems: list[str] = field(default_factory=list)
    n_family_results: dict[str, int] = field(default_factory=dict)
    n_consensus: int = 0

    @property
    def ok(self) -> bool:
        return self.differences.empty and not self.problems

    @property
    def n_sources_wrong(self) -> int:
        return int(self.differences["source_id"].nunique()) if len(self.differences) else 0

    def verdict(self) -> str:
        waiting = (f" ({self.n_pending_simbad} SIMBAD changes and "
                   f"{self.n_unclassified_detections} detections not yet published)")
        families = "".join(f", {n} {f}" for f, n in self.n_family_results.items())
        families = (f"; the per-source results of every family ({families[2:]}) and the "
                    f"consensus of {self.n_consensus} sources equal theirs") if families else ""
        if self.ok:
            return (f"check passed: all {self.n_sources} current source results equal their "
                    f"recomputation from {self.n_detections} current detection results"
                    + families + waiting)
        what = [f"{self.n_sources_wrong} of {self.n_sources} sources differ from their "
                f"recomputation ({len(self.differences)} values)"] if len(self.differences) \
            else []
        return "check FAILED: " + "; ".join(what + self.problems) + waiting


# -- reads ---------------------------------------------------------------------------------
def _read(engine: Engine) -> dict:
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        active = conn.execute(text(
            f"SELECT model_id, model->'classes' AS classes FROM {SCHEMA}.fitted_model "
            "WHERE status = 'active' AND family = 'ctl'")).mappings().one_or_none()
        models = {int(r.model_id): list(r.classes) for r in conn.execute(text(
            f"SELECT model_id, model->'classes' AS classes FROM {SCHEMA}.fitted_model "
            "WHERE family = 'ctl'"))}
        width = max((len(c) for c in models.values()), default=0)
        probs = "".join(f", r.probabilities[{i + 1}] AS p{i}" for i in range(width))
        det = read_frame(conn, (
            f"SELECT d.source_id, d.obsid, d.obi, d.region_id, r.model_id{probs} "
            f"FROM {SCHEMA}.detection_result r JOIN {SCHEMA}.csc_detection d "
            "USING (detection_id) WHERE r.valid_to IS NULL"))
        src = read_frame(conn, (
            f"SELECT s.source_id, s.name, m.otype FROM {SCHEMA}.csc_source s "
            f"LEFT JOIN {SCHEMA}.simbad_match m USING (source_id)"))
        stored = pd.read_sql_query(text(f"SELECT * FROM {SCHEMA}.source_class"), conn)
        pending = set(conn.execute(text(
            f"SELECT DISTINCT source_id FROM {SCHEMA}.simbad_change")).scalars())
        unclassified = conn.execute(text(
            f"SELECT count(*) FROM {SCHEMA}.unclassified_detection")).scalar_one()
    return {"active": dict(active) if active else None, "models": models, "det": det,
            "src": src, "stored": stored, "pending": pending, "unclassified": unclassified}


# -- recomputation -------------------------------------------------------------------------
def _stripped(otype: pd.Series) -> pd.Series:
    s = pd.Series(otype, copy=False).astype("string").str.strip()
    return s.mask(s == "")


def _kind(otype: pd.Series) -> np.ndarray:
    """reference / unlabeled / other, from the taxonomy's tables (missing: unlabeled)."""
    s = _stripped(otype)
    out = np.full(len(s), "other", dtype=object)
    out[(s.isna() | s.isin(list(UNINFORMATIVE))).to_numpy(bool)] = "unlabeled"
    out[s.isin(list(SIMBAD_TO_CLASS)).fillna(False).to_numpy(bool)] = "reference"
    return out


def expected_results(det: pd.DataFrame, src: pd.DataFrame, classes: list[str],
                     classify_other_types: bool, primary: pd.Series | None = None
                     ) -> pd.DataFrame:
    """Per source with a current detection result: the master result the rules give.

    ``det``: source_id, obsid, obi, region_id and p0.. (probabilities in ``classes`` order);
    ``src``: source_id, name, otype; ``primary``: the primary family's class per source
    (None: ctl, whose soft vote is adopted). One row per source, index source_id.
    """
    C = len(classes)
    ids, sidx = np.unique(det["source_id"].to_numpy(np.int64), return_inverse=True)
    S = len(ids)
    P = det[[f"p{i}" for i in range(C)]].to_numpy(dtype="float64", na_value=np.nan)
    ok = ~np.isnan(P).any(axis=1)
    si, P = sidx[ok], P[ok]
    n = np.bincount(si, minlength=S)
    sums = np.zeros((S, C))
    np.add.at(sums, si, P)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / n[:, None]
        dev = np.zeros((S, C))
        np.add.at(dev, si, (P - mean[si]) ** 2)
        std = np.where(n[:, None] > 1, np.sqrt(dev / (n[:, None] - 1)), np.nan)
    mean[n == 0] = np.nan
    # hard vote: per source the class counts, ties to the class seen first in detection order
    big = np.iinfo(np.int64).max
    key = [det[c].to_numpy("float64", na_value=np.inf)[ok] for c in ("region_id", "obi", "obsid")]
    rank = np.empty(len(si), np.int64)
    rank[np.lexsort([*key, si])] = np.arange(len(si))
    cls = P.argmax(axis=1) if len(P) else np.empty(0, np.int64)
    counts = np.zeros((S, C), np.int64)
    np.add.at(counts, (si, cls), 1)
    first = np.full((S, C), big, np.int64)
    np.minimum.at(first, (si, cls), rank)
    top = counts == counts.max(axis=1, keepdims=True)
    hard = np.where(top, first, big).argmin(axis=1)
    soft = np.nan_to_num(mean, nan=-np.inf).argmax(axis=1)
    names = np.array(classes, dtype=object)
    has = n > 0
    out = pd.DataFrame(index=pd.Index(ids, name="source_id"))
    out["n_detections"] = n
    out["hard_class"] = np.where(has, names[hard], None)
    out["soft_class"] = np.where(has, names[soft], None)
    for j, c in enumerate(classes):
        out[f"mean_{column_name(c)}"] = mean[:, j]
        out[f"std_{column_name(c)}"] = std[:, j]
    s = src.set_index("source_id").reindex(ids)
    out["name"] = s["name"].to_numpy()
    out["simbad_otype"] = s["otype"].astype("object").where(s["otype"].notna(), None).to_numpy()
    out["_kind"] = _kind(s["otype"])
    return _derive(out, classify_other_types, primary)


def _derive(out: pd.DataFrame, classify_other_types: bool,
            primary: pd.Series | None = None) -> pd.DataFrame:
    """Columns that follow from the votes, the SIMBAD type and the primary family's class
    (None: ctl's soft vote is the model class adopted)."""
    has = out["n_detections"].to_numpy() > 0
    soft = out["soft_class"].astype("object")
    out["ambiguous"] = np.where(has, out["hard_class"].astype("object") != soft, None)
    out["master_class"] = soft
    ref = out["_kind"] == "reference"
    cls = _stripped(out["simbad_otype"]).map(SIMBAD_TO_CLASS).astype("object")
    out["simbad_class"] = np.where(ref, cls, None)
    model = soft if primary is None else primary.reindex(out.index).astype("object")
    use_model = model.notna() & ((out["_kind"] == "unlabeled")
                                 | (classify_other_types & (out["_kind"] == "other")))
    out["adopted_class"] = np.where(ref, out["simbad_class"], np.where(use_model, model, None))
    out["label_origin"] = np.where(ref, "simbad", np.where(use_model, "model", None))
    out["agg_master_class"] = out["master_class"].map(AGGREGATION)
    out["agg_adopted_class"] = out["adopted_class"].map(AGGREGATION)
    return out


# -- comparison ----------------------------------------------------------------------------
def _same_text(a: pd.Series, b: pd.Series) -> np.ndarray:
    def norm(s: pd.Series) -> np.ndarray:
        s = s.astype("object")
        return s.where(s.notna(), "\x00").astype(str).to_numpy()

    return norm(a) == norm(b)


def _same_float(a: pd.Series, b: pd.Series) -> np.ndarray:
    x = pd.to_numeric(a, errors="coerce").to_numpy("float64", na_value=np.nan)
    y = pd.to_numeric(b, errors="coerce").to_numpy("float64", na_value=np.nan)
    both_missing = np.isnan(x) & np.isnan(y)
    with np.errstate(invalid="ignore"):
        close = np.abs(x - y) <= TOLERANCE * (1 + np.abs(y))
    return both_missing | close


def compare(stored: pd.DataFrame, expected: pd.DataFrame, classes: list[str],
            active_model: int | None, pending: set[int], classify_other_types: bool,
            primary: pd.Series | None = None) -> tuple[pd.DataFrame, int]:
    """Differences (source_id, name, column, stored, expected) and the number of sources
    whose only differences are SIMBAD changes still queued for the next publish."""
    st = stored.set_index("source_id")
    rows = []
    missing = expected.index.difference(st.index)
    extra = st.index.difference(expected.index)
    for ids, s, e, side in ((missing, "(none)", "a result", expected),
                            (extra, "a result", "(none)", st)):
        if len(ids):
            rows.append(pd.DataFrame({"source_id": ids, "name": side.loc[ids, "name"].to_numpy(),
                                      "column": "(row)", "stored": s, "expected": e}))
    both = expected.index.intersection(st.index)
    st, ex = st.loc[both], expected.loc[both].copy()
    # a soft vote within float noise of a tie may go either way: accept the stored one
    mean_cols = [f"mean_{column_name(c)}" for c in classes]
    m = ex[mean_cols].to_numpy("float64")
    col_of = {c: i for i, c in enumerate(classes)}
    stored_soft = st["soft_class"].astype("object")
    j = stored_soft.map(col_of).to_numpy("float64", na_value=np.nan)
    valid = ~np.isnan(j) & (ex["n_detections"].to_numpy() > 0)
    got = np.full(len(ex), -np.inf)
    got[valid] = m[np.flatnonzero(valid), j[valid].astype(np.int64)]
    tie = valid & (got >= np.nanmax(np.where(np.isnan(m), -np.inf, m), axis=1,
                                    initial=-np.inf) - 1e-12)
    if tie.any():
        ex.loc[tie, "soft_class"] = stored_soft[tie].to_numpy()
        ex = _derive(ex, classify_other_types, primary)
    is_pending = ex.index.isin(list(pending))
    n_pending = 0
    pend_bad = np.zeros(len(ex), bool)
    checks: list[tuple[str, np.ndarray]] = [
        ("n_detections", _same_float(st["n_detections"], ex["n_detections"])),
        ("ambiguous", _same_text(st["ambiguous"].astype("boolean"),
                                 ex["ambiguous"].astype("boolean"))),
    ]
    checks += [(c, _same_text(st[c], ex[c])) for c in TEXT_COLUMNS]
    for c in classes:
        for stat in ("mean", "std"):
            col = f"{stat}_{column_name(c)}"
            checks.append((col, _same_float(st[col], ex[col])))
    if active_model is not None:
        checks.append(("model_id", st["model_id"].to_numpy() == active_model))
        ex["model_id"] = active_model
    for col, same in checks:
        bad = ~same
        if col in SIMBAD_COLUMNS:
            pend_bad |= bad & is_pending
            bad &= ~is_pending
        if bad.any():
            idx = both[bad]
            rows.append(pd.DataFrame({
                "source_id": idx, "name": ex.loc[idx, "name"].to_numpy(), "column": col,
                "stored": st.loc[idx, col].to_numpy(object),
                "expected": ex.loc[idx, col].to_numpy(object)}, dtype=object))
    n_pending = int(pend_bad.sum())
    if not rows:
        return pd.DataFrame(columns=["source_id", "name", "column", "stored", "expected"]), \
            n_pending
    order = {c: i for i, c in enumerate(["(row)", *(c for c, _ in checks)])}
    diff = pd.concat(rows, ignore_index=True)
    diff["_o"] = diff["column"].map(order)
    return diff.sort_values(["name", "_o"], kind="stable").drop(columns="_o") \
        .reset_index(drop=True), n_pending


#: Rows of the current-state table that are not the history's current rows, and back.
CURRENT_VS_HISTORY = f"""
SELECT count(*) FROM (
    (SELECT * FROM {SCHEMA}.source_class
     EXCEPT ALL SELECT * FROM {SCHEMA}.source_class_history WHERE valid_to IS NULL)
    UNION ALL
    (SELECT * FROM {SCHEMA}.source_class_history WHERE valid_to IS NULL
     EXCEPT ALL SELECT * FROM {SCHEMA}.source_class)) AS x"""
#: Versions whose stored class counts differ from a recount of the result rows valid then.
COUNTS_VS_HISTORY = f"""
WITH recount AS (
    SELECT v.release_id, r.adopted_class, r.agg_adopted_class, r.label_origin,
           count(*) AS n_sources
    FROM {SCHEMA}.release v JOIN {SCHEMA}.source_result r
      ON r.valid_from <= v.release_id AND (r.valid_to IS NULL OR r.valid_to > v.release_id)
    GROUP BY 1, 2, 3, 4),
stored AS (SELECT release_id, adopted_class, agg_adopted_class, label_origin, n_sources
           FROM {SCHEMA}.version_class_count)
SELECT DISTINCT release_id FROM (
    (SELECT * FROM recount EXCEPT ALL SELECT * FROM stored)
    UNION ALL (SELECT * FROM stored EXCEPT ALL SELECT * FROM recount)) AS x
ORDER BY 1"""


def stored_state_problems(engine: Engine) -> list[str]:
    """The current-state table against the history's current rows, and the class counts of
    every version against a recount of the history (one message per failed check)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        n_current = conn.execute(text(CURRENT_VS_HISTORY)).scalar_one()
        versions = list(conn.execute(text(COUNTS_VS_HISTORY)).scalars())
    problems = []
    if n_current:
        problems.append(f"catalog.source_class (source_class_current) and the current rows "
                        f"of source_class_history differ in {n_current} rows")
    if versions:
        shown = ", ".join(str(v) for v in versions[:10]) + (" ..." if len(versions) > 10 else "")
        problems.append(f"the class counts of catalog version(s) {shown} "
                        "(catalog.class_counts_as_of) differ from a recount of the history")
    return problems


def check(engine: Engine, settings: Settings) -> CheckResult:
    """Recompute every current source result and compare it with ``catalog.source_class``."""
    data = _read(engine)
    det, problems = data["det"], []
    active = data["active"]
    used = sorted(set(det["model_id"].astype(int))) if len(det) else []
    class_lists = {tuple(data["models"][m]) for m in used}
    if active is not None:
        class_lists.add(tuple(active["classes"]))
    classes = list(next(iter(class_lists))) if class_lists else list(CLASSES)
    if len(class_lists) > 1:
        problems.append("current detection results come from models with different classes")
    if active is not None and any(m != active["model_id"] for m in used):
        problems.append(f"current detection results of models {used}, the active model is "
                        f"{active['model_id']}")
    if list(classes) != list(CLASSES):
        problems.append(f"model classes {classes} are not the views' classes {list(CLASSES)}")
    if det.empty:
        det = pd.DataFrame(columns=["source_id", "obsid", "obi", "region_id",
                                    *(f"p{i}" for i in range(len(classes)))])
    from db.family_oracle import check_families

    fam = check_families(engine, settings)  # every other family, and the consensus
    primary = None
    with engine.connect() as conn:  # the primary family once it has an active model, else ctl
        adopted = adopted_family(conn, settings.primary_family)
    if adopted != "ctl":  # its recomputed classes are the model's adopted
        primary = fam.classes.get(adopted, pd.Series(dtype=object))
    expected = expected_results(det, data["src"], classes, settings.classify_other_types,
                                primary)
    diff, n_pending = compare(data["stored"], expected, classes,
                              active["model_id"] if active else None, data["pending"],
                              settings.classify_other_types, primary)
    if len(fam.differences):
        diff = pd.concat([diff, fam.differences], ignore_index=True)
    problems += stored_state_problems(engine)
    return CheckResult(len(expected), int(len(det)), diff, n_pending,
                       int(data["unclassified"]), problems + fam.problems,
                       n_family_results=fam.n_results, n_consensus=fam.n_consensus)


def _show(value) -> str:
    """A stored or expected value as the user would write it."""
    if isinstance(value, (list, tuple, np.ndarray)):  # a family's probability array
        return "[" + ", ".join(_show(v) for v in list(value)[:12]) + "]"
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "NULL"
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return repr(value)
    return repr(value) if isinstance(value, str) else str(value)


def format_differences(result: CheckResult, limit: int = 10) -> str:
    """The first differences as lines: source name, column, stored vs expected."""
    lines = [f"  {r.name}  {r.column}: stored {_show(r.stored)}, expected {_show(r.expected)}"
             for r in result.differences.head(limit).itertuples(index=False)]
    lines += [f"  {p}" for p in result.problems]
    more = len(result.differences) - limit
    if more > 0:
        lines.append(f"  ... and {more} more")
    return "\n".join(lines)
