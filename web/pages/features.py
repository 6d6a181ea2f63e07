"""Feature scatter plots of detections, coloured by their source's adopted class."""

from __future__ import annotations

from fastapi import APIRouter, Request

from db import web_queries as q
from web import plots
from web.render import Conn, PageError, page
from web.render import plots as components

router = APIRouter()
#: Detections plotted at most.
SAMPLE = 20_000


@router.get("/features")
def features(request: Request, conn: Conn, x: str = "hard_hm", y: str = "hard_ms"):
    for axis, f in (("x", x), ("y", y)):
        if f not in q.FEATURES:
            raise PageError(400, f"{axis} feature {f!r} is not one of {', '.join(q.FEATURES)}")
    sample = q.feature_sample(conn, x, y, limit=SAMPLE)
    fig = plots.feature_scatter(sample, q.FEATURES[x], q.FEATURES[y])
    return page(request, "features.html", title="Features", x=x, y=y, features=q.FEATURES,
                n=len(sample["x"]), limit=SAMPLE, plots=components(scatter=fig))
