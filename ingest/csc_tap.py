"""Client for the CSC 2.x TAP service: ObsID lists and per-ObsID detections, in chunks.

Chunks whose result reaches the row limit (TAP ``QUERY_STATUS`` ``OVERFLOW``, or as many rows
as MAXREC) are split in halves and fetched again, never truncated; timeouts, connection errors
and HTTP 5xx/429 are retried with exponential backoff, then raise ``IngestError``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime

import pandas as pd
import pyvo
import requests
from pyvo.dal.exceptions import DALFormatError, DALOverflowWarning, DALQueryError, DALServiceError

from ingest.adql import (
    CSC21_TAP_URL,
    DEFAULT_CUTS,
    DEFAULT_TABLES,
    CscTables,
    Cuts,
    detections_query,
    observations_query,
)
from ingest.columns import conform
from ingest.dates import mjd_to_date, until_mjd
from ingest.errors import IngestError

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


class _Overflow(Exception):
    """A query's result reached the row limit."""


class _HttpError(Exception):
    def __init__(self, status: int, cause: Exception) -> None:
        super().__init__(f"HTTP {status}: {cause}")


class _TimeoutSession(requests.Session):
    """A requests session with a default timeout (pyvo sets none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout
        self.headers["User-Agent"] = "cscat-ingest (pyvo)"

    last_status: int | None = None

    def request(self, method, url, **kwargs):  # noqa: D102
        kwargs.setdefault("timeout", self.timeout)
        self.last_status = None
        response = super().request(method, url, **kwargs)
        self.last_status = response.status_code
        return response


def _retryable(exc: Exception, http_status: int | None) -> bool:
    """Timeouts, connection errors, HTTP 5xx/408/429 (pyvo reports a 5xx whose body is a
    VOTable error document as a DALQueryError, hence the HTTP status from the session)."""
    if http_status is not None and (http_status >= 500 or http_status in (408, 429)):
        return True
    if isinstance(exc, DALQueryError):
        return False
    if isinstance(exc, DALServiceError):
        code = getattr(exc, "code", None)
        return code is None or code >= 500 or code in (408, 429)
    return isinstance(exc, (requests.RequestException, DALFormatError, OSError))


class CscTapClient:
    """Fetches CSC detections over TAP (pyvo sync queries), chunked by ObsID."""

    def __init__(self, url: str = CSC21_TAP_URL, *, tables: CscTables = DEFAULT_TABLES,
                 cuts: Cuts = DEFAULT_CUTS, chunk_size: int = 50, maxrec: int = 100_000,
                 retries: int = 4, backoff: float = 2.0, max_backoff: float = 120.0,
                 timeout: float = 600.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url.rstrip("/")
        self.tables, self.cuts = tables, cuts
        self.chunk_size, self.maxrec = max(1, int(chunk_size)), int(maxrec)
        self.retries, self.backoff, self.max_backoff = int(retries), backoff, max_backoff
        self._sleep = sleep
        self._session = _TimeoutSession(timeout)
        self.service = pyvo.dal.TAPService(self.url, session=self._session)

    # -- one query, retried --------------------------------------------------------------
    def _run(self, query: str, what: str) -> pd.DataFrame:
        """Run one sync query; raise _Overflow when the result reached the row limit."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                log.warning("retrying %s in %.3gs after: %s", what, delay, last)
                self._sleep(delay)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DALOverflowWarning)
                    result = self.service.run_sync(query, maxrec=self.maxrec)
                    table = result.to_table()
            except Exception as exc:  # noqa: BLE001 - classified just below
                if not _retryable(exc, self._session.last_status):
                    raise IngestError(f"CSC TAP {self.url}: {what} failed: {exc}") from exc
                status = self._session.last_status
                last = exc if status is None or status < 400 else _HttpError(status, exc)
                continue
            status = str(result.status[0]).upper()
            if status == "OVERFLOW" or len(table) >= self.maxrec:
                raise _Overflow(f"{len(table)} rows (MAXREC {self.maxrec}, status {status})")
            return table.to_pandas()
        raise IngestError(f"CSC TAP {self.url}: {what} failed after {self.retries + 1} "
                          f"attempts; last error: {last}") from last

    # -- observations --------------------------------------------------------------------
    def list_observations(self, until: date | datetime | str | None = None) -> pd.DataFrame:
        """ObsIDs with detections, with ``gti_mjd_obs`` (start, MJD) and ``obs_date``.

        ``until`` (a date: inclusive of that day) limits to observations started before it.
        """
        bound = None if until is None else until_mjd(until)
        frames, after = [], None
        while True:
            query = observations_query(self.tables, bound, after)
            try:
                df = self._run(query, "observation list")
                frames.append(df)
                break
            except _Overflow:
                df = self._run_truncated(query)
                if df.empty:
                    raise IngestError(f"CSC TAP {self.url}: observation list overflowed "
                                      "with no rows") from None
                frames.append(df)
                after = int(df["obsid"].max())
        out = pd.concat(frames, ignore_index=True)
        out = pd.DataFrame({"obsid": out["obsid"].astype("int64"),
                            "gti_mjd_obs": out["gti_mjd_obs"].astype("float64")})
        out = out.drop_duplicates("obsid").sort_values("obsid", ignore_index=True)
        out["obs_date"] = mjd_to_date(out["gti_mjd_obs"]).to_numpy()
        return out

    def _run_truncated(self, query: str) -> pd.DataFrame:
        """The first MAXREC rows of an overflowing, ordered query (for keyset paging)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DALOverflowWarning)
            try:
                return self.service.run_sync(query, maxrec=self.maxrec).to_table().to_pandas()
            except Exception as exc:  # noqa: BLE001
                raise IngestError(f"CSC TAP {self.url}: observation list page failed: {exc}"
                                  ) from exc

    # -- detections ----------------------------------------------------------------------
    def iter_chunks(self, obsids: Iterable[int], on_progress: Progress | None = None
                    ) -> Iterator[tuple[list[int], pd.DataFrame]]:
        """Lazily yield ``(obsids, detections)`` per chunk, complete for those ObsIDs.

        A chunk that overflows is split in halves (recursively) and its parts yielded one by
        one. A failure raises IngestError after the chunks already yielded.
        ``on_progress(done_obsids, total_obsids)`` is called before each yield.
        """
        ids = sorted({int(i) for i in obsids})
        done = 0
        for start in range(0, len(ids), self.chunk_size):
            for part, df in self._fetch(ids[start:start + self.chunk_size]):
                done += len(part)
                if on_progress is not None:
                    on_progress(done, len(ids))
                yield part, df

    def _fetch(self, chunk: Sequence[int]) -> Iterator[tuple[list[int], pd.DataFrame]]:
        what = (f"detections of {len(chunk)} ObsID(s) {chunk[0]}..{chunk[-1]}"
                if len(chunk) > 1 else f"detections of ObsID {chunk[0]}")
        try:
            df = self._run(detections_query(chunk, self.tables, self.cuts), what)
        except _Overflow as exc:
            if len(chunk) == 1:
                raise IngestError(
                    f"CSC TAP {self.url}: {what} overflows the row limit on its own ({exc}); "
                    "cannot split further: raise maxrec or the service's limit") from None
            log.info("%s overflowed (%s); splitting", what, exc)
            half = len(chunk) // 2
            yield from self._fetch(chunk[:half])
            yield from self._fetch(chunk[half:])
            return
        try:
            out = conform(df)
        except ValueError as exc:
            raise IngestError(f"CSC TAP {self.url}: {what}: bad value: {exc}") from exc
        yield list(chunk), out

    def fetch_detections(self, obsids: Iterable[int], on_progress: Progress | None = None
                         ) -> pd.DataFrame:
        """All detections of the ObsIDs (with the cuts), as one frame of stored columns."""
        frames = [df for _, df in self.iter_chunks(obsids, on_progress)]
        return pd.concat(frames, ignore_index=True) if frames else conform(pd.DataFrame())
