"""The source families in the living catalog: refit, validate, promote and reapply each.

``ctl`` (a detection family) keeps its own path in :mod:`pipeline.classify`; the families
whose ``unit`` is ``"source"`` (muwclass, claxboi, gbm) are handled here, on per-source
features built in ``db.family_store`` from the stored detections and trained on the sources'
SIMBAD classes (label set ``simbad``, the paper's ten classes). Every enabled family is
refitted by :func:`refit_family` (one call per family: the flows run them as parallel
Prefect tasks) and applied inside the publish transaction by :func:`publish_families`, so a
catalog version holds every family's results or none.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from sqlalchemy import Connection, Engine
from threadpoolctl import threadpool_limits

from classifier import FAMILIES, load, save
from classifier.families.taxonomy import COARSE_OF, coarse, coarse_table
from classifier.taxonomy import AGG_CLASSES, AGGREGATION
from classifier.validation import _scores, calibration
from db import family_store as fstore
from db.settings import Settings
from pipeline.errors import RefitError
from pipeline.promotion import promotion
from pipeline.timing import step

log = logging.getLogger(__name__)

#: The label set the catalog trains on (SIMBAD types -> the paper's classes).
LABEL_SET = "simbad"

#: Parameters of each source family in the catalog: X-ray features (``csc_hr``: hardness
#: ratios, spectral fits, variability), and for muwclass also the stored counterparts
#: (``csc_hr_mw``: Gaia/2MASS/WISE colours, magnitudes within their errors, parallax, proper
#: motion; see ``db.family_store``); sized so the demo's refit stays a few seconds per family.
#: muwclass's forest is bounded here (not in ``classifier.compare``, whose settings are the
#: paper's): at most 256 leaves per tree and 20,000 bootstrap rows per tree, so a catalog of
#: 500k labelled sources stores a model of a few MB that loads in well under a second
#: (unbounded: 27 MB and 9.4 s to load at 100k detections, paid by every publish).
CATALOG_PARAMS: dict[str, dict] = {
    "muwclass": {"feature_set": "csc_hr_mw", "n_estimators": 100, "min_samples_leaf": 2,
                 "max_leaf_nodes": 256, "max_samples": 20_000, "n_jobs": 1,
                 "random_state": 42},
    "claxboi": {"feature_set": "csc_hr"},
    "gbm": {"feature_set": "csc_hr", "max_iter": 60, "max_leaf_nodes": 15,
            "random_state": 42},
}


def source_families(settings: Settings) -> list[str]:
    """The enabled families that classify sources, in the settings' order."""
    return [f for f in settings.families if FAMILIES[f].unit == "source"]


def family_params(family: str, settings: Settings) -> dict:
    params = dict(CATALOG_PARAMS.get(family, {}))
    if "random_state" in FAMILIES[family]().get_params():
        params["random_state"] = settings.random_state
    return params


def source_labels(otypes: pd.Series) -> pd.Series:
    from pipeline.classify import training_labels

    return training_labels(otypes)


@dataclass
class FamilyRefit:
    family: str
    model_id: int | None
    n_sources: int
    n_labeled: int
    accuracy: float | None
    agg_accuracy: float | None
    promote: bool
    reason: str
    new_model: bool = True
    n_unclassifiable: int = 0
    seconds: float = 0.0
    figures: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _digest(frame: pd.DataFrame, features: list[str], labels: pd.Series) -> str:
    h = hashlib.sha256()
    h.update(frame["source_id"].to_numpy(np.int64).tobytes())
    h.update(np.ascontiguousarray(frame[features].to_numpy("float64", na_value=np.nan))
             .tobytes())
    h.update("\x00".join(labels.fillna("").astype(str)).encode())
    return h.hexdigest()


def _coarse_scores(true: np.ndarray, pred: np.ndarray) -> dict:
    t = coarse(pd.Series(true, dtype="object")).astype(object).to_numpy()
    p = coarse(pd.Series(pred, dtype="object")).astype(object).to_numpy()
    labels = sorted(set(t) | set(p))
    return _scores(t, p, labels)


