"""Shared machinery of the reliability suite: a fork server that runs pipeline commands in
killable child processes, kill points, the post-crash catalog check and the catalog digest.

Importing the pipeline takes ~5 s per process on a busy 2-core machine, so instead of one
``python -c`` per run (as ``tests/test_catalog_versions.py`` does with its ``KILL_SCRIPT``)
one *fork server* imports everything once and forks a fresh child for every run. A child
installs its kill point (wrappers around pipeline functions, exactly like ``KILL_SCRIPT``'s
monkeypatching: no test hook in the product code) and SIGKILLs itself when the chosen point
is reached the chosen number of times; timed kills are sent by the server after a delay.

Run as a script (``python harness.py serve``) it is the fork server: one JSON request per
stdin line, one JSON answer per stdout line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
#: ``CSCAT_SOAK`` as the ``soak`` fixture reads it, for parametrizing at collection time.
SOAK = max(1, int(os.environ.get("CSCAT_SOAK", "1") or 1))
#: application_name of every connection a child opens (to wait for them to be gone).
CHILD_APP = "cscat-reliability-child"
EPOCH1 = "2014-12-31"
#: ObsIDs per ingest chunk (small: an ingest commits several chunks, each a kill point).
CHUNK_OBSIDS = 25
#: Sources per committed chunk of the counterpart step (``pipeline.counterparts``'s is
#: 20 000: one chunk for the small sample; here several, each a kill point).
CHUNK_COUNTERPART_SOURCES = 100

#: The commands a run is made of, as ``cscat update`` runs them (flows/catalog.py's
#: update_catalog_flow without Prefect): each holds the update lock from start to end.
COMMANDS: dict[str, dict] = {
    "update1": {"until": EPOCH1, "simbad_epoch": 1, "refresh_days": None, "refit": "auto"},
    "update2": {"until": None, "simbad_epoch": 2, "refresh_days": 0, "refit": "never"},
}
#: The commands of one run, in order.
COMMANDS_RUN = ["update1", "update2"]
#: The small sample leaves whole mixture clusters without a usable class, more than the
#: default ``max_unclassifiable_share``: allowed here (the suite tests crash safety, not the
#: promotion policy, which has its own tests).
SMALL_CATALOG_SHARE = 1.0
#: Functions a kill point can follow ("after:<name>"), as module attribute paths.
WRAPPED = {
    "ingest.start_run": ("db.ingest_store", "start_run"),
    "ingest.load_detections": ("pipeline.ingest", "load_detections"),
    "ingest.record_observations": ("db.ingest_store", "record_observations"),
    "ingest.finish_run": ("db.ingest_store", "finish_run"),
    "simbad.upsert": ("db.ingest_store", "upsert_simbad"),
    "counterparts.sources": ("db.counterpart_store", "sources_for_counterparts"),
    "counterparts.neighbours": ("ingest.sample_counterparts.SampleCounterparts", "neighbours"),
    "counterparts.associate": ("pipeline.counterparts", "associate_neighbours"),
    "counterparts.store": ("db.counterpart_store", "store_counterparts"),
    "refit.fit": ("classifier.ClusterThenLabel", "fit"),
    "refit.validate": ("pipeline.classify", "validate"),
    "refit.store_model": ("db.catalog_store", "store_model"),
    "family_refit.fit": ("pipeline.families", "validate_family"),
    "family_refit.store": ("db.family_store", "store_family_model"),
    "family_refit.done": ("pipeline.families", "refit_family"),
    "publish.set_model_status": ("db.catalog_store", "set_model_status"),
    "publish.create_release": ("db.catalog_store", "create_release"),
    "publish.write_detection_results": ("db.catalog_store", "write_detection_results"),
    "family_publish.families": ("pipeline.families", "publish_families"),
    "family_publish.results": ("db.family_store", "write_family_results"),
    "publish.master_inputs": ("db.catalog_store", "master_inputs"),
    "publish.write_source_results": ("db.catalog_store", "write_source_results"),
    "publish.finish_release": ("db.catalog_store", "finish_release"),
}


# -- in the child --------------------------------------------------------------------------
def _install_points(kill: dict | None, counts: dict[str, int], pause: dict | None = None,
                    trace: list[str] | None = None) -> None:
    """Count every point; SIGKILL this process at ``kill['point']``'s ``kill['n']``-th hit.
    ``pause``: at its point's n-th hit, create the file ``pause['marker']`` and sleep
    ``pause['sleep_s']`` (the test breaks the database meanwhile).

    Points: ``after:<WRAPPED name>``, and ``before:commit`` / ``after:commit`` around every
    DBAPI commit (everything written but not committed / committed, nothing after it run).
    """
    import importlib

    import psycopg

    def hit(point: str) -> None:
        counts[point] = counts.get(point, 0) + 1
        if trace is not None:
            trace.append(point)
        if kill and kill["point"] == point and counts[point] == kill["n"]:
            os.kill(os.getpid(), signal.SIGKILL)
        if pause and pause["point"] == point and counts[point] == pause["n"]:
            Path(pause["marker"]).touch()
            time.sleep(pause["sleep_s"])

    for name, (module, attr) in WRAPPED.items():
        if "." in module and module.rsplit(".", 1)[1][0].isupper():
            mod, cls = module.rsplit(".", 1)
            owner = getattr(importlib.import_module(mod), cls)
        else:
            owner = importlib.import_module(module)
        real = getattr(owner, attr)

        def wrapper(*a, _real=real, _name=name, **k):
            out = _real(*a, **k)
            hit(f"after:{_name}")
            return out

        setattr(owner, attr, wrapper)
    real_commit = psycopg.Connection.commit

    def commit(self):
        hit("before:commit")
        real_commit(self)
        hit("after:commit")

    psycopg.Connection.commit = commit


def run_command(engine, sample, name: str) -> dict:
    """One command of ``COMMANDS`` on ``engine``, as the CLI's flow runs it."""
    from db import catalog_store as store
    from db.leftovers import writer
    from db.settings import Settings
    from ingest.sample_counterparts import SampleCounterparts
    from ingest.sample_source import SampleCsc, SampleSimbad
    from pipeline import classify, counterparts, families, ingest

    spec = COMMANDS[name]
    settings = Settings(n_components=6, random_state=42,
                        max_unclassifiable_share=SMALL_CATALOG_SHARE)
    out: dict = {}
    with writer(engine), store.update_lock(engine, wait=True):  # as flows/catalog.py does
        csc = SampleCsc(sample, chunk_size=CHUNK_OBSIDS)
        out["csc"] = ingest.ingest_csc(engine, csc, until=spec["until"]).new_detections
        ingest.ingest_simbad(engine, SampleSimbad(sample, spec["simbad_epoch"]),
                             refresh_days=spec["refresh_days"])
        cps = SampleCounterparts(sample, settings.counterpart_density_radius_arcsec)
        out["counterparts"] = counterparts.ingest_counterparts(
            engine, cps, settings, refresh_days=settings.counterpart_refresh_days).counterparts
        do_refit = spec["refit"] == "auto" and classify.needs_refit(engine, settings)[0]
        fitted = classify.refit(engine, settings) if do_refit else None
        names = families.source_families(settings) if do_refit \
            else families.needs_family_refit(engine, settings)
        fam = {f: families.refit_family(engine, settings, f) for f in names}
        promote_fam = {f: r.model_id for f, r in fam.items() if r.promote}
        promote = fitted.model_id if fitted and fitted.promote else None
        release = classify.publish(engine, settings, promote=promote,
                                   promote_families=promote_fam)
        out["release"] = release.catalog_version if release else None
    return out


