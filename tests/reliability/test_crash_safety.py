"""Crash safety: SIGKILL the pipeline at seeded random points of ingest, SIMBAD,
counterparts, refit, family refit, publish and family publish; after each kill the catalog holds
(``harness.check_catalog``), no stale lock blocks the next run, and rerunning the killed
command ends equal (digest of every view in schema ``catalog`` and of the counterpart
tables) to an uninterrupted run on the same input.

A run is ``update1`` (epoch 1: ingest until 2014, SIMBAD, counterparts, fit ctl and every source
family, publish) then
``update2`` (the rest, a SIMBAD snapshot with changed types, counterparts of the new
sources, reapply the model, publish), each run as
``cscat update`` runs it, in a child forked by ``harness.ForkServer``. The schedule is drawn
from ``CSCAT_RELIABILITY_SEED`` (default below): a command, then either one of the points
the uninterrupted run passed through (after a pipeline function, or just before or after
one of its commits) and which hit of it, or a delay after the start. ``CSCAT_SOAK=N`` draws
N times as many kills.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import harness
import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

AREA = "crash safety"
SEED = int(os.environ.get("CSCAT_RELIABILITY_SEED", "20261201"))
N_SOURCES = 400
SAMPLE_SEED = 11
#: Kills per run (per soak round): the issue asks for at least 20.
N_KILLS = 20
#: Share of kills sent after a random delay instead of at an instrumented point.
TIMED_SHARE = 0.3


class Lab:
    """Reference states after each command, their digests, and a fork server."""

    def __init__(self, info, work: Path) -> None:
        self.info = info
        self.server = harness.shared_server(work, N_SOURCES, SAMPLE_SEED)
        self.states: list[str] = ["crash_state0"]
        self.digests: list[dict] = []
        self.counts: dict[str, dict[str, int]] = {}
        #: Per command: every hit of its uninterrupted run as (point, nth hit, phase).
        self.hits: dict[str, list[tuple[str, int, str]]] = {}
        self.durations: dict[str, float] = {}
        self._admin("crash_state0", template="cscat_template")
        url = self.url("crash_work")
        self._admin("crash_work", template="crash_state0")
        self.digests.append(self.digest("crash_state0"))
        for i, cmd in enumerate(harness.COMMANDS_RUN, start=1):
            out = self.server.run(url, [cmd])
            assert out["exit_code"] == 0 and "error" not in out, out.get("error")
            self.counts[cmd] = out["per_command"][cmd]
            self.hits[cmd] = harness.phase_of_hits(out["traces"][cmd])
            self.durations[cmd] = out["elapsed_s"]
            self._admin(f"crash_state{i}", template="crash_work")
            self.states.append(f"crash_state{i}")
            self.digests.append(self.digest(f"crash_state{i}"))
        for cmd, hits in self.hits.items():  # what the schedule draws from, in order
            print(f"{cmd}: " + ", ".join(f"{p}#{n}[{ph}]" for p, n, ph in hits))
        #: What the oracle finds wrong after each uninterrupted command (a defect of its
        #: own, recorded once; a kill must not add to it).
        self.baseline = [harness.check_catalog(self.engine(db)) for db in self.states]
        #: (kill label, whether the child was really killed) of the trials run so far.
        self.done: list[tuple[str, bool]] = []

    def url(self, db: str) -> str:
        return self.info.url("postgresql+psycopg", db)

    def engine(self, db: str):
        return create_engine(self.url(db), poolclass=NullPool)

    def digest(self, db: str) -> dict:
        return harness.catalog_digest(self.engine(db))

    def _admin(self, db: str, template: str) -> None:
        with psycopg.connect(self.info.url(database="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db}" TEMPLATE "{template}"')

    def schedule(self, n: int, seed: int) -> list[dict]:
        """``n`` kills drawn from ``seed``: a delay after the start of a command, or a point
        of a phase (the phases take turns, so every one of ingest, SIMBAD, counterparts,
        refit and publish is killed in) and a command that passes it, and which hit of it."""
        rng = random.Random(seed)
        out = []
        turn = 0
        for _ in range(n):
            if rng.random() < TIMED_SHARE:
                cmd = rng.choice(harness.COMMANDS_RUN)
                delay = round(rng.uniform(0.05, 0.7) * self.durations[cmd], 3)
                out.append({"command": cmd, "kill_after_s": delay, "label": f"{delay:.2f} s",
                            "phase": "timed"})
                continue
            phase = harness.PHASES[turn % len(harness.PHASES)]
            turn += 1
            cmd, (point, hit, _) = rng.choice([(c, h) for c in harness.COMMANDS_RUN
                                               for h in self.hits[c] if h[2] == phase])
            out.append({"command": cmd, "kill": {"point": point, "n": hit},
                        "label": f"{phase}: {point} #{hit}", "phase": phase})
        return out


@pytest.fixture(scope="module")
def lab(pg_server, db_url, tmp_path_factory) -> Lab:
    return Lab(pg_server, tmp_path_factory.mktemp("crash"))


@pytest.fixture(scope="module")
def kills(lab) -> list[dict]:
    return lab.schedule(N_KILLS * harness.SOAK, SEED)


@pytest.mark.parametrize("k", range(N_KILLS * harness.SOAK))
def test_sigkill_then_rerun(lab, kills, k, record):
    trial = kills[k]
    cmd = trial["command"]
    i = harness.COMMANDS_RUN.index(cmd)
    where = f"{cmd} at {trial['label']} (seed {SEED}, kill {k})"
    lab._admin("crash_trial", template=lab.states[i])
    url = lab.url("crash_trial")
    engine = lab.engine("crash_trial")
    out = lab.server.run(url, [cmd], kill=trial.get("kill"),
                         kill_after_s=trial.get("kill_after_s"))
    assert out["killed"] or out["exit_code"] == 0, out  # a run that was not killed completes
    lab.done.append((where, bool(out["killed"])))
    gone = harness.wait_children_gone(engine)
    problems = ([] if gone else ["the killed run's connections stay open"]) + \
        harness.check_catalog(engine)
    problems = harness.new_problems(problems, lab.baseline[i], lab.baseline[i + 1])
    held_after_kill = record(AREA, f"killed {where}: catalog intact, lock free",
                             not problems, "; ".join(problems))
    rerun = lab.server.run(url, [cmd])
    ok_rerun = rerun["exit_code"] == 0 and "error" not in rerun
    digest = harness.catalog_digest(engine) if ok_rerun else {}
    differ = sorted(v for v in lab.digests[i + 1] if digest.get(v) != lab.digests[i + 1][v])
    detail = rerun.get("error", "") if not ok_rerun else (
        harness.describe_difference(engine, lab.engine(lab.states[i + 1]), differ)
        if differ else "")
    held_rerun = record(AREA, f"rerun after kill {where} ends equal to an uninterrupted run",
                        ok_rerun and not differ, detail)
    after = harness.new_problems(harness.check_catalog(engine), lab.baseline[i + 1]) + \
        harness.leftovers(engine)
    held_left = record(AREA, f"nothing left behind after the rerun of kill {where}",
                       not after, "; ".join(after))
    assert held_after_kill and held_rerun and held_left, (problems, detail, after)
    assert out["killed"] or trial.get("kill_after_s"), "an instrumented point was not reached"


@pytest.mark.parametrize("state", range(len(harness.COMMANDS_RUN) + 1))
def test_the_uninterrupted_run_passes_the_oracle(lab, state, record):
    """The reference itself: what the oracle finds here is a defect, not a crash effect."""
    what = "empty catalog" if state == 0 else f"after {harness.COMMANDS_RUN[state - 1]}"
    assert record(AREA, f"uninterrupted run, {what}: check_catalog holds",
                  not lab.baseline[state], "; ".join(lab.baseline[state]))


def test_the_uninterrupted_run_matches_counterparts(lab, record):
    """The counterpart tables the digest compares are filled: update1 matches every source
    it ingested, update2 the sources new in it (so a kill there has something to lose)."""
    n = [{t: lab.digests[s][t][0] for t in harness.DIGEST_TABLES} for s in range(3)]
    sources = [lab.digests[s]["source_class"][0] for s in range(3)]
    ok = (n[0]["counterpart_match"] == 0
          and n[1]["counterpart_match"] == 3 * sources[1] > 0
          and n[2]["counterpart_match"] == 3 * sources[2] > 3 * sources[1]
          and n[2]["counterpart_candidate"] > n[1]["counterpart_candidate"] > 0)
    assert record(AREA, "uninterrupted run: counterparts matched for every source, "
                  "the new ones in update2", ok, f"{n}, sources {sources}")


def test_at_least_20_kill_points_were_hit(lab, kills):
    """The children were really killed at ≥ 20 points of the run (a timed kill that came
    after the command had ended is a rerun of an uninterrupted command, still checked)."""
    if len(lab.done) < len(kills):
        pytest.skip("not every kill of the schedule was run (-k?)")
    killed = sum(k for _, k in lab.done)
    per_phase = {p: sum(t["phase"] == p for t in kills) for p in (*harness.PHASES, "timed")}
    print(f"{killed} of {len(kills)} scheduled kills hit the running pipeline; "
          f"scheduled per phase: {per_phase}")
    assert killed >= 20 * harness.SOAK - sum("kill_after_s" in t for t in kills)
    assert all(per_phase[p] for p in harness.PHASES), per_phase
