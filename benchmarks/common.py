"""Shared helpers of the benchmarks: timing, machine description, database, table and JSON.

Every figure is a row ``{figure, unit, size, median, min, max, runs, ...}``; ``median``,
``min`` and ``max`` are over ``runs`` measurements. Extra keys (work counts, breakdowns,
targets) ride along in the same row.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


# -- timing --------------------------------------------------------------------------------
class Stopwatch:
    """Named wall-clock laps: ``with sw.lap("load"): ...``; ``sw.laps`` in seconds."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}

    @contextmanager
    def lap(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.laps[name] = self.laps.get(name, 0.0) + time.perf_counter() - t0

    @property
    def total(self) -> float:
        return sum(self.laps.values())


def status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (``VmRSS``, ``VmHWM``); 0 where there is none."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_hwm() -> bool:
    """Reset the RSS high-water mark (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


@contextmanager
def rss_peak_increase() -> Iterator[dict]:
    """``with rss_peak_increase() as m: ...``; then ``m["mib"]``: how far the process's
    resident memory rose above what it held before the block (its high-water mark, reset
    at the start), or None where Linux's /proc does not allow that."""
    out: dict = {"mib": None}
    rss0, ok = status_kb("VmRSS"), reset_hwm()
    try:
        yield out
    finally:
        if ok and rss0:
            out["mib"] = max(status_kb("VmHWM") - rss0, 0) / 1024


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def row(figure: str, unit: str, size: int, values: list[float], **extra) -> dict:
    """One figure: median, min and max of ``values`` (one value per run)."""
    return {"figure": figure, "unit": unit, "size": int(size),
            "median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values), **extra}


# -- machine -------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        m = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        return round(int(m.group(1)) / 2**20, 1) if m else None
    except OSError:
        return None


def _blas() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info

        return [{k: i.get(k) for k in ("internal_api", "version", "num_threads",
                                       "threading_layer", "architecture")}
                for i in threadpool_info()]
    except Exception:  # noqa: BLE001 - informational only
        return []


def machine(pg_version: str | None = None) -> dict:
    """What the figures were measured on."""
    import numpy
    import pandas
    import pyarrow
    import sklearn

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else None,
        "mem_total_gib": _mem_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "scikit_learn": sklearn.__version__,
        "blas": _blas(),
        "postgresql": pg_version,
    }


# -- database ------------------------------------------------------------------------------
class BenchServer:
    """An embedded PostgreSQL in a temporary data dir; a fresh migrated database per scenario.

    Never touches the user's catalog. ``stop()`` (or the context manager) stops the server and
    removes the data dir.
    """

    def __init__(self, base: str | None = None, info=None, keep: Path | None = None) -> None:
        """``info``: use that running server (a ``db.embedded.ServerInfo``, e.g. the test
        session's) instead of starting one; it is then left running by ``stop()``.
        ``keep``: the server's data dir, kept by ``stop()`` (a later run reuses its
        databases, see :meth:`existing`)."""
        from db.embedded import EmbeddedServer

        self._engines: list = []
        if info is not None:
            self._tmp, self.server, self.info = None, None, info
            return
        if keep is not None:
            Path(keep).mkdir(parents=True, exist_ok=True)
            self._tmp, data = None, Path(keep)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="cscat-bench-", dir=base)
            data = Path(self._tmp.name)
        self.server = EmbeddedServer(data)
        self.info = self.server.acquire(keep_running=True)

    def existing(self, name: str):
        """The engine of database ``name`` if it exists (migrated to head), else None."""
        import psycopg
        from sqlalchemy import create_engine

        from db import migrate

        with psycopg.connect(self.info.url(database="postgres"), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            [name]).fetchone() is None:
                return None
        engine = create_engine(self.info.url("postgresql+psycopg", name))
        migrate.upgrade(engine)
        self._engines.append(engine)
        return engine

    def version(self) -> str:
        import psycopg

        with psycopg.connect(self.info.url(database="postgres")) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]

    def database(self, name: str):
        """A fresh, migrated database ``name``; returns its SQLAlchemy engine."""
        import psycopg
        from sqlalchemy import create_engine

        from db import migrate

        with psycopg.connect(self.info.url(database="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        engine = create_engine(self.info.url("postgresql+psycopg", name))
        migrate.upgrade(engine)
        self._engines.append(engine)
        return engine

    def copy(self, source: str, name: str, engine=None):
        """Database ``name`` as a copy of database ``source`` (``CREATE DATABASE ... TEMPLATE``;
        ``engine``: an engine on ``source``, disposed first, as the copy needs it idle).
        Returns the engine of the copy. Both names are the benchmark's own."""
        import psycopg
        from sqlalchemy import create_engine

        if engine is not None:
            engine.dispose()
        with psycopg.connect(self.info.url(database="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        copy = create_engine(self.info.url("postgresql+psycopg", name))
        self._engines.append(copy)
        return copy

    def drop(self, engine) -> None:
        import psycopg

        name = engine.url.database
        engine.dispose()
        with psycopg.connect(self.info.url(database="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        for e in self._engines:
            e.dispose()
        if self.server is None:
            return
        try:
            self.server.stop()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()

    def __enter__(self) -> BenchServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# -- output --------------------------------------------------------------------------------
def _fmt(v) -> str:
    if isinstance(v, float):
        if v == 0 or 0.001 <= abs(v) < 1e6:
            return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
        return f"{v:.3g}"
    return str(v)


def table(rows: list[dict]) -> str:
    """An aligned text table of the figures (median, min, max, runs, target)."""
    head = ["figure", "size", "median", "min", "max", "unit", "runs", "target"]
    body = []
    for r in rows:
        target = r.get("target")
        tgt = "" if not target else (
            f"{target['op']} {_fmt(float(target['value']))} "
            f"{'hit' if target.get('hit') else 'MISS'}")
        body.append([r["figure"], f"{r['size']:,}", _fmt(r["median"]), _fmt(r["min"]),
                     _fmt(r["max"]), r["unit"], str(r["runs"]), tgt])
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(h.ljust(w) if i in (0, 5, 7) else h.rjust(w)
                       for i, (h, w) in enumerate(zip(head, widths, strict=True)))]
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(x.ljust(w) if i in (0, 5, 7) else x.rjust(w)
                               for i, (x, w) in enumerate(zip(b, widths, strict=True))))
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """The same table in Markdown (for the README)."""
    out = ["| figure | size | median | min | max | unit | runs | target |",
           "|---|--:|--:|--:|--:|---|--:|---|"]
    for r in rows:
        target = r.get("target")
        tgt = "" if not target else (
            f"{target['op']} {_fmt(float(target['value']))}: "
            f"{'hit' if target.get('hit') else '**miss**'}")
        out.append(f"| {r['figure']} | {r['size']:,} | {_fmt(r['median'])} | {_fmt(r['min'])} "
                   f"| {_fmt(r['max'])} | {r['unit']} | {r['runs']} | {tgt} |")
    return "\n".join(out)


def with_target(r: dict, op: str, value: float) -> dict:
    """Attach a target (``<=`` or ``>=``) judged on the median."""
    hit = r["median"] <= value if op == "<=" else r["median"] >= value
    r["target"] = {"op": op, "value": value, "hit": bool(hit)}
    return r


def write_json(path: Path, payload: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path
