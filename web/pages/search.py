"""Search by name, cone and class/probability; paged results; CSV/VOTable download."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from classifier import FAMILIES
from classifier.taxonomy import AGG_CLASSES, CLASSES
from db import web_queries as q
from web import forms
from web.render import Conn, PageError, page, source_url

router = APIRouter()
PAGE_SIZE = 50
#: Largest download (rows); a bigger result asks for a narrower search.
MAX_DOWNLOAD = 100_000
FIELDS = ("name", "ra", "dec", "radius", "cls", "min_prob", "origin", "family")
#: Units of the downloaded columns (astropy units).
UNITS = {"ra": "deg", "dec": "deg", "sep_arcsec": "arcsec"}


def _search(params: dict) -> q.Search:
    try:
        ra = dec = rad = None
        if params.get("ra") or params.get("dec"):
            ra, dec = forms.position(params.get("ra", ""), params.get("dec", ""))
            rad = forms.radius(params.get("radius") or "1")
        cls = params.get("cls") or None
        agg = bool(cls and cls.startswith("agg:"))
        if agg:
            cls = cls.removeprefix("agg:")
        if cls and cls not in (AGG_CLASSES if agg else CLASSES):
            raise forms.FormError(
                f"class {params['cls']!r} is not one of {', '.join(CLASSES)} or (aggregated) "
                f"{', '.join('agg:' + c for c in AGG_CLASSES)}")
        pmin = forms.probability(params["min_prob"]) if params.get("min_prob") else None
        family = params.get("family") or None
        if family is not None and family not in FAMILIES:
            raise forms.FormError(f"family {family!r} is not one of {', '.join(FAMILIES)}")
        if pmin is not None and not cls and family is None:
            raise forms.FormError("a minimum probability needs a class (or a family)")
        origin = params.get("origin") or None
        if origin not in (None, "simbad", "model"):
            raise forms.FormError(f"label origin {origin!r} is not simbad or model")
    except forms.FormError as e:
        raise PageError(400, str(e)) from None
    return q.Search(name=(params.get("name") or "").strip() or None, ra=ra, dec=dec,
                    radius_deg=rad, cls=cls, agg=agg, min_prob=pmin, origin=origin,
                    family=family)


def _params(request: Request) -> dict:
    return {k: request.query_params.get(k, "") for k in FIELDS}


@router.get("/")
def index(request: Request, conn: Conn):
    return page(request, "index.html", title="cscat explorer", params=_params(request),
                classes=CLASSES, agg_classes=AGG_CLASSES, latest=q.latest_version(conn),
                families=q.families_present(conn))


@router.get("/search")
def search(request: Request, conn: Conn, page_no: int = 1):
    params = _params(request)
    s = _search(params)
    page_no = max(1, page_no)
    rows, total = q.search(conn, s, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE)
    if total == 1 and s.name and rows and rows[0]["name"].lower() == s.name.lower():
        return RedirectResponse(source_url(rows[0]["name"]), status_code=303)
    pages = max(1, -(-total // PAGE_SIZE))
    return page(request, "search.html", title="Search", params=params, rows=rows,
                total=total, page_no=page_no, pages=pages, classes=CLASSES,
                agg_classes=AGG_CLASSES, cone=s.radius_deg is not None,
                prob_class=_prob_label(s), family=s.family,
                families=q.families_present(conn), max_download=MAX_DOWNLOAD)


def _prob_label(s: q.Search) -> str | None:
    """The heading of the probability column (None: no such column)."""
    if s.family:
        return f"{s.family} class"
    if s.cls:
        return f"{s.cls} (aggregated)" if s.agg else s.cls
    return None


@router.get("/search/download")
def download(request: Request, conn: Conn, format: str = "csv"):
    if format not in ("csv", "votable"):
        raise PageError(400, f"format {format!r} is not csv or votable")
    params = _params(request)
    s = _search(params)
    rows, _ = q.search(conn, s, limit=MAX_DOWNLOAD + 1, count=False)
    if len(rows) > MAX_DOWNLOAD:
        raise PageError(413, f"the result has more than {MAX_DOWNLOAD:,} rows: narrow the "
                             "search (a cone, a class) to download it")
    extra = ["family_class"] if s.family else []
    table = result_table(rows, [*q.RESULT_COLUMNS, *extra, "probability", "sep_arcsec"])
    if s.family:
        table.meta["family"] = s.family
    for c, unit in UNITS.items():
        if c in table.colnames:
            table[c].unit = unit
    table.meta["catalog_version"] = q.latest_version(conn)
    table.meta["query"] = {k: v for k, v in params.items() if v}
    table.meta["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    buf = io.BytesIO()
    if format == "csv":
        out = io.StringIO()
        table.write(out, format="ascii.csv")
        buf.write(out.getvalue().encode())
        media, ext = "text/csv; charset=utf-8", "csv"
    else:
        from astropy.io.votable import from_table

        vot = from_table(table)
        vot.resources[0].tables[0].name = "cscat_search"
        vot.to_xml(buf)
        media, ext = "application/x-votable+xml", "vot"
    return Response(buf.getvalue(), media_type=media, headers={
        "Content-Disposition": f'attachment; filename="cscat-search.{ext}"'})


def result_table(rows: list[dict], names: list[str]):
    """An astropy Table of ``rows``: one typed, masked column each (a column that is all
    missing and not a result column is left out)."""
    import numpy as np
    from astropy.table import MaskedColumn, Table

    table = Table()
    for c in names:
        vals = [r[c] for r in rows]
        missing = np.array([v is None for v in vals], dtype=bool)
        present = [v for v in vals if v is not None]
        if not present and c not in q.RESULT_COLUMNS:
            continue
        if present and all(isinstance(v, bool) for v in present):
            data = np.array([bool(v) if v is not None else False for v in vals], dtype=bool)
        elif present and all(isinstance(v, int) for v in present):
            data = np.array([v if v is not None else 0 for v in vals], dtype="int64")
        elif present and all(isinstance(v, int | float) for v in present):
            data = np.array([float(v) if v is not None else np.nan for v in vals])
        else:
            data = np.array(["" if v is None else str(v) for v in vals], dtype=str)
            if data.dtype.itemsize == 0:
                data = data.astype("U1")
        table[c] = MaskedColumn(data, mask=missing)
    return table
