"""Plain-text rendering of query results for the terminal."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def aligned_table(columns: Sequence[str], rows: Sequence[Sequence[object]],
                  numeric: Sequence[bool] | None = None) -> str:
    """A psql-like aligned table with a row count footer.

    ``numeric`` says which columns to right-align; by default those whose values are all
    numbers. Strings are shown as they are (``cscat sql`` passes PostgreSQL's own text).
    """
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    if numeric is None:
        numeric = [all(isinstance(r[i], int | float) or r[i] is None for r in rows) and bool(rows)
                   for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        return " | ".join(v.rjust(w) if num else v.ljust(w)
                          for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    out = [line(list(columns)), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def csv_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """RFC 4180 CSV with a header row; NULL as an empty field."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue()
