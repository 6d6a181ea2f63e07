"""Refit, reapply and publish: the classification steps of the living catalog.

``refit`` fits and validates a new model and stores it (a candidate). ``publish`` writes one
catalog version atomically: it promotes a model if asked, classifies every detection that
has no current result under the active model, and rebuilds the master results of the
sources that changed. A publish that changes nothing writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine

from classifier import (
    ClusterThenLabel,
    aggregate,
    otype_kind,
    simbad_to_class,
)
from classifier import taxonomy as tx
from classifier.features import FEATURE_SETS
from classifier.transform import feature_matrix, nonfinite_reasons
from classifier.validation import validate
from classifier.voting import master_vote
from db import catalog_store as store
from db.settings import Settings
from pipeline import families
from pipeline.errors import RefitError
from pipeline.promotion import promotion
from pipeline.timing import step

log = logging.getLogger(__name__)


class NothingChanged(Exception):
    """Raised inside a publish transaction to roll it back: the catalog is current."""


def taxonomy_table() -> pd.DataFrame:
    """``classifier.taxonomy`` as rows for ``catalog.simbad_type``."""
    ref = pd.DataFrame({"otype": list(tx.SIMBAD_TO_CLASS),
                        "class": list(tx.SIMBAD_TO_CLASS.values())})
    ref["agg_class"] = ref["class"].map(tx.AGGREGATION)
    ref["kind"] = tx.OtypeKind.REFERENCE.value
    unl = pd.DataFrame({"otype": sorted(tx.UNINFORMATIVE - set(tx.SIMBAD_TO_CLASS))})
    unl["kind"] = tx.OtypeKind.UNLABELED.value
    return pd.concat([ref, unl], ignore_index=True)


def model_params(settings: Settings) -> dict:
    """Parameters of ``ClusterThenLabel`` from the settings (``features``: a named set)."""
    return {"features": list(FEATURE_SETS[settings.features]),
            "n_components": settings.n_components, "random_state": settings.random_state}


def training_labels(otypes: pd.Series) -> pd.Series:
    """Reference classes from SIMBAD types; NA for everything else (unlabeled for ``fit``)."""
    labels = simbad_to_class(otypes)
    return labels.where(otype_kind(otypes) == tx.OtypeKind.REFERENCE.value)


@dataclass
class RefitResult:
    model_id: int
    n_detections: int
    n_labeled: int
    accuracy: float | None
    agg_accuracy: float | None
    promote: bool
    reason: str
    new_model: bool = True
    features: str = ""
    n_unclassifiable: int = 0
    unclassifiable: dict[str, int] = field(default_factory=dict)


def _digest(frame: pd.DataFrame, labels: pd.Series) -> str:
    h = hashlib.sha256()
    h.update(frame["detection_id"].to_numpy(np.int64).tobytes())
    h.update("\x00".join(labels.fillna("").astype(str)).encode())
    return h.hexdigest()


def _same_as_active(active: dict | None, params: dict, digest: str) -> RefitResult | None:
    """The active model when it was fitted on this very input with these parameters: a
    refit would reproduce it, so none is fitted or stored."""
    if active is None or active["input_digest"] != digest or active["params"] != params:
        return None
    v = active["validation"] or {}
    return RefitResult(active["model_id"], active["n_detections"], active["n_labeled"],
                       v.get("fine", {}).get("accuracy"), v.get("aggregated", {}).get("accuracy"),
                       False, f"no new model: the input and parameters equal those of the "
                              f"active model {active['model_id']}", new_model=False)


def _nothing_fittable(X: pd.DataFrame, features: list[str], settings: Settings) -> None:
    """RefitError naming the cause when no detection has all features finite."""
    A = feature_matrix(X, features)
    if (nonfinite_reasons(A, features) == None).any():  # noqa: E711  (object array)
        return
    bad = dict(zip(features, (~np.isfinite(A)).sum(axis=0).tolist(), strict=True))
    parts = [f"{f} is missing in {n:,} of {len(X):,}"
             for f, n in sorted(bad.items(), key=lambda x: -x[1]) if n]
    hint = (' (var_newq_b needs var_min_b/var_max_b; for tables without them set features = '
            '"paper11")' if bad.get("var_newq_b") else "")
    raise RefitError(f"no detection can be fitted with features {settings.features}: "
                     f"{', '.join(parts)}{hint}")


def unclassifiable(model: ClusterThenLabel) -> pd.Series:
    """Fit rows the fitted ``model`` cannot classify, counted by reason (as ``predict`` says):
    invalid features, or a cluster with no usable class."""
    reasons = model.invalid_rows_["reason"].astype(str)
    labels = model.labels_[model.labels_ >= 0]
    dead = labels[~model.usable_.any(axis=1)[labels]]
    no_class = pd.Series([f"cluster {k} has no class with >= {model.min_labeled_} labeled "
                          "detections" for k in dead], dtype=object)
    return pd.concat([reasons, no_class]).value_counts()


def _share_reason(left: pd.Series, n: int, settings: Settings) -> str | None:
    """Why a model that cannot classify ``left`` of ``n`` detections is not promoted."""
    n_left = int(left.sum())
    if n_left <= settings.max_unclassifiable_share * n:
        return None
    counts = "; ".join(f"{int(c):,} × {r}" for r, c in left.items())
    hint = (' (set features = "paper11" for tables without var_min_b/var_max_b)'
            if settings.features == "paper12" and any("var_newq_b" in r for r in left.index)
            else "")
    return (f"{n_left:,} of {n:,} detections ({n_left / n:.1%}) cannot be classified with "
            f"features {settings.features}, more than max_unclassifiable_share = "
            f"{settings.max_unclassifiable_share:g}: {counts}{hint}")


def _reuse_candidate(engine: Engine, params: dict, digest: str, X: pd.DataFrame,
                     active: dict | None, settings: Settings) -> RefitResult | None:
    """The ``candidate`` a process left when it ended between a refit's commit and the
    publish, if it was fitted on this very input with these parameters and would still be
    promoted: the fit is seeded, so fitting again would only store an identical twin (and a
    rerun after a crash would not end equal to an uninterrupted run). None otherwise (a
    stale candidate is rejected by the next publish)."""
    with engine.connect() as conn:
        row = store.reusable_candidate(conn, params, digest)
    if row is None:
        return None
    model = ClusterThenLabel.from_dict(row["model"])
    left = model.predict(X)["reason"].dropna().astype(str).value_counts()
    v = row["validation"] or {}
    agg_acc = v.get("aggregated", {}).get("accuracy")
    promote, _ = promotion(agg_acc, active, settings.promotion_tolerance,
                           refused=_share_reason(left, len(X), settings))
    if not promote:
        return None  # the settings changed since: decide afresh
    log.info("reusing model %d: fitted on this input before its publish was cut short",
             row["model_id"])
    return RefitResult(row["model_id"], row["n_detections"], row["n_labeled"],
                       v.get("fine", {}).get("accuracy"), agg_acc, True,
                       f"no new model: candidate model {row['model_id']} was fitted on this "
                       f"input with these parameters by a run that ended before publishing "
                       f"it; it is promoted now ({row['note']})", new_model=False,
                       features=settings.features,
                       n_unclassifiable=int(left.sum()),
                       unclassifiable={str(r): int(c) for r, c in left.items()})


def refit(engine: Engine, settings: Settings) -> RefitResult:
    """Fit and validate a model on all current detections and labels; store it.

    It is promoted unless it cannot classify more than ``max_unclassifiable_share`` of the
    detections, or its aggregated accuracy is worse than the active model's by more than
    ``promotion_tolerance``; either way the stored note says why.
    """
    params = model_params(settings)
    features = params["features"]
    with engine.connect() as conn:
        frame = store.detection_features(conn, features)
        active = store.active_model(conn, check=False)  # only its validation figures are read
    if frame.empty:
        raise RefitError("no detections to fit: ingest some first")
    X, y = frame[features], training_labels(frame["simbad_otype"])
    unchanged = _same_as_active(active, params, _digest(frame, y))
    if unchanged is not None:
        return unchanged
    reused = _reuse_candidate(engine, params, _digest(frame, y), X, active, settings)
    if reused is not None:
        return reused
    _nothing_fittable(X, features, settings)
    log.info("fitting on %d detections, %d labeled", len(X), int(y.notna().sum()))
    try:
        model = ClusterThenLabel(**params).fit(X, y)
        report = validate(X, y, fitted=model)  # reuses the mixture: it does not use labels
    except ValueError as e:
        raise RefitError(f"refit with features {settings.features} failed: {e}") from None
    left = unclassifiable(model)
    agg_acc = report["aggregated"]["accuracy"]
    promote, reason = promotion(agg_acc, active, settings.promotion_tolerance,
                                refused=_share_reason(left, len(X), settings))
    with engine.begin() as conn:
        model_id = store.store_model(
            conn, model=model.to_dict(), params=params, validation=report,
            n_detections=len(X), n_labeled=int(y.notna().sum()),
            input_digest=_digest(frame, y), note=reason)
        if not promote:
            store.set_model_status(conn, model_id, "rejected")
    return RefitResult(model_id, len(X), int(y.notna().sum()), report["fine"]["accuracy"],
                       agg_acc, promote, reason, features=settings.features,
                       n_unclassifiable=int(left.sum()),
                       unclassifiable={str(r): int(c) for r, c in left.items()})


def needs_refit(engine: Engine, settings: Settings) -> tuple[bool, str]:
    """The refit policy: no active model, another feature set configured, or
    labels/detections changed enough since its fit."""
    with engine.connect() as conn:
        active = store.active_model(conn, check=False)  # publish validates it before use
        if active is None:
            return True, "no active model"
        n_now, per_otype = store.detections_per_otype(conn)  # counts, no detection rows
    wanted = model_params(settings)["features"]
    if list((active["params"] or {}).get("features") or []) != wanted:
        return True, f"the active model's features are not the configured {settings.features}"
    labeled = training_labels(pd.Series(per_otype.index, dtype="string")).notna().to_numpy()
    n_lab = int(per_otype[labeled].sum())
    growth = (n_now - active["n_detections"]) / max(active["n_detections"], 1)
    lab_change = abs(n_lab - active["n_labeled"]) / max(active["n_labeled"], 1)
    if lab_change >= settings.refit_labeled_change:
        return True, f"labeled detections changed by {lab_change:.1%}"
    if growth >= settings.refit_detection_growth:
        return True, f"detections grew by {growth:.1%}"
    return False, (f"detections grew by {growth:.1%}, labels changed by {lab_change:.1%}: "
                   "reapplying the active model")


@dataclass
class ReleaseSummary:
    catalog_version: int
    model_id: int
    detections_classified: int
    sources_rebuilt: int
    sources_changed: int
    promoted: int | None = None
    counts: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _master_frame(conn: Connection, source_ids: list[int], model: ClusterThenLabel,
                  model_id: int, settings: Settings, adopted: str) -> pd.DataFrame:
    """Master results (ctl's votes) of ``source_ids``; the adopted class of a source without
    a reference SIMBAD type is the ``adopted`` family's class (ctl: the soft vote)."""
    classes = list(model.classes_)
    inputs = store.master_inputs(conn, source_ids, len(classes))
    if inputs.empty:
        return pd.DataFrame(columns=store.SOURCE_RESULT_COLUMNS)
    inputs = inputs.rename(columns={f"p{i}": c for i, c in enumerate(classes)})
    per_source = inputs.groupby("source_id", sort=False).agg(
        name=("name", "first"), simbad_otype=("simbad_otype", "first"))
    votes = master_vote(inputs, classes=classes)
    out = per_source.join(votes, on="name")
    kind = otype_kind(out["simbad_otype"])
    out["simbad_class"] = simbad_to_class(out["simbad_otype"]).where(
        kind == tx.OtypeKind.REFERENCE.value)
    primary = families.primary_classes(conn, adopted, out.index)
    chosen = out["soft_class"] if primary is None else primary.reindex(out.index)
    model_ok = chosen.notna() & ((kind == tx.OtypeKind.UNLABELED.value) | (
        settings.classify_other_types & (kind == tx.OtypeKind.OTHER.value)))
    is_ref = out["simbad_class"].notna()
    out["adopted_class"] = out["simbad_class"].where(is_ref, chosen.where(model_ok))
    out["label_origin"] = pd.Series(np.where(is_ref, "simbad", np.where(model_ok, "model", None)),
                                    index=out.index, dtype="object")
    out["master_class"] = out["soft_class"]
    out["agg_master_class"] = aggregate(out["master_class"])
    out["agg_adopted_class"] = aggregate(out["adopted_class"])
    out["model_id"] = model_id
    out["n_detections"] = out["n_detections"].fillna(0).astype("int64")
    out["prob_mean"] = store.pg_array(out[[f"mean_{c}" for c in classes]].to_numpy(float)
                                       ).to_numpy()
    out["prob_std"] = store.pg_array(out[[f"std_{c}" for c in classes]].to_numpy(float)
                                      ).to_numpy()
    return out.reset_index()[store.SOURCE_RESULT_COLUMNS]


def _resolve_candidates(engine: Engine) -> None:
    """After a publish that changed nothing: still reject the candidate models (left by a
    process that ended between its refit and its publish), so none stays candidate."""
    with engine.begin() as conn:
        n = store.resolve_candidates(conn, None)
    if n:
        log.info("rejected %d candidate model(s) left unpublished by an earlier run", n)


def publish(engine: Engine, settings: Settings, *, promote: int | None = None,
            classify: bool = True, reclassify_all: bool = False,
            flow_run_id: str | None = None, note: str | None = None,
            promote_families: dict[str, int] | None = None) -> ReleaseSummary | None:
    """Write one catalog version atomically; None when there was nothing to change.

    ``promote``: make that model version active first. ``classify``: apply the active model
    to detections with no current result under it (``reclassify_all``: to every detection).
    Master results are rebuilt for the sources that gained results or SIMBAD changes.
    """
    try:
        with engine.begin() as conn:
            store.sync_taxonomy(conn, taxonomy_table())
            current = store.active_model(conn)
            if promote is not None and current is not None and current["model_id"] == promote:
                promote = None  # already active: promoting it again changes nothing
            if promote is not None:
                store.set_model_status(conn, promote, "active")
            active = store.active_model(conn)
            if active is None:
                raise NothingChanged("no active model: run a refit first")
            model_id = active["model_id"]
            model = ClusterThenLabel.from_dict(active["model"])
            release_id = store.create_release(conn, model_id, flow_run_id, note)
            run_id = store.start_classification(conn, model_id, release_id)
            with step("classify ctl: read new detections"):
                todo = store.detection_features(
                    conn, model.features_, without_result_of=None if reclassify_all else model_id
                ) if classify else pd.DataFrame()
            n_det = 0
            if not todo.empty:
                with step("classify ctl: predict"):
                    results = model.predict(todo[model.features_])
                results["detection_id"] = todo["detection_id"].to_numpy()
                with step("classify ctl: write results"):
                    n_det = store.write_detection_results(conn, results, model.classes_,
                                                          model_id, release_id, run_id,
                                                          only_changed=reclassify_all)
            store.finish_classification(conn, run_id, n_det)
            with step("affected sources"):
                affected = store.affected_sources(conn, release_id)
            fam = families.publish_families(conn, settings, release_id, affected,
                                            promote_families, reclassify_all)
            # none stays candidate past a publish; after the families' promotion, which
            # would otherwise be noted "not promoted" before being made active
            store.resolve_candidates(conn, promote)
            adopted = families.adopted_family(conn, settings)
            rebuild = families.primary_sources(conn, settings, release_id, affected, adopted)
            with step("master results ctl"):
                master = _master_frame(conn, rebuild, model, model_id, settings, adopted)
                n_changed = store.write_source_results(conn, master, release_id)
                store.write_class_counts(conn, release_id)
            if n_det == 0 and n_changed == 0 and promote is None and not any(
                    f["sources_changed"] or f["promoted_model"] for f in fam.values()):
                raise NothingChanged("no new detections and no changed sources")
            summary = ReleaseSummary(release_id, model_id, n_det, len(rebuild), n_changed,
                                     promote)
            summary.counts = {"detections_classified": n_det, "sources_rebuilt": len(rebuild),
                              "sources_changed": n_changed, "promoted_model": promote,
                              "families": fam, "primary_family": adopted}
            store.finish_release(conn, release_id, summary.counts)
            store.compact_tally(conn)  # the refit decision's counts stay a few rows
            return summary
    except NothingChanged as e:
        log.info("catalog unchanged: %s", e)
        _resolve_candidates(engine)
        return None
