"""Errors of the pipeline steps that the CLI shows as one line (no heavy imports here)."""

from __future__ import annotations


class RefitError(ValueError):
    """A refit that cannot fit a model on the catalog's detections; says why."""
