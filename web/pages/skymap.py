"""Sky map of every classified source by class: the page (a Bokeh figure with an empty
image), the image of any window of the sky rasterised on the server (``/skymap/data``), and
the source nearest a position (``/skymap/near``: hover and click).

``/skymap/data`` layout (little-endian): uint32 header length H, H bytes of JSON header
(``n``, ``n_view``, ``classes``: [{name, n}], ``projection``, ``catalog_version``, the window
``x0 x1 y0 y1`` and size ``w h``), space padding to a multiple of 4, then h x w uint32 RGBA
pixels (bytes R, G, B, A), row 0 at y0.
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
from web.render import BOKEH, Conn, PageError, cached_plots, page, source_url
from web.skyraster import IMAGES_KEPT, MAX_SIDE, SkyIndex

router = APIRouter()
#: Projected blobs kept per app (catalog version x projection).
CACHE_SIZE = 4
Projection = Annotated[str, Query(alias="projection")]


def _points(request: Request, conn: Connection) -> dict[str, np.ndarray]:
    custom = getattr(request.app.state, "sky_points", None)  # benchmarks: synthetic points
    return custom() if custom is not None else q.sky_points(conn)


def _index(request: Request, conn: Connection, proj: str) -> tuple[SkyIndex, int | None]:
    """The projected sources of the latest catalog version (built once, kept per app)."""
    if proj not in projection.PROJECTIONS:
        raise PageError(400, f"projection {proj!r} is not aitoff or mollweide")
    version = q.latest_version(conn)
    cache: dict = request.app.state.sky_cache
    key = (version, proj, id(getattr(request.app.state, "sky_points", None)))
    index = cache.get(key)
    if index is None:
        index = SkyIndex.build(_points(request, conn), proj)
        while len(cache) >= CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[key] = index
    return index, version


def _shown(hide: str) -> np.ndarray:
    """Which classes are drawn: ``hide`` is a comma list of class names ('none': no class)."""
    names = {"none" if c == "" else c: i for i, c in enumerate(plots.AGG_LABELS)}
    shown = np.ones(len(plots.AGG_LABELS), dtype=bool)
    for name in filter(None, hide.split(",")):
        if name not in names:
            raise PageError(400, f"hide: unknown class {name!r}; expected some of "
                                 f"{', '.join(names)}")
        shown[names[name]] = False
    return shown


def full_window(proj: str) -> tuple[float, float, float, float]:
    w, h = projection.EXTENT[proj]
    return -w * 1.02, w * 1.02, -h * 1.05, h * 1.05


@router.get("/skymap")
def skymap(request: Request, conn: Conn, projection_name: Projection = "aitoff"):
    if projection_name not in projection.PROJECTIONS:
        raise PageError(400, f"projection {projection_name!r} is not aitoff or mollweide")
    figs = cached_plots(request.app, f"skymap-{projection_name}",
                        lambda: {"sky": sky_figure(projection_name)})
    return page(request, "skymap.html", title="Sky map", projection=projection_name,
                projections=projection.PROJECTIONS, plots=figs,
                data_url=f"/skymap/data?projection={projection_name}",
                bokeh_js=[js for js in BOKEH.js_files if "bokeh-gl" not in js],  # no WebGL
                version=q.latest_version(conn))


def sky_figure(projection_name: str):
    """The sky-map figure with its graticule and an empty image (the browser fills it)."""
    x0, x1, y0, y1 = full_window(projection_name)
    fig = plots.sky_map(projection_name, (x0, x1, y0, y1))
    xs, ys = projection.graticule(projection_name)
    fig.multi_line(xs, ys, color="#cccccc", line_width=1, level="underlay")
    fig.x_range.start, fig.x_range.end = x0, x1
    fig.y_range.start, fig.y_range.end = y0, y1
    return fig


@router.get("/skymap/data")
def skymap_data(request: Request, conn: Conn, projection_name: Projection = "aitoff",
                x0: float | None = None, x1: float | None = None, y0: float | None = None,
                y1: float | None = None, w: int = 1200, h: int = 600, hide: str = ""):
    """The window (x0..x1, y0..y1; default the whole sky) drawn as a w x h RGBA image."""
    index, version = _index(request, conn, projection_name)
    window = full_window(projection_name)
    x0, x1, y0, y1 = (window[i] if v is None else v for i, v in enumerate((x0, x1, y0, y1)))
    if not all(np.isfinite([x0, x1, y0, y1])) or x1 <= x0 or y1 <= y0:
        raise PageError(400, "the window needs finite x0 < x1 and y0 < y1")
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise PageError(400, f"w and h must be between 1 and {MAX_SIDE} pixels")
    shown = _shown(hide)
    key = (x0, x1, y0, y1, w, h, tuple(shown.tolist()))
    blob = index.images.get(key)
    if blob is None:
        blob = _encode(index, version, (x0, x1, y0, y1), w, h, shown)
        while len(index.images) >= IMAGES_KEPT:
            index.images.pop(next(iter(index.images)))
        index.images[key] = blob
    return Response(blob, media_type="application/octet-stream",
                    headers={"Cache-Control": "no-cache"})


def _encode(index: SkyIndex, version: int | None, window: tuple[float, float, float, float],
            w: int, h: int, shown: np.ndarray) -> bytes:
    x0, x1, y0, y1 = window
    image, n_view = index.raster(x0, x1, y0, y1, w, h, shown)
    counts = index.counts()
    header = json.dumps({
        "n": int(len(index.code)), "n_view": n_view, "projection": index.projection,
        "catalog_version": version, "x0": x0, "x1": x1, "y0": y0, "y1": y1, "w": w, "h": h,
        "classes": [{"name": c, "n": int(counts[i])} for i, c in enumerate(plots.AGG_LABELS)],
    }).encode()
    pad = (-(4 + len(header))) % 4
    return b"".join([struct.pack("<I", len(header) + pad), header, b" " * pad,
                     np.ascontiguousarray(image, dtype="<u4").tobytes()])


@router.get("/skymap/near")
def skymap_near(request: Request, conn: Conn, x: float, y: float, r: float,
                projection_name: Projection = "aitoff", hide: str = ""):
    """The shown source nearest the plane position (x, y) within r (plane units), as JSON
    (``{}`` when none): what the map's hover shows and where a click goes."""
    index, _ = _index(request, conn, projection_name)
    if not all(np.isfinite([x, y, r])) or not 0 < r <= 1.0:
        raise PageError(400, "x, y must be finite and 0 < r <= 1")
    i = index.nearest(x, y, r, _shown(hide))
    if i is None:
        return {}
    return {"id": int(index.source_id[i]), "ra": float(index.ra[i]),
            "dec": float(index.dec[i]), "x": float(index.x[i]), "y": float(index.y[i]),
            "cls": plots.AGG_LABELS[index.code[i]] or "no class"}


@router.get("/go/source/{source_id}")
def go_source(source_id: int, conn: Conn):
    """Where a click on the sky map goes: the source page of ``source_id``."""
    name = q.source_name(conn, source_id)
    if name is None:
        raise PageError(404, f"no source with id {source_id}")
    return RedirectResponse(source_url(name), status_code=303)
