"""Model versions and their validation: confusion matrices, precision/recall, calibration,
and the BIC curve where the model stored one."""

from __future__ import annotations

from fastapi import APIRouter, Request

from db import web_queries as q
from web import plots
from web.render import Conn, PageError, page
from web.render import plots as components

router = APIRouter()


def bic_curve(model: dict) -> dict | None:
    """A BIC curve (``classifier.select_k.bic_curve``) stored with the model, if any."""
    for holder in (model.get("validation") or {}, model.get("params") or {}):
        for key in ("bic_curve", "bic"):
            curve = holder.get(key)
            if isinstance(curve, dict) and curve.get("ks"):
                return curve
    return None


@router.get("/models")
def models(request: Request, conn: Conn):
    rows = q.models(conn)
    return page(request, "models.html", title="Models", models=rows)


@router.get("/models/{model_id}")
def model(model_id: int, request: Request, conn: Conn):
    m = q.model(conn, model_id)
    if m is None:
        raise PageError(404, f"no model version {model_id}")
    v = m.get("validation") or {}
    agg, fine = v.get("aggregated") or {}, v.get("fine") or {}
    calib = v.get("calibration") or {}
    curve = bic_curve(m)
    figs = components(
        conf_agg=plots.confusion(agg, "aggregated classes (row-normalised)"),
        conf_fine=plots.confusion(fine, "fine classes (row-normalised)"),
        pr_agg=plots.precision_recall(agg, "precision and recall, aggregated classes"),
        pr_fine=plots.precision_recall(fine, "precision and recall, fine classes"),
        cal_agg=plots.calibration(calib.get("aggregated"), "calibration, aggregated"),
        cal_fine=plots.calibration(calib.get("fine"), "calibration, fine"),
        bic=plots.bic(curve) if curve else None)
    return page(request, "model.html", title=f"Model {model_id}", m=m, v=v, agg=agg,
                fine=fine, calib=calib, has_bic=curve is not None, plots=figs)
