"""Where data comes from: the live CSC/SIMBAD services, or the bundled sample (no network)."""

from __future__ import annotations

import contextlib
import io
import socket
from functools import lru_cache
from urllib.parse import urlsplit

from db.settings import Settings
from ingest.errors import IngestError
from ingest.sample import Sample, generate_sample
from ingest.sample_source import SampleCsc, SampleSimbad

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
        from ingest.csc_tap import CscTapClient  # pyvo: imported only for the live service

        return CscTapClient.from_settings(settings)
    raise ValueError(f"unknown data source {source!r}: expected 'tap' or 'sample'")


def simbad_source(settings: Settings, source: str = "tap", epoch: int = 1):
    """``tap``: CDS X-Match against SIMBAD; ``sample``: the sample's SIMBAD snapshot."""
    if source == "sample":
        return SampleSimbad(sample(), epoch=epoch)
    if source == "tap":
        with contextlib.redirect_stdout(io.StringIO()):  # astroquery prints about `regions`
            from ingest.simbad import SimbadXMatch
        return SimbadXMatch.from_settings(settings)
    raise ValueError(f"unknown data source {source!r}: expected 'tap' or 'sample'")


def counterpart_source(settings: Settings, source: str = "tap"):
    """``tap``: CDS X-Match against Gaia DR3, 2MASS, AllWISE; ``sample``: the sample's."""
    if source == "sample":
        from ingest.sample_counterparts import SampleCounterparts

        return SampleCounterparts(sample(), settings.counterpart_density_radius_arcsec)
    if source == "tap":
        with contextlib.redirect_stdout(io.StringIO()):  # astroquery prints about `regions`
            from ingest.counterparts import CounterpartXMatch
        return CounterpartXMatch.from_settings(settings)
    raise ValueError(f"unknown data source {source!r}: expected 'tap' or 'sample'")


def csc_url(settings: Settings) -> str:
    """The CSC TAP service the settings name."""
    return settings.csc_tap_url


def xmatch_url(settings: Settings) -> str:
    """The X-Match endpoint the settings name (astroquery's when unset)."""
    with contextlib.redirect_stdout(io.StringIO()):  # astroquery prints about `regions`
        from ingest.simbad import XMATCH_URL
    return settings.xmatch_url or XMATCH_URL


def check_reachable(url: str, what: str, setting: str, timeout: float = 10.0) -> None:
    """Refuse at once, in one line, a service whose host cannot be reached (no DNS name, no
    route, connection refused, no answer within ``timeout``): before any run starts."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise IngestError(f"{what}: {setting} = {url!r} is not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise IngestError(f"cannot reach {what} at {url}: {reason} (check the network or "
                          f"the {setting} setting)") from None
