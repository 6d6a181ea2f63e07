"""Ingest steps: counterparts (Gaia DR3, 2MASS, AllWISE) and curated label sets.

``ingest_counterparts`` matches only the sources without a fresh match (never matched, or
matched more than ``refresh_days`` ago), in chunks of sources, each chunk committed with its
candidates and matches, so an interrupted run resumes. Both hold the ingest lock.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Protocol

import pandas as pd
from sqlalchemy import Engine

from db import counterpart_store, ingest_store, label_store
from ingest.counterparts import AssociationParams, associate_neighbours
from ingest.errors import IngestError
from pipeline.ingest import IngestSummary, Progress, _finish, _Lock, _ProgressLog

log = logging.getLogger(__name__)
#: Sources per committed chunk of the counterpart step.
CHUNK_SOURCES = 20_000


class CounterpartSource(Protocol):
    url: str

    def neighbours(self, sources: pd.DataFrame, on_progress=None) -> pd.DataFrame: ...


def association_params(settings) -> AssociationParams:
    """The association settings, checked (the candidate radius must fit in the density one)."""
    p = AssociationParams(density_radius_arcsec=settings.counterpart_density_radius_arcsec,
                          max_radius_arcsec=settings.counterpart_max_radius_arcsec,
                          completeness=settings.counterpart_completeness,
                          min_p_any=settings.counterpart_min_p_any)
    if p.max_radius_arcsec >= p.density_radius_arcsec:
        raise IngestError(
            f"counterpart_max_radius_arcsec = {p.max_radius_arcsec} must be smaller than "
            f"counterpart_density_radius_arcsec = {p.density_radius_arcsec} (the local "
            "density is counted between them)")
    return p


def ingest_counterparts(engine: Engine, source: CounterpartSource, settings, *,
                        refresh_days: float | None, progress: Progress | None = None,
                        wait: bool = True) -> IngestSummary:
    """Match sources without a fresh counterpart match; store every candidate."""
    params = association_params(settings)
    with _Lock(engine, f"ingest counterparts from {source.url}", wait):
        run_id = ingest_store.start_run(engine, "counterparts", source.url,
                                        {"refresh_days": refresh_days})
        summary = IngestSummary(run_id, "counterparts", source.url)
        try:
            with engine.connect() as conn:
                todo = counterpart_store.sources_for_counterparts(conn, refresh_days)
            log.info("matching %d sources with Gaia DR3, 2MASS and AllWISE", len(todo))
            report = _ProgressLog(len(todo), "sources")
            totals: dict[str, int] = {}
            for start in range(0, len(todo), CHUNK_SOURCES):
                chunk = todo.iloc[start:start + CHUNK_SOURCES]
                nb = source.neighbours(chunk, progress)
                cands, matches = associate_neighbours(chunk, nb, params)
                with engine.begin() as conn:
                    counts = counterpart_store.store_counterparts(
                        conn, cands, matches, run_id, datetime.now(UTC))
                for k, v in counts.items():
                    totals[k] = totals.get(k, 0) + v
                report(start + len(chunk), f"{totals.get('chosen', 0)} counterparts chosen")
            summary.counterparts = totals or {"sources": 0}
        except Exception as exc:
            _finish(engine, summary, "failed", str(exc))
            raise
        return _finish(engine, summary, "completed")


def ingest_labels(engine: Engine, labels: pd.DataFrame, set_name: str, origin: str,
                  wait: bool = True) -> IngestSummary:
    """Store a curated training set (``ingest.labels.read_labels``) as label set
    ``set_name``; the same set again changes nothing, other labels under its name are
    refused."""
    if not set_name.strip():
        raise IngestError("--set: the label set needs a non-empty name")
    with _Lock(engine, f"ingest labels {origin}", wait):
        run_id = ingest_store.start_run(engine, "labels", origin, {"set": set_name})
        summary = IngestSummary(run_id, "labels", origin)
        try:
            with engine.begin() as conn:
                summary.labels = label_store.store_label_set(conn, set_name, origin, labels,
                                                             run_id)
            summary.labels["set"] = set_name
            summary.labels["classes"] = {str(k): int(v) for k, v in
                                         labels["class"].value_counts().items()}
        except label_store.LabelSetConflict as exc:
            _finish(engine, summary, "failed", str(exc))
            raise IngestError(str(exc)) from None
        except Exception as exc:
            _finish(engine, summary, "failed", str(exc))
            raise
        return _finish(engine, summary, "completed")
