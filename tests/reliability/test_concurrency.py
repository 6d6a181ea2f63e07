"""Concurrency: several ``cscat update`` / ``reclassify`` / ``ingest csc`` started at once
against one catalog (``--source sample``, the module's database via CSCAT_DATABASE_URL),
with a reader in another process checking every snapshot it sees while they run.

Each command runs in a process forked by ``harness.ForkServer`` through ``cscat.cli.main``
(so the words and exit code are the console script's), with Prefect's orchestration
replaced by plain calls (``harness._without_prefect``): Prefect's temporary API server
costs 10-30 s per process on this machine and is not what is tested here.

What must hold: every command ends 0 or is refused with one line (``cscat: error: ...``,
no traceback); no duplicate versions or rows; the reader only ever sees complete versions
whose per-source rows agree with the per-detection rows (``harness.snapshot_problems``);
after one more serial update the detections and sources equal those of a serial run.
"""

from __future__ import annotations

import harness
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

AREA = "concurrency"
N_SOURCES = 400
SAMPLE_SEED = 11
EPOCH1 = harness.EPOCH1
#: The writers started at once (N = 7 ≥ 4).
WRITERS = [
    ["update", "--source", "sample"],
    ["update", "--source", "sample"],
    ["update", "--source", "sample", "--wait", "--refit", "never"],
    ["reclassify"],
    ["reclassify", "--all"],
    ["ingest", "csc", "--source", "sample"],
    ["ingest", "csc", "--source", "sample"],
]
#: Rows that must be unique (the schema enforces most of it; a lost constraint shows here).
DUPLICATES = {
    "observation ingested twice": "SELECT obsid FROM catalog.observation GROUP BY 1 "
                                  "HAVING count(*) > 1",
    "source stored twice": "SELECT name FROM catalog.csc_source GROUP BY 1 HAVING count(*) > 1",
    "detection stored twice": "SELECT source_id, obsid, obi, region_id "
                              "FROM catalog.csc_detection GROUP BY 1, 2, 3, 4 HAVING count(*) > 1",
    "version written twice": "SELECT release_id FROM catalog.release GROUP BY 1 "
                             "HAVING count(*) > 1",
    "detection classified twice in one version": "SELECT detection_id, valid_from FROM "
        "catalog.detection_result GROUP BY 1, 2 HAVING count(*) > 1",
}


class Lab:
    def __init__(self, info, work) -> None:
        self.info = info
        self.server = harness.shared_server(work, N_SOURCES, SAMPLE_SEED)
        self.admin("conc_epoch1", "cscat_template")
        first = self.cli("conc_epoch1", ["update", "--source", "sample", "--until", EPOCH1])
        assert first["exit_code"] == 0, first
        # the reference of the views compared (detections and sources: what ingest csc and
        # SIMBAD write, nothing the refit or publish touch), built by those two steps alone
        self.admin("conc_serial", "conc_epoch1")
        for argv in (["ingest", "csc", "--source", "sample"],
                     ["ingest", "simbad", "--source", "sample"]):
            serial = self.cli("conc_serial", argv)
            assert serial["exit_code"] == 0, serial
        self.reference = harness.catalog_digest(self.engine("conc_serial"))

    def url(self, db: str) -> str:
        return self.info.url("postgresql+psycopg", db)

    def engine(self, db: str):
        return create_engine(self.url(db), poolclass=NullPool)

    def admin(self, db: str, template: str) -> None:
        with psycopg.connect(self.info.url(database="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db}" TEMPLATE "{template}"')

    def cli(self, db: str, argv: list[str]) -> dict:
        return self.server.jobs([{"kind": "cli", "argv": argv, "db_url": self.url(db)}])[0]


@pytest.fixture(scope="module")
def lab(pg_server, db_url, tmp_path_factory) -> Lab:
    return Lab(pg_server, tmp_path_factory.mktemp("conc"))


def refused_or_done(job: dict) -> tuple[bool, str]:
    """Exit 0 and no traceback, or a refusal: non-zero exit with exactly one ``cscat:
    error: ...`` line on stderr and no traceback (progress lines are not errors)."""
    err = job.get("err", "")
    if job["exit_code"] == 0 and "Traceback" not in err and not harness.error_lines(err):
        return True, ""
    one, seen = harness.one_error(err)
    detail = f"exit {job['exit_code']}, signal {job['signal']}; {seen}"
    return one and job["exit_code"] not in (0, None), detail


@pytest.mark.parametrize("round_", range(harness.SOAK))
def test_writers_at_once_with_a_reader(lab, round_, record):
    db = "conc_trial"
    lab.admin(db, "conc_epoch1")
    engine = lab.engine(db)
    baseline = harness.check_catalog(engine)
    jobs = [{"kind": "reader", "db_url": lab.url(db)}] + [
        {"kind": "cli", "argv": argv, "db_url": lab.url(db)} for argv in WRITERS]
    with harness.Timer() as t:
        done = lab.server.jobs(jobs)
    held = []
    for argv, job in zip(WRITERS, done[1:], strict=True):
        ok, detail = refused_or_done(job)
        words = harness.error_line(job.get("err", ""))
        held.append(record(AREA, f"round {round_}: `cscat {' '.join(argv)}` among "
                           f"{len(WRITERS)} at once: completes or is refused with one line",
                           ok, detail or (f"refused: {words}" if job["exit_code"] else "")))
    reader = harness.json.loads(done[0].get("result") or "{}")
    found = reader.get("problems", {})
    seen = {p: found[p] for p in harness.new_problems(list(found), baseline)}
    held.append(record(
        AREA, f"round {round_}: a reader sees only complete, consistent versions while "
        f"{len(WRITERS)} writers run", bool(reader.get("snapshots")) and not seen,
        "; ".join(f"{p} ({w})" for p, w in seen.items())
        + f" [{reader.get('snapshots')} snapshots, versions {reader.get('versions')}]"))
    with engine.connect() as conn:
        dupes = [name for name, sql in DUPLICATES.items() if conn.execute(text(sql)).first()]
    after = harness.new_problems(harness.check_catalog(engine), baseline)
    held.append(record(AREA, f"round {round_}: no duplicate versions or rows, catalog "
                       "intact after the writers", not dupes and not after,
                       "; ".join(dupes + after)))
    final = lab.cli(db, ["update", "--source", "sample", "--wait"])
    digest = harness.catalog_digest(engine)
    data_views = ["detection", "source"]
    differ = [v for v in data_views if digest[v] != lab.reference[v]]
    held.append(record(
        AREA, f"round {round_}: one more update after them: detections and sources equal a "
        "serial run", final["exit_code"] == 0 and not differ,
        (harness.describe_difference(engine, lab.engine("conc_serial"), differ)
         if differ else "") + ("" if final["exit_code"] == 0 else f" final update: "
                              f"{harness.error_line(final.get('err', ''))}")))
    print(f"{len(WRITERS)} writers + reader: {t.s:.1f} s, reader {reader.get('snapshots')} "
          f"snapshots over versions {reader.get('versions')}")
    for argv, job in zip(WRITERS, done[1:], strict=True):
        print(f"  cscat {' '.join(argv)}: exit {job['exit_code']} after {job['elapsed_s']:.1f} s"
              + (f": {harness.error_line(job.get('err', ''))}" if job["exit_code"] else ""))
    assert all(held)
