"""cscat classifier: the cluster-then-label method of Pérez-Díaz et al. (2024) and the other
classifier families (``FAMILIES``: ctl, muwclass, claxboi, gbm; ``save`` / ``load``).

Pure numpy/pandas/scikit-learn; no database, no workflow engine.
"""

from .families import DEFAULT_FAMILY, FAMILIES, load, save
from .features import (
    DEFAULT_FEATURES,
    FEATURES_NO_NEWQ,
    LOG_FEATURES,
    SCALE_FEATURES,
    derive_features,
)
from .model import ClusterThenLabel, InvalidModelError, NotFittedError
from .select_k import bic_curve
from .taxonomy import (
    AGG_CLASSES,
    AGGREGATION,
    CLASSES,
    OtypeKind,
    aggregate,
    classify_otype,
    otype_kind,
    simbad_to_class,
)
from .transform import FeatureTransform
from .validation import PAPER_AGG_RECALL, format_report, validate
from .voting import cohen_kappa, master_vote

__all__ = [
    "DEFAULT_FAMILY",
    "FAMILIES",
    "load",
    "save",
    "AGGREGATION",
    "AGG_CLASSES",
    "CLASSES",
    "DEFAULT_FEATURES",
    "FEATURES_NO_NEWQ",
    "LOG_FEATURES",
    "SCALE_FEATURES",
    "ClusterThenLabel",
    "FeatureTransform",
    "InvalidModelError",
    "NotFittedError",
    "OtypeKind",
    "PAPER_AGG_RECALL",
    "aggregate",
    "bic_curve",
    "classify_otype",
    "cohen_kappa",
    "derive_features",
    "format_report",
    "master_vote",
    "otype_kind",
    "simbad_to_class",
    "validate",
]
