"""Fuzzing the config file and the command line (issue 13, bad input): generated cases
(hypothesis), each run through the real ``cscat.cli.main`` in-process.

Config file: TOML written by this module from generated keys (every setting, misspelt and
unknown ones, odd spellings) and values of every TOML type (integers at and past their
limits, NaN, ±inf, strings with quotes, control characters and non-ASCII, arrays, tables,
dates), sometimes cut short or spliced with junk bytes; then ``cscat status`` runs with it.
The oracle reads the file back with ``tomllib`` and states what a setting may hold (its type
and the range its documentation gives, :data:`RANGES`): a file that is not TOML or names an
unknown key must be refused; on success every value in the file must be the one cscat uses
(no silent conversion) and inside its range; a refusal must be one ``cscat: error:`` line
naming the file, and the setting when the file parsed.

Command line: generated argument lists over the whole command tree (right and wrong
sub-commands, options, values: dates, numbers, paths, SQL, control characters). Commands
that only read (``status``, ``check``, ``sql``, ``db url``, ``ingest file``) run for real on
this module's database; the ones that run the pipeline or a server are replaced by a stub
that checks the parsed arguments against the documented meaning (a date, a number of days,
a model version) (their bodies are what the other reliability files test).

Every case must end in success or exactly one ``cscat: error:`` line and never a traceback;
the outcome of each is recorded (areas ``config fuzz: <outcome>`` / ``cli fuzz: <outcome>``).
"""

from __future__ import annotations

import json
import math
import re
import sys
import tomllib
from datetime import date, datetime, time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cscat import cli, commands
from db import engine as dbe
from db.settings import Settings, get_settings

# -- the config file ---------------------------------------------------------------------------
INF = math.inf
#: What each numeric setting may hold, from its documentation: (low, high, low inclusive).
#: A value cscat accepts outside this range is a silently wrong value.
RANGES: dict[str, tuple[float, float, bool]] = {
    "embedded_port": (1, 65535, True),
    "sql_timeout_s": (0, INF, False), "sql_max_rows": (1, INF, True),
    "csc_chunk_obsids": (1, INF, True), "csc_tap_timeout_s": (0, INF, False),
    "csc_tap_attempts": (1, INF, True), "xmatch_timeout_s": (0, INF, False),
    "xmatch_attempts": (1, INF, True), "simbad_radius_arcsec": (0, INF, False),
    "simbad_refresh_days": (0, INF, True), "n_components": (1, INF, True),
    "random_state": (0, 2**32 - 1, True), "refit_labeled_change": (0, INF, True),
    "refit_detection_growth": (0, INF, True), "promotion_tolerance": (0, INF, True),
    "max_unclassifiable_share": (0, 1, True),
}
#: Set in the environment by the fixtures (the environment wins over the file).
FROM_ENV = {"database_url"}
KNOWN = sorted(set(Settings.model_fields) - FROM_ENV)
ODD_KEYS = ["n_component", "N_COMPONENTS", "database-url", "unknown", "", " ", "a.b",
            "名前", "x\"y", "features\n", "sql_timeout_s "]

INTS = st.one_of(st.integers(-5, 70000), st.sampled_from(
    [0, -1, 1, 2**31, 2**32, 2**32 - 1, 2**63 - 1, -(2**63), 65536, 10**30]))
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(
    [0.0, -0.0, 0.5, 1.0, 1.5, -1e-300, 5e-324, 1e308, math.nan, math.inf, -math.inf]))
TEXTS = st.one_of(st.text(max_size=40), st.sampled_from(
    ["paper11", "paper12", "PAPER12", "", "5", "1e3", "nan", "true", "'; DROP TABLE x; --",
     "0 3 * * *", "not a cron", "http://127.0.0.1:1/x", "x" * 5000, "\x1b[31m", "%s%n"]))
SCALARS = st.one_of(INTS, FLOATS, TEXTS, st.booleans(), st.dates(), st.datetimes(),
                    st.times())
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.sampled_from(["a", "b"]), SCALARS, max_size=2))


