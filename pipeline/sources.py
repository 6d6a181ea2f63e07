"""Where data comes from: the live CSC/SIMBAD services, or the bundled sample (no network)."""

from __future__ import annotations

from functools import lru_cache

from db.settings import Settings
from ingest.csc_tap import CscTapClient
from ingest.sample import Sample, generate_sample
from ingest.sample_source import SampleCsc, SampleSimbad
from ingest.simbad import SimbadXMatch

#: The bundled sample: size and seed of the generated catalog the demo and tests use.
SAMPLE_SOURCES = 4000
SAMPLE_SEED = 2024


@lru_cache(maxsize=4)
def sample(n_sources: int = SAMPLE_SOURCES, seed: int = SAMPLE_SEED) -> Sample:
    """The deterministic sample catalog (generated, never downloaded)."""
    return generate_sample(n_sources, seed=seed)


def csc_source(settings: Settings, source: str = "tap"):
    """``tap``: the CSC TAP service of the settings; ``sample``: the bundled sample."""
    if source == "sample":
        return SampleCsc(sample())
    if source == "tap":
        return CscTapClient.from_settings(settings)
    raise ValueError(f"unknown data source {source!r}: expected 'tap' or 'sample'")


def simbad_source(settings: Settings, source: str = "tap", epoch: int = 1):
    """``tap``: CDS X-Match against SIMBAD; ``sample``: the sample's SIMBAD snapshot."""
    if source == "sample":
        return SampleSimbad(sample(), epoch=epoch)
    if source == "tap":
        return SimbadXMatch.from_settings(settings)
    raise ValueError(f"unknown data source {source!r}: expected 'tap' or 'sample'")
