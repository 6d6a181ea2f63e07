"""The ADQL cscat sends to the CSC TAP service: the one place for table names and query text.

Detections are joined to master sources the way the CSC 2.x CLI and the umlcaxs code do:
``master_source m`` - ``master_stack_assoc a`` - ``stack_source s`` -
``stack_observation_assoc b`` - ``observation_source o``. Which table delivers which stored
column, under which name, is ``db.csc_columns.tap_source`` (e.g. ``match_type`` comes from
``master_stack_assoc``, ``flux_aper_b_lolim`` is the service's ``flux_aper_lolim_b``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from db.csc_columns import DETECTION_COLUMNS, SOURCE_COLUMNS, tap_source

CSC21_TAP_URL = "http://cda.cfa.harvard.edu/csc21tap"
CSC20_TAP_URL = "http://cda.cfa.harvard.edu/csc2tap"

#: The alias each query gives each table.
TABLE_ALIASES: dict[str, str] = {"master_source": "m", "master_stack_assoc": "a",
                                 "stack_source": "s", "stack_observation_assoc": "b",
                                 "observation_source": "o"}
_ALIAS_TABLES = {v: k for k, v in TABLE_ALIASES.items()}
_REF_RE = re.compile(r"(?<![\w.])([a-z])\.([A-Za-z_]\w*)")


@dataclass(frozen=True)
class CscTables:
    """Schema and table names of a CSC 2.x TAP service (``csc2`` for CSC 2.0)."""

    schema: str = "csc21"
    master_source: str = "master_source"
    master_stack_assoc: str = "master_stack_assoc"
    stack_source: str = "stack_source"
    stack_observation_assoc: str = "stack_observation_assoc"
    observation_source: str = "observation_source"

    def q(self, table: str) -> str:
        """Schema-qualified name of one of the tables above."""
        return f"{self.schema}.{getattr(self, table)}" if self.schema else getattr(self, table)


@dataclass(frozen=True)
class Cuts:
    """The paper's detection cuts (Pérez-Díaz et al. 2024); None/False disables one."""

    min_flux_significance_b: float | None = 5.0
    require_powlaw_gamma: bool = True
    require_bb_kt: bool = True

    def where(self) -> list[str]:
        out = []
        if self.min_flux_significance_b is not None:
            out.append(f"o.flux_significance_b > {float(self.min_flux_significance_b)!r}")
        if self.require_powlaw_gamma:
            out.append("o.powlaw_gamma IS NOT NULL")
        if self.require_bb_kt:
            out.append("o.bb_kt IS NOT NULL")
        return out


DEFAULT_TABLES = CscTables()
DEFAULT_CUTS = Cuts()


def select_list() -> list[str]:
    """``m.name``, ..., ``o.likelihood_b AS likelihood``, ...: the stored columns the service
    delivers, under their stored names (columns it does not deliver are left out)."""
    cols = []
    for col in (*SOURCE_COLUMNS, *DETECTION_COLUMNS):
        src = tap_source(col)
        if src is None:
            continue
        table, tap = src
        item = f"{TABLE_ALIASES[table]}.{tap}"
        cols.append(item if tap == col.name else f"{item} AS {col.name}")
    return cols


def selected_names() -> list[str]:
    """The output column names of ``detections_query``, in order."""
    return [item.rsplit(" AS ", 1)[-1].split(".", 1)[-1] for item in select_list()]


def referenced_columns(query: str) -> set[tuple[str, str]]:
    """Every ``(table, column)`` an ADQL query of this module names through a table alias."""
    out = set()
    for alias, column in _REF_RE.findall(query):
        if alias in _ALIAS_TABLES:
            out.add((_ALIAS_TABLES[alias], column))
    return out


def detections_query(obsids: Sequence[int], tables: CscTables = DEFAULT_TABLES,
                     cuts: Cuts = DEFAULT_CUTS) -> str:
    """Detections of the given ObsIDs passing ``cuts``, joined to their master sources."""
    if not obsids:
        raise ValueError("no ObsIDs")
    ids = ", ".join(str(int(i)) for i in sorted(set(obsids)))
    where = [f"o.obsid IN ({ids})", *cuts.where(),
             "m.name = a.name",
             "s.detect_stack_id = a.detect_stack_id AND s.region_id = a.region_id",
             "s.detect_stack_id = b.detect_stack_id AND s.region_id = b.region_id",
             "o.obsid = b.obsid AND o.obi = b.obi AND o.region_id = b.region_id"]
    return (
        "SELECT DISTINCT " + ", ".join(select_list())
        + f" FROM {tables.q('master_source')} m, {tables.q('master_stack_assoc')} a,"
        f" {tables.q('observation_source')} o, {tables.q('stack_observation_assoc')} b,"
        f" {tables.q('stack_source')} s"
        + " WHERE " + " AND ".join(f"({w})" for w in where)
        + " ORDER BY o.obsid, o.obi, o.region_id, m.name"
    )


def observations_query(tables: CscTables = DEFAULT_TABLES, until_mjd: float | None = None,
                       after_obsid: int | None = None) -> str:
    """ObsIDs with detections and the start (MJD) of each of their intervals, optionally
    before ``until_mjd``; the client keeps the earliest start per ObsID.

    A plain ``SELECT DISTINCT`` (no GROUP BY/MIN asked of the service), ordered by ObsID
    then start, so ``after_obsid`` pages through a long list (keyset pagination) and a page
    cut inside an ObsID still holds its earliest start.
    """
    where = []
    if until_mjd is not None:
        where.append(f"o.gti_mjd_obs < {float(until_mjd)!r}")
    if after_obsid is not None:
        where.append(f"o.obsid > {int(after_obsid)}")
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    return (
        "SELECT DISTINCT o.obsid, o.gti_mjd_obs"
        f" FROM {tables.q('observation_source')} o{clause}"
        " ORDER BY o.obsid, o.gti_mjd_obs"
    )


def passing_obsids_query(n: int = 1, tables: CscTables = DEFAULT_TABLES,
                         cuts: Cuts = DEFAULT_CUTS) -> str:
    """ObsIDs of ``n`` detections that pass ``cuts`` (to probe a live service)."""
    where = " AND ".join(f"({w})" for w in cuts.where()) or "1 = 1"
    return (f"SELECT TOP {int(n)} o.obsid FROM {tables.q('observation_source')} o"
            f" WHERE {where}")