def toml_string(s: str) -> str:
    """A TOML basic string (control characters escaped, the rest as it is)."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:  # not encodable: a lone surrogate
            out.append("\\ufffd")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) \
            else repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, (date, datetime, time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else toml_string(k)


def _typed(key: str):
    """Values of the setting's own type (most cases should get past the type check)."""
    ann = str(Settings.model_fields[key].annotation) if key in Settings.model_fields else ""
    if key == "features":
        return st.sampled_from(["paper11", "paper12", "paper13", "PAPER12"])
    if "bool" in ann:
        return st.booleans()
    if "int" in ann:
        return INTS
    if "float" in ann:
        return FLOATS
    return TEXTS


@st.composite
def config_files(draw) -> bytes:
    keys = draw(st.lists(st.one_of(st.sampled_from(KNOWN), st.sampled_from(KNOWN),
                                   st.sampled_from(ODD_KEYS)), max_size=4, unique=True))
    text = "".join(f"{toml_key(k)} = {toml_value(draw(st.one_of(_typed(k), VALUES)))}\n"
                   for k in keys)
    data = text.encode("utf-8")
    damage = draw(st.sampled_from(["none"] * 5 + ["truncate", "junk", "bytes"]))
    if damage == "truncate" and data:
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif damage == "junk":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    elif damage == "bytes":
        data = draw(st.binary(max_size=64))
    return data


def config_oracle(data: bytes) -> dict:
    """What must happen: ``{"refuse": why}`` or ``{"values": parsed}``."""
    try:
        parsed = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        return {"refuse": f"not TOML: {e}"}
    unknown = [k for k in parsed if k not in Settings.model_fields]
    if unknown:
        return {"refuse": f"unknown key {unknown[0]!r}", "keys": list(parsed)}
    return {"values": parsed}


#: Strings pydantic reads as booleans (its documented lax conversions).
TRUE_WORDS = {"1", "on", "t", "true", "y", "yes"}
FALSE_WORDS = {"0", "off", "f", "false", "n", "no"}


def _equal(used, given) -> bool:
    """Is ``used`` (the setting cscat uses) the value the file gives? The same value in
    another spelling counts (``5`` for ``5.0``, ``"5"`` for 5, ``0`` or ``"no"`` for false:
    pydantic's documented conversions); anything else is a silently changed value."""
    if isinstance(used, Path):
        return isinstance(given, str) and used == Path(given)
    if isinstance(used, bool):
        if isinstance(given, str):
            word = given.strip().lower()
            return word in (TRUE_WORDS if used else FALSE_WORDS)
        return type(given) in (bool, int) and given == used
    if isinstance(used, (int, float)):
        if isinstance(given, bool):
            return False  # true is no number
        if isinstance(given, str):
            try:
                given = float(given)
            except ValueError:
                return False
        return isinstance(given, (int, float)) and float(used) == float(given)
    return type(used) is type(given) and used == given


def _in_range(key: str, v) -> bool:
    """Inside the documented range (and finite: a number of seconds, rows, days...)."""
    if key not in RANGES or v is None:
        return True
    lo, hi, inclusive = RANGES[key]
    return isinstance(v, (int, float)) and math.isfinite(v) and v <= hi and \
        (v >= lo if inclusive else v > lo)


def run_cli(argv: list[str], capsys) -> tuple[int | None, str, str, str | None]:
    """(exit code, stdout, stderr, traceback-like failure) of ``cscat argv`` in-process."""
    get_settings.cache_clear()
    dbe.reset()
    try:
        rc = cli.main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    except BaseException as exc:  # noqa: BLE001 - a traceback is what this looks for
        out, err = capsys.readouterr()
        return None, out, err, f"{type(exc).__name__}: {exc}"[:300]
    finally:
        get_settings.cache_clear()
        dbe.reset()
    out, err = capsys.readouterr()
    return rc, out, err, None


