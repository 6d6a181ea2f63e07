"""Reliability suite: faults, load, bad input and security. Prints its figures at the end.

Every test takes the ``record`` fixture and calls ``record(area, case, held, detail)`` once per
case it tries; the run ends with one table (tried / held / lost per area, then each lost
case), so it says what it tried and what held, not only pass/fail. A case that did not hold
must also fail its test: ``assert record(...)``. Recording is for the report, asserting for CI.

Soak mode (by hand): ``CSCAT_SOAK=N make test`` (or ``pytest tests/reliability``) tries N
times as many cases; the ``soak`` fixture gives N (1 in CI).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import pytest

#: How many times longer a soak run tries (1 in CI).
SOAK = max(1, int(os.environ.get("CSCAT_SOAK", "1") or 1))


@dataclass(frozen=True)
class Case:
    area: str
    case: str
    held: bool
    detail: str = ""


CASES: list[Case] = []


def _record(area: str, case: str, held: bool, detail: str = "") -> bool:
    CASES.append(Case(area, case, bool(held), detail))
    return bool(held)


@pytest.fixture(scope="session")
def record() -> Callable[..., bool]:
    """``record(area, case, held, detail="") -> held``: note one tried case."""
    return _record


@pytest.fixture(scope="session")
def soak() -> int:
    """How many times as many cases to try (``CSCAT_SOAK``; 1 in CI)."""
    return SOAK


def figures_table() -> list[str]:
    """The figures as text lines: per area tried/held/lost, then the lost cases."""
    if not CASES:
        return []
    by_area: dict[str, list[Case]] = defaultdict(list)
    for c in CASES:
        by_area[c.area].append(c)
    width = max(len(a) for a in [*by_area, "total"])
    lines = [f"{'area':<{width}}  tried  held  lost"]
    for area, cases in sorted(by_area.items()):
        held = sum(c.held for c in cases)
        lines.append(f"{area:<{width}}  {len(cases):5d}  {held:4d}  {len(cases) - held:4d}")
    held = sum(c.held for c in CASES)
    lines.append(f"{'total':<{width}}  {len(CASES):5d}  {held:4d}  {len(CASES) - held:4d}")
    lines += [f"LOST {c.area}: {c.case}" + (f" ({c.detail})" if c.detail else "")
              for c in CASES if not c.held]
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = figures_table()
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