def validate_family(model, X: pd.DataFrame, y: pd.Series, random_state: int,
                    test_size: float = 0.3) -> dict:
    """Stratified 70/30 split of the labelled rows (as ``classifier.validate``): fit a clone
    on the 70 %, score the 30 %: fine, aggregated and coarse scores, balanced accuracy,
    calibration of the predicted class."""
    pos = np.flatnonzero(y.notna().to_numpy())
    strat = y.iloc[pos].astype("object").to_numpy()
    vc = pd.Series(strat).value_counts()
    single = np.isin(strat, vc.index[vc < 2].to_numpy())
    train, test = train_test_split(pos[~single], test_size=test_size,
                                   random_state=random_state, stratify=strat[~single])
    train = np.sort(np.concatenate([train, pos[single]]))
    test = np.sort(test)
    m = clone(model).fit(X.iloc[train], y.iloc[train])
    out = m.predict(X.iloc[test])
    true = y.iloc[test].astype("object").to_numpy()
    ok = out["predicted_class"].notna().to_numpy()
    pred = out["predicted_class"].astype("object").to_numpy()
    classes = sorted(set(m.classes_) | set(true))
    fine = _scores(true[ok], pred[ok], classes)
    agg = _scores(np.array([AGGREGATION.get(t, t) for t in true[ok]], dtype=object),
                  np.array([AGGREGATION.get(p, p) for p in pred[ok]], dtype=object),
                  sorted(set(AGG_CLASSES) | {AGGREGATION.get(c, c) for c in classes}))
    P = out.loc[ok, list(m.classes_)].to_numpy("float64")
    rec = [r for r in fine["recall"].values() if r is not None]
    return {
        "unit": "source", "label_set": LABEL_SET, "n_labeled": int(len(pos)),
        "n_train": int(len(train)), "n_test": int(len(test)),
        "n_unclassified": int((~ok).sum()), "test_size": test_size,
        "random_state": random_state, "fine": fine, "aggregated": agg,
        "coarse": _coarse_scores(true[ok], pred[ok]),
        "balanced_accuracy": float(np.mean(rec)) if rec else None,
        "calibration": {"fine": calibration(P.max(axis=1, initial=0.0), true[ok] == pred[ok])},
    }


def refit_family(engine: Engine, settings: Settings, family: str) -> FamilyRefit:
    """Fit, validate and store a model of ``family`` on every source with detections; it is
    promoted by the catalog's policy: not when it cannot classify more than
    ``max_unclassifiable_share`` of the sources, nor when its aggregated accuracy is worse
    than the active model's of the family by more than ``promotion_tolerance``."""
    import time

    t0 = time.perf_counter()
    cls = FAMILIES[family]
    params = family_params(family, settings)
    model = cls(**params)
    stored = {**fstore.SOURCE_FEATURES, **fstore.COUNTERPART_FEATURES}
    features = [f for f in stored if f in model.required_columns()]
    missing = sorted(set(model.required_columns()) - set(stored))
    if missing:
        raise RefitError(f"family {family} needs per-source columns the catalog does not "
                         f"store yet: {', '.join(missing)}")
    with engine.connect() as conn:
        frame = fstore.source_features(conn)
        active = fstore.active_family_model(conn, family)
    if frame.empty:
        raise RefitError("no detections to fit: ingest some first")
    X = frame.set_index("name", drop=False)  # keyed by name, as at prediction
    y = source_labels(X["simbad_otype"])
    digest = _digest(frame, features, y)
    n_lab = int(y.notna().sum())
    if active is not None and active["input_digest"] == digest and active["params"] == params:
        v = active["validation"] or {}
        return FamilyRefit(family, active["model_id"], len(X), n_lab,
                           v.get("fine", {}).get("accuracy"),
                           v.get("aggregated", {}).get("accuracy"), False,
                           f"no new model: the input and parameters equal those of the "
                           f"active {family} model {active['model_id']}", new_model=False)
    reused = _reuse_candidate(engine, settings, family, params, digest, X, n_lab, active)
    if reused is not None:
        return reused
    log.info("fitting %s on %d sources, %d labelled", family, len(X), n_lab)
    try:
        with threadpool_limits(1):  # OpenMP spinning on a shared machine costs 10x and more
            report = validate_family(model, X, y, settings.random_state)
            model.fit(X, y)
    except ValueError as e:
        raise RefitError(f"refit of family {family} failed: {e}") from None
    agg = report["aggregated"]["accuracy"]
    promote, reason, n_left = _decide(model, X, agg, active, settings, family)
    blob = save(model)
    summary = {"family": family, "classes": list(model.classes_),
               "feature_set": model.feature_set, "features": list(model.features_),
               "unit": model.unit, "size_bytes": len(blob)}
    with engine.begin() as conn:
        model_id = fstore.store_family_model(
            conn, family=family, taxonomy=model.classes_, label_set=LABEL_SET, params=params,
            summary=summary, model_bytes=blob, validation=report, n_detections=int(
                frame["n_detections"].sum()), n_labeled=n_lab, input_digest=digest,
            note=reason)
        if not promote:
            from db import catalog_store as store

            store.set_model_status(conn, model_id, "rejected")
    return FamilyRefit(family, model_id, len(X), n_lab, report["fine"]["accuracy"], agg,
                       promote, reason, n_unclassifiable=n_left,
                       seconds=round(time.perf_counter() - t0, 2),
                       figures={"balanced_accuracy": report["balanced_accuracy"],
                                "coarse_accuracy": report["coarse"]["accuracy"],
                                "ece": report["calibration"]["fine"]["ece"]})


