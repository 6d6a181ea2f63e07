"""Sky map of every classified source by class: the page (an empty Bokeh figure) and its
data as one binary blob of typed arrays (``/skymap/data``), projected in numpy.

Blob layout (little-endian): uint32 header length H, H bytes of JSON header (``n``,
``classes``: [{name, n}] in storage order, ``projection``, ``catalog_version``), zero padding
to a multiple of 4, then float32 x[n], y[n], ra[n], dec[n] and int32 source_id[n], each
array ordered by class (one contiguous slice per class).
"""

from __future__ import annotations

import json
import struct
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection

from db import web_queries as q
from web import plots, projection
from web.render import Conn, PageError, cached_plots, page, source_url

router = APIRouter()
#: Projected blobs kept per app (catalog version x projection).
CACHE_SIZE = 4
Projection = Annotated[str, Query(alias="projection")]


def encode(points: dict[str, np.ndarray], proj: str, version: int | None) -> bytes:
    """The blob of ``points`` (``source_id``, ``ra``, ``dec``, ``cls``) in projection
    ``proj``."""
    lon, lat = projection.galactic(points["ra"], points["dec"])
    x, y = projection.project(lon, lat, proj)
    order_keys = {c: i for i, c in enumerate(plots.AGG_LABELS)}
    cls = points["cls"]
    codes = np.full(len(cls), len(plots.AGG_LABELS) - 1, dtype=np.int8)
    for c, i in order_keys.items():
        codes[cls == c] = i
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(plots.AGG_LABELS))
    sid = points["source_id"]
    if len(sid) and sid.max() >= 2**31:
        raise ValueError("source ids above 2**31 do not fit the sky map's int32 array")
    header = json.dumps({"n": int(len(cls)), "projection": proj, "catalog_version": version,
                         "classes": [{"name": c, "n": int(counts[i])}
                                     for i, c in enumerate(plots.AGG_LABELS)]}).encode()
    pad = (-(4 + len(header))) % 4
    parts = [struct.pack("<I", len(header) + pad), header, b" " * pad]
    for arr in (x, y, points["ra"], points["dec"]):
        parts.append(np.ascontiguousarray(arr[order], dtype="<f4").tobytes())
    parts.append(np.ascontiguousarray(sid[order], dtype="<i4").tobytes())
    return b"".join(parts)


def _points(request: Request, conn: Connection) -> dict[str, np.ndarray]:
    custom = getattr(request.app.state, "sky_points", None)  # benchmarks: synthetic points
    return custom() if custom is not None else q.sky_points(conn)


@router.get("/skymap")
def skymap(request: Request, conn: Conn, projection_name: Projection = "aitoff"):
    if projection_name not in projection.PROJECTIONS:
        raise PageError(400, f"projection {projection_name!r} is not aitoff or mollweide")
    figs = cached_plots(request.app, f"skymap-{projection_name}",
                        lambda: {"sky": sky_figure(projection_name)})
    return page(request, "skymap.html", title="Sky map", projection=projection_name,
                projections=projection.PROJECTIONS, plots=figs,
                data_url=f"/skymap/data?projection={projection_name}",
                version=q.latest_version(conn))


def sky_figure(projection_name: str):
    """The sky-map figure with its graticule (no points: the browser adds them)."""
    fig = plots.sky_map(projection_name)
    xs, ys = projection.graticule(projection_name)
    fig.multi_line(xs, ys, color="#cccccc", line_width=1, level="underlay")
    w, h = projection.EXTENT[projection_name]
    fig.x_range.start, fig.x_range.end = -w * 1.02, w * 1.02
    fig.y_range.start, fig.y_range.end = -h * 1.05, h * 1.05
    return fig


@router.get("/skymap/data")
def skymap_data(request: Request, conn: Conn, projection_name: Projection = "aitoff"):
    if projection_name not in projection.PROJECTIONS:
        raise PageError(400, f"projection {projection_name!r} is not aitoff or mollweide")
    version = q.latest_version(conn)
    cache: dict = request.app.state.sky_cache
    key = (version, projection_name, id(getattr(request.app.state, "sky_points", None)))
    blob = cache.get(key)
    if blob is None:
        blob = encode(_points(request, conn), projection_name, version)
        while len(cache) >= CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[key] = blob
    return Response(blob, media_type="application/octet-stream",
                    headers={"Cache-Control": "no-cache"})


@router.get("/go/source/{source_id}")
def go_source(source_id: int, conn: Conn):
    """Where a click on the sky map goes: the source page of ``source_id``."""
    name = q.source_name(conn, source_id)
    if name is None:
        raise PageError(404, f"no source with id {source_id}")
    return RedirectResponse(source_url(name), status_code=303)
