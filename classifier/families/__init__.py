"""Classifier families behind one contract (:mod:`classifier.families.base`).

``FAMILIES`` maps a family name to its estimator class. A new family is one module in this
package (a :class:`~classifier.families.base.Family` subclass) plus one line here.
"""

from __future__ import annotations

from .base import Family
from .claxboi import Claxboi
from .ctl import CTL
from .gbm import GBM
from .io import load, save
from .muwclass import MUWClass

FAMILIES: dict[str, type] = {
    "ctl": CTL,
    "muwclass": MUWClass,
    "claxboi": Claxboi,
    "gbm": GBM,
}

#: The family the catalog adopts by default (calibrated: ECE <= 0.05 on held-out data).
DEFAULT_FAMILY = "gbm"

__all__ = ["CTL", "DEFAULT_FAMILY", "FAMILIES", "GBM", "Claxboi", "Family", "MUWClass",
           "load", "save"]
