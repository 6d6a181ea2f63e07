"""Loopback HTTP stand-ins for the CSC TAP service and CDS X-Match, serving a ``Sample``.

``with FakeServices(sample) as fs:`` starts a ``ThreadingHTTPServer`` on 127.0.0.1 (free port)
in a thread. ``fs.tap_url`` answers the pyvo sync queries ``ingest.csc_tap`` sends (parsed by
regex, filtered honestly by ObsID list, cuts and date; OVERFLOW past MAXREC or ``row_limit``);
like the real service it answers a TAP error for a column it does not have: any name outside
``db.csc_columns.DOCUMENTED_TAP_COLUMNS`` (the documented CSC 2.1 names cscat relies on).
``fs.fail(mode=...)`` injects service faults: HTTP errors, hangs, truncated, malformed or
schema-drifted VOTables, OVERFLOW on every answer, a dropped connection;
``fs.xmatch_url`` answers astroquery's ``XMatch.query(cat1=<table>, cat2='simbad', ...)`` with
every SIMBAD object within ``distMaxArcsec``, and ``cat2='vizier:I/355/gaiadr3'``,
``'vizier:II/246/out'`` or ``'vizier:II/328/allwise'`` with every object of the sample's
generated Gaia DR3 / 2MASS / AllWISE table (``ingest.sample_counterparts``, VizieR column
names) within it. ``fs.log`` records (path, params) of requests.
"""

from __future__ import annotations

import io
import re
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd

from db.csc_columns import DOCUMENTED_TAP_COLUMNS, TAP_ALIASES
from ingest.adql import referenced_columns
from ingest.counterparts import CATALOGUES
from ingest.dates import until_mjd
from ingest.sample import Sample
from ingest.sky import SkyIndex
from ingest.votable_fast import votable_binary2

TAP_PREFIX = "/tap"
#: VizieR tables the fake X-Match serves (the sample's generated counterparts).
VIZIER_TABLES = {c.table: c.name for c in CATALOGUES.values()}
XMATCH_PATH = "/xmatch/api/v1/sync"
NEWLINE = b"\n"

_OBS_RE = re.compile(
    r"^SELECT DISTINCT o\.obsid, o\.gti_mjd_obs FROM (\w+)\.observation_source o"
    r"(?: WHERE (.+?))? ORDER BY o\.obsid, o\.gti_mjd_obs$", re.S)
_PROBE_RE = re.compile(
    r"^SELECT TOP (\d+) o\.obsid FROM (\w+)\.observation_source o WHERE (.+)$", re.S)
_DET_RE = re.compile(
    r"^SELECT DISTINCT (.+?) FROM (\w+)\.master_source m, \2\.master_stack_assoc a, "
    r"\2\.observation_source o, \2\.stack_observation_assoc b, \2\.stack_source s "
    r"WHERE (.+) ORDER BY o\.obsid, o\.obi, o\.region_id, m\.name$", re.S)
_JOIN = ("(m.name = a.name)",
         "(s.detect_stack_id = a.detect_stack_id AND s.region_id = a.region_id)",
         "(s.detect_stack_id = b.detect_stack_id AND s.region_id = b.region_id)",
         "(o.obsid = b.obsid AND o.obi = b.obi AND o.region_id = b.region_id)")
_COND_RE = {
    "obsids": re.compile(r"^\(o\.obsid IN \(([\d, ]+)\)\)$"),
    "min_sig": re.compile(r"^\(o\.flux_significance_b > ([-+\d.eE]+)\)$"),
    "gamma": re.compile(r"^\(o\.powlaw_gamma IS NOT NULL\)$"),
    "kt": re.compile(r"^\(o\.bb_kt IS NOT NULL\)$"),
}
_ITEM_RE = re.compile(r"^([moa])\.(\w+)(?: AS (\w+))?$")


class QueryError(ValueError):
    """A query the fake does not understand (answered as a TAP error)."""


#: Fault modes of ``FakeServices.fail``.
FAULT_MODES = ("status", "slow", "truncate", "malformed", "drift", "overflow", "error",
               "close")


@dataclass
class Failure:
    """Fail requests to paths under ``prefix`` after ``after`` good ones, ``times`` times.

    ``mode``: ``status`` (answer HTTP ``status`` with a TAP error document), ``truncate``
    (the real answer cut in half), ``malformed`` (not XML), ``drift`` (the real answer with
    its last column dropped and ``obsid`` renamed, as after a schema change), ``overflow``
    (QUERY_STATUS OVERFLOW with half the rows), ``error`` (HTTP 200 with QUERY_STATUS ERROR),
    ``close`` (the connection dropped without an answer), ``slow`` (the real answer, late).
    ``hang`` seconds first.
    """

    after: int = 0
    status: int = 503
    times: int | None = None
    hang: float = 0.0
    prefix: str = "/"
    mode: str = "status"
    seen: int = 0
    failed: int = 0