def _outcome(rc, err: str, crash: str | None) -> tuple[str, str | None]:
    """("success" | "refused" | "usage error", None) or (kind, what is wrong)."""
    errors = [ln for ln in err.splitlines() if ln.startswith("cscat: error:")]
    if crash is not None or "Traceback (most recent call last)" in err:
        return "traceback", crash or err[-300:]
    if rc == 0:
        return ("success", None) if not errors else ("success", f"exit 0 but {errors[0]!r}")
    if len(errors) != 1:
        return "not one line", f"exit {rc}, {len(errors)} error lines: {err[-300:]!r}"
    return ("usage error" if rc == 2 and "--help" in errors[0] else "refused"), None


def check_config_case(data: bytes, path: Path, capsys) -> tuple[str, bool, str]:
    path.write_bytes(data)
    want = config_oracle(data)
    rc, out, err, crash = run_cli(["status"], capsys)
    outcome, wrong = _outcome(rc, err, crash)
    if wrong:
        return outcome, False, wrong
    if outcome != "success":
        line = next(ln for ln in err.splitlines() if ln.startswith("cscat: error:"))
        problems = [] if str(path) in line or "CSCAT_" in line else ["does not name the file"]
        if "values" in want and not any(k in line for k in want["values"]):
            problems.append("names no setting of the file")
        return "config refused", not problems, "; ".join(problems) + f" {line[:200]!r}"
    if "refuse" in want:
        return "config accepted", False, f"must be refused ({want['refuse']})"[:300]
    used = Settings()  # what the command read (same environment, same file)
    problems = []
    for key, in_file in want["values"].items():
        value = getattr(used, key)
        if not _equal(value, in_file):
            problems.append(f"{key}: file {in_file!r}, used {value!r}")
        elif not _in_range(key, value):
            problems.append(f"{key} = {value!r} accepted, outside its documented range")
    if "schema:" not in out:
        problems.append(f"status printed {out[:120]!r}")
    return "config accepted", not problems, "; ".join(problems)[:400]


