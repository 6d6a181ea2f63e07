"""Fixtures for ingest tests: a small deterministic sample and loopback fake services.

The ``remote_data`` marker and ``--remote-data`` option live in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.fake_services import FakeServices
from ingest.sample import Sample, generate_sample

EXAMPLE_VOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "csc21_tap_example.vot"


@pytest.fixture(scope="session")
def sample() -> Sample:
    """400 sources, 10% of detections failing the paper's cuts."""
    return generate_sample(400, seed=7, below_cut_fraction=0.1)


@pytest.fixture
def fake(sample: Sample) -> Iterator[FakeServices]:
    with FakeServices(sample) as fs:
        yield fs


@pytest.fixture
def example_vot() -> Path:
    if not EXAMPLE_VOT.exists():
        pytest.skip("../shared/data/csc21_tap_example.vot is not present")
    return EXAMPLE_VOT