def _decide(model, X: pd.DataFrame, agg: float | None, active: dict | None,
            settings: Settings, family: str) -> tuple[bool, str, int]:
    """(promote, reason, sources the fitted ``model`` cannot classify) by the promotion
    policy: refused when more than ``max_unclassifiable_share`` of ``X`` is unclassifiable."""
    _, reasons = model.feature_set_.build(X)
    n_left = int((reasons != None).sum())  # noqa: E711
    refused = (f"{n_left:,} of {len(X):,} sources ({n_left / len(X):.1%}) cannot be "
               f"classified by {family}, more than max_unclassifiable_share = "
               f"{settings.max_unclassifiable_share:g}"
               if n_left > settings.max_unclassifiable_share * len(X) else None)
    promote, reason = promotion(agg, active, settings.promotion_tolerance, refused=refused,
                                what=f"{family} model", first="first model of the family")
    return promote, reason, n_left


def _reuse_candidate(engine: Engine, settings: Settings, family: str, params: dict,
                     digest: str, X: pd.DataFrame, n_lab: int,
                     active: dict | None) -> FamilyRefit | None:
    """The ``candidate`` of ``family`` a process left when it ended between this refit's
    commit and the publish, if fitted on this very input with these parameters and still
    promoted by the policy: the fit is seeded, so fitting again would store an identical
    twin and a rerun after a crash would not end equal to an uninterrupted run (as the ctl
    refit's ``classify._reuse_candidate``). None otherwise (the next publish rejects it)."""
    with engine.connect() as conn:
        row = fstore.reusable_family_candidate(conn, family, params, digest)
    if row is None:
        return None
    model = load(bytes(row["model_bytes"]))
    v = row["validation"] or {}
    agg = v.get("aggregated", {}).get("accuracy")
    promote, _, n_left = _decide(model, X, agg, active, settings, family)
    if not promote:
        return None  # the settings changed since: decide afresh
    log.info("reusing %s model %d: fitted on this input before its publish was cut short",
             family, row["model_id"])
    return FamilyRefit(family, int(row["model_id"]), len(X), n_lab,
                       v.get("fine", {}).get("accuracy"), agg, True,
                       f"no new model: candidate {family} model {row['model_id']} was fitted "
                       f"on this input with these parameters by a run that ended before "
                       f"publishing it; it is promoted now ({row['note']})", new_model=False,
                       n_unclassifiable=n_left)


def needs_family_refit(engine: Engine, settings: Settings) -> list[str]:
    """Enabled source families with no active model, or whose active model was fitted with
    other parameters than the configured ones."""
    with engine.connect() as conn:
        active = fstore.active_family_params(conn)  # no model bytes: they are not needed
    return [f for f in source_families(settings)
            if f not in active or active[f]["params"] != family_params(f, settings)]


def classify_sources(conn: Connection, family: str, row: dict, source_ids, release_id: int
                     ) -> int:
    """Apply the stored model ``row`` of ``family`` to ``source_ids``; write what changed."""
    if len(source_ids) == 0:
        return 0
    with step(f"classify {family}: load model"):  # grows with the model, not with the todo
        model = load(bytes(row["model_bytes"]))
    frame = fstore.source_features(conn, source_ids,
                                   fstore.uses_counterparts(model.required_columns()))
    if frame.empty:
        return 0
    # rows keyed by source name (a family's Monte Carlo draws follow the row key): ids are
    # not stable (a rolled-back ingest consumes sequence values), names are
    X = frame.set_index("name", drop=False)
    with threadpool_limits(1):
        pred = model.predict(X)
    classes = list(model.classes_)
    inputs = frame[model.required_columns()].to_numpy("float64", na_value=np.nan)
    out = fstore.result_frame(frame["source_id"].to_numpy(), frame["n_detections"].to_numpy(),
                              family, row["model_id"], pred, classes, inputs)
    cats, marg = fstore.marginal_columns(pred, classes)
    return fstore.write_family_results(conn, out, release_id, cats, marg)


