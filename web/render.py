"""Templates (autoescaped Jinja2), the page helper, errors shown as pages, and formatting."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode

import jinja2
from bokeh.embed import components
from bokeh.resources import Resources
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

HERE = Path(__file__).resolve().parent
#: BokehJS from the installed package, through the app's /bokeh/static route (no CDN).
BOKEH = Resources(mode="server", root_url="/bokeh/",
                  components=["bokeh", "bokeh-gl"])

ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every value shown is escaped, whatever the template's name
    trim_blocks=True, lstrip_blocks=True,
)


class PageError(Exception):
    """A request the explorer cannot answer (bad input, unknown source): status + message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def page_error(request: Request, exc: PageError) -> HTMLResponse:
    return page(request, "error.html", status=exc.status, title=f"Error {exc.status}",
                message=exc.message)


def source_url(name: str) -> str:
    """The source page of ``name`` (every character but letters and digits quoted)."""
    return "/source/" + quote(name, safe="")


def fmt(value, digits: int = 3) -> str:
    """A number for a table: ``-`` for None/NaN, floats to ``digits`` significant places."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.{digits}g}"
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") or "0"
    return str(value)


def sexagesimal(ra: float, dec: float) -> tuple[str, str]:
    """RA as hh:mm:ss.ss, Dec as ±dd:mm:ss.s (astropy)."""
    from astropy.coordinates import Angle

    return (Angle(ra, "deg").to_string(unit="hourangle", sep=":", precision=2, pad=True),
            Angle(dec, "deg").to_string(unit="deg", sep=":", precision=1, alwayssign=True,
                                        pad=True))


def query_string(params: dict, **change) -> str:
    merged = {k: v for k, v in {**params, **change}.items() if v not in (None, "")}
    return urlencode(merged)


ENV.globals.update(source_url=source_url, fmt=fmt, query_string=query_string)
ENV.filters["fmt"] = fmt


def plots(**figures) -> dict:
    """``{"script": ..., "divs": {name: div}}`` of Bokeh figures for a template."""
    present = {k: v for k, v in figures.items() if v is not None}
    empty = {k: "" for k in figures if k not in present}
    if not present:
        return {"script": "", "divs": empty}
    script, divs = components(present)
    return {"script": script, "divs": {**divs, **empty}}


_CACHE_LOCK = threading.Lock()


def cached_plots(app, key: str, build) -> dict:
    """:func:`plots` of the figures ``build()`` returns, made once per app and ``key``:
    Bokeh builds a figure in 0.1-0.5 s, so figures whose data the page fills in the browser
    (``fill.js``, from ``plot_data``) are built only once."""
    cache = app.state.plot_cache
    with _CACHE_LOCK:
        if key not in cache:
            cache[key] = plots(**build())
        return cache[key]


def page(request: Request, template: str, *, status: int = 200, **context) -> HTMLResponse:
    """Render ``template`` with ``context`` (and the BokehJS tags) as an HTML response."""
    html = ENV.get_template(template).render(
        request=request, bokeh_js=context.pop("bokeh_js", BOKEH.js_files),
        path=request.url.path,
        plots=context.pop("plots", {"script": "", "divs": {}}),
        plot_data=context.pop("plot_data", None), **context)
    return HTMLResponse(html, status_code=status)


def connection(request: Request) -> Iterator[Connection]:
    """FastAPI dependency: a read-only connection from the app's pool for one request."""
    with request.app.state.engine.connect() as conn:
        yield conn


#: A route parameter ``conn: Conn`` gets one read-only connection for the request.
Conn = Annotated[Connection, Depends(connection)]
