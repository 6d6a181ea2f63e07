"""The source page: position, detections and their probabilities, master class, every
family's class (with intervals, a chart each) and their consensus, SIMBAD, counterparts, and
the class history across catalog versions."""

from __future__ import annotations

from fastapi import APIRouter, Request

from classifier import FAMILIES
from classifier.taxonomy import CLASSES
from db import web_queries as q
from db.models import COUNTERPART_CATALOGUES
from web import plots
from web.projection import galactic
from web.render import Conn, PageError, cached_plots, page, sexagesimal

router = APIRouter()
#: How the counterpart card names each catalogue (``catalog.counterpart.catalogue``).
CATALOGUE_NAMES = {"gaia": "Gaia DR3", "2mass": "2MASS", "allwise": "AllWISE"}


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
    families = q.source_families(conn, s["source_id"])
    current = info["current"]
    adopted = current["adopted_class"] if current else None
    consensus = q.consensus(families, q.coarse_class(adopted))
    counterparts = q.counterparts(conn, s["name"])
    by_catalogue = {c: [r for r in counterparts if r["catalogue"] == c]
                    for c in COUNTERPART_CATALOGUES}
    return page(request, "source.html", title=s["name"], s=s, info=info,
                current=current, ra_s=ra_s, dec_s=dec_s, l=float(lon[0]),
                b=float(lat[0]), class_cols=cols, families=families, consensus=consensus,
                all_families=FAMILIES, counterparts=by_catalogue,
                catalogue_names=CATALOGUE_NAMES,
                plots=cached_plots(request.app, "source", plots.source_charts),
                plot_data=_merge(plots.detection_data(info["detections"]),
                                 plots.master_data(current), plots.family_data(families)))


def _merge(*parts: dict) -> dict:
    return {"sources": {k: v for p in parts for k, v in p["sources"].items()},
            "factors": {k: v for p in parts for k, v in p["factors"].items()}}
