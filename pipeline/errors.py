"""Errors of the pipeline steps that the CLI shows as one line (no heavy imports here)."""

from __future__ import annotations


class RefitError(ValueError):
    """A refit that cannot fit a model on the catalog's detections; says why."""


class PublishError(ValueError):
    """A publish the settings do not allow (e.g. a primary family whose classes are not the
    catalog's); says which setting and what it accepts."""
