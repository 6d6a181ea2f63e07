"""cscat classifier: the cluster-then-label method of Pérez-Díaz et al. (2024).

Pure numpy/pandas/scikit-learn; no database, no workflow engine.
"""

from .features import (
    DEFAULT_FEATURES,
    FEATURES_NO_NEWQ,
    LOG_FEATURES,
    SCALE_FEATURES,
    derive_features,
)
from .model import ClusterThenLabel, NotFittedError
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

__all__ = [
    "AGGREGATION",
    "AGG_CLASSES",
    "CLASSES",
    "DEFAULT_FEATURES",
    "FEATURES_NO_NEWQ",
    "LOG_FEATURES",
    "SCALE_FEATURES",
    "ClusterThenLabel",
    "FeatureTransform",
    "NotFittedError",
    "OtypeKind",
    "aggregate",
    "classify_otype",
    "derive_features",
    "otype_kind",
    "simbad_to_class",
]
