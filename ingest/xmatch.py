"""The CDS X-Match client that the SIMBAD and counterpart crossmatches share (astroquery).

:class:`XMatchClient` uploads (name, ra, dec) batches, waits at most ``timeout`` seconds for
an answer, retries every failure (HTTP error, timeout, unreadable answer) with exponential
back-off and then raises one :class:`~ingest.errors.IngestError`; the subclasses say which
table they match against and how they read the answer (:func:`read_votable` or CSV).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import astropy.units as u
import pandas as pd
from astropy.table import Table
from astroquery.xmatch import XMatchClass

from ingest.errors import IngestError

log = logging.getLogger(__name__)
XMATCH_URL = "https://cdsxmatch.cds.unistra.fr/xmatch/api/v1/sync"
T = TypeVar("T")


class _XMatch(XMatchClass):
    """astroquery's XMatch with its own URL, no on-disk caching of the table list, and the
    tables it is told are served (astroquery would otherwise fetch the table list twice per
    query: a round trip each, before every batch)."""

    def __init__(self, url: str, timeout: float, known_tables: frozenset[str] = frozenset()
                 ) -> None:
        super().__init__()
        self.URL, self.TIMEOUT = url, timeout
        self._known = known_tables

    def get_available_tables(self, *, cache: bool = False):  # noqa: D102
        return super().get_available_tables(cache=False)

    def is_table_available(self, table_id) -> bool:  # noqa: D102
        if isinstance(table_id, str) and table_id in self._known:
            return True
        return super().is_table_available(table_id)


def upload_table(batch: pd.DataFrame) -> Table:
    """The table uploaded as ``cat1``: ``cscat_name, cscat_ra, cscat_dec``."""
    return Table({"cscat_name": batch["name"].astype(str).to_numpy(),
                  "cscat_ra": batch["ra"].to_numpy(float),
                  "cscat_dec": batch["dec"].to_numpy(float)})


def read_votable(response) -> Table:
    """An X-Match answer in VOTable (its default format), as astroquery's ``query`` reads it."""
    return Table.read(io.BytesIO(response.content), format="votable", use_names_over_ids=True)


class XMatchClient:
    """Positions matched against one CDS X-Match table per request, in batches, with
    retries; subclasses give the table, the answer's format and its reading."""

    #: tables the endpoint is known to serve (no table-list round trip for them)
    known_tables: frozenset[str] = frozenset()
    #: the ``db.settings.Settings`` field that gives ``radius_arcsec`` (set by subclasses)
    radius_setting: str

    def __init__(self, url: str = XMATCH_URL, *, radius_arcsec: float, batch_size: int,
                 retries: int = 3, backoff: float = 5.0, timeout: float = 300.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url, self.radius = url, radius_arcsec
        self.batch_size, self.retries, self.backoff = max(1, batch_size), retries, backoff
        self._sleep = sleep
        self._xm = _XMatch(url, timeout, self.known_tables)

    @classmethod
    def from_settings(cls, settings, **kw):
        """A client configured by ``db.settings.Settings`` (URL, radius, timeout, attempts)."""
        opts = {"url": settings.xmatch_url} if settings.xmatch_url else {}
        return cls(**opts, radius_arcsec=getattr(settings, cls.radius_setting),
                   timeout=settings.xmatch_timeout_s, retries=settings.xmatch_attempts - 1,
                   **kw)

    def batches(self, src: pd.DataFrame) -> Iterator[tuple[pd.DataFrame, str]]:
        """(batch, "sources i..j") of at most ``batch_size`` rows."""
        for start in range(0, len(src), self.batch_size):
            batch = src.iloc[start:start + self.batch_size]
            yield batch, f"sources {start}..{start + len(batch) - 1}"

    def ask(self, batch: pd.DataFrame, cat2: str, parse: Callable[[object], T], *,
            label: str, asking: str, what: str, **params) -> T:
        """``parse`` of X-Match's answer for ``batch`` against ``cat2`` within the radius.

        ``label`` starts the error message ("SIMBAD X-Match <url>"), ``asking`` says in the
        log what is awaited, ``what`` names the batch; ``params`` go to the request
        (``RESPONSEFORMAT``, ``cols2``). Failures of the request or of ``parse`` are retried.
        """
        table = upload_table(batch)
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            log.info("asking X-Match %s for %s (timeout %g s, attempt %d of %d)", self.url,
                     asking, self._xm.TIMEOUT, attempt + 1, self.retries + 1)
            try:
                resp = self._xm.query_async(
                    cat1=table, cat2=cat2, max_distance=self.radius * u.arcsec,
                    colRA1="cscat_ra", colDec1="cscat_dec", cache=False, **params)
                return parse(resp)
            except Exception as exc:  # noqa: BLE001 - every failure is retried, then reported
                last = exc
                log.warning("X-Match %s failed (attempt %d): %s", asking, attempt + 1, exc)
        raise IngestError(f"{label}: {what} failed after {self.retries + 1} attempts; "
                          f"last error: {last}") from last
