"""Wall-clock laps of the steps inside a pipeline call, for the benchmarks.

``with recording() as laps: publish(...)`` collects ``{step: seconds}`` of every
``with step("name"):`` block the call runs in this context (thread); outside ``recording`` a
step costs one context-variable lookup and records nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_LAPS: ContextVar[dict[str, float] | None] = ContextVar("cscat_step_laps", default=None)


@contextmanager
def recording() -> Iterator[dict[str, float]]:
    """Collect the laps of the steps run inside; yields the dict being filled."""
    laps: dict[str, float] = {}
    token = _LAPS.set(laps)
    try:
        yield laps
    finally:
        _LAPS.reset(token)


@contextmanager
def step(name: str) -> Iterator[None]:
    """Time this block as ``name`` (added up when the same name runs again)."""
    laps = _LAPS.get()
    if laps is None:
        yield
        return
    t0 = time.perf_counter()
    try:
        yield
    finally:
        laps[name] = laps.get(name, 0.0) + time.perf_counter() - t0
