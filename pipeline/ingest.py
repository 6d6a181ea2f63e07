"""Ingest steps: CSC detections (incremental, chunk by chunk), SIMBAD types, files, sample.

Each CSC chunk commits atomically together with the record of the ObsIDs it covered, so an
interrupted ingest resumes where it stopped and a rerun adds nothing. A file loads in one
transaction: all of its valid rows or, if it is malformed, nothing. Every ingest writer holds
the ingest lock (``db.ingest_store.ingest_lock``): a second one waits for the first (or, with
``wait=False``, is refused with a message), and decides what to fetch only once it holds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

import pandas as pd
from sqlalchemy import Connection, Engine

from classifier import derive_features
from db import ingest_store
from db.csc_columns import DERIVED_COLUMNS
from db.load import LoadCounts, load_detections
from ingest.errors import IngestError
from ingest.validate import REJECT_COLUMNS, validate_detections, validate_simbad

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


class CscSource(Protocol):
    url: str

    def list_observations(self, until=None) -> pd.DataFrame: ...
    def iter_chunks(self, obsids, on_progress=None): ...


class SimbadSource(Protocol):
    url: str

    def crossmatch(self, sources: pd.DataFrame, on_progress=None) -> pd.DataFrame: ...


@dataclass
class IngestSummary:
    """What one ingest did; printed by the CLI and returned by the flows."""

    run_id: int
    kind: str
    origin: str
    status: str = "completed"
    new_detections: int = 0
    new_sources: int = 0
    duplicates: int = 0
    rejected: int = 0
    observations: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    simbad: dict[str, int] = field(default_factory=dict)
    counterparts: dict[str, int] = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    message: str | None = None
    ignored_columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def add(self, counts: LoadCounts, rejected: pd.DataFrame) -> None:
        self.new_detections += counts.new_detections
        self.new_sources += counts.new_sources
        self.duplicates += counts.duplicates
        self.rejected += len(rejected)
        for reason, n in _reason_kinds(rejected).items():
            self.rejected_reasons[reason] = self.rejected_reasons.get(reason, 0) + n


def _reason_kinds(rejected: pd.DataFrame) -> dict[str, int]:
    """Rejections counted by kind of reason (values left out: ``hard_hm outside [-1, 1]``)."""
    if rejected.empty:
        return {}
    parts = rejected["reason"].astype(str).str.split("; ").explode()
    kinds = (parts.str.replace(r"='(?:[^'\\]|\\.)*'|=\S+", "", regex=True)
             .str.replace(r"^(name|likelihood_class|match_type) .* (is not|contains)",
                          r"\1 \2", regex=True)
             .str.replace(r"^source .* (is stored at|is at \(its first row in this input\)) .*",
                          r"source \1 another position", regex=True)
             .str.replace(r" range \[-?\d+, \d+\]$", " range", regex=True))
    return {str(k): int(v) for k, v in kinds.value_counts().items()}


def _rejected_rows(rejected: pd.DataFrame, first_row: int) -> pd.DataFrame:
    """Validation's rejections as ``catalog.rejected_row`` rows."""
    key = rejected["name"].astype(str)
    for col in ("obsid", "obi", "region_id"):
        if col in rejected.columns:
            key = key + f" {col}=" + rejected[col].astype(str)
    return pd.DataFrame({"row_number": rejected["row"] + first_row, "natural_key": key,
                         "reason": rejected["message"], "payload": None})


def with_derived(good: pd.DataFrame) -> pd.DataFrame:
    """Derived features computed from the raw columns; where a row's raw inputs are absent,
    the derived value the input gave (e.g. a file with ``var_ratio_b`` but no
    ``var_sigma_b``/``var_mean_b``) is kept."""
    out = derive_features(good)
    for col in DERIVED_COLUMNS:
        if col.name in good.columns:
            out[col.name] = out[col.name].where(out[col.name].notna(), good[col.name])
    return out


