"""Benchmark of the classifier families: predict 400,000 sources (target <= 60 s on 2 cores).

Usage::

    python benchmarks/bench_families.py [--size 400000] [--repeat 3] [--families ctl,gbm]
        [--data ../shared/data] [--out benchmarks/results/families.json]

Each family is fitted once on a real labelled set (``ctl`` on the CSC 2.1 file, the others on
MUWCLASS's training set, with the parameters of ``classifier.compare``); the prediction input
is ``--size`` rows drawn with replacement from that set (so values, missing counterparts and
errors are realistic). Time: wall clock of ``predict`` only (``muwclass`` includes its Monte
Carlo draws; their number is in the row), median of ``--repeat`` runs, with process CPU time
alongside (on a shared machine wall time also counts waiting for the CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import RESULTS, machine, row, table, with_target, write_json  # noqa: E402

TARGET_S = 60.0


def run(
    size: int, repeat: int, families: list[str], data: Path, draws: int | None = None
) -> list[dict]:
    import numpy as np

    from classifier.compare import PARAMS
    from classifier.families import FAMILIES, save
    from classifier.families.datasets import load_csc21, load_muwclass_td

    X_csc, y_csc = load_csc21(data / "csc21_sources_simbad.csv")
    X_mw, y_mw = load_muwclass_td(data / "muwclass_td")
    rng = np.random.default_rng(0)
    rows = []
    for name in families:
        ds, X, y = ("csc21", X_csc, y_csc) if name == "ctl" else ("muwclass_td", X_mw, y_mw)
        params = dict(PARAMS[ds][name])
        if name == "muwclass" and draws is not None:
            params["n_draws"] = draws
        model = FAMILIES[name](**params)
        t0 = time.perf_counter()
        model.fit(X, y.astype("object").where(y.notna(), None))
        fit_s = time.perf_counter() - t0
        big = X.iloc[rng.integers(0, len(X), size)]
        walls, cpus = [], []
        for _ in range(repeat):
            c0, t0 = time.process_time(), time.perf_counter()
            model.predict(big)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        extra = {"family": name, "fit_on": ds, "fit_s": fit_s, "model_bytes": len(save(model)),
                 "cpu_s_median": sorted(cpus)[len(cpus) // 2]}  # fmt: skip
        if name == "muwclass":
            extra["mc_draws"] = model._draws()
        if name == "gbm":
            n_cls = len(model.classes_)
            extra["trees"] = int(model.n_iter_) * (1 if n_cls == 2 else n_cls)
        rows.append(with_target(row(f"{name} predict", "s", size, walls, **extra), "<=", TARGET_S))
        print(table(rows[-1:]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    from classifier.compare import DEFAULT_DATA
    from classifier.families import FAMILIES

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=400_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--draws", type=int, help="muwclass Monte Carlo draws (default: compare's)")
    ap.add_argument("--out", type=Path, default=RESULTS / "families.json")
    a = ap.parse_args(argv)
    rows = run(a.size, a.repeat, [f for f in a.families.split(",") if f], a.data, a.draws)
    print()
    print(table(rows))
    write_json(a.out, {"machine": machine(), "figures": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
