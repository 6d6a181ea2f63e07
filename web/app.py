"""``create_app(settings)``: the FastAPI application of ``cscat web``.

Every query runs on a pool of connections of the read-only role (``db.engine.
reader_connection``), never the superuser. The application answers only GET (and HEAD):
any other method is 405 before routing, for every router included now or later
(``app.include_router(web.scs.router)``). BokehJS is served from the installed bokeh
package (no CDN); templates are autoescaped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
from bokeh.settings import settings as bokeh_settings
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import QueuePool

from db.settings import Settings, get_settings
from web import render, scs
from web.pages import features, models, search, skymap, source, versions

HERE = Path(__file__).resolve().parent
#: Statement timeout of one web query (seconds): a page must not hold the server.
STATEMENT_TIMEOUT_S = 30


class GetOnly:
    """ASGI middleware: anything but GET/HEAD is answered 405 (``Allow: GET, HEAD``)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            body = b"405 Method Not Allowed: the catalog explorer is read-only\n"
            await send({"type": "http.response.start", "status": 405,
                        "headers": [(b"allow", b"GET, HEAD"),
                                    (b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def reader_engine(connect: Callable[[], psycopg.Connection] | None = None,
                  pool_size: int = 4) -> Engine:
    """A SQLAlchemy pool over read-only role connections (``connect``, default
    :func:`db.engine.reader_connection`); every transaction is READ ONLY."""
    if connect is None:
        from db.engine import reader_connection as connect
    engine = create_engine("postgresql+psycopg://", creator=connect, poolclass=QueuePool,
                           pool_size=pool_size, max_overflow=4, pool_pre_ping=True,
                           execution_options={"postgresql_readonly": True})

    @event.listens_for(engine, "connect")
    def _limits(dbapi_conn, record) -> None:
        prev = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        dbapi_conn.execute("SELECT set_config('statement_timeout', %s, false)",
                           [f"{STATEMENT_TIMEOUT_S}s"])
        dbapi_conn.autocommit = prev

    return engine


def create_app(settings: Settings | None = None, *,
               connect: Callable[[], psycopg.Connection] | None = None) -> FastAPI:
    """The explorer. ``connect``: how to open a read-only connection (tests, benchmarks)."""
    settings = settings or get_settings()
    app = FastAPI(title="cscat explorer", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = reader_engine(connect)
    app.state.sky_cache = {}
    app.state.plot_cache = {}
    app.add_middleware(GetOnly)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.mount("/bokeh/static", StaticFiles(directory=bokeh_settings.bokehjs_path()),
              name="bokeh")
    for page in (search, source, skymap, models, versions, features):
        app.include_router(page.router)
    app.include_router(scs.router)
    app.add_exception_handler(render.PageError, render.page_error)
    return app


def warm(app: FastAPI) -> None:
    """Build the figures pages reuse (sky maps, source charts) before the first request."""
    from web import plots
    from web.pages.skymap import sky_figure

    for proj in ("aitoff", "mollweide"):
        render.cached_plots(app, f"skymap-{proj}", lambda p=proj: {"sky": sky_figure(p)})
    render.cached_plots(app, "source", plots.source_charts)
