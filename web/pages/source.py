"""The source page: position, detections and their probabilities, master class, SIMBAD,
and the class history across catalog versions."""

from __future__ import annotations

from fastapi import APIRouter, Request

from classifier.taxonomy import CLASSES
from db import web_queries as q
from web import plots
from web.projection import galactic
from web.render import Conn, PageError, cached_plots, page, sexagesimal

router = APIRouter()


@router.get("/source/{name:path}")
def source(name: str, request: Request, conn: Conn):
    info = q.source(conn, name)
    if info is None:
        raise PageError(404, f"no source named {name!r} in the catalog")
    s = info["source"]
    import numpy as np

    lon, lat = galactic(np.array([s["ra"]]), np.array([s["dec"]]))
    ra_s, dec_s = sexagesimal(s["ra"], s["dec"])
    cols = [(c, q.CLASS_COLUMNS[c]) for c in CLASSES]
    return page(request, "source.html", title=s["name"], s=s, info=info,
                current=info["current"], ra_s=ra_s, dec_s=dec_s, l=float(lon[0]),
                b=float(lat[0]), class_cols=cols,
                plots=cached_plots(request.app, "source", lambda: {
                    "dets": plots.detection_chart(), "master": plots.master_chart()}),
                plot_data=_merge(plots.detection_data(info["detections"]),
                                 plots.master_data(info["current"])))


def _merge(*parts: dict) -> dict:
    return {"sources": {k: v for p in parts for k, v in p["sources"].items()},
            "factors": {k: v for p in parts for k, v in p["factors"].items()}}
