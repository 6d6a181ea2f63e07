"""What the calibration scripts share: where the real data lies, the run (input present?
statistics written as compact JSON) and rounding that keeps the JSON small."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: ``../shared/data`` beside the project (never copied into it).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def sig(a, digits: int = 5) -> list:
    """Rounded to ``digits`` significant digits (keeps the JSON small)."""
    return np.vectorize(lambda v: float(f"{v:.{digits}g}"))(np.asarray(a, "float64")).tolist()


def run(argv: list[str], default: Path, calibrate: Callable[[Path], dict], out: Path, *,
        probe: str | None = None) -> int:
    """``python -m ingest.calibrate_…``: ``calibrate`` of ``argv[1]`` (else ``default``)
    written to ``out``; 1, keeping ``out``, when the input (or its file ``probe``) is absent."""
    src = Path(argv[1]) if len(argv) > 1 else default
    if not (src / probe if probe else src).exists():
        print(f"{src} not found; keeping {out}", file=sys.stderr)
        return 1
    out.write_text(json.dumps(calibrate(src), separators=(",", ":")) + "\n")
    print(f"wrote {out}")
    return 0
