"""Wall time of a pipeline command on a small catalog, Prefect included (issue 14: <= 3 s).

``cscat db start`` (embedded PostgreSQL, the persistent Prefect server and the command
server) in a temporary data directory, ``cscat demo`` (the bundled sample, two epochs), then
``cscat reclassify`` with nothing to do, as a user runs it (a subprocess): through the
command server, and for comparison in-process (``CSCAT_COMMAND_SERVER=0``: imports Prefect,
pandas and scikit-learn itself). Each run is a real Prefect flow run on the persistent server.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, row

COMMAND = ["reclassify"]


def _cscat(args: list[str], env: dict) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall s, CPU s of the cscat process itself, result)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "cscat", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        raise RuntimeError(f"cscat {' '.join(args)} failed: {out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out


def _children(data: Path) -> list[float]:
    """CPU seconds of each command the command server ran, from its log."""
    log = (data / "cmdserver.log").read_text(errors="replace")
    return [float(x) for x in re.findall(r"child \d+ ended \([^)]*\), CPU ([0-9.]+) s", log)]


def run(repeat: int = 5, log=print) -> list[dict]:
    root = Path(tempfile.mkdtemp(prefix="csb-"))  # short: the socket path is limited
    data = root / "d"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CSCAT_"))}
    env.update(CSCAT_DATA_DIR=str(data), CSCAT_CONFIG=str(root / "none.toml"),
               PYTHONPATH=str(ROOT))
    try:
        start_s, _, started = _cscat(["db", "start"], env)
        if "command server started" not in started.stdout:
            raise RuntimeError(f"no command server: {started.stdout}")
        log(f"db start {start_s:.1f} s")
        demo_s, _, _ = _cscat(["demo"], env)
        log(f"demo {demo_s:.1f} s")
        n = int(_cscat(["sql", "SELECT count(*) FROM catalog.detection_class", "--format",
                        "csv"], env)[2].stdout.split()[-1])  # detections (with a class)
        rows = []
        for label, extra in (("", {}), ("_in_process", {"CSCAT_COMMAND_SERVER": "0"})):
            walls, cpus, loads, child_cpus = [], [], [], []
            for _ in range(repeat):
                served = len(_children(data))
                wall, cpu, _ = _cscat(COMMAND, {**env, **extra})
                walls.append(wall)
                cpus.append(cpu)
                loads.append(os.getloadavg()[0])
                deadline = time.monotonic() + 10
                while not label and len(_children(data)) == served \
                        and time.monotonic() < deadline:
                    time.sleep(0.1)  # the server logs its child's CPU when it reaps it
                child_cpus += _children(data)[served:]
            log(f"cscat {' '.join(COMMAND)}{label}: median {sorted(walls)[len(walls) // 2]:.2f}"
                f" s wall, load {loads[-1]:.1f}")
            rows.append({**row(f"pipeline_command_wall_time{label}", "s", n, walls),
                         "command": f"cscat {' '.join(COMMAND)} (nothing to do)",
                         "path": "command server" if not label else "in-process",
                         "client_cpu_s_median": sorted(cpus)[len(cpus) // 2],
                         **({"server_child_cpu_s_median":
                             sorted(child_cpus)[len(child_cpus) // 2]} if child_cpus else {}),
                         "load_1min": [round(x, 2) for x in loads],
                         "db_start_s": round(start_s, 1)})
        return rows
    finally:
        subprocess.run([sys.executable, "-m", "cscat", "db", "stop"], env=env, cwd=ROOT,
                       capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import json

    from benchmarks.common import table

    rows = run(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    print(table(rows))
    print(json.dumps(rows, indent=1))
