"""Fixtures of the counterpart tests: a small sample and the loopback fake X-Match."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingest.fake_services import FakeServices
from ingest.sample import Sample, generate_sample


@pytest.fixture(scope="session")
def cp_sample() -> Sample:
    """300 sources (Galactic and extragalactic fields), with generated counterparts."""
    return generate_sample(300, seed=11)


@pytest.fixture
def fake(cp_sample: Sample) -> Iterator[FakeServices]:
    with FakeServices(cp_sample) as fs:
        yield fs
