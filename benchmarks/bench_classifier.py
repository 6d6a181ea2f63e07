"""Benchmark of the classifier: fit and predict_proba wall time and peak memory.

Usage::

    python benchmarks/bench_classifier.py [--sizes 10000 20000 100000 1000000] [--repeat 3]
        [--reference-max 20000] [--out benchmarks/results/classifier.json]

Every measurement runs in a fresh subprocess (so one measurement's allocations cannot hide
another's). Time: wall clock (``time.perf_counter``) around the call only; data generation and
(for predict) the fit are outside it. Memory: a *separate* run of the same call under
``tracemalloc`` (numpy registers its buffers with tracemalloc), reporting the peak of memory
allocated during the call, so it excludes the input data frame; the increase of the process'
resident set during the call is reported too (Linux: RSS high-water mark reset through
``/proc/self/clear_refs`` just before the call, ``VmHWM - VmRSS`` after; this also sees memory
allocated outside Python's tracing, e.g. by BLAS, but not memory reused from freed pages).

The "reference-style" figure times the published code's way
of computing d², the diagonal of the full n x n matrix (X - mu) P (X - mu)^T per cluster and
class, on the same fitted model, at sizes up to ``--reference-max`` only.

The module exposes ``run(sizes, repeat) -> list[dict]`` for a single benchmark runner.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FEATURES = [
    "hard_hm", "hard_hs", "hard_ms", "powlaw_gamma", "bb_kt", "var_prob_b", "var_ratio_b",
    "var_prob_h", "var_ratio_h", "var_prob_s", "var_ratio_s", "var_newq_b",
]  # fmt: skip


def synthetic(n: int, seed: int = 0, labeled_fraction: float = 0.3):
    """Class-conditional Gaussians in a latent space mapped to plausible CSC feature ranges."""
    import numpy as np
    import pandas as pd

    from classifier.taxonomy import CLASSES

    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(12345).normal(0, 1.0, (len(CLASSES), len(FEATURES)))
    cls = rng.integers(0, len(CLASSES), n)
    Z = centers[cls] + rng.normal(0, 0.8, (n, len(FEATURES)))
    X = pd.DataFrame(index=pd.RangeIndex(n))
    for j, f in enumerate(FEATURES):
        z = Z[:, j]
        if f.startswith("hard_"):
            X[f] = np.tanh(z / 2)
        elif f == "powlaw_gamma":
            X[f] = np.clip(2 + z, 0.0, 10.0)
        elif f.startswith("var_prob"):
            X[f] = 1 / (1 + np.exp(-2 * z))
        elif f == "var_newq_b":
            X[f] = np.exp(0.3 * z)
        else:  # bb_kt, var_ratio_*: positive, long-tailed, some exact zeros
            v = np.exp(z - 1)
            v[rng.random(n) < 0.01] = 0.0
            X[f] = v
    y = pd.Series(np.array(CLASSES, dtype=object)[cls], index=X.index)
    y[rng.random(n) >= labeled_fraction] = None
    return X, y


def reference_d2(model, X):
    """The published code's way: per cluster and class, the diagonal of an n x n matrix."""
    import numpy as np

    A = X[model.features_].to_numpy(dtype="float64")
    Z = model.transform_.transform(A)
    k = model.gmm_.predict(Z)
    for kk in range(model.n_components):
        Zk = Z[k == kk]
        for c in np.flatnonzero(model.usable_[kk]):
            D = Zk - model.class_means_[kk, c]
            np.diag(D @ model.class_pinv_[kk, c] @ D.T)