def _child(request: dict, sample) -> None:
    """Body of a forked child: run the commands, write what happened, exit."""
    from sqlalchemy import create_engine

    counts: dict[str, int] = {}
    trace: list[str] = []
    _install_points(request.get("kill"), counts, trace=trace)
    result: dict = {"counts": counts, "commands": {}, "traces": {}}
    code = 0
    try:
        engine = create_engine(request["db_url"],
                               connect_args={"application_name": CHILD_APP})
        for name in request["commands"]:
            before, start = dict(counts), len(trace)
            result["commands"][name] = run_command(engine, sample, name)
            result["traces"][name] = trace[start:]
            result.setdefault("per_command", {})[name] = {
                k: v - before.get(k, 0) for k, v in counts.items() if v - before.get(k, 0)}
        engine.dispose()
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        result["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        code = 1
    Path(request["result"]).write_text(json.dumps(result))
    os._exit(code)


class _Plain:
    """A task or flow as a plain call; ``submit`` runs it at once and returns its value as
    a resolved future (``.result()``), as the flows use Prefect's futures."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def submit(self, *args, **kwargs):
        value = self.fn(*args, **kwargs)
        return types.SimpleNamespace(result=lambda: value)


def _without_prefect(sample) -> None:
    """Make ``cscat``'s flows plain functions (their tasks too) and ``--source sample`` the
    small sample: Prefect's start-up (a temporary API server, ~10-30 s per process here)
    is replaced, everything the flows call runs as it does under Prefect."""
    from flows import catalog, runtime
    from pipeline import sources

    runtime.start_temporary_server = lambda *a, **k: None  # no API server: nothing calls it
    for name in ("ingest_csc_task", "ingest_simbad_task", "needs_refit_task", "refit_task",
                 "refit_family_task", "publish_task", "ingest_csc_flow", "ingest_simbad_flow",
                 "refit_flow", "reclassify_flow", "build_master_flow", "update_catalog_flow",
                 "ingest_counterparts_task", "ingest_counterparts_flow"):
        setattr(catalog, name, _Plain(getattr(catalog, name).fn))
    catalog.emit_event = lambda **kw: None
    sources.sample = lambda *a, **k: sample


def _wait_for(path: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.005)


def _cli_job(job: dict, go: Path) -> None:
    """A forked ``cscat`` command: output to files, exit code as the console script's."""
    import traceback

    out = os.open(job["out"] + ".out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(job["out"] + ".err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(err, 2)
    if job.get("db_url"):
        os.environ["CSCAT_DATABASE_URL"] = job["db_url"]
    else:  # the embedded server of data_dir, started by the command if it is down
        os.environ.pop("CSCAT_DATABASE_URL", None)
        os.environ["CSCAT_DATA_DIR"] = job["data_dir"]
    if job.get("pause"):
        _install_points(None, {}, job["pause"])
    from cscat import cli
    from db import engine as dbe

    dbe.reset()
    _wait_for(go)
    try:
        code = cli.main(job["argv"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - what the console script would print
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def _reader_job(job: dict, go: Path) -> None:
    """Check each snapshot a reader sees while writers run, until the stop file appears."""
    from sqlalchemy import create_engine, text

    engine = create_engine(job["db_url"], connect_args={"application_name": CHILD_APP})
    _wait_for(go)
    stop = Path(job["stop"])
    seen: dict[str, int] = {}
    problems: dict[str, str] = {}
    n = 0
    while True:
        last = stop.exists()
        with engine.connect() as conn:
            found = snapshot_problems(conn)
            v = conn.execute(text("SELECT max(release_id) FROM catalog.release")).scalar_one()
            conn.rollback()
        found += oracle_problems(engine)  # its own snapshot: `cscat check` as a user runs it
        n += 1
        seen[str(v)] = seen.get(str(v), 0) + 1
        for p in found:
            problems.setdefault(p, f"at version {v}, snapshot {n}")
        if last:
            break
    Path(job["out"]).write_text(json.dumps({"snapshots": n, "versions": seen,
                                            "problems": problems}))
    os._exit(0)


def _run_jobs(request: dict) -> dict:
    """Fork every job, let them start at once, wait for the writers, then stop the readers."""
    go = Path(request["go"])
    pids = {}
    for k, job in enumerate(request["jobs"]):
        pid = os.fork()
        if pid == 0:
            (_reader_job if job["kind"] == "reader" else _cli_job)(job, go)
        pids[pid] = k
    t0 = time.monotonic()
    go.touch()
    answers: dict[int, dict] = {}
    writers = {p for p, k in pids.items() if request["jobs"][k]["kind"] != "reader"}
    timeout = request.get("timeout_s", 300)
    while len(answers) < len(pids):
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid:
            answers[pids[pid]] = {
                "elapsed_s": time.monotonic() - t0,
                "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}
            continue
        if writers <= {p for p in pids if pids[p] in answers}:
            Path(request["stop"]).touch()
        if time.monotonic() - t0 > timeout:
            for p in pids:
                if pids[p] not in answers:
                    os.kill(p, signal.SIGKILL)
        time.sleep(0.01)
    for k, job in enumerate(request["jobs"]):
        for ext in ("", ".out", ".err"):
            f = Path(job["out"] + ext)
            if f.exists():
                answers[k][ext.strip(".") or "result"] = f.read_text()
    return {"jobs": [answers[k] for k in range(len(pids))]}


#: Marks the server's answers on its stdout (libraries may print there too).
MARK = "@@cscat-harness@@ "


def _answer(obj: dict) -> None:
    sys.stdout.write(MARK + json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve() -> None:
    """The fork server loop (``python harness.py serve SOURCES SEED [cli]``)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from sqlalchemy import create_engine  # noqa: F401

    import pipeline.classify  # noqa: F401 - import everything once, before forking
    import pipeline.counterparts
    import pipeline.ingest  # noqa: F401

    pipeline.counterparts.CHUNK_SOURCES = CHUNK_COUNTERPART_SOURCES
    from ingest.sample import generate_sample

    sample = generate_sample(int(sys.argv[2]), seed=int(sys.argv[3]))
    from ingest.sample_counterparts import sample_counterparts

    sample_counterparts(sample)  # cached on the sample: drawn once, not in every child
    if sys.argv[4:5] == ["cli"]:
        from flows.runtime import configure_prefect

        configure_prefect()
        _without_prefect(sample)
        import cscat.cli  # noqa: F401
    _answer({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        if "jobs" in request:
            _answer(_run_jobs(request))
            continue
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(request, sample)
        delay = request.get("kill_after_s")
        status = None
        while status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            elif delay is not None and time.monotonic() - t0 >= delay:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
            else:
                time.sleep(0.01)
        answer = {"elapsed_s": time.monotonic() - t0,
                  "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
                  "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}
        result = Path(request["result"])
        if result.exists():
            answer.update(json.loads(result.read_text()))
            result.unlink()
        _answer(answer)


#: The phases of a run a kill point belongs to, in order.
PHASES = ("ingest", "simbad", "counterparts", "refit", "family_refit", "publish",
          "family_publish")


def phase_of_hits(trace: list[str]) -> list[tuple[str, int, str]]:
    """Each hit of ``trace`` as (point, which hit of it, phase). A commit between two points
    of one phase belongs to it; between points of two phases, to the earlier one (a step
    commits its work as it ends: the refit's model is committed before the publish starts);
    before the first point, to that point's phase."""
    nth: dict[str, int] = {}
    named: list[tuple[str, int, str | None]] = []
    for point in trace:
        nth[point] = nth.get(point, 0) + 1
        phase = point.split(":", 1)[1].split(".", 1)[0] if "." in point else None
        named.append((point, nth[point], phase))
    phases = [p for _, _, p in named if p]
    previous = phases[0] if phases else "publish"
    out = []
    for point, n, phase in named:
        previous = phase or previous
        out.append((point, n, previous))
    return out


# -- in the test process -------------------------------------------------------------------
class ForkServer:
    """The test side of the fork server: ``run(db_url, commands, kill=..., kill_after_s=...)``."""

    def __init__(self, work: Path, n_sources: int, seed: int, cli: bool = False) -> None:
        self.work = work
        env = {**os.environ, "PYTHONPATH": str(PROJECT), "OPENBLAS_NUM_THREADS": "1",
               "CSCAT_DATA_DIR": str(work / "data"),
               "CSCAT_MAX_UNCLASSIFIABLE_SHARE": str(SMALL_CATALOG_SHARE)}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", str(n_sources), str(seed),
             *(["cli"] if cli else [])], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT)
        self._n = 0
        self._read()

    def run(self, db_url: str, commands: list[str], kill: dict | None = None,
            kill_after_s: float | None = None) -> dict:
        self._n += 1
        request = {"db_url": db_url, "commands": commands, "kill": kill,
                   "kill_after_s": kill_after_s, "result": str(self.work / f"r{self._n}.json")}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> dict:
        """The server's next answer (other lines on its stdout are passed on)."""
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the fork server died")
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
            sys.stdout.write(line)

    def jobs(self, jobs: list[dict], timeout_s: float = 300) -> list[dict]:
        """Run ``jobs`` at once: ``{"kind": "cli", "argv": [...], "db_url": ...}`` (output,
        stderr and exit code come back; ``data_dir`` instead of ``db_url``: the embedded
        server there; ``pause``: see ``_install_points``) or ``{"kind": "reader", "db_url":
        ...}`` (checks every snapshot until the writers have ended; its findings)."""
        self.start_jobs(jobs, timeout_s)
        return self.finish_jobs()

    def start_jobs(self, jobs: list[dict], timeout_s: float = 300) -> None:
        """:meth:`jobs` without waiting: :meth:`finish_jobs` gives their answers."""
        self._n += 1
        tag = self.work / f"j{self._n}"
        for k, job in enumerate(jobs):
            job.setdefault("out", f"{tag}-{k}")
            job.setdefault("stop", f"{tag}-stop")
        request = {"jobs": jobs, "go": f"{tag}-go", "stop": f"{tag}-stop",
                   "timeout_s": timeout_s}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def finish_jobs(self) -> list[dict]:
        return self._read()["jobs"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_SHARED: dict[tuple, ForkServer] = {}


def shared_server(work: Path, n_sources: int = 400, seed: int = 11) -> ForkServer:
    """One fork server (``cli`` mode) per test session and sample, closed at exit: each
    start costs the imports of the pipeline and Prefect (5-15 s here)."""
    import atexit

    key = (n_sources, seed)
    if key not in _SHARED or _SHARED[key].proc.poll() is not None:
        _SHARED[key] = ForkServer(work, n_sources, seed, cli=True)
        atexit.register(_SHARED[key].close)
    return _SHARED[key]


# -- checks --------------------------------------------------------------------------------
def wait_children_gone(engine, timeout_s: float = 30) -> bool:
    """Wait until the server has no backend left of a (killed) child; True if none."""
    from sqlalchemy import text

    deadline = time.monotonic() + timeout_s
    while True:
        with engine.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM pg_stat_activity "
                                  "WHERE application_name = :a AND datname = current_database()"),
                             {"a": CHILD_APP}).scalar_one()
        if n == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


#: Each check: name -> SQL counting what breaks it (0 = holds).
RELEASE_CHECKS = {
    "a release without its counts": "SELECT count(*) FROM catalog.release WHERE counts IS NULL",
    "versions are not numbered 1..n":
        "SELECT CASE WHEN count(*) = coalesce(max(release_id), 0) THEN 0 ELSE 1 END "
        "FROM catalog.release",
    "a release whose detection results differ from its counts": """
        SELECT count(*) FROM catalog.release v WHERE (v.counts->>'detections_classified')::int
          <> (SELECT count(*) FROM catalog.detection_result r WHERE r.valid_from = v.release_id)""",
    "a release whose source results differ from its counts": """
        SELECT count(*) FROM catalog.release v WHERE (v.counts->>'sources_changed')::int
          <> (SELECT count(*) FROM catalog.source_result r WHERE r.valid_from = v.release_id)""",
    "a release without a completed classification run": """
        SELECT count(*) FROM catalog.release v WHERE NOT EXISTS (
          SELECT 1 FROM catalog.classification_run c WHERE c.release_id = v.release_id
          AND c.status = 'completed')""",
    "results of a version that does not exist": """
        SELECT (SELECT count(*) FROM catalog.detection_result r WHERE NOT EXISTS (
                  SELECT 1 FROM catalog.release v WHERE v.release_id = r.valid_from))
             + (SELECT count(*) FROM catalog.source_result r WHERE NOT EXISTS (
                  SELECT 1 FROM catalog.release v WHERE v.release_id = r.valid_from))""",
    "two current results of one detection": """
        SELECT count(*) FROM (SELECT detection_id FROM catalog.detection_result
          WHERE valid_to IS NULL GROUP BY 1 HAVING count(*) > 1) x""",
    "two current results of one source": """
        SELECT count(*) FROM (SELECT source_id FROM catalog.source_result
          WHERE valid_to IS NULL GROUP BY 1 HAVING count(*) > 1) x""",
    "a result valid to before it was valid from": """
        SELECT (SELECT count(*) FROM catalog.detection_result WHERE valid_to <= valid_from)
             + (SELECT count(*) FROM catalog.source_result WHERE valid_to <= valid_from)""",
    "more than one active model of a family":
        "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM catalog.fitted_model "
        "WHERE status = 'active' GROUP BY family) a",
    "the newest version's model is not the active one": """
        SELECT count(*) FROM (SELECT model_id FROM catalog.release ORDER BY release_id DESC
          LIMIT 1) v WHERE v.model_id IS DISTINCT FROM
          (SELECT model_id FROM catalog.fitted_model WHERE status = 'active'
           AND family = 'ctl')""",
    # migration 0014: what source_class reads and the stored class counts follow the history
    "source_class (its current-state table) is not the history's current rows": """
        SELECT count(*) FROM (
          (SELECT * FROM catalog.source_class
           EXCEPT ALL SELECT * FROM catalog.source_class_history WHERE valid_to IS NULL)
          UNION ALL
          (SELECT * FROM catalog.source_class_history WHERE valid_to IS NULL
           EXCEPT ALL SELECT * FROM catalog.source_class)) x""",
    "a version whose stored class counts differ from a recount of the history": """
        WITH recount AS (
          SELECT v.release_id, r.adopted_class, r.agg_adopted_class, r.label_origin,
                 count(*) AS n_sources
          FROM catalog.release v JOIN catalog.source_result r ON r.valid_from <= v.release_id
           AND (r.valid_to IS NULL OR r.valid_to > v.release_id) GROUP BY 1, 2, 3, 4),
        stored AS (SELECT release_id, adopted_class, agg_adopted_class, label_origin,
                          n_sources FROM catalog.version_class_count)
        SELECT count(DISTINCT release_id) FROM (
          (SELECT * FROM recount EXCEPT ALL SELECT * FROM stored)
          UNION ALL (SELECT * FROM stored EXCEPT ALL SELECT * FROM recount)) x""",
}

#: Per-source rows at version :v against the per-detection rows at :v, recomputed in SQL:
#: every source with detection results has one source result, n_detections is the number
#: of its detections with probabilities, and prob_mean is their mean, class by class.
CONSISTENCY_AT_VERSION = """
WITH dr AS (
  SELECT d.source_id, r.probabilities FROM catalog.detection_result r
  JOIN catalog.csc_detection d USING (detection_id)
  WHERE r.valid_from <= :v AND (r.valid_to IS NULL OR r.valid_to > :v)),
sr AS (
  SELECT source_id, n_detections, prob_mean FROM catalog.source_result
  WHERE valid_from <= :v AND (valid_to IS NULL OR valid_to > :v)),
n AS (SELECT source_id, count(probabilities) AS n FROM dr GROUP BY 1),
dm AS (SELECT dr.source_id, p.i, avg(p.x) AS m FROM dr,
       unnest(dr.probabilities) WITH ORDINALITY p(x, i) GROUP BY 1, 2),
sm AS (SELECT sr.source_id, p.i, p.x FROM sr, unnest(sr.prob_mean) WITH ORDINALITY p(x, i))
SELECT
  (SELECT count(*) FROM n FULL JOIN sr USING (source_id)
     WHERE n.source_id IS NULL OR sr.source_id IS NULL),
  (SELECT count(*) FROM n JOIN sr USING (source_id) WHERE n.n <> sr.n_detections),
  (SELECT count(*) FROM dm FULL JOIN sm USING (source_id, i)
     WHERE dm.m IS NULL OR sm.x IS NULL OR abs(dm.m - sm.x) > 1e-9)
"""


def check_catalog(engine, version: int | None = None) -> list[str]:
    """What is wrong with the catalog now (empty: all holds).

    ``cscat check``'s oracle holds (:func:`oracle_problems`, unless ``version`` is given);
    the server answers; no partial catalog version (counts and results of every release,
    numbering, one current result per detection and source, one active model); the
    per-source results at the newest version (or ``version``) agree with its per-detection
    results; the references the bulk tables keep without foreign keys hold; no stale
    update lock.
    """
    from sqlalchemy import text

    from db.catalog_store import UPDATE_LOCK_KEY

    with engine.connect() as conn:
        found = snapshot_problems(conn, version)
        conn.rollback()
    if version is None:
        found += oracle_problems(engine)
    with engine.connect() as conn:
        if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                            {"k": UPDATE_LOCK_KEY}).scalar_one():
            found.append("the update lock is still held")
        else:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": UPDATE_LOCK_KEY})
        conn.commit()
    return found


def oracle_problems(engine) -> list[str]:
    """What ``cscat check`` finds (``db.oracle.check``, the function the command runs: every
    current source result recomputed from the current detection results and SIMBAD types)."""
    from db import oracle
    from db.settings import Settings

    result = oracle.check(engine, Settings(max_unclassifiable_share=SMALL_CATALOG_SHARE))
    found = [f"cscat check: {p}" for p in result.problems]
    if len(result.differences):
        cols = sorted(set(result.differences["column"].astype(str)))
        found.append(f"cscat check: source results differ from their recomputation in "
                     f"{cols} ({result.n_sources_wrong} sources)")
    return found


def snapshot_problems(conn, version: int | None = None) -> list[str]:
    """The read-only part of :func:`check_catalog`, on one REPEATABLE READ snapshot (what a
    reader sees): call it first in a fresh transaction of ``conn``."""
    from sqlalchemy import text

    from db import integrity

    found: list[str] = []
    conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    if conn.execute(text("SELECT 1")).scalar_one() != 1:
        found.append("the server does not answer")
    for name, sql in RELEASE_CHECKS.items():
        n = conn.execute(text(sql)).scalar_one()
        if n:
            found.append(f"{name} ({n})")
    v = version if version is not None else conn.execute(
        text("SELECT max(release_id) FROM catalog.release")).scalar_one()
    if v is not None:
        missing, bad_n, bad_mean = conn.execute(text(CONSISTENCY_AT_VERSION), {"v": v}).one()
        for n, what in [(missing, "sources with detection results but no source result, "
                                  "or the reverse"),
                        (bad_n, "sources whose n_detections is not their number of "
                                "classified detections"),
                        (bad_mean, "mean probabilities that are not the mean of the "
                                   "detection results")]:
            if n:
                found.append(f"{what} ({n} at version {v})")
    found += [f"integrity: {k} ({n})" for k, n in integrity.problems(conn).items()]
    return found


def error_line(stderr: str) -> str:
    """The telling line of a command's stderr: ``cscat: error: ...`` or the exception line
    of a traceback (the last line of SQLAlchemy's is only a link)."""
    import re

    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"(cscat: error:|[\w.]+(Error|Exception|Violation|Interrupt)\b)", ln):
            return ln[:240]
    return (lines or [""])[-1][:240]


def error_lines(stderr: str) -> list[str]:
    """The ``cscat: error: ...`` lines of a command's stderr (progress logs are not errors)."""
    return [ln for ln in stderr.splitlines() if ln.startswith("cscat: error:")]


def one_error(stderr: str) -> tuple[bool, str]:
    """(exactly one ``cscat: error:`` line and no traceback, what was seen)."""
    errors = error_lines(stderr)
    traced = "Traceback (most recent call last)" in stderr
    seen = (f"{len(errors)} error line(s){', a traceback' if traced else ''}: "
            f"{(errors[0] if errors else error_line(stderr))[:240]!r}")
    return len(errors) == 1 and not traced, seen


def problem_kind(problem: str) -> str:
    """A problem without its figures: the text before `` (``."""
    return problem.split(" (", 1)[0]


def _problem_count(problem: str) -> int:
    import re

    found = re.search(r"\((\d+)", problem)
    return int(found.group(1)) if found else 1


def new_problems(found: list[str], *baselines: list[str]) -> list[str]:
    """``found`` less what an uninterrupted run shows too: a problem of a kind the
    baselines have, with no more rows than the most they have, is not new."""
    known: dict[str, int] = {}
    for p in (p for b in baselines for p in b):
        known[problem_kind(p)] = max(known.get(problem_kind(p), 0), _problem_count(p))
    return [p for p in found
            if problem_kind(p) not in known or _problem_count(p) > known[problem_kind(p)]]


def leftovers(engine) -> list[str]:
    """State a crash leaves that no later run cleans up: runs still 'running', models still
    'candidate' (with no process running, neither can finish)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        runs = conn.execute(text(
            "SELECT count(*) FROM catalog.ingest_run WHERE status = 'running'")).scalar_one()
        cand = conn.execute(text(
            "SELECT count(*) FROM catalog.fitted_model WHERE status = 'candidate'")).scalar_one()
        cls = conn.execute(text("SELECT count(*) FROM catalog.classification_run "
                                "WHERE status <> 'completed'")).scalar_one()
    return ([f"{runs} ingest run(s) left 'running'"] if runs else []) + \
        ([f"{cand} model(s) left 'candidate'"] if cand else []) + \
        ([f"{cls} classification run(s) not completed"] if cls else [])


# -- digest --------------------------------------------------------------------------------
#: Columns that differ between two equal runs by construction: surrogate keys drawn from
#: sequences (a rolled-back transaction consumes values), ids of the runs that wrote a row,
#: and the model's input digest (a hash of detection ids). Timestamps are left out by type.
VOLATILE_COLUMNS = {"detection_id", "source_id", "ingest_run_id", "model_id", "run_id",
                    "classification_run_id", "flow_run_id", "input_digest", "history_id"}
#: Keys of jsonb columns that hold such ids.
VOLATILE_JSON_KEYS = ["promoted_model"]
#: Tables digested besides the views: what the counterpart step writes and no view shows
#: whole (the ``counterpart`` view shows the candidates; the chosen match per catalogue and
#: its history are tables only). Rows are named by their source's name (source_id is a
#: surrogate key).
DIGEST_TABLES = ("counterpart_candidate", "counterpart_match", "counterpart_match_history")


def _view_columns(conn) -> dict[str, list[tuple[str, str]]]:
    """Columns of every view in ``catalog`` and of :data:`DIGEST_TABLES`."""
    from sqlalchemy import bindparam, text

    rows = conn.execute(text("""
        SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
        LEFT JOIN information_schema.views v USING (table_schema, table_name)
        WHERE c.table_schema = 'catalog'
          AND (v.table_name IS NOT NULL OR c.table_name IN :tables)
        ORDER BY c.table_name, c.ordinal_position""").bindparams(
        bindparam("tables", expanding=True)), {"tables": list(DIGEST_TABLES)})
    out: dict[str, list[tuple[str, str]]] = {}
    for view, col, typ in rows:
        out.setdefault(view, []).append((col, typ))
    return out


def _families_without_ids(e: str) -> str:
    """A release's ``counts.families`` (per family: its model, how many sources, the model
    promoted) with the model ids replaced by whether one was promoted: a killed family
    refit consumes sequence values, so a rerun's ids may differ from an uninterrupted
    run's (the models themselves are compared by the ``family_model`` view)."""
    return (f"CASE WHEN jsonb_typeof({e} -> 'families') = 'object' THEN jsonb_build_object("
            f"'families', coalesce((SELECT jsonb_object_agg(f.k, (f.v - ARRAY['model_id', "
            f"'promoted_model']::text[]) || jsonb_build_object('promoted', "
            f"f.v -> 'promoted_model' <> 'null'::jsonb)) FROM jsonb_each({e} -> 'families') "
            f"AS f(k, v)), '{{}}'::jsonb)) ELSE '{{}}'::jsonb END")


def _view_rows_sql(conn, view: str, cols: list[tuple[str, str]]) -> str:
    """SELECT of the comparable columns of ``view`` as one text per row (identifiers come
    from the server's own catalog and are quoted; a digested table's rows carry their
    source's name instead of its surrogate id)."""
    q = conn.dialect.identifier_preparer.quote
    exprs = ["s.name"] if view in DIGEST_TABLES else []
    for col, typ in cols:
        if col in VOLATILE_COLUMNS or typ.startswith(("timestamp", "date", "time")):
            continue
        e = f"t.{q(col)}"
        if typ == "jsonb":
            e = f"({e} - ARRAY[{', '.join(repr(k) for k in VOLATILE_JSON_KEYS)}]::text[]" \
                f" || {_families_without_ids(e)})"
        exprs.append(e)
    join = " JOIN catalog.csc_source s USING (source_id)" if view in DIGEST_TABLES else ""
    return f"SELECT ROW({', '.join(exprs)})::text AS x FROM catalog.{q(view)} t{join}"


def catalog_digest(engine) -> dict[str, tuple[int, str]]:
    """Row count and md5 of the sorted rows of every view in schema ``catalog`` and of
    :data:`DIGEST_TABLES`."""
    from sqlalchemy import text

    out = {}
    with engine.connect() as conn:
        for view, cols in _view_columns(conn).items():
            sql = (f"SELECT count(*), md5(coalesce(string_agg(x, E'\\n' ORDER BY x), '')) "
                   f"FROM ({_view_rows_sql(conn, view, cols)}) r")
            n, h = conn.execute(text(sql)).one()
            out[view] = (int(n), h)
    return out


def view_rows(engine, view: str) -> list[str]:
    """Comparable rows of one view as text, sorted (to describe a digest difference)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        cols = _view_columns(conn)[view]
        return sorted(conn.execute(text(_view_rows_sql(conn, view, cols))).scalars())


def describe_difference(engine, reference, views: list[str]) -> str:
    """Which views differ and how: rows only in one, and for the per-source views whether
    the differences are only in the hard vote (tie order) columns."""
    parts = []
    for view in views:
        a, b = set(view_rows(reference, view)), set(view_rows(engine, view))
        part = f"{view}: {len(b - a)} rows not in the reference, {len(a - b)} missing"
        if a != b:  # a few of each, so a failure says which sources and values
            part += (f" (e.g. here {sorted(b - a, key=str)[:2]}, "
                     f"reference {sorted(a - b, key=str)[:2]})")
        if view in ("source_class", "source_class_history"):
            diff_cols = _differing_columns(engine, reference, view)
            if diff_cols:
                part += f", differing columns {sorted(diff_cols)}"
                if diff_cols <= {"hard_class", "ambiguous"}:
                    part += " (only the hard vote: tie order)"
        parts.append(part)
    return "; ".join(parts)


def _differing_columns(engine, reference, view: str) -> set[str]:
    import pandas as pd
    from sqlalchemy import text

    frames = []
    for e in (reference, engine):
        with e.connect() as conn:
            frames.append(pd.read_sql_query(text(f"SELECT * FROM catalog.{view}"), conn))
    key = ["name", "catalog_version"] if "catalog_version" in frames[0] else ["name"]
    a, b = (f.drop(columns=[c for c in f.columns if c in VOLATILE_COLUMNS
                            or c in ("valid_from", "valid_to")], errors="ignore")
            .set_index(key).sort_index() for f in frames)
    both = a.index.intersection(b.index)
    cols = set()
    for c in a.columns:
        x, y = a.loc[both, c].astype(str), b.loc[both, c].astype(str)
        if (x != y).any():
            cols.add(c)
    return cols


@dataclass
class Timer:
    """Wall time of a block: ``with Timer() as t: ...; t.s``."""

    s: float = 0.0

    def __enter__(self) -> Timer:
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.s = time.monotonic() - self._t0


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    sys.path.insert(0, str(PROJECT))
    serve()