def publish_families(conn: Connection, settings: Settings, release_id: int, affected,
                     promote: dict[str, int] | None = None,
                     reclassify_all: bool = False) -> dict[str, dict]:
    """Inside the publish transaction: promote the given models, then apply every enabled
    source family's active model to the sources that are new to it (no current result
    under it) and to ``affected`` (sources with new detection results); the families using
    counterpart features also to the sources the counterpart ingest queued (their chosen
    counterparts changed). Per family: the model and how many results were written."""
    fstore.sync_coarse_classes(conn, coarse_table())
    from db import catalog_store as store

    out = {}
    cp_changed = fstore.take_counterpart_changes(conn)
    for family in source_families(settings):
        new = (promote or {}).get(family)
        with step(f"classify {family}: read model"):
            active = fstore.active_family_model(conn, family)
        if new is not None and (active is None or active["model_id"] != new):
            store.set_model_status(conn, new, "active")
            active = fstore.active_family_model(conn, family)
        else:
            new = None
        if active is None:
            continue
        mid = int(active["model_id"])
        family_affected = affected
        if cp_changed and _uses_counterparts(active):
            family_affected = sorted({int(s) for s in affected} | set(cp_changed))
        with step(f"classify {family}: which sources"):
            if reclassify_all:
                todo = fstore.sources_without_result(conn, family, -1)
            elif fstore.only_these_lack_result(conn, family, mid, family_affected):  # usual
                todo = sorted({int(s) for s in family_affected})
            else:  # a model promoted, a family enabled, sources added while it was disabled
                todo = sorted(set(fstore.sources_without_result(conn, family, mid))
                              | {int(s) for s in family_affected})
        with step(f"classify {family}: classify and write"):
            n = classify_sources(conn, family, active, todo, release_id)
        out[family] = {"model_id": int(active["model_id"]), "sources_classified": len(todo),
                       "sources_changed": n, "promoted_model": new}
    return out


def primary_sources(conn: Connection, settings: Settings, release_id: int,
                    affected, family: str) -> list[int]:
    """The sources whose ``source_class`` to rebuild in ``release_id``: ``affected``, and
    with an adopted ``family`` (:func:`adopted_family`) other than ctl also those whose class
    of that family this release rewrote; every source when it differs from the previous
    release's."""
    out = {int(s) for s in affected}
    _check_primary(conn, settings)
    previous = fstore.previous_primary_family(conn, release_id)
    if previous is not None and previous != family:
        return fstore.all_sources(conn)
    if family != "ctl":
        out |= set(fstore.changed_in_release(conn, family, release_id))
    return sorted(out)


def adopted_family(conn: Connection, settings: Settings) -> str:
    """The family ``source_class`` adopts in this publish: the ``primary_family`` once it
    has an active model, else ctl (recorded in the release's counts as ``primary_family``)."""
    family = fstore.adopted_family(conn, settings.primary_family)
    if family != settings.primary_family:
        log.warning("primary_family %r has no active model yet: catalog.source_class adopts "
                    "ctl's vote until one is promoted", settings.primary_family)
    return family


def primary_classes(conn: Connection, family: str, source_ids) -> pd.Series | None:
    """Class of the adopted ``family`` per source (None: ctl's soft vote is adopted)."""
    if family == "ctl":
        return None
    return fstore.current_classes(conn, family, source_ids)


def _check_primary(conn: Connection, settings: Settings) -> None:
    """PublishError when the primary family's active model has classes outside the
    catalog's (a family trained on another label set cannot be adopted)."""
    from classifier.taxonomy import CLASSES
    from pipeline.errors import PublishError

    family = settings.primary_family
    active = None if family == "ctl" else fstore.active_family_model(conn, family)
    if active is not None and not set(active["taxonomy"] or []) <= set(CLASSES):
        raise PublishError(
            f"primary_family = {family!r}: its active model {active['model_id']} has classes "
            f"{sorted(set(active['taxonomy']) - set(CLASSES))} that are not the catalog's "
            f"classes ({', '.join(CLASSES)}); set primary_family to one of the families "
            f"trained on them ({', '.join(settings.families)})")


def _uses_counterparts(row: dict) -> bool:
    """Does the stored model ``row`` read counterpart features (by its feature set)?"""
    from classifier.families.features import feature_set

    name = (row.get("model") or {}).get("feature_set")
    return bool(name) and fstore.uses_counterparts(feature_set(name).columns)


def coarse_of(classes: list[str]) -> dict[str, str]:
    """Coarse class of each of ``classes`` (for reports)."""
    return {c: COARSE_OF.get(c, "unknown") for c in classes}