def error_votable(message: str) -> bytes:
    """A TAP error document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
        '<RESOURCE type="results"><INFO name="QUERY_STATUS" value="ERROR">'
        f"{_xml_escape(message)}</INFO></RESOURCE></VOTABLE>"
    ).encode()


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class FakeServices:
    """Fake CSC TAP + X-Match server over a Sample; a context manager."""

    def __init__(self, sample: Sample, *, now: date | datetime | str | float | None = None,
                 row_limit: int | None = None, simbad_epoch: int = 1, schema: str = "csc21"
                 ) -> None:
        self.sample, self.schema = sample, schema
        self.row_limit = row_limit
        self.simbad_epoch = simbad_epoch
        self.log: list[tuple[str, dict]] = []
        self.failures: list[Failure] = []
        self._vizier: dict[str, tuple[pd.DataFrame, pd.DataFrame, SkyIndex]] = {}
        self._simbad_index: dict[int, tuple[pd.DataFrame, SkyIndex]] = {}
        self._lock = threading.Lock()
        det = sample.detections
        order = np.lexsort((det["name"].to_numpy(), det["region_id"].to_numpy(),
                            det["obi"].to_numpy(), det["obsid"].to_numpy()))
        self._det = det.iloc[order].reset_index(drop=True)
        self._obsid = self._det["obsid"].to_numpy()
        self._mjd = self._det["gti_mjd_obs"].to_numpy()
        self.set_now(now)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------
    def set_now(self, now: date | datetime | str | float | None) -> None:
        """Publish only observations started before the end of ``now`` (None: all)."""
        self._now = None if now is None else until_mjd(now)

    def set_simbad_epoch(self, epoch: int) -> None:
        """Serve SIMBAD snapshot 1 or 2 (some types changed, some objects added)."""
        if epoch not in (1, 2):
            raise ValueError("epoch must be 1 or 2")
        self.simbad_epoch = epoch

    def fail(self, after: int = 0, *, status: int = 503, times: int | None = None,
             hang: float = 0.0, prefix: str = "/", mode: str = "status") -> Failure:
        """After ``after`` more requests under ``prefix``, fail ``times`` (None: all) of them."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}: expected one of {FAULT_MODES}")
        f = Failure(after=after, status=status, times=times, hang=hang, prefix=prefix,
                    mode=mode)
        self.failures.append(f)
        return f

    def clear_failures(self) -> None:
        self.failures.clear()

    def requests(self, path_prefix: str = "/") -> list[tuple[str, dict]]:
        """Logged (path, params) under a path prefix."""
        with self._lock:
            return [r for r in self.log if r[0].startswith(path_prefix)]

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def tap_url(self) -> str:
        return self.base_url + TAP_PREFIX

    @property
    def xmatch_url(self) -> str:
        return self.base_url + XMATCH_PATH

    def start(self) -> FakeServices:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fake-services")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeServices:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- TAP -----------------------------------------------------------------------------
    def _published(self) -> np.ndarray:
        return np.ones(len(self._mjd), bool) if self._now is None else self._mjd < self._now

    def tap_query(self, query: str, maxrec: int | None) -> tuple[pd.DataFrame, bool]:
        """(rows, overflowed) of one ADQL query of the shapes ingest.adql produces."""
        query = " ".join(query.split())
        for table, column in sorted(referenced_columns(query)):
            if column not in DOCUMENTED_TAP_COLUMNS.get(table, ()):
                raise QueryError(f"Column '{column}' does not exist in table '{table}'")
        if m := _OBS_RE.match(query):
            df = self._observations(m)
        elif m := _DET_RE.match(query):
            df = self._detections(m)
        elif m := _PROBE_RE.match(query):
            df = self._probe(m)
        else:
            raise QueryError(f"unsupported query: {query[:200]}")
        limits = [x for x in (maxrec, self.row_limit) if x is not None]
        limit = min(limits) if limits else None
        if limit is not None and len(df) > limit:
            return df.iloc[:limit], True
        return df, False

    def _check_schema(self, schema: str) -> None:
        if schema != self.schema:
            raise QueryError(f"unknown schema {schema!r}")

    def _observations(self, m: re.Match) -> pd.DataFrame:
        self._check_schema(m.group(1))
        keep = self._published()
        for cond in (m.group(2) or "").split(" AND ") if m.group(2) else []:
            if c := re.fullmatch(r"o\.gti_mjd_obs < ([-+\d.eE]+)", cond):
                keep &= self._mjd < float(c.group(1))
            elif c := re.fullmatch(r"o\.obsid > (\d+)", cond):
                keep &= self._obsid > int(c.group(1))
            else:
                raise QueryError(f"unsupported condition {cond!r}")
        df = pd.DataFrame({"obsid": self._obsid[keep], "gti_mjd_obs": self._mjd[keep]})
        return df.drop_duplicates().sort_values(["obsid", "gti_mjd_obs"], ignore_index=True)

    def _probe(self, m: re.Match) -> pd.DataFrame:
        self._check_schema(m.group(2))
        keep = self._published() & self._cuts(m.group(3).split(" AND "))
        return pd.DataFrame({"obsid": self._obsid[keep][:int(m.group(1))]})

    def _cuts(self, conds: list[str]) -> np.ndarray:
        keep = np.ones(len(self._det), bool)
        for cond in conds:
            if c := _COND_RE["min_sig"].match(cond):
                keep &= self._det["flux_significance_b"].to_numpy() > float(c.group(1))
            elif _COND_RE["gamma"].match(cond):
                keep &= self._det["powlaw_gamma"].notna().to_numpy()
            elif _COND_RE["kt"].match(cond):
                keep &= self._det["bb_kt"].notna().to_numpy()
            else:
                raise QueryError(f"unsupported condition {cond!r}")
        return keep

    def _detections(self, m: re.Match) -> pd.DataFrame:
        self._check_schema(m.group(2))
        conds = [c.strip() for c in re.split(r" AND (?=\()", m.group(3))]
        missing = [j for j in _JOIN if j not in conds]
        if missing:
            raise QueryError(f"missing join condition {missing[0]}")
        keep = self._published()
        seen_obsids = False
        for cond in conds:
            if cond in _JOIN:
                continue
            if c := _COND_RE["obsids"].match(cond):
                ids = np.array([int(x) for x in c.group(1).split(",")])
                keep &= np.isin(self._obsid, ids)
                seen_obsids = True
            else:
                keep &= self._cuts([cond])
        if not seen_obsids:
            raise QueryError("detections query without an ObsID list")
        inverse = {v: k for k, v in TAP_ALIASES.items()}
        cols, out_names = [], []
        for item in m.group(1).split(", "):
            it = _ITEM_RE.match(item.strip())
            if not it:
                raise QueryError(f"unsupported select item {item!r}")
            prefix, col, alias = it.groups()
            stored = inverse.get(col, col) if prefix in "oa" else col
            if stored not in self._det.columns:
                raise QueryError(f"unknown column {prefix}.{col}")
            cols.append(stored)
            out_names.append(alias or col)
        df = self._det.loc[keep, cols]
        df.columns = out_names
        return df.drop_duplicates().reset_index(drop=True)

    # -- X-Match -------------------------------------------------------------------------
    def simbad_objects(self) -> pd.DataFrame:
        s = self.sample
        return s.simbad_objects if self.simbad_epoch == 1 else s.simbad_objects_epoch2

    def xmatch(self, params: dict, files: dict[str, bytes]) -> pd.DataFrame:
        """All (cat1 row, SIMBAD object) pairs within distMaxArcsec, angDist first."""
        if params.get("request") != "xmatch":
            raise QueryError("request must be 'xmatch'")
        if str(params.get("cat2", "")) in VIZIER_TABLES and "cat1" in files:
            return self._xmatch_vizier(params, files)
        # astroquery 0.4.11 sends cat2='vizier:simbad' when the table list names 'simbad'
        if str(params.get("cat2", "")).lower() not in ("simbad", "vizier:simbad") \
                or "cat1" not in files:
            raise QueryError("only an uploaded cat1 against cat2=simbad is supported")
        cat1 = pd.read_csv(io.BytesIO(files["cat1"]))
        ra_col, dec_col = params.get("colRA1"), params.get("colDec1")
        if ra_col not in cat1.columns or dec_col not in cat1.columns:
            raise QueryError(f'Column name "{ra_col}" or "{dec_col}" not found')
        radius = float(params["distMaxArcsec"])
        obj, index = self._simbad_sky_index()
        i1, i2, sep = index.pairs(cat1[ra_col].to_numpy(float), cat1[dec_col].to_numpy(float),
                                  radius)
        order = np.lexsort((sep, i1))
        i1, i2, sep = i1[order], i2[order], sep[order]
        out = pd.concat([
            pd.DataFrame({"angDist": np.round(sep, 6)}),
            cat1.iloc[i1].reset_index(drop=True),
            obj.iloc[i2][["main_id", "ra", "dec", "otype"]].rename(
                columns={"otype": "main_type"}).reset_index(drop=True)
            .add_suffix("_simbad").rename(columns={"main_id_simbad": "main_id",
                                                   "main_type_simbad": "main_type"}),
        ], axis=1)
        return out


    def _simbad_sky_index(self) -> tuple[pd.DataFrame, SkyIndex]:
        """The current SIMBAD snapshot and its k-d tree (built once per snapshot)."""
        obj = self.simbad_objects()
        with self._lock:
            if self._simbad_index.get(self.simbad_epoch, (None,))[0] is not obj:
                self._simbad_index[self.simbad_epoch] = (
                    obj, SkyIndex(obj["ra"].to_numpy(), obj["dec"].to_numpy()))
            return obj, self._simbad_index[self.simbad_epoch][1]

    def _vizier_table(self, name: str) -> tuple[pd.DataFrame, SkyIndex]:
        """A served catalogue sorted by Dec and its k-d tree (once per table; a replaced
        table is sorted and indexed again)."""
        from ingest.sample_counterparts import sample_counterparts

        cat = CATALOGUES[name]
        with self._lock:
            table = sample_counterparts(self.sample)[name]
            if self._vizier.get(name, (None,))[0] is not table:
                order = np.argsort(table[cat.dec_col].to_numpy(), kind="stable")
                obj = table.iloc[order].reset_index(drop=True)
                # without the generator's attrs (``true_of``, one value per object): pandas
                # deep-copies attrs in every iloc/reset_index, a copy of the whole catalogue
                # per request (0.08 s of 0.1 s at 1M detections)
                obj.attrs = {}
                self._vizier[name] = (table, obj, SkyIndex(obj[cat.ra_col].to_numpy(),
                                                           obj[cat.dec_col].to_numpy()))
            return self._vizier[name][1], self._vizier[name][2]

    def index_catalogues(self) -> FakeServices:
        """Build the k-d trees of SIMBAD and of every served VizieR table now (a real
        service has them before the first query; the benchmark calls this before timing)."""
        self._simbad_sky_index()
        for name in set(VIZIER_TABLES.values()):
            self._vizier_table(name)
        return self

    def _xmatch_vizier(self, params: dict, files: dict[str, bytes]) -> pd.DataFrame:
        """All (cat1 row, catalogue object) pairs within distMaxArcsec, angDist first."""
        cat1 = pd.read_csv(io.BytesIO(files["cat1"]))
        ra_col, dec_col = params.get("colRA1"), params.get("colDec1")
        if ra_col not in cat1.columns or dec_col not in cat1.columns:
            raise QueryError(f'Column name "{ra_col}" or "{dec_col}" not found')
        radius = float(params["distMaxArcsec"])
        if radius > 180:
            raise QueryError("distMaxArcsec must not exceed 180")
        obj, index = self._vizier_table(VIZIER_TABLES[str(params["cat2"])])
        i1, i2, sep = index.pairs(cat1[ra_col].to_numpy(float), cat1[dec_col].to_numpy(float),
                                  radius)
        order = np.lexsort((sep, i1))
        i1, i2, sep = i1[order], i2[order], sep[order]
        rows = obj.iloc[i2]  # the matched rows first: a column selection copies the table
        if params.get("cols2"):  # the columns asked for (names the table lacks are left out)
            rows = rows[[c for c in str(params["cols2"]).split(",") if c in obj.columns]]
        return pd.concat([pd.DataFrame({"angDist": np.round(sep, 6)}),
                          cat1.iloc[i1].reset_index(drop=True),
                          rows.reset_index(drop=True)], axis=1)