@pytest.fixture
def config_path(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "config.toml"
    monkeypatch.setenv("CSCAT_CONFIG", str(path))
    monkeypatch.setenv("CSCAT_DATA_DIR", str(tmp_path / "data"))
    # tests/conftest.py pins primary_family in the environment, which would win over the file
    monkeypatch.delenv("CSCAT_PRIMARY_FAMILY", raising=False)
    return path


def test_fuzzed_config_file(db_url, config_path, capsys, record, soak):
    # CI draws the same cases every run (derandomized); a soak run explores new ones
    @settings(max_examples=40 * soak, deadline=None, database=None, derandomize=soak == 1,
              suppress_health_check=list(HealthCheck))
    @given(data=config_files())
    def check(data):
        outcome, held, detail = check_config_case(data, config_path, capsys)
        assert record(f"config fuzz: {outcome}", f"config {data[:120]!r}", held, detail), \
            f"{data!r}: {detail}"

    check()


KNOWN_CONFIGS = {
    "n_components = 0": b"n_components = 0\n",
    "n_components = -3": b"n_components = -3\n",
    "csc_chunk_obsids = 0": b"csc_chunk_obsids = 0\n",
    "embedded_port = 70000": b"embedded_port = 70000\n",
    "sql_timeout_s = inf": b"sql_timeout_s = inf\n",
    "simbad_radius_arcsec = nan": b"simbad_radius_arcsec = nan\n",
    "random_state = -1": b"random_state = -1\n",
    "refit_detection_growth = -1.0": b"refit_detection_growth = -1.0\n",
    "n_components = 2.5": b"n_components = 2.5\n",
    "features = 'PAPER12'": b"features = 'PAPER12'\n",
    "invalid UTF-8": b"features = \"\xff\"\n",
    "not TOML": b"n_components 6\n",
    "misspelt key": b"n_component = 6\n",
    "a valid file": b"n_components = 6\nfeatures = \"paper11\"\nsql_max_rows = 10\n",
}


@pytest.mark.parametrize("name", sorted(KNOWN_CONFIGS))
def test_known_config_files(db_url, config_path, capsys, record, name):
    outcome, held, detail = check_config_case(KNOWN_CONFIGS[name], config_path, capsys)
    assert record(f"config fuzz: {outcome}", f"config {name}", held, detail), detail


# -- the command line --------------------------------------------------------------------------
#: Commands whose body runs the pipeline or a server: replaced by a stub checking its args.
STUBBED = ["update", "refit", "reclassify", "build_master", "demo", "serve", "db_start",
           "db_stop"]
WORDS = ["update", "refit", "reclassify", "master", "demo", "serve", "status", "check", "sql",
         "ingest", "csc", "simbad", "file", "simbad-file", "db", "url", "upgrade", "start",
         "stop", "--until", "--refit", "--source", "--refresh-days", "--wait", "--all",
         "--model", "--format", "--epoch", "--verbose", "-v", "--help", "--version", "tap",
         "sample", "auto", "always", "never", "csv", "table", "--", "-", "--bogus", "-x"]
ODD_VALUES = ["2016-12-31", "2016-02-30", "20161231", "0", "-1", "1e400", "nan", "inf",
              "-inf", "3", "9" * 40, "", " ", "'; DROP TABLE catalog.release; --",
              "SELECT 1", "select count(*) from catalog.csc_source", "select 1; select 2",
              "select '%s'", "\x1b[2J", "名前", "a\nb", "/nonexistent/x.csv", "/tmp", ".",
              "x" * 3000]
ARG = st.one_of(st.sampled_from(WORDS), st.sampled_from(ODD_VALUES),
                st.text(st.characters(blacklist_characters="\x00",
                                      blacklist_categories=("Cs",)), max_size=20))
STARTS = [["update"], ["refit"], ["reclassify"], ["master"], ["status"], ["check"],
          ["sql"], ["ingest", "file"], ["ingest", "csc"], ["ingest", "simbad"],
          ["ingest", "simbad-file"], ["db", "url"], ["db", "upgrade"], [], ["demo"]]


#: Each command's options and values worth trying (right ones and wrong ones).
DATES = ["2016-12-31", "2000-01-01", "2016-02-30", "20161231", "tomorrow", ""]
NUMBERS = ["0", "1", "7.5", "-1", "nan", "inf", "1e400", "x", ""]
OPTIONS = {
    "update": {"--until": DATES, "--refit": ["auto", "always", "never", "sometimes"],
               "--source": ["tap", "sample", "file"], "--refresh-days": NUMBERS,
               "--wait": None},
    "refit": {"--wait": None},
    "reclassify": {"--all": None, "--model": ["1", "2", "0", "-3", "1.5", "x", "99999"]},
    "sql": {"--format": ["table", "csv", "json"]},
    "ingest csc": {"--until": DATES, "--source": ["sample", "tap", "x"]},
    "ingest simbad": {"--refresh-days": NUMBERS, "--source": ["sample", "tap"],
                      "--epoch": ["1", "2", "x"]},
}
POSITIONAL = {"sql": ODD_VALUES, "ingest file": ["empty.csv", "/nonexistent/x.csv", ".",
                                                 "x.parquet", "x.fits", "", "名前.vot"],
              "ingest simbad-file": ["empty.csv", "/nonexistent/x.csv", "."]}


@st.composite
def argvs(draw) -> list[str]:
    start = draw(st.sampled_from(STARTS))
    name = " ".join(start)
    argv = list(start)
    if name in POSITIONAL and draw(st.integers(0, 9)):
        argv.append(draw(st.one_of(st.sampled_from(POSITIONAL[name]), ARG)))
    options = OPTIONS.get(name, {})
    for opt in draw(st.lists(st.sampled_from(sorted(options)), max_size=3, unique=True)
                    if options else st.just([])):
        argv.append(opt)
        if options[opt] is not None:
            argv.append(draw(st.one_of(st.sampled_from(options[opt]), ARG)))
    if not draw(st.integers(0, 4)):  # now and then something else, anywhere
        argv.insert(draw(st.integers(0, len(argv))), draw(ARG))
    return argv


def _argument_problems(name: str, args) -> list[str]:
    """The parsed arguments of a stubbed command against their documented meaning."""
    found = []
    until = getattr(args, "until", None)
    if until is not None:
        try:
            date.fromisoformat(until)
        except (TypeError, ValueError):
            found.append(f"--until {until!r} is no date")
    days = getattr(args, "refresh_days", None)
    if days is not None and not (isinstance(days, float) and math.isfinite(days)
                                 and days >= 0):
        found.append(f"--refresh-days {days!r} accepted: not a number of days")
    model = getattr(args, "model", None)
    if model is not None and not (isinstance(model, int) and model >= 1):
        found.append(f"--model {model!r} accepted: not a model version")
    return found


def check_cli_case(argv: list[str], capsys, monkeypatch) -> tuple[str, bool, str]:
    seen: list[list[str]] = []

    def stub(name):
        def run(args):
            seen.append(_argument_problems(name, args))
            return 0
        return run

    for name in STUBBED:
        monkeypatch.setattr(commands, name, stub(name))
    real_ingest = commands.ingest

    def ingest(args):  # files for real; the services (and the sample) through the stub
        return stub("ingest")(args) if args.what in ("csc", "simbad") else real_ingest(args)

    monkeypatch.setattr(commands, "ingest", ingest)
    rc, out, err, crash = run_cli(argv, capsys)
    outcome, wrong = _outcome(rc, err, crash)
    if wrong:
        return outcome, False, wrong
    problems = [p for ps in seen for p in ps]
    if outcome == "usage error" and not err.startswith("cscat: error:"):
        problems.append(f"usage error is not the first line: {err[:200]!r}")
    # ingest file/simbad-file on a path: only success if the file was a table
    return ("stubbed: parsed" if seen else outcome), not problems, "; ".join(problems)[:300]


def test_fuzzed_command_line(db_url, config_path, capsys, record, soak, tmp_path):
    # a table ``ingest file`` may be given by name, and an empty one
    (tmp_path / "empty.csv").write_text("")

    @settings(max_examples=60 * soak, deadline=None, database=None, derandomize=soak == 1,
              suppress_health_check=list(HealthCheck))
    @given(argv=argvs())
    def check(argv):
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(tmp_path)
            outcome, held, detail = check_cli_case(argv, capsys, mp)
        assert record(f"cli fuzz: {outcome}", f"cscat {json.dumps(argv)[:160]}", held,
                      detail), f"{argv!r}: {detail}"

    check()


KNOWN_ARGV = {
    "--refresh-days nan": ["ingest", "simbad", "--source", "sample", "--refresh-days", "nan"],
    "--refresh-days -5": ["update", "--refresh-days", "-5"],
    "--refresh-days inf": ["update", "--refresh-days", "inf"],
    "--model 0": ["reclassify", "--model", "0"],
    "--until 2016-02-30": ["update", "--until", "2016-02-30"],
    "sql with two statements": ["sql", "select 1; select 2"],
    "sql with a percent sign": ["sql", "select '%s'"],
    "ingest file of a directory": ["ingest", "file", "."],
    "ingest file that does not exist": ["ingest", "file", "/nonexistent/x.csv"],
    "unknown command": ["bogus"],
    "no command": [],
}


@pytest.mark.parametrize("name", sorted(KNOWN_ARGV))
def test_known_command_lines(db_url, config_path, capsys, record, monkeypatch, tmp_path,
                             name):
    monkeypatch.chdir(tmp_path)
    outcome, held, detail = check_cli_case(KNOWN_ARGV[name], capsys, monkeypatch)
    assert record(f"cli fuzz: {outcome}", f"cscat {name}", held, detail), detail
