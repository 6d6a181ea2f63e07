"""``cscat export``: the catalog as a VOTable, FITS, Parquet, CSV or ECSV file (astropy).

Every column carries its unit, UCD and description (:mod:`db.column_docs`, the database's
column comments); the file's metadata holds the provenance: catalog version, classification
family, model versions, date, the query and its parameters, cscat's version. Where it goes:
VOTable: INFO elements of the RESOURCE; FITS: header keywords (HIERARCH for long names);
Parquet and ECSV: the table metadata astropy writes; CSV has no metadata, so a sidecar
``FILE.json`` holds it (and the column descriptions). An exported detection table has the
columns ``cscat ingest file`` reads (name, master position, the CSC detection columns).
"""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from db import vo
from db.column_docs import VIEWS

FORMATS = {"votable": "votable", "fits": "fits", "parquet": "parquet", "csv": "ascii.csv",
           "ecsv": "ascii.ecsv"}
SUFFIXES = {".vot": "votable", ".votable": "votable", ".xml": "votable", ".fits": "fits",
            ".fit": "fits", ".parquet": "parquet", ".pq": "parquet", ".csv": "csv",
            ".ecsv": "ecsv"}
TABLES = ("sources", "detections")


def format_of(output: str | Path, fmt: str | None) -> str:
    """The format asked for, or the one the output's suffix names; VoError otherwise."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise vo.VoError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(output).suffix.lower()
    if suffix not in SUFFIXES:
        raise vo.VoError(f"--output {output}: cannot tell the format from {suffix or 'no'} "
                         f"suffix; give --format ({', '.join(FORMATS)})")
    return SUFFIXES[suffix]


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cscat")
    except PackageNotFoundError:
        return "unknown"


def build(conn: psycopg.Connection, *, table: str = "sources", version: int | None = None,
          family: str | None = None):
    """The documented astropy Table of an export, with its provenance in ``meta``."""
    if table not in TABLES:
        raise vo.VoError(f"--table {table!r}: expected sources or detections")
    family = vo.check_family(conn, family)
    current = vo.check_version(conn, None)
    version = vo.check_version(conn, version)
    if table == "sources":
        sql, params = vo.sources_query(None if version == current else version)
        docs = VIEWS["source_class_history"]
    else:
        if version != current:
            raise vo.VoError(
                f"--table detections --version {version}: per-detection results are "
                f"published for the current catalog version ({current}) only; omit "
                "--version, or export --table sources as of that version")
        sql, _ = vo.detections_query()
        params = {}
        docs = vo.detection_docs()
    frame = vo.fetch(conn, sql, params, stream=True)
    out = vo.to_table(frame, docs)
    model_ids = sorted({int(m) for m in frame["model_id"].dropna()}) if len(frame) else []
    models = vo.models_of(conn, model_ids)
    out.meta.update({
        "origin": "cscat export",
        "table": table,
        "catalog_version": int(version),
        "current_catalog_version": int(current),
        "family": family,
        "model_versions": ",".join(str(m) for m in model_ids),
        "models": json.dumps(models, sort_keys=True, default=str),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "query": " ".join(sql.split()),
        "query_parameters": json.dumps(params, sort_keys=True),
        "cscat_version": _package_version(),
        "n_rows": len(out),
    })
    return out


def write(table, output: str | Path, fmt: str) -> list[Path]:
    """Write ``table`` (from :func:`build`) as ``fmt``; the files written."""
    output = Path(output)
    written = [output]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # VOUnit's deprecated erg, FITS HIERARCH cards
        if fmt == "votable":
            _write_votable(table, output)
        elif fmt == "csv":
            plain = table.copy(copy_data=False)
            plain.meta.clear()
            plain.write(output, format="ascii.csv", overwrite=True)
            side = output.with_name(output.name + ".json")
            side.write_text(json.dumps({"provenance": dict(table.meta), "columns": {
                c: {"unit": str(table[c].unit) if table[c].unit else None,
                    "ucd": table[c].meta.get("ucd"), "description": table[c].description}
                for c in table.colnames}}, indent=1, default=str) + "\n")
            written.append(side)
        else:
            table.write(output, format=FORMATS[fmt], overwrite=True)
    return written


def _write_votable(table, output: Path) -> None:
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info

    votable = from_table(table, table_id=f"cscat_{table.meta['table']}")
    resource = votable.resources[0]
    resource.type = "results"
    resource.description = (f"cscat {table.meta['table']}, catalog version "
                            f"{table.meta['catalog_version']}")
    for key, value in table.meta.items():
        resource.infos.append(Info(name=key, value=str(value)))
    votable.to_xml(str(output), tabledata_format="binary2")


def export(conn: psycopg.Connection, output: str | Path, *, fmt: str | None = None,
           table: str = "sources", version: int | None = None,
           family: str | None = None) -> tuple[object, list[Path]]:
    """Build and write an export; (the table, the files written)."""
    fmt = format_of(output, fmt)
    out = build(conn, table=table, version=version, family=family)
    try:
        files = write(out, output, fmt)
    except OSError as e:
        raise vo.VoError(f"--output {output}: cannot write: {e.strerror or e}") from None
    return out, files
