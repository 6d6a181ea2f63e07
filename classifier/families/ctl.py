"""ctl: the paper's cluster-then-label method, :class:`classifier.model.ClusterThenLabel`.

The family is the unchanged class (same numerics, same speed) plus the family contract's
declarations; it classifies detections and uses unlabelled rows (its mixture is fitted on
every row of ``X``). Saved through its own ``to_dict`` / ``from_dict`` (JSON).
"""

from __future__ import annotations

from typing import ClassVar

from sklearn.base import BaseEstimator

from ..model import ClusterThenLabel


class CTL(ClusterThenLabel, BaseEstimator):
    """Cluster-then-label (Pérez-Díaz et al. 2024); see :class:`ClusterThenLabel`."""

    name: ClassVar[str] = "ctl"
    unit: ClassVar[str] = "detection"

    def required_columns(self) -> list[str]:
        return list(self._resolved()[0])
