"""The one place for the classes, their aggregation and the SIMBAD object-type mapping.

SIMBAD spellings handled:

* current long labels (SIMBAD since 2022-07, e.g. ``OrionV*``, ``TTauri*``, ``HighMassXBin``),
* short (condensed) codes as returned by the TAP column ``basic.otype`` (``Or*``, ``TT*``,
  ``HXB``, ...),
* the 2022 labels used by the paper (the class names themselves, e.g. ``Orion_V*``).

Matching is exact after stripping surrounding whitespace (``Blue`` and ``blue`` are both listed
explicitly). Candidates (``QSO_Candidate``, ``Y*?``, ...) are *other*, as in the paper.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd

#: The paper's 10 classes, in model/column order.
CLASSES: list[str] = [
    "QSO",
    "AGN",
    "Seyfert_1",
    "Seyfert_2",
    "HMXB",
    "LMXB",
    "XB",
    "YSO",
    "TTau*",
    "Orion_V*",
]

#: Fine class -> aggregated class.
AGGREGATION: dict[str, str] = {
    "QSO": "AGN",
    "AGN": "AGN",
    "Seyfert_1": "Seyfert",
    "Seyfert_2": "Seyfert",
    "HMXB": "XB",
    "LMXB": "XB",
    "XB": "XB",
    "YSO": "YSO",
    "TTau*": "YSO",
    "Orion_V*": "YSO",
}

#: Aggregated classes, in order.
AGG_CLASSES: list[str] = ["AGN", "Seyfert", "XB", "YSO"]

#: Paper's names for the aggregated classes (Fig. 5).
AGG_DESCRIPTION: dict[str, str] = {
    "AGN": "large accretors",
    "Seyfert": "Seyfert galaxies",
    "XB": "small accretors",
    "YSO": "young stars",
}

_LONG = {
    "QSO": "QSO",
    "AGN": "AGN",
    "Seyfert1": "Seyfert_1",
    "Seyfert2": "Seyfert_2",
    "HighMassXBin": "HMXB",
    "LowMassXBin": "LMXB",
    "XrayBin": "XB",
    "YSO": "YSO",
    "TTauri*": "TTau*",
    "OrionV*": "Orion_V*",
}
_SHORT = {
    "QSO": "QSO",
    "AGN": "AGN",
    "Sy1": "Seyfert_1",
    "Sy2": "Seyfert_2",
    "HXB": "HMXB",
    "LXB": "LMXB",
    "XB": "XB",
    "XB*": "XB",  # pre-2022 condensed code for X-ray binary
    "Y*O": "YSO",
    "TT*": "TTau*",
    "Or*": "Orion_V*",
}
_LEGACY = {c: c for c in CLASSES}

#: Every known SIMBAD spelling -> class.
SIMBAD_TO_CLASS: dict[str, str] = {**_LEGACY, **_SHORT, **_LONG}

#: Uninformative SIMBAD types (long, short and legacy spellings): such detections are unlabeled.
UNINFORMATIVE: frozenset[str] = frozenset(
    {
        "Star", "*",
        "X",
        "Radio", "Rad",
        "IR", "Infrared",
        "Blue", "blue", "blu",
        "UV",
        "gamma", "gam",
        "PartofG", "PoG",
        "**",
    }
)  # fmt: skip


class OtypeKind(StrEnum):
    """What a SIMBAD type means for the classifier."""

    REFERENCE = "reference"  # one of the 10 classes: a labeled (training) detection
    UNLABELED = "unlabeled"  # uninformative or no SIMBAD match: classified by the model
    OTHER = "other"  # any other known type: neither a reference nor classified


def _clean(otypes: pd.Series) -> pd.Series:
    s = pd.Series(otypes, copy=False).astype("string").str.strip()
    return s.mask(s == "")


def simbad_to_class(otypes: pd.Series) -> pd.Series:
    """Map SIMBAD object types to the paper's classes; anything else gives ``<NA>``."""
    s = _clean(otypes)
    return s.map(SIMBAD_TO_CLASS).astype("string")


def otype_kind(otypes: pd.Series) -> pd.Series:
    """Return the :class:`OtypeKind` value (as a string) of each SIMBAD type.

    Missing/empty types are ``"unlabeled"`` (no SIMBAD match).
    """
    s = _clean(otypes)
    kind = np.full(len(s), OtypeKind.OTHER.value, dtype=object)
    missing = s.isna().to_numpy()
    kind[s.isin(list(UNINFORMATIVE)).fillna(False).to_numpy(bool) | missing] = (
        OtypeKind.UNLABELED.value
    )
    kind[s.isin(list(SIMBAD_TO_CLASS)).fillna(False).to_numpy(bool)] = OtypeKind.REFERENCE.value
    return pd.Series(kind, index=s.index, dtype="string")


def classify_otype(otype: str | None) -> OtypeKind:
    """Scalar version of :func:`otype_kind`."""
    return OtypeKind(otype_kind(pd.Series([otype], dtype="object")).iloc[0])


def aggregate(classes: pd.Series) -> pd.Series:
    """Map fine classes to aggregated classes (``<NA>`` stays ``<NA>``)."""
    return pd.Series(classes, copy=False).astype("string").map(AGGREGATION).astype("string")