def _csv(df: pd.DataFrame) -> bytes:
    """CSV as X-Match writes it (Arrow's writer: pandas' float formatting takes seconds)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    buf = io.BytesIO()
    pacsv.write_csv(pa.Table.from_pandas(df, preserve_index=False), buf,
                    pacsv.WriteOptions(quoting_style="needed"))
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeServices
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - keep tests quiet
        pass

    def _params(self) -> tuple[str, dict, dict[str, bytes]]:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        files: dict[str, bytes] = {}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            msg = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                data = part.get_payload(decode=True) or b""
                if part.get_filename():
                    files[name] = data
                else:
                    params[name] = data.decode()
        elif body:
            params.update(parse_qsl(body.decode(), keep_blank_values=True))
        return url.path, params, files

    def _send(self, status: int, body: bytes, ctype: str = "application/x-votable+xml"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _due_failure(self, path: str) -> Failure | None:
        for f in self.fake.failures:
            if not path.startswith(f.prefix):
                continue
            with self.fake._lock:
                f.seen += 1
                due = f.seen > f.after and (f.times is None or f.failed < f.times)
                if due:
                    f.failed += 1
            if due:
                return f
        return None

    def _fail(self, f: Failure, answer) -> None:
        """Answer request with fault ``f``; ``answer()`` computes the real (status, body)."""
        if f.hang:
            time.sleep(f.hang)
        if f.mode == "status":
            self._send(f.status, error_votable(f"injected failure {f.status}"))
        elif f.mode == "malformed":
            self._send(200, b"<html><body>Proxy Error: upstream timed out</body></html>")
        elif f.mode == "overflow":
            _, _, df = answer()
            self._send(200, votable_binary2(df.iloc[:len(df) // 2], "OVERFLOW"))
        elif f.mode == "error":
            self._send(200, error_votable("injected: query execution failed"))
        elif f.mode == "close":
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)
        else:
            status, body, df = answer()
            if f.mode == "slow":
                self._send(status, body)
            elif f.mode == "truncate":
                self._send(status, body[:len(body) // 2])
            else:  # drift
                df = df.iloc[:, :-1].rename(columns={"obsid": "obs_id"})
                self._send(status, votable_binary2(df))

    def do_GET(self):  # noqa: N802
        self._dispatch()

    def do_POST(self):  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        path, params, files = self._params()
        logged = dict(params)
        logged.update({k: f"<{v.count(NEWLINE) - 1} rows>" for k, v in files.items()})
        with self.fake._lock:
            self.fake.log.append((path, logged))
        failure = self._due_failure(path)
        try:
            if failure is not None:
                self._fail(failure, lambda: self._answer(path, params, files))
                return
            status, body, ctype = self._answer(path, params, files, raw=False)
            self._send(status, body, ctype)
        except QueryError as exc:
            self._send(400, error_votable(str(exc)))

    def _answer(self, path: str, params: dict, files: dict[str, bytes], raw: bool = True):
        """(status, body, frame) when ``raw``, else (status, body, content type)."""
        if path == TAP_PREFIX + "/sync":
            df, status = self._tap_sync(params)
            body, ctype = votable_binary2(df, status), "application/x-votable+xml"
        elif path == XMATCH_PATH:
            df = self.fake.xmatch(params, files)
            if str(params.get("RESPONSEFORMAT", "votable")).lower() == "csv":
                body, ctype = _csv(df), "text/csv"
            else:
                body, ctype = votable_binary2(df), "application/x-votable+xml"
        elif raw:
            raise QueryError(f"no fault injection for {path}")
        elif path == TAP_PREFIX + "/availability":
            return (200, b'<?xml version="1.0"?><availability xmlns='
                         b'"http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
                         b"<available>true</available></availability>", "text/xml")
        elif path == TAP_PREFIX + "/capabilities":
            return 200, _CAPABILITIES.replace(b"{URL}", self.fake.tap_url.encode()), "text/xml"
        elif path == XMATCH_PATH + "/tables":
            names = ["simbad", *(t.removeprefix("vizier:") for t in VIZIER_TABLES)]
            return 200, ("\n".join(names) + "\n").encode(), "text/plain"
        else:
            return 404, b"not found", "text/plain"
        return (200, body, df) if raw else (200, body, ctype)

    def _tap_sync(self, params: dict) -> tuple[pd.DataFrame, str]:
        p = {k.upper(): v for k, v in params.items()}
        if p.get("REQUEST", "doQuery") != "doQuery" or p.get("LANG", "ADQL").upper() != "ADQL":
            raise QueryError("only REQUEST=doQuery, LANG=ADQL")
        maxrec = int(p["MAXREC"]) if p.get("MAXREC") else None
        df, overflow = self.fake.tap_query(p.get("QUERY", ""), maxrec)
        return df, "OVERFLOW" if overflow else "OK"


_CAPABILITIES = b"""<?xml version="1.0" encoding="UTF-8"?>
<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
 xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"
 xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0">
 <capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">
  <interface xsi:type="vs:ParamHTTP" role="std"><accessURL use="base">{URL}</accessURL>
  </interface>
  <language><name>ADQL</name><version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>
  </language>
 </capability>
</vosi:capabilities>
"""
