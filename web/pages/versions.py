"""Catalog versions and the class-change feed between any two of them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from db import web_queries as q
from web.render import Conn, PageError, page

router = APIRouter()
PAGE_SIZE = 100


@router.get("/versions")
def versions(request: Request, conn: Conn):
    rows = q.versions(conn)
    return page(request, "versions.html", title="Catalog versions", versions=rows)


@router.get("/changes")
def changes(request: Request, conn: Conn,
            a: Annotated[int | None, Query(alias="from")] = None,
            b: Annotated[int | None, Query(alias="to")] = None, page_no: int = 1):
    known = [v["catalog_version"] for v in q.versions(conn)]
    if not known:
        raise PageError(404, "the catalog has no version yet")
    a = a if a is not None else (known[-2] if len(known) > 1 else known[-1])
    b = b if b is not None else known[-1]
    for label, v in (("from", a), ("to", b)):
        if v not in known:
            raise PageError(400, f"catalog version {v} ({label}) does not exist: versions "
                                 f"are {known[0]}..{known[-1]}")
    page_no = max(1, page_no)
    rows, total = q.class_changes(conn, a, b, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE)
    return page(request, "changes.html", title=f"Changes {a} → {b}", a=a, b=b, rows=rows,
                total=total, counts=q.change_counts(conn, a, b), known=known,
                page_no=page_no, pages=max(1, -(-total // PAGE_SIZE)))
