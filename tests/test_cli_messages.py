"""What the user sees when something is wrong (issue 9 §6): one line naming the cause and a
non-zero exit, before Prefect starts; a traceback only with ``--verbose``."""

from __future__ import annotations

import socket

import pytest

from cscat import cli, commands
from db import engine as dbe
from db.settings import get_settings


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch, tmp_path):
    """Each test reads the settings anew, with no config file unless it writes one."""
    monkeypatch.setenv("CSCAT_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # argparse (--version, --help, usage errors)
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines, "nothing on stderr"
    assert "Traceback" not in err
    assert lines[-1].startswith("cscat: error: "), lines
    return lines[-1]


def no_prefect_started() -> bool:
    from flows import runtime

    return runtime._TEMP_SERVER is None


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("cscat ") and out.split()[1][0].isdigit()


@pytest.mark.parametrize("argv", [["update", "--until", "2020-13-01"],
                                  ["ingest", "csc", "--until", "yesterday"]])
def test_bad_until_date(capsys, argv):
    code, _, err = run(capsys, *argv)
    line = one_error_line(err)
    assert code == 2 and repr(argv[-1]) in line and "YYYY-MM-DD" in line
    assert len(err.strip().splitlines()) == 1


def test_unknown_command_is_one_line(capsys):
    code, _, err = run(capsys, "reclasify")
    line = one_error_line(err)
    assert code == 2 and "'reclasify'" in line and "reclassify" in line


def test_no_active_model(capsys, db_url):
    for command in ("reclassify", "master"):
        code, _, err = run(capsys, command)
        line = one_error_line(err)
        assert code == 2 and "no active model" in line and "cscat refit" in line
        assert no_prefect_started()


def test_unknown_model_version(capsys, db_url):
    code, _, err = run(capsys, "reclassify", "--model", "99")
    line = one_error_line(err)
    assert code == 2 and "--model 99" in line and "no such model" in line
    assert no_prefect_started()


def test_misspelled_config_key(capsys, tmp_path, monkeypatch):
    cfg = tmp_path / "config.toml"
    cfg.write_text("n_componets = 5\n")
    monkeypatch.setenv("CSCAT_CONFIG", str(cfg))
    code, _, err = run(capsys, "status")
    line = one_error_line(err)
    assert code == 2 and str(cfg) in line and "'n_componets'" in line
    assert "did you mean 'n_components'" in line


@pytest.mark.parametrize("text, words", [
    ('n_components = "six"\n', ["n_components", "'six'", "integer"]),
    ("n_components = \n", ["config file", "Invalid value"]),
])
def test_bad_config_value_or_syntax(capsys, tmp_path, monkeypatch, text, words):
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    monkeypatch.setenv("CSCAT_CONFIG", str(cfg))
    code, _, err = run(capsys, "status")
    line = one_error_line(err)
    assert code == 2 and all(w in line for w in words), line


def test_bad_environment_value_names_the_variable(capsys, monkeypatch):
    monkeypatch.setenv("CSCAT_CSC_CHUNK_OBSIDS", "many")
    code, _, err = run(capsys, "status")
    line = one_error_line(err)
    assert code == 2 and "CSCAT_CSC_CHUNK_OBSIDS" in line and "'many'" in line


def test_misspelled_environment_variable_is_a_warning(capsys, db_url, monkeypatch):
    monkeypatch.setenv("CSCAT_N_COMPONETS", "5")
    code, out, err = run(capsys, "sql", "select 1 as one")
    assert code == 0 and "one" in out
    assert ("cscat: warning: CSCAT_N_COMPONETS is not a cscat setting (did you mean "
            "'CSCAT_N_COMPONENTS'?)") in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when we return: nothing listens


@pytest.mark.parametrize("argv, setting, what", [
    (["ingest", "csc"], "CSCAT_CSC_TAP_URL", "the CSC TAP service"),
    (["ingest", "simbad"], "CSCAT_XMATCH_URL", "CDS X-Match"),
    (["update"], "CSCAT_CSC_TAP_URL", "the CSC TAP service"),
])
def test_unreachable_service(capsys, db_url, monkeypatch, argv, setting, what):
    url = f"http://127.0.0.1:{_closed_port()}/svc"
    monkeypatch.setenv(setting, url)
    code, _, err = run(capsys, *argv)
    line = one_error_line(err)
    assert code == 2 and f"cannot reach {what} at {url}" in line and "refused" in line
    assert no_prefect_started()


def test_serve_without_a_persistent_prefect_server(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CSCAT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    code, _, err = run(capsys, "serve")
    line = one_error_line(err)
    assert code == 2 and "schedules need a persistent Prefect server" in line
    assert "PREFECT_API_URL" in line and no_prefect_started()


def test_unreachable_database(capsys, monkeypatch):
    monkeypatch.setenv("CSCAT_DATABASE_URL",
                       f"postgresql://u:secret@127.0.0.1:{_closed_port()}/x")
    dbe.reset()
    try:
        code, _, err = run(capsys, "status")
    finally:
        dbe.reset()
    line = one_error_line(err)
    assert code == 2 and "cannot connect" in line and "secret" not in line


def test_unexpected_error_traceback_only_with_verbose(capsys, monkeypatch):
    def boom(args):
        raise ValueError("something broke")

    monkeypatch.setattr(commands, "status", boom)
    code, _, err = run(capsys, "status")
    line = one_error_line(err)
    assert code == 1 and "ValueError: something broke" in line and "--verbose" in line
    code, _, err = run(capsys, "--verbose", "status")
    assert code == 1 and "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1] == "cscat: error: ValueError: something broke"


def test_a_lost_database_connection_is_named(capsys, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def lost(args):
        raise OperationalError("SELECT 1", {}, Exception(
            "server closed the connection unexpectedly\n\tThis probably means ..."))

    monkeypatch.setattr(commands, "status", lost)
    code, _, err = run(capsys, "status")
    line = one_error_line(err)
    assert code == 2
    assert line == ("cscat: error: the database connection was lost: server closed the "
                    "connection unexpectedly")
