"""The oracle of the families other than ctl, and of the consensus.

For every enabled source family with an active model, the per-source features are rebuilt
from the stored detections with pandas (apart from ``db.family_store``'s SQL), the stored
model is loaded (``classifier.load``) and applied, and every current result of the family
is compared with the recomputation: presence, model, class, probabilities, interval bounds,
outlier measure, marginals, reason, detection count. The consensus
(``catalog.source_consensus``) is recomputed from the recomputed classes and ctl's published
master classes (which ``db.oracle`` checks) with the coarse map of
``classifier.families.taxonomy``. Sources with detections not yet published (no current
detection result) are pending, not compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from db.load import read_frame
from db.models import SCHEMA
from db.settings import Settings

TOLERANCE = 1e-9
#: How the per-source features are built from the detections (the documented rule).
RULES = {"hard_hm": "mean", "hard_ms": "mean", "hard_hs": "mean", "bb_kt": "mean",
         "powlaw_gamma": "mean", "var_prob_b": "max", "var_prob_h": "max", "var_prob_s": "max",
         "var_ratio_b": "mean", "var_ratio_h": "mean", "var_ratio_s": "mean"}
FAMILY_COLUMNS = ["ctl_class", "muwclass_class", "claxboi_class", "gbm_class"]
#: The chosen counterpart's values as the feature sets name them (README, "Every family in
#: the catalog"): catalogue -> {stored column: feature column}.
COUNTERPART_RULES = {
    "gaia": {"g_mag": "gaia_g", "bp_mag": "gaia_bp", "rp_mag": "gaia_rp",
             "e_g_mag": "e_gaia_g", "e_bp_mag": "e_gaia_bp", "e_rp_mag": "e_gaia_rp",
             "parallax": "gaia_plx", "pm": "gaia_pm"},
    "2mass": {"j_mag": "tmass_j", "h_mag": "tmass_h", "k_mag": "tmass_k",
              "e_j_mag": "e_tmass_j", "e_h_mag": "e_tmass_h", "e_k_mag": "e_tmass_k"},
    "allwise": {"w1_mag": "wise_w1", "w2_mag": "wise_w2", "w3_mag": "wise_w3",
                "e_w1_mag": "e_wise_w1", "e_w2_mag": "e_wise_w2", "e_w3_mag": "e_wise_w3"},
}


@dataclass
class FamilyCheck:
    differences: pd.DataFrame
    n_results: dict[str, int] = field(default_factory=dict)
    n_consensus: int = 0
    problems: list[str] = field(default_factory=list)
    #: per family: the recomputed class per source (the stored one where pending)
    classes: dict[str, pd.Series] = field(default_factory=dict)


def _diff(ids, names, column, stored, expected) -> pd.DataFrame:
    return pd.DataFrame({"source_id": ids, "name": names, "column": column,
                         "stored": list(stored), "expected": list(expected)}, dtype=object)


def _text_same(a, b) -> np.ndarray:
    def norm(s):
        s = pd.Series(s, dtype="object")
        return s.where(s.notna(), "\x00").astype(str).to_numpy()

    return norm(a) == norm(b)


def _float_same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    with np.errstate(invalid="ignore"):
        close = np.abs(a - b) <= TOLERANCE * (1 + np.abs(b))
    out = close | (np.isnan(a) & np.isnan(b))
    return out.all(axis=1) if out.ndim == 2 else out


def _matrix(values: pd.Series, width: int) -> np.ndarray:
    """A column of arrays (or NULL) as an (n, width) float matrix, NaN where NULL."""
    out = np.full((len(values), width), np.nan)
    v = values.to_numpy(object)
    have = np.array([x is not None and not (isinstance(x, float)) for x in v], dtype=bool)
    if have.any():
        out[have] = np.array([np.asarray(x, dtype="float64") for x in v[have]])
    return out


def source_features(det: pd.DataFrame) -> pd.DataFrame:
    """Per source: n_detections and the features of :data:`RULES` (NULLs left out)."""
    g = det.groupby("source_id", sort=True)
    out = pd.DataFrame({"n_detections": g.size()})
    for col, how in RULES.items():
        out[col] = getattr(g[col], how)()
    return out


def counterpart_features(match: pd.DataFrame, cand: pd.DataFrame) -> pd.DataFrame:
    """Per source with a chosen counterpart: its values under :data:`COUNTERPART_RULES`
    (``match``: source_id, catalogue, cp_id; ``cand``: the candidates' rows)."""
    chosen = match.dropna(subset=["cp_id"]).merge(cand, on=["source_id", "catalogue", "cp_id"])
    parts = []
    for cat, rules in COUNTERPART_RULES.items():
        part = chosen[chosen["catalogue"] == cat].set_index("source_id")[list(rules)]
        parts.append(part.rename(columns=rules).astype("float64"))
    cols = [c for r in COUNTERPART_RULES.values() for c in r.values()]
    return pd.concat(parts, axis=1).reindex(columns=cols) if parts else \
        pd.DataFrame(columns=cols)


def _read(engine: Engine) -> dict:
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        det = read_frame(conn, (
            f"SELECT d.source_id, {', '.join(f'd.{c}' for c in RULES)}, "
            f"(NOT EXISTS (SELECT 1 FROM {SCHEMA}.detection_result r WHERE r.detection_id = "
            f"d.detection_id AND r.valid_to IS NULL))::int AS unpublished "
            f"FROM {SCHEMA}.csc_detection d"))
        src = read_frame(conn, f"SELECT source_id, name FROM {SCHEMA}.csc_source")
        cp_match = read_frame(conn, f"SELECT source_id, catalogue, cp_id "
                                    f"FROM {SCHEMA}.counterpart_match")
        values = sorted({c for r in COUNTERPART_RULES.values() for c in r})
        cp_cand = read_frame(conn, f"SELECT source_id, catalogue, cp_id, {', '.join(values)} "
                                   f"FROM {SCHEMA}.counterpart_candidate")
        cp_pending = set(conn.execute(text(
            f"SELECT DISTINCT source_id FROM {SCHEMA}.counterpart_change")).scalars())
        models = pd.read_sql_query(text(
            f"SELECT model_id, family, taxonomy, model_bytes FROM {SCHEMA}.fitted_model "
            "WHERE status = 'active' AND family <> 'ctl'"), conn)
        stored = pd.read_sql_query(text(
            f"SELECT source_id, model_id, family, predicted_class, probabilities, prob_lo, "
            f"prob_hi, outlier, marginals, reason, n_detections, features "
            f"FROM {SCHEMA}.family_source_result WHERE valid_to IS NULL"), conn)
        ctl = pd.read_sql_query(text(
            f"SELECT source_id, master_class FROM {SCHEMA}.source_result "
            "WHERE valid_to IS NULL"), conn)
        consensus = pd.read_sql_query(text(f"SELECT * FROM {SCHEMA}.source_consensus"), conn)
    return {"det": det, "src": src, "models": models, "stored": stored, "ctl": ctl,
            "consensus": consensus, "cp": counterpart_features(cp_match, cp_cand),
            "cp_pending": cp_pending}


def _check_family(family: str, row, feats: pd.DataFrame, stored: pd.DataFrame,
                  names: pd.Series, pending: set, cp_pending: set = frozenset()
                  ) -> tuple[list[pd.DataFrame], pd.Series]:
    """Differences of one family, and its recomputed class per source (``cp_pending``:
    pending too when the family reads counterpart features)."""
    from threadpoolctl import threadpool_limits

    from classifier import load

    model = load(bytes(row.model_bytes))
    classes = list(model.classes_)
    inputs = model.required_columns()
    if set(inputs) & {c for r in COUNTERPART_RULES.values() for c in r.values()}:
        pending = pending | cp_pending
    out = []
    st = stored[stored.family == family].set_index("source_id")
    want = feats.index.difference(list(pending))
    have = st.index
    label = f"{family}."
    both = want.intersection(have)
    # step 1: the stored inputs are the recomputed features (within TOLERANCE); step 2: the
    # model applied to them gives the stored result (a tree threshold may sit exactly on a
    # value, so one ulp of a mean computed in another order must not decide a class)
    SF = _matrix(st.loc[both, "features"], len(inputs))
    EF = feats.loc[both, inputs].to_numpy("float64", na_value=np.nan)
    same_inputs = _float_same(SF, EF)
    with threadpool_limits(1):
        # keyed by source name, as pipeline.families applies the model (draws follow keys)
        pred = model.predict(pd.DataFrame(SF, index=pd.Index(names.reindex(both).to_numpy()),
                                          columns=inputs))
        pred.index = both
    exp_class = pred["predicted_class"].astype("object")
    miss, extra = want.difference(have), have.difference(feats.index)
    if len(miss):
        out.append(_diff(miss, names.reindex(miss), label + "(row)", ["(none)"] * len(miss),
                         ["a result"] * len(miss)))
    if len(extra):
        out.append(_diff(extra, names.reindex(extra), label + "(row)", ["a result"] * len(extra),
                         ["(none)"] * len(extra)))
    s, e = st.loc[both], pred.loc[both]
    checks = [("features", same_inputs, list(SF), list(EF)),
              ("model_id", s["model_id"].to_numpy() == int(row.model_id),
               s["model_id"], [int(row.model_id)] * len(both)),
              ("predicted_class", _text_same(s["predicted_class"], e["predicted_class"]),
               s["predicted_class"], e["predicted_class"]),
              ("reason", _text_same(s["reason"], e["reason"]), s["reason"], e["reason"]),
              ("n_detections", s["n_detections"].to_numpy() == feats.loc[both, "n_detections"]
               .to_numpy(), s["n_detections"], feats.loc[both, "n_detections"])]
    P = e[classes].to_numpy("float64")
    SP = _matrix(s["probabilities"], len(classes))
    checks.append(("probabilities", _float_same(SP, P), list(SP), list(P)))
    for b in ("lo", "hi"):
        cols = [f"p_{c}_{b}" for c in classes]
        E = e[cols].to_numpy("float64") if all(c in e for c in cols) else \
            np.full((len(both), len(classes)), np.nan)
        S = _matrix(s[f"prob_{b}"], len(classes))
        checks.append((f"prob_{b}", _float_same(S, E), list(S), list(E)))
    eo = e["outlier"].to_numpy("float64") if "outlier" in e else np.full(len(both), np.nan)
    so = pd.to_numeric(s["outlier"]).to_numpy("float64")
    checks.append(("outlier", _float_same(so, eo), so, eo))
    cats = [c.removeprefix("alt_without_") for c in pred.columns
            if str(c).startswith("alt_without_")]
    if cats:
        flat = pd.json_normalize(list(s["marginals"].map(lambda m: m or {})), max_level=1)
        flat.index = both
        for k in cats:
            sm = _matrix(flat.get(f"{k}.p", pd.Series([None] * len(both), index=both)),
                         len(classes))
            em = e[[f"p_{k}_{c}" for c in classes]].to_numpy("float64")
            checks.append((f"marginals.{k}.p", _float_same(sm, em), list(sm), list(em)))
            sa = flat.get(f"{k}.alt", pd.Series([None] * len(both), index=both))
            ea = e[f"alt_without_{k}"].astype("object")
            checks.append((f"marginals.{k}.alt", _text_same(sa, ea), sa, ea))
    for col, same, sv, ev in checks:
        bad = ~np.asarray(same, dtype=bool)
        if bad.any():
            idx = both[bad]
            out.append(_diff(idx, names.reindex(idx), label + col,
                             np.asarray(list(sv), dtype=object)[bad],
                             np.asarray(list(ev), dtype=object)[bad]))
    return out, exp_class


def expected_consensus(classes: pd.DataFrame) -> pd.DataFrame:
    """Per source (index) from one class column per family: coarse class per family,
    n_families, majority_class (None when tied), n_agree, disagreement, all_agree."""
    from classifier.families.taxonomy import coarse

    co = classes.apply(lambda c: coarse(c).astype("object"))
    counts = pd.get_dummies(co.stack()).groupby(level=0).sum()
    top = counts.max(axis=1)
    n_top = counts.eq(top, axis=0).sum(axis=1)
    out = pd.DataFrame(index=counts.index)
    out["n_families"] = co.notna().sum(axis=1).reindex(out.index)
    out["majority_class"] = counts.idxmax(axis=1).where(n_top == 1, None)
    out["n_agree"] = top
    out["disagreement"] = (counts > 0).sum(axis=1) > 1
    out["all_agree"] = top == out["n_families"]
    for f in classes.columns:
        out[f"{f}_class"] = co[f].reindex(out.index)
    return out[out["n_families"] > 0]


def check_families(engine: Engine, settings: Settings) -> FamilyCheck:
    from pipeline.families import source_families

    data = _read(engine)
    det, src = data["det"], data["src"]
    names = src.set_index("source_id")["name"] if len(src) else pd.Series(dtype=object)
    if det.empty:
        return FamilyCheck(pd.DataFrame(columns=["source_id", "name", "column", "stored",
                                                 "expected"]))
    pending = set(det.loc[det["unpublished"].to_numpy() == 1, "source_id"].astype(int))
    feats = source_features(det.drop(columns="unpublished"))
    feats = feats.join(data["cp"].reindex(feats.index))
    # a counterpart change ingested but not yet published: pending for the families using
    # counterparts (and for the consensus), as a SIMBAD change is for ctl
    cp_pending = data["cp_pending"]
    rows, n, problems, recomputed = [], {}, [], {}
    classes = pd.DataFrame(index=feats.index)
    ctl = data["ctl"].set_index("source_id")["master_class"]
    classes["ctl"] = ctl.reindex(feats.index)
    models = data["models"].set_index("family")
    for family in source_families(settings):
        if family not in models.index:
            if (data["stored"].family == family).any():
                problems.append(f"{family} has current results but no active model")
            continue
        found, exp = _check_family(family, models.loc[family], feats, data["stored"], names,
                                   pending, cp_pending)
        rows += found
        n[family] = int((data["stored"].family == family).sum())
        classes[family] = exp
        st_f = data["stored"][data["stored"].family == family].set_index("source_id")
        recomputed[family] = pd.concat([exp, st_f["predicted_class"].astype(object).drop(
            index=exp.index, errors="ignore")])
    stale = set(data["stored"].family) - set(n)
    if stale:
        problems.append(f"current results of families not enabled or without an active "
                        f"model: {sorted(stale)}")
    # a source with detections not yet published keeps its published results (and its
    # consensus row) until the next publish: it is checked then, on both sides alike
    pending = pending | cp_pending
    classes = classes.drop(index=list(pending & set(classes.index)))
    exp = expected_consensus(classes)
    st = data["consensus"].set_index("source_id")
    st = st.drop(index=list(pending & set(st.index)))
    for ids, s, e in ((exp.index.difference(st.index), "(none)", "a row"),
                      (st.index.difference(exp.index), "a row", "(none)")):
        if len(ids):
            rows.append(_diff(ids, names.reindex(ids), "consensus.(row)", [s] * len(ids),
                              [e] * len(ids)))
    both = exp.index.intersection(st.index)
    cols = ["majority_class", "n_families", "n_agree", "disagreement", "all_agree"] + [
        c for c in FAMILY_COLUMNS if c in exp.columns]
    for c in cols:
        sv, ev = st.loc[both, c].astype(object), exp.loc[both, c].astype(object)
        if c.startswith("n_"):
            sv, ev = sv.astype("Int64").astype(object), ev.astype("Int64").astype(object)
        bad = ~_text_same(sv, ev)
        if bad.any():
            idx = both[bad]
            rows.append(_diff(idx, names.reindex(idx), f"consensus.{c}", sv[bad], ev[bad]))
    diff = (pd.concat(rows, ignore_index=True) if rows else
            pd.DataFrame(columns=["source_id", "name", "column", "stored", "expected"]))
    return FamilyCheck(diff, n, len(st), problems, recomputed)
