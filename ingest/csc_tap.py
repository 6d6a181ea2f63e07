"""Client for the CSC 2.x TAP service: ObsID lists and per-ObsID detections, in chunks.

Chunks whose result reaches the row limit (TAP ``QUERY_STATUS`` ``OVERFLOW``, or as many rows
as MAXREC) are split in halves and fetched again, never truncated; timeouts, connection errors,
HTTP 5xx/429 and unreadable (truncated, malformed) answers are retried with exponential
backoff, a bounded number of times, then raise ``IngestError``. An answer whose columns are not
the ones asked for (the service's schema changed) is an error at once, never a partial chunk.
A request still unanswered after ``heartbeat`` seconds is logged, with what it waits for.
"""

from __future__ import annotations

import logging
import threading
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
    selected_names,
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


def _names(names: list[str], limit: int = 8) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _one_line(exc: object, limit: int = 300) -> str:
    """An exception's text on one line, at most ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


class _Heartbeat:
    """While open, logs every ``every`` seconds what is still being waited for."""

    def __init__(self, every: float, what: str) -> None:
        self.every, self.what = every, what
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        started = time.monotonic()
        while not self._done.wait(self.every):
            log.warning("still waiting for %s: %.0f s so far", self.what,
                     time.monotonic() - started)

    def __enter__(self) -> _Heartbeat:
        if self.every > 0:
            self._thread = threading.Thread(target=self._beat, daemon=True,
                                            name="tap-heartbeat")
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()


class CscTapClient:
    """Fetches CSC detections over TAP (pyvo sync queries), chunked by ObsID."""

    def __init__(self, url: str = CSC21_TAP_URL, *, tables: CscTables = DEFAULT_TABLES,
                 cuts: Cuts = DEFAULT_CUTS, chunk_size: int = 50, maxrec: int = 100_000,
                 retries: int = 4, backoff: float = 2.0, max_backoff: float = 120.0,
                 timeout: float = 600.0, heartbeat: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url.rstrip("/")
        self.tables, self.cuts = tables, cuts
        self.chunk_size, self.maxrec = max(1, int(chunk_size)), int(maxrec)
        self.retries, self.backoff, self.max_backoff = max(0, int(retries)), backoff, max_backoff
        self.timeout, self.heartbeat = float(timeout), float(heartbeat)
        self._sleep = sleep
        self._session = _TimeoutSession(timeout)
        self.service = pyvo.dal.TAPService(self.url, session=self._session)

    @classmethod
    def from_settings(cls, settings, **kw) -> CscTapClient:
        """A client configured by ``db.settings.Settings`` (URL, chunk, timeout, attempts)."""
        return cls(settings.csc_tap_url, chunk_size=settings.csc_chunk_obsids,
                   timeout=settings.csc_tap_timeout_s,
                   retries=settings.csc_tap_attempts - 1, **kw)

    # -- one query, retried --------------------------------------------------------------
    def _query(self, query: str, what: str, columns: Sequence[str] | None = None
               ) -> tuple[pd.DataFrame, bool]:
        """Run one sync query, retried: (rows, whether they reached the row limit).

        ``columns``: the output columns the query asks for; an answer with others is refused.
        """
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                log.warning("retrying %s in %.3gs (attempt %d of %d) after: %s", what, delay,
                            attempt + 1, self.retries + 1, _one_line(last))
                self._sleep(delay)
            note = (f"{what} from {self.url} (timeout {self.timeout:g} s, "
                    f"attempt {attempt + 1} of {self.retries + 1})")
            try:
                with _Heartbeat(self.heartbeat, note), warnings.catch_warnings():
                    warnings.simplefilter("ignore", DALOverflowWarning)
                    result = self.service.run_sync(query, maxrec=self.maxrec)
                    table = result.to_table()
            except Exception as exc:  # noqa: BLE001 - classified just below
                if not _retryable(exc, self._session.last_status):
                    raise IngestError(f"CSC TAP {self.url}: {what} failed: {_one_line(exc)}"
                                      ) from exc
                status = self._session.last_status
                last = exc if status is None or status < 400 else _HttpError(status, exc)
                continue
            got = [str(c) for c in table.colnames]
            if columns is not None and sorted(got) != sorted(columns):
                lacking = _names([c for c in columns if c not in got])
                extra = _names([c for c in got if c not in columns])
                raise IngestError(
                    f"CSC TAP {self.url}: {what}: the answer's columns are not those asked for "
                    f"(missing: {lacking}; unexpected: {extra}); has the service's schema "
                    "changed?")
            status = str(result.status[0]).upper()
            return table.to_pandas(), status == "OVERFLOW" or len(table) >= self.maxrec
        raise IngestError(f"CSC TAP {self.url}: {what} failed after {self.retries + 1} "
                          f"attempts; last error: {_one_line(last)}") from last

    def _run(self, query: str, what: str, columns: Sequence[str] | None = None
             ) -> pd.DataFrame:
        """Run one sync query; raise _Overflow when the result reached the row limit."""
        df, overflowed = self._query(query, what, columns)
        if overflowed:
            raise _Overflow(f"{len(df)} rows (MAXREC {self.maxrec})")
        return df

    # -- observations --------------------------------------------------------------------
    def list_observations(self, until: date | datetime | str | None = None) -> pd.DataFrame:
        """ObsIDs with detections, with ``gti_mjd_obs`` (start, MJD) and ``obs_date``.

        ``until`` (a date: inclusive of that day) limits to observations started before it.
        A list longer than the row limit is fetched in pages (keyset on ObsID).
        """
        bound = None if until is None else until_mjd(until)
        frames, after, page = [], None, 1
        while True:
            query = observations_query(self.tables, bound, after)
            df, overflowed = self._query(query, f"observation list (page {page})",
                                         ["obsid", "gti_mjd_obs"])
            df = df.dropna(subset=["obsid"])
            frames.append(df)
            if not overflowed:
                break
            if df.empty:
                raise IngestError(f"CSC TAP {self.url}: observation list overflowed "
                                  "with no rows")
            after, page = int(df["obsid"].max()), page + 1
        out = pd.concat(frames, ignore_index=True)
        out = pd.DataFrame({"obsid": out["obsid"].astype("int64"),
                            "gti_mjd_obs": out["gti_mjd_obs"].astype("float64")})
        out = (out.sort_values(["obsid", "gti_mjd_obs"], kind="stable")
               .drop_duplicates("obsid").reset_index(drop=True))
        out["obs_date"] = mjd_to_date(out["gti_mjd_obs"]).to_numpy()
        return out

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
            df = self._run(detections_query(chunk, self.tables, self.cuts), what,
                           selected_names())
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
