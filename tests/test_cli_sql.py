"""``cscat sql`` runs one statement as the read-only role and prints it as a table or CSV."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from cscat.cli import main

PROJECT = Path(__file__).resolve().parents[1]


def admin(db_url: str) -> psycopg.Connection:
    return psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql"), autocommit=True)


def test_select_prints_an_aligned_table(db_url, capsys):
    assert main(["sql", "SELECT 1 AS one, 'x;y' AS text_col"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split("|")[0].strip() == "one"
    assert out[2].split("|")[1].strip() == "x;y"
    assert out[-1] == "(1 row)"


def test_csv_format(db_url, capsys):
    assert main(["sql", "SELECT 1 AS a, NULL AS b, 'q,r' AS c", "--format", "csv"]) == 0
    assert capsys.readouterr().out == 'a,b,c\n1,,"q,r"\n'


def test_it_connects_as_the_read_only_role(db_url, capsys):
    assert main(["sql", "SELECT current_user, (SELECT rolsuper FROM pg_roles "
                        "WHERE rolname = current_user) AS super", "--format", "csv"]) == 0
    assert capsys.readouterr().out == "current_user,super\ncscat_reader,f\n"


@pytest.mark.parametrize("statement", [
    "DELETE FROM catalog.release",
    "CREATE TABLE catalog.sneaky (x int)",
    "UPDATE catalog.ingest_run SET status = 'failed'",
])
def test_write_statement_is_refused_with_a_clear_error(db_url, capsys, statement):
    assert main(["sql", statement]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cscat: error: refused: cscat sql runs read-only queries")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("statement", [
    "COMMIT; DROP TABLE catalog.rejected_row",
    "select E'\\''; commit; create table catalog.pwned(x int); --'",
    "select 1; select 2",
])
def test_a_second_statement_is_refused_by_the_server(db_url, capsys, statement):
    assert main(["sql", statement]) == 2
    assert "cscat: error: refused: cscat sql runs exactly one statement" in capsys.readouterr().err
    with admin(db_url) as conn:
        assert conn.execute("SELECT to_regclass('catalog.rejected_row') IS NOT NULL, "
                            "to_regclass('catalog.pwned') IS NULL").fetchone() == (True, True)


def test_a_trailing_semicolon_and_comments_are_one_statement(db_url, capsys):
    assert main(["sql", "/* ; */ select ';' AS s, $$a;b$$ AS d -- ;\n;", "--format", "csv"]) == 0
    assert capsys.readouterr().out == "s,d\n;,a;b\n"


def test_sql_error_is_one_line(db_url, capsys):
    assert main(["sql", "SELECT * FROM catalog.no_such_table"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no_such_table" in err


def test_percent_is_plain_text(db_url, capsys):
    assert main(["sql", "select '%s' AS a, 100 % 7 AS b, '%%' AS c, '%(x)s' AS d",
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out == "a,b,c,d\n%s,2,%%,%(x)s\n"


def test_floats_at_full_precision(db_url, capsys):
    # RA/Dec to the milliarcsecond and better: shortest round-trip text of the stored double.
    values = [83.63308333333333, -5.391111111111111, 1 / 3, 1e-300, 123456789.12345678]
    with admin(db_url) as conn:
        conn.execute("CREATE TABLE catalog.t_float (x double precision, r real)")
        conn.cursor().executemany("INSERT INTO catalog.t_float VALUES (%s, %s)",
                                  [(v, 0.1) for v in values])
        conn.execute("GRANT SELECT ON catalog.t_float TO cscat_reader")
    try:
        assert main(["sql", "select x, r from catalog.t_float", "--format", "csv"]) == 0
        lines = capsys.readouterr().out.splitlines()[1:]
        assert [float(line.split(",")[0]) for line in lines] == values  # exact, bit for bit
        assert {line.split(",")[1] for line in lines} == {"0.1"}
        assert main(["sql", "select x from catalog.t_float"]) == 0
        table = capsys.readouterr().out
        assert "83.63308333333333" in table and "-5.391111111111111" in table
    finally:
        with admin(db_url) as conn:
            conn.execute("DROP TABLE catalog.t_float")


def test_json_as_json(db_url, capsys):
    doc = {"a": [1, 2.5, None], "b": {"c": "d'e\"f"}, "u": "é"}
    with admin(db_url) as conn:
        literal = conn.execute("SELECT quote_literal(%s)", [json.dumps(doc)]).fetchone()[0]
    sql = f"select {literal}::jsonb AS j, {literal}::json AS t, array[1.5, 2]::float8[] AS a"
    assert main(["sql", sql, "--format", "csv"]) == 0
    out = capsys.readouterr().out
    import csv
    import io
    row = list(csv.DictReader(io.StringIO(out)))[0]
    assert json.loads(row["j"]) == doc and json.loads(row["t"]) == doc
    assert row["a"] == "{1.5,2}"


def test_numbers_are_right_aligned_text_left(db_url, capsys):
    assert main(["sql", "select 7 AS n, 'a' AS s union all select 1234, 'bbbb'"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "   7 | a" and lines[3] == "1234 | bbbb"


def test_survives_a_closed_pipe(db_url):
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    run = subprocess.run(
        f"{sys.executable} -m cscat sql 'select generate_series(1, 100000) AS n' | head -3",
        shell=True, env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT)
    assert run.stdout.splitlines() == ["     n", "------", "     1"]
    assert run.stderr == "", run.stderr


def test_row_limit_and_timeout_are_settings(db_url, capsys, monkeypatch):
    from db import engine as dbe

    monkeypatch.setenv("CSCAT_SQL_MAX_ROWS", "10")
    monkeypatch.setenv("CSCAT_SQL_TIMEOUT_S", "0.5")
    dbe.reset()
    try:
        assert main(["sql", "select generate_series(1, 10)"]) == 0
        capsys.readouterr()
        assert main(["sql", "select generate_series(1, 11)"]) == 2
        assert "more than 10 rows (sql_max_rows" in capsys.readouterr().err
        assert main(["sql", "select pg_sleep(3)"]) == 2
        assert "statement timeout of 0.5 s" in capsys.readouterr().err
    finally:
        monkeypatch.delenv("CSCAT_SQL_MAX_ROWS")
        monkeypatch.delenv("CSCAT_SQL_TIMEOUT_S")
        dbe.reset()


def test_reader_url_is_used_as_given(db_url, capsys, monkeypatch):
    from db import engine as dbe

    monkeypatch.setenv("CSCAT_READER_URL", "postgresql://cscat_reader:wrong@127.0.0.1:1/x")
    dbe.reset()
    try:
        assert main(["sql", "select 1"]) == 2
        err = capsys.readouterr().err
        assert "cannot connect to postgresql://cscat_reader:***@127.0.0.1:1/x" in err
        assert "wrong" not in err and len(err.strip().splitlines()) == 1
    finally:
        monkeypatch.delenv("CSCAT_READER_URL")
        dbe.reset()
