"""The bundled sample as a CSC service and a SIMBAD crossmatch, in memory (no network).

Same interface as :class:`ingest.csc_tap.CscTapClient` (``list_observations``,
``iter_chunks``) and :class:`ingest.simbad.SimbadXMatch` (``crossmatch``), so the demo and
the benchmarks run the real pipeline on generated data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime

import numpy as np
import pandas as pd

from ingest.columns import conform
from ingest.dates import until_mjd
from ingest.sample import Sample

Progress = Callable[[int, int], None]


class SampleCsc:
    """Serves a :class:`Sample`'s observations and detections like the CSC TAP service."""

    def __init__(self, sample: Sample, chunk_size: int = 200) -> None:
        self.sample, self.chunk_size = sample, chunk_size
        self.url = f"sample:seed={sample.seed}"
        det = sample.detections
        order = np.argsort(det["obsid"].to_numpy(), kind="stable")
        self._det = det.iloc[order].reset_index(drop=True)
        self._obsids = self._det["obsid"].to_numpy()

    def list_observations(self, until: date | datetime | str | None = None) -> pd.DataFrame:
        obs = self.sample.observations
        if until is not None:
            obs = obs[obs["gti_mjd_obs"] < until_mjd(until)]
        return obs[["obsid", "gti_mjd_obs", "obs_date"]].sort_values("obsid", ignore_index=True)

    def iter_chunks(self, obsids: Iterable[int], on_progress: Progress | None = None
                    ) -> Iterator[tuple[list[int], pd.DataFrame]]:
        ids = np.array(sorted({int(i) for i in obsids}), dtype=np.int64)
        for start in range(0, len(ids), self.chunk_size):
            part = ids[start:start + self.chunk_size]
            lo = np.searchsorted(self._obsids, part, side="left")
            hi = np.searchsorted(self._obsids, part, side="right")
            rows = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)]) \
                if len(part) else np.empty(0, np.int64)
            if on_progress is not None:
                on_progress(min(start + self.chunk_size, len(ids)), len(ids))
            yield part.tolist(), conform(self._det.iloc[rows].reset_index(drop=True))


class SampleSimbad:
    """Answers crossmatches from one of the sample's SIMBAD snapshots (epoch 1 or 2)."""

    def __init__(self, sample: Sample, epoch: int = 1) -> None:
        self.sample, self.epoch = sample, epoch
        self.url = f"sample-simbad:epoch={epoch}"

    def crossmatch(self, sources: pd.DataFrame, on_progress: Progress | None = None
                   ) -> pd.DataFrame:
        snapshot = self.sample.simbad if self.epoch == 1 else self.sample.simbad_epoch2
        names = pd.Series(sources["name"], dtype="string").drop_duplicates()
        out = pd.DataFrame({"name": names.to_numpy()}).merge(snapshot, on="name", how="left")
        if on_progress is not None:
            on_progress(len(names), len(names))
        return out[["name", "main_id", "otype", "separation_arcsec"]]
