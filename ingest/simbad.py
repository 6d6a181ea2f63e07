"""SIMBAD types of source positions via CDS X-Match (astroquery), nearest object within 1"."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.table import Table
from astroquery.xmatch import XMatchClass

from ingest.errors import IngestError

log = logging.getLogger(__name__)
XMATCH_URL = "https://cdsxmatch.cds.unistra.fr/xmatch/api/v1/sync"
SIMBAD_COLUMNS = ["name", "main_id", "otype", "separation_arcsec"]


class _XMatch(XMatchClass):
    """astroquery's XMatch with its own URL and no on-disk caching of the table list."""

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__()
        self.URL, self.TIMEOUT = url, timeout

    def get_available_tables(self, *, cache: bool = False):  # noqa: D102
        return super().get_available_tables(cache=False)


def nearest(matches: pd.DataFrame, names: pd.Series) -> pd.DataFrame:
    """One row per name: the nearest match (by separation), NA where none."""
    best = (matches.sort_values(["name", "separation_arcsec"], kind="stable")
            .drop_duplicates("name"))
    out = pd.DataFrame({"name": pd.Series(names, dtype="string").reset_index(drop=True)})
    out = out.merge(best, on="name", how="left")
    return out.astype({"name": "string", "main_id": "string", "otype": "string",
                       "separation_arcsec": "float64"})[SIMBAD_COLUMNS]


class SimbadXMatch:
    """Crossmatch (name, ra, dec) with SIMBAD through X-Match, in batches, with retries."""

    def __init__(self, url: str = XMATCH_URL, *, radius_arcsec: float = 1.0,
                 batch_size: int = 10_000, retries: int = 3, backoff: float = 5.0,
                 timeout: float = 300.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.url, self.radius = url, radius_arcsec
        self.batch_size, self.retries, self.backoff = max(1, batch_size), retries, backoff
        self._sleep = sleep
        self._xm = _XMatch(url, timeout)

    @classmethod
    def from_settings(cls, settings, **kw) -> SimbadXMatch:
        """A client configured by ``db.settings.Settings`` (URL, radius, timeout, attempts)."""
        opts = {"url": settings.xmatch_url} if settings.xmatch_url else {}
        return cls(**opts, radius_arcsec=settings.simbad_radius_arcsec,
                   timeout=settings.xmatch_timeout_s, retries=settings.xmatch_attempts - 1,
                   **kw)

    def _query(self, batch: pd.DataFrame, what: str) -> pd.DataFrame:
        table = Table({"cscat_name": batch["name"].astype(str).to_numpy(),
                       "cscat_ra": batch["ra"].to_numpy(float),
                       "cscat_dec": batch["dec"].to_numpy(float)})
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            log.info("asking X-Match %s for SIMBAD matches of %s (timeout %g s, attempt %d "
                     "of %d)", self.url, what, self._xm.TIMEOUT, attempt + 1, self.retries + 1)
            try:
                res = self._xm.query(cat1=table, cat2="simbad",
                                     max_distance=self.radius * u.arcsec,
                                     colRA1="cscat_ra", colDec1="cscat_dec", cache=False)
                break
            except Exception as exc:  # noqa: BLE001 - every failure is retried, then reported
                last = exc
                log.warning("X-Match %s failed (attempt %d): %s", what, attempt + 1, exc)
        else:
            raise IngestError(f"SIMBAD X-Match {self.url}: {what} failed after "
                              f"{self.retries + 1} attempts; last error: {last}") from last
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
        frames = []
        for start in range(0, len(src), self.batch_size):
            batch = src.iloc[start:start + self.batch_size]
            frames.append(self._query(batch, f"sources {start}..{start + len(batch) - 1}"))
            if on_progress is not None:
                on_progress(start + len(batch), len(src))
        matches = (pd.concat(frames, ignore_index=True) if frames
                   else pd.DataFrame(columns=SIMBAD_COLUMNS))
        return nearest(matches, src["name"])


def crossmatch_simbad(sources: pd.DataFrame, url: str = XMATCH_URL, **kw) -> pd.DataFrame:
    """Shorthand for ``SimbadXMatch(url, **kw).crossmatch(sources)``."""
    return SimbadXMatch(url, **kw).crossmatch(sources)
