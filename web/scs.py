"""IVOA Simple Cone Search 1.03 at ``GET /scs?RA=&DEC=&SR=[&VERB=]``.

The answer is a VOTable (``text/xml``) of the catalog's sources within SR degrees of
(RA, DEC) (ICRS, decimal degrees), nearest first, with their current classification; every
FIELD carries the unit, UCD and description of :mod:`db.column_docs` (the database's column
comments), and the three the standard requires carry its UCD1 words ``ID_MAIN``,
``POS_EQ_RA_MAIN`` and ``POS_EQ_DEC_MAIN``. VERB=1 gives the name, position and adopted
class, 2 (default) adds the classification and SIMBAD columns, 3 every column. An error is a
VOTable with ``<INFO name="Error" value="...">`` below the root (the standard's preferred
place) and a ``QUERY_STATUS`` ERROR in its RESOURCE; HTTP status 200, as the standard asks.

Include it in any FastAPI app: ``app.include_router(web.scs.router)``. Connections: the
app's read-only SQLAlchemy engine (``app.state.engine``) if it has one, else
``app.state.connect()`` if set, else :func:`db.engine.reader_connection`.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from db import vo

router = APIRouter()

#: Largest cone served (degrees) and most rows answered.
MAX_SR_DEG = 10.0
MAX_ROWS = 100_000
MEDIA_TYPE = "text/xml"
#: The UCD1 words SCS 1.03 requires, on the columns that carry them.
SCS_UCD = {"name": "ID_MAIN", "ra": "POS_EQ_RA_MAIN", "dec": "POS_EQ_DEC_MAIN"}


class ScsError(ValueError):
    """An SCS request that cannot be answered; the message goes in the Error INFO."""


def _connection(request: Request) -> Iterator:
    state = request.app.state
    engine = getattr(state, "engine", None)
    if engine is not None:
        fairy = engine.raw_connection()
        try:
            yield fairy.driver_connection
        finally:
            fairy.close()
        return
    connect = getattr(state, "connect", None)
    if connect is None:
        from db.engine import reader_connection as connect
    conn = connect()
    try:
        yield conn
    finally:
        conn.close()


def _param(request: Request, name: str) -> str | None:
    """A query parameter by name, ignoring case (SCS clients spell them RA, ra, ...)."""
    for key, value in request.query_params.multi_items():
        if key.upper() == name:
            return value
    return None


def _number(request: Request, name: str, required: bool = True) -> float | None:
    raw = _param(request, name)
    if raw is None or raw.strip() == "":
        if required:
            raise ScsError(f"missing required parameter {name} (decimal degrees)")
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ScsError(f"Error in input {name} value: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ScsError(f"Error in input {name} value: {raw!r} is not finite")
    return value


def parse(request: Request) -> tuple[float, float, float, int]:
    """(RA, DEC, SR, VERB) of a request, checked; ScsError saying what is wrong."""
    ra, dec, sr = (_number(request, n) for n in ("RA", "DEC", "SR"))
    if not 0.0 <= ra <= 360.0:
        raise ScsError(f"Error in input RA value: {ra:g} is outside [0, 360] degrees")
    if not -90.0 <= dec <= 90.0:
        raise ScsError(f"Error in input DEC value: {dec:g} is outside [-90, 90] degrees")
    if sr < 0:
        raise ScsError(f"Error in input SR value: {sr:g} is negative")
    if sr > MAX_SR_DEG:
        raise ScsError(f"Error in input SR value: {sr:g} degrees is more than this "
                       f"service's maximum of {MAX_SR_DEG:g} degrees")
    raw_verb = _param(request, "VERB")
    verb = 2
    if raw_verb not in (None, ""):
        if raw_verb.strip() not in ("1", "2", "3"):
            raise ScsError(f"Error in input VERB value: {raw_verb!r} (expected 1, 2 or 3)")
        verb = int(raw_verb)
    return ra, dec, sr, verb


def _xml(votable) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # VOUnit's deprecated erg, UCD1 words in a 1.4 file
        votable.to_xml(buf)
    return buf.getvalue()


def results_votable(table, ra: float, dec: float, sr: float) -> bytes:
    """The SCS answer for ``table`` (a documented astropy Table of db.vo.cone)."""
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        votable = from_table(table, table_id="cscat_cone")
    resource = votable.resources[0]
    resource.type = "results"
    resource.description = (f"cscat sources within {sr:g} deg of RA={ra:g}, DEC={dec:g} "
                            "(ICRS), nearest first, with their current classification")
    resource.infos.append(Info(name="QUERY_STATUS", value="OK"))
    fields = resource.tables[0].fields
    for f in fields:
        if f.name in SCS_UCD:
            f.ucd = SCS_UCD[f.name]
    for f in fields:  # the standard's ID_MAIN is a string column
        if f.name == "name":
            f.datatype = "char"
            f.arraysize = "*"
    return _xml(votable)


def error_votable(message: str) -> bytes:
    """An SCS error document: INFO name="Error" below the root, QUERY_STATUS ERROR."""
    from astropy.io.votable.tree import Info, Resource, VOTableFile

    votable = VOTableFile()
    votable.infos.append(Info(name="Error", value=message))
    resource = Resource(type="results")
    status = Info(name="QUERY_STATUS", value="ERROR")
    status.content = message
    resource.infos.append(status)
    votable.resources.append(resource)
    return _xml(votable)


@router.get("/scs", summary="IVOA Simple Cone Search 1.03")
def scs(request: Request, conn: Annotated[Any, Depends(_connection)]) -> Response:
    try:
        ra, dec, sr, verb = parse(request)
        table = vo.cone(conn, ra, dec, sr, verb=verb, max_rows=MAX_ROWS)
    except (ScsError, vo.VoError) as e:
        text = str(e)
        if "more than" in text and "rows" in text:
            text += "; use a smaller SR"
        return Response(error_votable(text), media_type=MEDIA_TYPE)
    return Response(results_votable(table, ra, dec, sr), media_type=MEDIA_TYPE)


def standalone_app():
    """A FastAPI app serving only ``/scs`` (``uvicorn --factory web.scs:standalone_app``),
    for a cone search without the explorer; the explorer includes :data:`router` itself."""
    from fastapi import FastAPI

    app = FastAPI(title="cscat cone search", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router)
    return app