def _child(figure: str, n: int, mem: bool, model_path: str) -> dict:
    """One measurement in this (fresh) process."""
    import resource
    import time
    import tracemalloc

    from benchmarks.common import reset_hwm, status_kb
    from classifier import ClusterThenLabel

    if figure == "fit":
        X, y = synthetic(n)
    else:
        model = ClusterThenLabel.from_dict(json.loads(Path(model_path).read_text()))
        X_new, _ = synthetic(n, seed=1)
    calls = {
        "fit": lambda: ClusterThenLabel(features=FEATURES).fit(X, y),
        "predict_proba": lambda: model.predict_proba(X_new),
        "reference_d2": lambda: reference_d2(model, X_new),
    }
    fn = calls[figure]
    if mem:
        rss0 = status_kb("VmRSS")
        hwm_reset = reset_hwm()
        tracemalloc.start()
        fn()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        if hwm_reset:
            hwm = status_kb("VmHWM")
        else:  # fallback: whole-process high-water mark
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"peak_bytes": peak, "rss_increase_bytes": max(hwm - rss0, 0) * 1024}
    t0 = time.perf_counter()
    fn()
    return {"seconds": time.perf_counter() - t0}


def _measure(figure: str, n: int, mem: bool, model_path: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    here = str(Path(__file__).parent)
    code = (
        f"import json, sys; sys.path.insert(0, {here!r}); import bench_classifier as b; "
        f"print(json.dumps(b._child({figure!r}, {n}, {mem!r}, {model_path!r})))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def machine() -> dict:
    import numpy
    import sklearn

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
    }


def _row(figure, unit, n, values, mach):
    return {
        "figure": figure,
        "unit": unit,
        "size": n,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
        "machine": mach,
    }


PREDICT_MODEL_ROWS = 100_000


def _predict_model(path: Path) -> None:
    """The model the predict figures apply: fitted once on 100,000 synthetic detections."""
    from classifier import ClusterThenLabel

    X, y = synthetic(PREDICT_MODEL_ROWS, seed=0)
    model = ClusterThenLabel(features=FEATURES).fit(X, y)
    path.write_text(json.dumps(model.to_dict()))


def run(sizes, repeat: int = 3, reference_max: int = 20_000, log=print) -> list[dict]:
    """Measure every figure at every size; one dict per (figure, size).

    ``fit`` fits on ``size`` synthetic detections (30% labeled); ``predict_proba`` and
    ``reference_d2`` apply a model fitted on 100,000 synthetic detections to ``size`` new ones.
    """
    import tempfile

    mach = machine()
    rows = []
    tmp = tempfile.TemporaryDirectory()
    model_path = Path(tmp.name) / "model.json"
    _predict_model(model_path)
    for n in sizes:
        figures = ["fit", "predict_proba"] + (["reference_d2"] if n <= reference_max else [])
        for fig in figures:
            secs = [_measure(fig, n, False, str(model_path))["seconds"] for _ in range(repeat)]
            rows.append(_row(f"{fig}_time", "s", n, secs, mach))
            log(f"{fig:>14} n={n:>9,}  time median {statistics.median(secs):8.3f} s  {secs}")
            mems = [_measure(fig, n, True, str(model_path)) for _ in range(repeat)]
            peak = [m["peak_bytes"] / 2**20 for m in mems]
            rss = [m["rss_increase_bytes"] / 2**20 for m in mems]
            rows.append(_row(f"{fig}_peak_traced", "MiB", n, peak, mach))
            rows.append(_row(f"{fig}_rss_peak_increase", "MiB", n, rss, mach))
            log(
                f"{fig:>14} n={n:>9,}  traced peak {statistics.median(peak):8.1f} MiB  "
                f"RSS peak increase {statistics.median(rss):8.1f} MiB"
            )
    tmp.cleanup()
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'figure':<30}{'size':>10}{'median':>12}{'min':>12}{'max':>12} unit runs"]
    for r in rows:
        lines.append(
            f"{r['figure']:<30}{r['size']:>10}{r['median']:>12.3f}{r['min']:>12.3f}"
            f"{r['max']:>12.3f} {r['unit']:<4} {r['runs']}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=[10_000, 20_000, 100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reference-max", type=int, default=20_000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "classifier.json"))
    args = ap.parse_args(argv)
    rows = run(args.sizes, args.repeat, args.reference_max)
    print(table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