def _conflict_rows(good: pd.DataFrame, conflicts: pd.DataFrame) -> pd.DataFrame:
    """Load conflicts (index: 0-based input rows of ``good``) as validation's rejections."""
    rows = good.loc[conflicts.index]
    out = pd.DataFrame({"row": conflicts.index + 1, "name": rows["name"].astype("string"),
                        "obsid": rows["obsid"], "obi": rows["obi"],
                        "region_id": rows["region_id"], "reason": conflicts["reason"]})
    out["message"] = ("row " + out["row"].astype("string") + " (" + out["name"] + ", obsid "
                      + out["obsid"].astype("string").fillna("?") + "): " + out["reason"])
    return out[REJECT_COLUMNS].reset_index(drop=True)


def _load_valid(conn: Connection, frame: pd.DataFrame, run_id: int, summary: IngestSummary,
                first_row: int = 0) -> None:
    """Validate (values parsed once), derive features, load; rejected rows are kept with
    their reasons, the rest loads."""
    checked = validate_detections(frame)
    loaded = load_detections(conn, with_derived(checked.good), run_id)
    rejected = checked.rejected
    if not loaded.conflicts.empty:
        rejected = pd.concat([rejected, _conflict_rows(checked.good, loaded.conflicts)],
                             ignore_index=True).sort_values("row", ignore_index=True)
    ingest_store.record_rejected(conn, _rejected_rows(rejected, first_row), run_id)
    # Rows collapsed by validation (repeated within the input) are duplicates too.
    counts = LoadCounts(len(frame) - len(rejected), loaded.new_sources, loaded.new_detections)
    ingest_store.add_counts(conn, run_id, new_detections=counts.new_detections,
                            new_sources=counts.new_sources, duplicates=counts.duplicates,
                            rejected=len(rejected))
    summary.add(counts, rejected)


