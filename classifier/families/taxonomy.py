"""The coarse taxonomy every family's classes map onto: the one place for that mapping.

Families are trained on different label sets with different class lists (the paper's ten
SIMBAD classes, MUWCLASS's eight or nine, a curated set). To compare them, each class name
maps onto one coarse class: ``AGN`` (active galaxies, QSOs, Seyferts), ``XRB`` (X-ray
binaries), ``YSO`` (young stars), ``STAR`` (other stars), ``CV`` (cataclysmic variables),
``NS`` (isolated neutron stars and pulsars, neutron-star binaries) and ``unknown`` (any class
not listed here). ``catalog.coarse_class`` is a copy of :data:`COARSE_OF` for SQL, synced by
every publish.
"""

from __future__ import annotations

import pandas as pd

#: The coarse classes, in display order.
COARSE_CLASSES: list[str] = ["AGN", "XRB", "YSO", "STAR", "CV", "NS", "unknown"]
UNKNOWN = "unknown"

#: Family class name -> coarse class (the paper's ten SIMBAD classes, MUWCLASS's classes).
COARSE_OF: dict[str, str] = {
    # the paper's classes (SIMBAD labels, classifier.taxonomy.CLASSES)
    "QSO": "AGN", "AGN": "AGN", "Seyfert_1": "AGN", "Seyfert_2": "AGN",
    "HMXB": "XRB", "LMXB": "XRB", "XB": "XRB",
    "YSO": "YSO", "TTau*": "YSO", "Orion_V*": "YSO",
    # their aggregation (classifier.taxonomy.AGG_CLASSES)
    "Seyfert": "AGN",
    # MUWCLASS's classes (classifier.families.datasets.MUWCLASS_CLASSES, and NS_BIN)
    "CV": "CV", "HM-STAR": "STAR", "LM-STAR": "STAR", "NS": "NS", "NS_BIN": "NS",
}  # fmt: skip


def coarse(classes: pd.Series) -> pd.Series:
    """Coarse class of each family class (``unknown`` when unmapped; <NA> stays <NA>)."""
    s = pd.Series(classes, copy=False).astype("string")
    return s.map(COARSE_OF).fillna(UNKNOWN).where(s.notna()).astype("string")


def coarse_table() -> pd.DataFrame:
    """:data:`COARSE_OF` as rows (class, coarse_class) for ``catalog.coarse_class``."""
    return pd.DataFrame({"class": list(COARSE_OF), "coarse_class": list(COARSE_OF.values())})
