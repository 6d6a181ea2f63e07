"""SIMBAD types of source positions via CDS X-Match (astroquery), nearest object within 1"."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ingest.errors import IngestError
from ingest.xmatch import XMATCH_URL, XMatchClient, read_votable

__all__ = ["SIMBAD_COLUMNS", "XMATCH_URL", "SimbadXMatch", "crossmatch_simbad", "nearest"]
SIMBAD_COLUMNS = ["name", "main_id", "otype", "separation_arcsec"]


def nearest(matches: pd.DataFrame, names: pd.Series) -> pd.DataFrame:
    """One row per name: the nearest match (by separation), NA where none."""
    best = (matches.sort_values(["name", "separation_arcsec"], kind="stable")
            .drop_duplicates("name"))
    out = pd.DataFrame({"name": pd.Series(names, dtype="string").reset_index(drop=True)})
    out = out.merge(best, on="name", how="left")
    return out.astype({"name": "string", "main_id": "string", "otype": "string",
                       "separation_arcsec": "float64"})[SIMBAD_COLUMNS]


class SimbadXMatch(XMatchClient):
    """Crossmatch (name, ra, dec) with SIMBAD through X-Match, in batches, with retries."""

    radius_setting = "simbad_radius_arcsec"

    def __init__(self, url: str = XMATCH_URL, *, radius_arcsec: float = 1.0,
                 batch_size: int = 10_000, **kw) -> None:
        super().__init__(url, radius_arcsec=radius_arcsec, batch_size=batch_size, **kw)

    def _query(self, batch: pd.DataFrame, what: str) -> pd.DataFrame:
        res = self.ask(batch, "simbad", read_votable, label=f"SIMBAD X-Match {self.url}",
                       asking=f"SIMBAD matches of {what}", what=what)
        cols = set(res.colnames)
        otype = next((c for c in ("main_type", "otype", "main_otype") if c in cols), None)
        if not {"angDist", "cscat_name", "main_id"} <= cols or otype is None:
            raise IngestError(f"SIMBAD X-Match {self.url}: {what}: unexpected columns "
                              f"{sorted(cols)}")
        return pd.DataFrame({
            "name": np.asarray(res["cscat_name"]).astype(str),
            "main_id": np.asarray(res["main_id"]).astype(str),
            "otype": np.asarray(res[otype]).astype(str),
            "separation_arcsec": np.asarray(res["angDist"], dtype=float),
        })

    def crossmatch(self, sources: pd.DataFrame,
                   on_progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """DataFrame[name, main_id, otype, separation_arcsec]: one row per source, NA if none."""
        src = sources[["name", "ra", "dec"]].drop_duplicates("name").reset_index(drop=True)
        frames, done = [], 0
        for batch, what in self.batches(src):
            frames.append(self._query(batch, what))
            done += len(batch)
            if on_progress is not None:
                on_progress(done, len(src))
        matches = (pd.concat(frames, ignore_index=True) if frames
                   else pd.DataFrame(columns=SIMBAD_COLUMNS))
        return nearest(matches, src["name"])


def crossmatch_simbad(sources: pd.DataFrame, url: str = XMATCH_URL, **kw) -> pd.DataFrame:
    """Shorthand for ``SimbadXMatch(url, **kw).crossmatch(sources)``."""
    return SimbadXMatch(url, **kw).crossmatch(sources)