class _ProgressLog:
    """Logs progress at most every few seconds (and at the end)."""

    def __init__(self, total: int, unit: str, every_s: float = 3.0) -> None:
        self.total, self.unit, self.every_s = total, unit, every_s
        self.last = time.monotonic()

    def __call__(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        if done < self.total and now - self.last < self.every_s:
            return
        self.last = now
        frac = done / self.total if self.total else 1.0
        bar = "#" * round(20 * frac) + "." * (20 - round(20 * frac))
        log.info("[%s] %d/%d %s (%.0f%%) %s", bar, done, self.total, self.unit, 100 * frac, note)


def _finish(engine: Engine, summary: IngestSummary, status: str, message: str | None = None
            ) -> IngestSummary:
    summary.status, summary.message = status, message
    ingest_store.finish_run(engine, summary.run_id, status, message)
    return summary


class _Lock:
    """``with _Lock(engine, what, wait):`` the ingest lock; refusal as IngestError."""

    def __init__(self, engine: Engine, what: str, wait: bool) -> None:
        self._cm = ingest_store.ingest_lock(engine, what, wait)

    def __enter__(self) -> None:
        try:
            self._cm.__enter__()
        except ingest_store.IngestBusy as exc:
            raise IngestError(str(exc)) from exc

    def __exit__(self, *exc) -> None:
        self._cm.__exit__(*exc)


def ingest_csc(engine: Engine, source: CscSource, *, until: date | str | None = None,
               progress: Progress | None = None, wait: bool = True) -> IngestSummary:
    """Fetch and load the detections of every ObsID not ingested yet (up to ``until``)."""
    with _Lock(engine, f"ingest csc from {source.url}", wait):
        return _ingest_csc(engine, source, until, progress)


def _ingest_csc(engine: Engine, source: CscSource, until, progress) -> IngestSummary:
    watermark = {"until": str(until)} if until else None
    run_id = ingest_store.start_run(engine, "csc", source.url, watermark)
    summary = IngestSummary(run_id, "csc", source.url)
    try:
        observations = source.list_observations(until)
        with engine.connect() as conn:
            done = ingest_store.ingested_obsids(conn)
        todo = observations[~observations["obsid"].isin(done)]
        log.info("%d ObsIDs published, %d new", len(observations), len(todo))
        obs_mjd = todo.set_index("obsid")["gti_mjd_obs"]
        report = _ProgressLog(len(todo), "ObsIDs")
        row = 0
        for obsids, chunk in source.iter_chunks(todo["obsid"].tolist(), progress):
            with engine.begin() as conn:  # the chunk and its coverage record, atomically
                _load_valid(conn, chunk, run_id, summary, first_row=row)
                per_obs = chunk.groupby("obsid").size()
                covered = pd.DataFrame({"obsid": obsids})
                covered["obs_mjd"] = covered["obsid"].map(obs_mjd)
                covered["n_detections"] = covered["obsid"].map(per_obs).fillna(0).astype(int)
                ingest_store.record_observations(conn, covered, run_id)
            summary.observations += len(obsids)
            row += len(chunk)
            report(summary.observations, f"{summary.new_detections} new detections")
    except Exception as exc:
        _finish(engine, summary, "failed", str(exc))
        raise
    return _finish(engine, summary, "completed")


def ingest_frame(engine: Engine, frame: pd.DataFrame, *, kind: str, origin: str,
                 wait: bool = True) -> IngestSummary:
    """Load one table of detections (a file's rows) in a single transaction.

    ``frame.attrs["ignored_columns"]`` (set by ``ingest.files.read_table``) is reported.
    """
    with _Lock(engine, f"ingest {kind} {origin}", wait):
        run_id = ingest_store.start_run(engine, kind, origin)
        summary = IngestSummary(run_id, kind, origin,
                                ignored_columns=list(frame.attrs.get("ignored_columns", [])))
        try:
            with engine.begin() as conn:
                _load_valid(conn, frame, run_id, summary)
        except Exception as exc:
            _finish(engine, summary, "failed", str(exc))
            raise
        return _finish(engine, summary, "completed")


def _store_simbad(engine: Engine, matches: pd.DataFrame, run_id: int,
                  summary: IngestSummary) -> None:
    good, rejected, _ = validate_simbad(matches)
    with engine.begin() as conn:
        counts = ingest_store.upsert_simbad(conn, good, run_id, datetime.now(UTC))
        ingest_store.record_rejected(conn, _rejected_rows(rejected, 0), run_id)
        ingest_store.add_counts(conn, run_id, rejected=len(rejected))
    summary.simbad = counts
    summary.rejected = len(rejected)
    summary.rejected_reasons = _reason_kinds(rejected)


def ingest_simbad(engine: Engine, source: SimbadSource, *, refresh_days: float | None,
                  progress: Progress | None = None, wait: bool = True) -> IngestSummary:
    """Crossmatch sources never matched, or matched more than ``refresh_days`` ago."""
    with _Lock(engine, f"ingest simbad from {source.url}", wait):
        return _ingest_simbad(engine, source, refresh_days, progress)


def _ingest_simbad(engine: Engine, source: SimbadSource, refresh_days, progress
                   ) -> IngestSummary:
    run_id = ingest_store.start_run(engine, "simbad", source.url,
                                    {"refresh_days": refresh_days})
    summary = IngestSummary(run_id, "simbad", source.url)
    try:
        with engine.connect() as conn:
            todo = ingest_store.sources_for_simbad(conn, refresh_days)
        if not todo.empty:
            log.info("crossmatching %d sources with SIMBAD", len(todo))
            report = _ProgressLog(len(todo), "sources")
            matches = source.crossmatch(todo, progress or (lambda done, _: report(done)))
            _store_simbad(engine, matches, run_id, summary)
    except Exception as exc:
        _finish(engine, summary, "failed", str(exc))
        raise
    return _finish(engine, summary, "completed")


def ingest_simbad_frame(engine: Engine, frame: pd.DataFrame, origin: str, wait: bool = True
                        ) -> IngestSummary:
    """Store a crossmatch table (e.g. exported from TOPCAT)."""
    with _Lock(engine, f"ingest simbad-file {origin}", wait):
        run_id = ingest_store.start_run(engine, "simbad-file", origin)
        summary = IngestSummary(run_id, "simbad-file", origin)
        try:
            _store_simbad(engine, frame, run_id, summary)
        except Exception as exc:
            _finish(engine, summary, "failed", str(exc))
            raise
        return _finish(engine, summary, "completed")


__all__ = ["IngestError", "IngestSummary", "ingest_csc", "ingest_frame", "ingest_simbad",
           "ingest_simbad_frame"]
