"""The web explorer's SQL (``web/``): read-only queries on the views of schema ``catalog``.

Every function takes a connection of the read-only role (``cscat_reader``) and binds every
value; identifiers (a class's probability column, a feature to plot) are taken only from the
fixed lists below, never from the request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, text

from classifier import FAMILIES
from classifier.taxonomy import AGG_CLASSES, AGGREGATION, CLASSES


def column_name(cls: str) -> str:
    """``Orion_V*`` -> ``orion_v``, as the SQL views name a class."""
    return cls.lower().replace("*", "").strip("_")


#: Per-class probability columns of the views (``mean_<c>``, ``p_<c>``), in class order.
CLASS_COLUMNS: dict[str, str] = {c: column_name(c) for c in CLASSES}
#: Features a scatter plot may use: column of ``catalog.detection`` -> label.
FEATURES: dict[str, str] = {
    "hard_hm": "hardness ratio H-M", "hard_hs": "hardness ratio H-S",
    "hard_ms": "hardness ratio M-S", "powlaw_gamma": "power-law photon index",
    "powlaw_nh": "power-law N_H (1e22 cm^-2)", "bb_kt": "black-body kT (keV)",
    "var_prob_b": "variability probability (b)", "var_ratio_b": "variability ratio (b)",
    "var_newq_b": "var_newq_b", "flux_aper_b": "aperture flux b (erg/cm2/s)",
    "flux_significance_b": "flux significance (b)", "theta": "off-axis angle (arcmin)",
}
#: Columns of a search result (and its download), all from ``catalog.source_class``.
RESULT_COLUMNS = ["name", "ra", "dec", "adopted_class", "agg_adopted_class", "label_origin",
                  "master_class", "ambiguous", "n_detections", "simbad_otype",
                  "catalog_version"]


@dataclass(frozen=True)
class Search:
    """A search of ``catalog.source_class``; every field optional."""

    name: str | None = None
    #: Cone: centre (deg) and radius (deg).
    ra: float | None = None
    dec: float | None = None
    radius_deg: float | None = None
    #: A fine class (``CLASSES``), or an aggregated one (``AGG_CLASSES``) when ``agg``.
    cls: str | None = None
    agg: bool = False
    #: Minimum mean probability of ``cls`` (0..1).
    min_prob: float | None = None
    #: ``simbad`` or ``model``.
    origin: str | None = None
    #: A classifier family (``classifier.FAMILIES``): ``cls`` and ``min_prob`` are then that
    #: family's class of the source and its probability (``catalog.source_class_by_family``).
    family: str | None = None

    def join(self) -> str:
        """The join the family filter needs (a fixed text: the family is a parameter)."""
        return (" JOIN catalog.source_class_by_family f ON f.source_id = c.source_id "
                "AND f.family = :family" if self.family else "")

    def where(self) -> tuple[str, dict, str]:
        """SQL condition, its parameters, and the probability expression (or ``NULL``)."""
        if self.family:
            return self._family_where()
        conds, params = ["true"], {}
        if self.name:
            conds.append("c.name ILIKE :name ESCAPE '\\'")
            escaped = self.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params["name"] = f"%{escaped.strip()}%"
        if self.radius_deg is not None and self.ra is not None and self.dec is not None:
            # the Dec band by csc_source's position index (source_class holds a copy of
            # the position, without one), then the exact distance
            conds.append("c.source_id IN (SELECT p.source_id FROM catalog.csc_source p "
                         "WHERE p.dec BETWEEN :dmin AND :dmax) AND " + _SEP + " <= :r")
            params.update(ra=self.ra, dec=self.dec, r=self.radius_deg,
                          dmin=self.dec - self.radius_deg, dmax=self.dec + self.radius_deg)
        prob = "NULL::float8"
        if self.cls:
            if self.cls not in (AGG_CLASSES if self.agg else CLASSES):
                raise ValueError(f"unknown class {self.cls!r}")
            fine = [c for c in CLASSES if AGGREGATION[c] == self.cls] if self.agg else [self.cls]
            prob = "(" + " + ".join(f"c.mean_{CLASS_COLUMNS[c]}" for c in fine) + ")"
            if self.min_prob is None:
                col = "agg_adopted_class" if self.agg else "adopted_class"
                conds.append(f"c.{col} = :cls")
                params["cls"] = self.cls
        if self.min_prob is not None:
            if not self.cls:
                raise ValueError("a minimum probability needs a class")
            conds.append(f"{prob} >= :pmin")
            params["pmin"] = self.min_prob
        if self.origin:
            if self.origin not in ("simbad", "model"):
                raise ValueError(f"unknown label origin {self.origin!r}")
            conds.append("c.label_origin = :origin")
            params["origin"] = self.origin
        return " AND ".join(conds), params, prob

    def _common(self) -> tuple[list[str], dict]:
        """Name, cone and origin conditions (what does not depend on the family)."""
        plain = Search(name=self.name, ra=self.ra, dec=self.dec, radius_deg=self.radius_deg,
                       origin=self.origin)
        where, params, _ = plain.where()
        return [where], params

    def _family_where(self) -> tuple[str, dict, str]:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}")
        conds, params = self._common()
        params["family"] = self.family
        if self.cls:
            if self.cls not in (AGG_CLASSES if self.agg else CLASSES):
                raise ValueError(f"unknown class {self.cls!r}")
            fine = [c for c in CLASSES if AGGREGATION[c] == self.cls] if self.agg else [self.cls]
            conds.append("f.class = ANY(:fcls)")
            params["fcls"] = fine
        if self.min_prob is not None:
            conds.append("f.probability >= :pmin")
            params["pmin"] = self.min_prob
        return " AND ".join(conds), params, "f.probability"


#: Angular separation (deg) of (c.ra, c.dec) from (:ra, :dec): haversine, exact at small r.
_SEP = ("degrees(2 * asin(least(1, sqrt(power(sin(radians(c.dec - :dec) / 2), 2) "
        "+ cos(radians(c.dec)) * cos(radians(:dec)) * power(sin(radians(c.ra - :ra) / 2), 2)))))")


def search_sql(s: Search, *, limit: int, offset: int = 0) -> tuple[str, dict]:
    """The statement of one page of :func:`search` and its parameters."""
    where, params, prob = s.where()
    cone = s.radius_deg is not None and s.ra is not None
    sep = f"{_SEP} * 3600" if cone else "NULL::float8"
    cols = ", ".join(f"c.{c}" for c in RESULT_COLUMNS)
    order = "sep_arcsec, c.name" if cone else "c.name"
    fam = "f.class" if s.family else "NULL::text"
    return (f"SELECT {cols}, {prob} AS probability, {sep} AS sep_arcsec, {fam} AS family_class "
            f"FROM catalog.source_class c{s.join()} WHERE {where} ORDER BY {order} "
            "LIMIT :lim OFFSET :off", {**params, "lim": limit, "off": offset})


def search(conn: Connection, s: Search, *, limit: int, offset: int = 0,
           count: bool = True) -> tuple[list[dict], int | None]:
    """One page of matching sources (ordered by separation for a cone, else by name) and
    the total number of matches (None unless ``count``)."""
    sql, page_params = search_sql(s, limit=limit, offset=offset)
    rows = conn.execute(text(sql), page_params).mappings().all()
    where, params, _ = s.where()
    join = s.join()
    total = None
    if count:
        total = conn.execute(text(
            f"SELECT count(*) FROM catalog.source_class c{join} WHERE {where}"),
            params).scalar_one()
    return [dict(r) for r in rows], total


def source(conn: Connection, name: str) -> dict | None:
    """Everything the source page shows, or None for an unknown name."""
    src = conn.execute(text("SELECT * FROM catalog.source WHERE name = :n"),
                       {"n": name}).mappings().first()
    if src is None:
        return None
    sid = src["source_id"]
    current = conn.execute(text("SELECT * FROM catalog.source_class WHERE source_id = :s"),
                           {"s": sid}).mappings().first()
    dets = conn.execute(text(
        "SELECT c.*, d.gti_mjd_obs, d.hard_hm, d.hard_hs, d.hard_ms, d.flux_aper_b "
        "FROM catalog.detection_class c JOIN catalog.detection d USING (detection_id) "
        "WHERE c.source_id = :s ORDER BY c.obsid, c.obi, c.region_id"),
        {"s": sid}).mappings().all()
    unclassified = conn.execute(text(
        "SELECT d.obsid, d.obi, d.region_id, d.gti_mjd_obs FROM catalog.detection d "
        "WHERE d.source_id = :s AND NOT EXISTS (SELECT 1 FROM catalog.detection_class c "
        "WHERE c.detection_id = d.detection_id) ORDER BY d.obsid, d.obi, d.region_id"),
        {"s": sid}).mappings().all()
    history = conn.execute(text(
        "SELECT valid_from, valid_to, model_id, adopted_class, agg_adopted_class, label_origin, "
        "master_class, hard_class, soft_class, ambiguous, n_detections, simbad_otype "
        "FROM catalog.source_class_history WHERE source_id = :s ORDER BY valid_from"),
        {"s": sid}).mappings().all()
    return {"source": dict(src), "current": dict(current) if current else None,
            "detections": [dict(r) for r in dets],
            "unclassified": [dict(r) for r in unclassified],
            "history": [dict(r) for r in history]}


def source_families(conn: Connection, source_id: int) -> list[dict]:
    """The source's current result of every family (``catalog.source_class_by_family``),
    in the order of ``classifier.FAMILIES`` (ctl first), each with ``probabilities``: every
    class of its model (``catalog.source_family_probability``, in taxonomy order: class,
    probability, lo, hi)."""
    rows = conn.execute(text(
        "SELECT family, model_id, catalog_version, class, coarse_class, probability, "
        "probability_lo, probability_hi, outlier, n_detections, reason, label_set "
        "FROM catalog.source_class_by_family WHERE source_id = :s "
        "ORDER BY array_position(CAST(:order AS text[]), family), family"),
        {"s": source_id, "order": list(FAMILIES)}).mappings().all()
    probs = conn.execute(text(
        "SELECT family, class, probability, probability_lo, probability_hi "
        "FROM catalog.source_family_probability WHERE source_id = :s "
        "ORDER BY family, class_index"), {"s": source_id}).mappings().all()
    by_family: dict[str, list[dict]] = {}
    for p in probs:
        by_family.setdefault(p["family"], []).append(dict(p))
    return [{**dict(r), "probabilities": by_family.get(r["family"], [])} for r in rows]


def consensus(families: list[dict], adopted_coarse_class: str | None) -> dict | None:
    """The families' coarse-class vote of one source, by the rules of
    ``catalog.source_consensus`` (computed here from the source's own rows: that view
    aggregates the whole catalog before it can be filtered by source)."""
    coarse = {f["family"]: f["coarse_class"] for f in families if f["coarse_class"] is not None}
    if not coarse:
        return None
    votes: dict[str, int] = {}
    for c in coarse.values():
        votes[c] = votes.get(c, 0) + 1
    top = max(votes.values())
    leaders = sorted(c for c, n in votes.items() if n == top)
    return {"coarse_by_family": coarse, "n_families": len(coarse),
            "majority_class": leaders[0] if len(leaders) == 1 else None, "n_agree": top,
            "disagreement": len(votes) > 1, "all_agree": top == len(coarse),
            "adopted_coarse_class": adopted_coarse_class}


def coarse_class(cls: str | None) -> str | None:
    """``cls`` on the coarse taxonomy (``unknown`` if it has none): the table every publish
    copies into ``catalog.coarse_class``, which the reader role cannot read."""
    from classifier.families.taxonomy import COARSE_OF

    return None if cls is None else COARSE_OF.get(cls, "unknown")


def counterparts(conn: Connection, name: str) -> list[dict]:
    """Every counterpart candidate of the source (``catalog.counterpart``), per catalogue
    (Gaia, 2MASS, AllWISE), the chosen one first, then by p_i and separation."""
    rows = conn.execute(text(
        "SELECT catalogue, counterpart_id, ra, dec, separation_arcsec, sigma_arcsec, p_any, "
        "p_i, chosen, g_mag, bp_mag, rp_mag, parallax, pm, j_mag, h_mag, k_mag, w1_mag, "
        "w2_mag, w3_mag, fetched_at FROM catalog.counterpart WHERE name = :n "
        "ORDER BY array_position(ARRAY['gaia', '2mass', 'allwise'], catalogue), "
        "chosen DESC, p_i DESC, separation_arcsec, counterpart_id"),
        {"n": name}).mappings().all()
    return [dict(r) for r in rows]


def families_present(conn: Connection) -> list[str]:
    """The families with an active model (what the search's family selector offers)."""
    return list(conn.execute(text(
        "SELECT family FROM catalog.model_version WHERE status = 'active' "
        "ORDER BY family = 'ctl' DESC, family")).scalars())


def source_name(conn: Connection, source_id: int) -> str | None:
    return conn.execute(text("SELECT name FROM catalog.csc_source WHERE source_id = :s"),
                        {"s": source_id}).scalar_one_or_none()


def latest_version(conn: Connection) -> int | None:
    return conn.execute(text(
        "SELECT max(catalog_version) FROM catalog.catalog_version")).scalar_one()


def sky_points(conn: Connection) -> dict[str, np.ndarray]:
    """Every classified source: ``source_id`` (int64), ``ra``, ``dec`` (float64) and
    ``cls`` (the aggregated adopted class, '' when none), in one array each."""
    cur = conn.connection.driver_connection.cursor()
    try:
        cur.execute("SELECT c.source_id, c.ra, c.dec, coalesce(c.agg_adopted_class, '') "
                    "FROM catalog.source_class c")
        rows = cur.fetchall()
    finally:
        cur.close()
    if not rows:
        return {"source_id": np.zeros(0, "int64"), "ra": np.zeros(0), "dec": np.zeros(0),
                "cls": np.zeros(0, dtype=object)}
    sid, ra, dec, cls = zip(*rows, strict=True)
    return {"source_id": np.asarray(sid, "int64"), "ra": np.asarray(ra, "float64"),
            "dec": np.asarray(dec, "float64"), "cls": np.asarray(cls, dtype=object)}


def models(conn: Connection) -> list[dict]:
    rows = conn.execute(text(
        "SELECT model_id, created_at, status, promoted_at, n_detections, n_labeled, params, "
        "validation, note FROM catalog.model_version ORDER BY model_id")).mappings().all()
    return [dict(r) for r in rows]


def model(conn: Connection, model_id: int) -> dict | None:
    row = conn.execute(text("SELECT * FROM catalog.model_version WHERE model_id = :m"),
                       {"m": model_id}).mappings().first()
    return dict(row) if row else None


def versions(conn: Connection) -> list[dict]:
    rows = conn.execute(text(
        "SELECT catalog_version, created_at, model_id, counts, note "
        "FROM catalog.catalog_version ORDER BY catalog_version")).mappings().all()
    return [dict(r) for r in rows]


def class_changes(conn: Connection, a: int, b: int, *, limit: int,
                  offset: int = 0) -> tuple[list[dict], int]:
    """Sources whose adopted class differs between versions ``a`` and ``b`` (one page)."""
    rows = conn.execute(text(
        "SELECT name, from_class, to_class, from_origin, to_origin "
        "FROM catalog.class_changes(:a, :b) ORDER BY name LIMIT :lim OFFSET :off"),
        {"a": a, "b": b, "lim": limit, "off": offset}).mappings().all()
    total = conn.execute(text("SELECT count(*) FROM catalog.class_changes(:a, :b)"),
                         {"a": a, "b": b}).scalar_one()
    return [dict(r) for r in rows], total


def change_counts(conn: Connection, a: int, b: int) -> list[dict]:
    """How many sources went from each class to each other between ``a`` and ``b``."""
    rows = conn.execute(text(
        "SELECT coalesce(from_class, '(none)') AS from_class, "
        "coalesce(to_class, '(none)') AS to_class, count(*) AS n "
        "FROM catalog.class_changes(:a, :b) GROUP BY 1, 2 ORDER BY n DESC, 1, 2"),
        {"a": a, "b": b}).mappings().all()
    return [dict(r) for r in rows]


def feature_sample(conn: Connection, x: str, y: str, *, limit: int) -> dict[str, np.ndarray]:
    """Up to ``limit`` detections with both features, and their source's aggregated adopted
    class (a deterministic sample spread over the table)."""
    if x not in FEATURES or y not in FEATURES:
        raise ValueError(f"unknown feature {x if x not in FEATURES else y!r}")
    top = conn.execute(text("SELECT max(detection_id) FROM catalog.detection")).scalar_one()
    step = max(1, (top or 0) // (2 * limit))  # every step-th detection: spread, no sort
    rows = conn.execute(text(
        f"SELECT d.{x} AS x, d.{y} AS y, c.agg_adopted_class AS cls, c.name "
        f"FROM catalog.detection d JOIN catalog.source_class c USING (source_id) "
        f"WHERE d.{x} IS NOT NULL AND d.{y} IS NOT NULL AND c.agg_adopted_class IS NOT NULL "
        f"AND d.detection_id % :step = 0 LIMIT :lim"), {"lim": limit, "step": step}).all()
    if not rows:
        return {"x": np.zeros(0), "y": np.zeros(0), "cls": np.zeros(0, dtype=object),
                "name": np.zeros(0, dtype=object)}
    xs, ys, cls, names = zip(*rows, strict=True)
    return {"x": np.asarray(xs, "float64"), "y": np.asarray(ys, "float64"),
            "cls": np.asarray(cls, dtype=object), "name": np.asarray(names, dtype=object)}


def reader_identity(conn: Connection) -> dict:
    """Who the connection is: role name, superuser flag, transaction read-only mode."""
    row = conn.execute(text(
        "SELECT current_user AS role, r.rolsuper AS superuser, "
        "current_setting('transaction_read_only') AS read_only "
        "FROM pg_roles r WHERE r.rolname = current_user")).mappings().one()
    return dict(row)
